import { html, type SafeHtml } from './html.js'

/** The part of a prom-client `Registry` the charts read (so the dashboard needs no prom-client of its own). */
export interface MetricsSource {
  getSingleMetric(name: string):
    | {
        get(): Promise<{
          values: { value: number; labels: { readonly [name: string]: string | number | undefined } }[]
        }>
      }
    | undefined
}

interface Sample {
  readonly at: number
  /** Deliveries handled so far, by message type (all outcomes). */
  readonly handled: Map<string, number>
  /** Cumulative handle-duration bucket counts, by group, then by upper bound. */
  readonly buckets: Map<string, Map<number, number>>
}

export interface Series {
  readonly name: string
  readonly points: readonly { at: number; value: number }[]
}

/** The quantile `q` of the observations that fell between two cumulative bucket snapshots (as PromQL does). */
function quantile(q: number, before: Map<number, number> | undefined, after: Map<number, number>): number | undefined {
  const bounds = [...after.keys()].sort((a, b) => a - b)
  const counts = bounds.map((le) => (after.get(le) ?? 0) - (before?.get(le) ?? 0))
  const total = counts.at(-1) ?? 0
  if (total <= 0) return undefined
  const rank = q * total
  for (let i = 0; i < bounds.length; i++) {
    if ((counts[i] ?? 0) >= rank) {
      const upper = bounds[i] as number
      if (!Number.isFinite(upper)) return bounds[i - 1] // above the highest bound: report that bound
      const lower = i === 0 ? 0 : (bounds[i - 1] as number)
      const below = i === 0 ? 0 : (counts[i - 1] ?? 0)
      const inBucket = (counts[i] ?? 0) - below
      return lower + (upper - lower) * (inBucket === 0 ? 1 : (rank - below) / inBucket)
    }
  }
  return undefined
}

/**
 * Samples Herald's metrics every `intervalMs` and keeps the last `keep` samples: throughput per type and handler
 * latency per group over time, computed from counter and histogram differences between samples.
 */
export function createMetricsSampler(source: MetricsSource, options: { intervalMs?: number; keep?: number } = {}) {
  const keep = options.keep ?? 120
  const samples: Sample[] = []

  async function sample(): Promise<void> {
    const handled = new Map<string, number>()
    for (const v of (await source.getSingleMetric('herald_messages_handled_total')?.get())?.values ?? []) {
      const type = String(v.labels.type ?? '')
      handled.set(type, (handled.get(type) ?? 0) + v.value)
    }
    const buckets = new Map<string, Map<number, number>>()
    for (const v of (await source.getSingleMetric('herald_handle_duration_seconds')?.get())?.values ?? []) {
      // Histogram values carry their series name (`_bucket`, `_sum`, `_count`) next to the labels.
      if ((v as { metricName?: string }).metricName !== 'herald_handle_duration_seconds_bucket') continue
      const group = String(v.labels.group ?? '')
      const le = v.labels.le === '+Inf' ? Number.POSITIVE_INFINITY : Number(v.labels.le)
      const byBound = buckets.get(group) ?? new Map<number, number>()
      byBound.set(le, (byBound.get(le) ?? 0) + v.value)
      buckets.set(group, byBound)
    }
    samples.push({ at: Date.now(), handled, buckets })
    if (samples.length > keep) samples.shift()
  }

  const timer = setInterval(() => void sample().catch(() => {}), options.intervalMs ?? 5_000)
  timer.unref()
  void sample().catch(() => {})

  return {
    sample,
    stop: () => clearInterval(timer),
    /** Messages handled per second, per type. */
    throughput(): Series[] {
      const types = new Set(samples.flatMap((s) => [...s.handled.keys()]))
      return [...types].sort().map((name) => ({
        name,
        points: samples.slice(1).map((s, i) => {
          const prev = samples[i] as Sample
          const seconds = Math.max(0.001, (s.at - prev.at) / 1_000)
          return { at: s.at, value: ((s.handled.get(name) ?? 0) - (prev.handled.get(name) ?? 0)) / seconds }
        }),
      }))
    },
    /** Handler latency p50 / p95 / p99 in ms over each interval, per group. */
    latency(): { group: string; series: Series[] }[] {
      const groups = new Set(samples.flatMap((s) => [...s.buckets.keys()]))
      return [...groups].sort().map((group) => ({
        group,
        series: [0.5, 0.95, 0.99].map((q) => ({
          name: `p${Math.round(q * 100)}`,
          points: samples.slice(1).flatMap((s, i) => {
            const after = s.buckets.get(group)
            const value = after === undefined ? undefined : quantile(q, samples[i]?.buckets.get(group), after)
            return value === undefined ? [] : [{ at: s.at, value: value * 1_000 }]
          }),
        })),
      }))
    },
  }
}

export type MetricsSampler = ReturnType<typeof createMetricsSampler>

const colors = ['#1f77b4', '#d62728', '#2ca02c', '#ff7f0e', '#9467bd', '#8c564b', '#e377c2', '#17becf']

/** A line chart as inline SVG: no script, no library, every label escaped. */
export function lineChart(title: string, unit: string, series: readonly Series[]): SafeHtml {
  const width = 640
  const height = 180
  const all = series.flatMap((s) => s.points)
  const first = Math.min(...all.map((p) => p.at))
  const last = Math.max(...all.map((p) => p.at))
  const top = Math.max(1e-9, ...all.map((p) => p.value))
  const x = (at: number) => (last === first ? width / 2 : ((at - first) / (last - first)) * width)
  const y = (value: number) => height - (value / top) * (height - 10)
  return html`<figure>
<figcaption>${title} <span class="muted">(max ${top.toFixed(top < 10 ? 2 : 0)} ${unit})</span></figcaption>
<svg viewBox="0 0 ${width} ${height}" width="${width}" height="${height}" role="img" aria-label="${title}" style="background:#f8f9fb">
${series.map(
  (s, i) =>
    html`<polyline data-series="${s.name}" fill="none" stroke="${colors[i % colors.length]}" stroke-width="2" points="${s.points.map((p) => `${x(p.at).toFixed(1)},${y(p.value).toFixed(1)}`).join(' ')}"></polyline>`,
)}
</svg>
<p>${series.map((s, i) => html`<span style="color:${colors[i % colors.length]}">■</span> ${s.name} `)}</p>
</figure>`
}
