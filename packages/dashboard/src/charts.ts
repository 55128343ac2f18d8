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
  /** Deliveries handled so far by group, and of those the ones that failed (retried or dead-lettered). */
  readonly byGroup: Map<string, { handled: number; failed: number }>
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
    const byGroup = new Map<string, { handled: number; failed: number }>()
    for (const v of (await source.getSingleMetric('herald_messages_handled_total')?.get())?.values ?? []) {
      const type = String(v.labels.type ?? '')
      handled.set(type, (handled.get(type) ?? 0) + v.value)
      const group = String(v.labels.group ?? '')
      const counts = byGroup.get(group) ?? { handled: 0, failed: 0 }
      counts.handled += v.value
      if (v.labels.outcome !== 'acked') counts.failed += v.value
      byGroup.set(group, counts)
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
    samples.push({ at: Date.now(), handled, buckets, byGroup })
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
    /** Per group, handled and failed per second over each interval (oldest first), for the overview. */
    groupRates(): Map<string, { handled: number[]; failed: number[] }> {
      const rates = new Map<string, { handled: number[]; failed: number[] }>()
      for (let i = 1; i < samples.length; i++) {
        const prev = samples[i - 1] as Sample
        const s = samples[i] as Sample
        const seconds = Math.max(0.001, (s.at - prev.at) / 1_000)
        for (const [group, now] of s.byGroup) {
          const before = prev.byGroup.get(group) ?? { handled: 0, failed: 0 }
          const r = rates.get(group) ?? { handled: [], failed: [] }
          r.handled.push(Math.max(0, now.handled - before.handled) / seconds)
          r.failed.push(Math.max(0, now.failed - before.failed) / seconds)
          rates.set(group, r)
        }
      }
      return rates
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

/** One chart as uPlot takes it: x values in seconds, then one array per series (null where a series has no point). */
export interface ChartData {
  readonly id: string
  readonly title: string
  readonly unit: string
  readonly series: readonly string[]
  readonly data: readonly (readonly (number | null)[])[]
}

/** Series of points at sample times, aligned on the union of their times. */
export function alignedChart(id: string, title: string, unit: string, series: readonly Series[]): ChartData {
  const times = [...new Set(series.flatMap((s) => s.points.map((p) => p.at)))].sort((a, b) => a - b)
  const index = new Map(times.map((t, i) => [t, i]))
  const columns = series.map((s) => {
    const column: (number | null)[] = times.map(() => null)
    for (const p of s.points) column[index.get(p.at)!] = Math.round(p.value * 1_000) / 1_000
    return column
  })
  return { id, title, unit, series: series.map((s) => s.name), data: [times.map((t) => t / 1_000), ...columns] }
}
