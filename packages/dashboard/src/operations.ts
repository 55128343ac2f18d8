import { randomUUID } from 'node:crypto'
import type { DeadLetter, DeadLetterStore, GroupInfo, HealthReport, HeldKey, TopologyDescription } from '@herald/core'
import { html, type SafeHtml, shortId, timeTag } from './html.js'
import { layout } from './pages.js'

/** What the overview shows: the transport, its health, every group and the keys dead letters hold. */
export interface Overview {
  readonly transport: string
  readonly health: HealthReport | undefined
  readonly groups: readonly GroupInfo[] | undefined
  readonly heldKeys: readonly HeldKey[] | undefined
  /** Handled and failed per second by group over the recent samples, oldest first; absent without metrics. */
  readonly rates:
    | ReadonlyMap<string, { readonly handled: readonly number[]; readonly failed: readonly number[] }>
    | undefined
  /** Epoch ms the figures were read. */
  readonly at: number
}

const dash = html`<span class="muted">–</span>`

function figure(value: number | undefined): SafeHtml | number {
  return value === undefined ? dash : value
}

/** A lag in time, as an operator reads it: 0, 850 ms, 12 s, 4 min, 3 h. */
export function duration(ms: number | undefined): SafeHtml | string {
  if (ms === undefined) return dash
  if (ms < 1_000) return `${Math.round(ms)} ms`
  if (ms < 60_000) return `${Math.round(ms / 1_000)} s`
  if (ms < 3_600_000) return `${Math.round(ms / 60_000)} min`
  return `${(ms / 3_600_000).toFixed(1)} h`
}

/**
 * The latest rate and a sparkline of the recent ones: an inline SVG polyline, no axes (the charts page has
 * those), scaled to its own highest value.
 */
function rate(values: readonly number[] | undefined, bad = false): SafeHtml {
  if (values === undefined || values.length === 0) return dash
  const last = values.at(-1)!
  const top = Math.max(...values, 1e-9)
  const width = 80
  const height = 18
  const step = values.length === 1 ? 0 : width / (values.length - 1)
  const points = values.map((v, i) => `${(i * step).toFixed(1)},${(height - 1 - (v / top) * (height - 2)).toFixed(1)}`)
  return html`<span class="rate">${last < 10 ? last.toFixed(1) : Math.round(last)}</span>
<svg class="spark" width="${width}" height="${height}" viewBox="0 0 ${width} ${height}" aria-hidden="true"><polyline fill="none" stroke="${bad && last > 0 ? '#cf222e' : '#4c8bf5'}" stroke-width="1.5" points="${points.join(' ')}"></polyline></svg>`
}

/** The part of the overview that refreshes itself every 2 s. */
export function overviewFigures(o: Overview): SafeHtml {
  const health =
    o.health === undefined
      ? html`<span class="muted">no health check</span>`
      : o.health.ok
        ? html`<b class="ok">healthy</b>`
        : html`<b class="bad">unhealthy</b> <code>${JSON.stringify(o.health.details)}</code>`
  const groups =
    o.groups === undefined
      ? html`<p class="muted">${o.transport} cannot list its groups.</p>`
      : html`<table id="groups"><thead><tr><th>group</th><th>patterns</th><th class="n">depth</th><th class="n">in flight</th>
<th class="n">scheduled</th><th class="n">on key</th><th class="n">dead letters</th><th class="n">held keys</th><th class="n">lag</th>
<th>handled/s</th><th>failed/s</th></tr></thead>
<tbody>${o.groups.map(
          (
            g,
          ) => html`<tr data-group="${g.group}"><td><b>${g.group}</b></td><td><code>${g.patterns.join(' ')}</code></td>
<td class="n">${g.depth}</td><td class="n">${figure(g.inFlight)}</td><td class="n">${figure(g.scheduled)}</td>
<td class="n">${figure(g.waitingOnKey)}</td>
<td class="n">${g.deadLetters > 0 ? html`<a class="bad" href="/failures?group=${encodeURIComponent(g.group)}">${g.deadLetters}</a>` : 0}</td>
<td class="n">${g.heldKeys === undefined ? dash : g.heldKeys > 0 ? html`<b class="bad">${g.heldKeys}</b>` : 0}</td>
<td class="n">${duration(g.oldestDueAgeMs)}</td>
<td class="nowrap">${rate(o.rates?.get(g.group)?.handled)}</td><td class="nowrap">${rate(o.rates?.get(g.group)?.failed, true)}</td></tr>`,
        )}</tbody></table>`
  const held =
    o.heldKeys === undefined
      ? ''
      : html`<h2>Held keys</h2>
${
  o.heldKeys.length === 0
    ? html`<p class="muted">No key is held by a dead letter.</p>`
    : html`<p class="muted">A key of a group with <code>afterDeadLetter: 'hold'</code> waits for its dead letter: redrive it
(it goes first), purge it, or release the key (its next message goes; the dead letter stays).</p>
<table id="held-keys"><thead><tr><th>group</th><th>key</th><th>held by</th><th class="n">waiting</th><th></th></tr></thead>
<tbody>${o.heldKeys.map(
        (k) => html`<tr><td>${k.group}</td><td><code>${k.key}</code></td>
<td class="nowrap"><a href="/dead-letters/${encodeURIComponent(k.deadLetterId)}?group=${encodeURIComponent(k.group)}">${shortId(k.deadLetterId)}</a></td>
<td class="n">${k.waiting}</td>
<td><button type="button" hx-post="/keys/release" hx-vals='${JSON.stringify({ group: k.group, key: k.key })}' hx-target="#result"
hx-confirm="${`Release key ${k.key} of group ${k.group}? Its next message goes on; the dead letter stays.`}">Release</button></td></tr>`,
      )}</tbody></table>`
}`
  return html`<div id="figures" hx-get="/overview/figures" hx-trigger="every 2s" hx-swap="outerHTML">
<p>Transport <b>${o.transport}</b>: ${health} <span class="muted">· read ${timeTag(o.at)}, refreshed every 2 s</span></p>
${groups}${held}</div>`
}

export function overviewPage(o: Overview): SafeHtml {
  return layout(
    'Overview',
    html`<h1>Overview</h1><p id="result" class="muted"></p>${overviewFigures(o)}
<p class="muted">depth: messages waiting or being handled; on key: keyed messages waiting behind an earlier one of
their key; lag: how long the oldest due message has waited.</p>`,
  )
}

/** Dead letters that failed the same way: one group, one reason, one error type, one message once ids and numbers are masked. */
export interface FailureGroup {
  readonly key: string
  readonly group: string
  readonly reason: string
  readonly errorName: string
  readonly message: string
  count: number
  firstSeen: number
  lastSeen: number
  readonly sampleId: string
}

/**
 * An error message with what varies between messages masked: UUIDs, long hex strings, numbers and quoted
 * text. `order 42 cannot be billed` and `order 7 cannot be billed` are one failure.
 */
export function normalisedMessage(message: string): string {
  return message
    .replace(/\b[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}\b/gi, '<id>')
    .replace(/\b[0-9a-f]{16,}\b/gi, '<hex>')
    .replace(/"[^"]*"|'[^']*'/g, '<text>')
    .replace(/\d+(\.\d+)?/g, '<n>')
    .slice(0, 300)
}

export function failureKeyOf(letter: DeadLetter): string {
  const name = letter.error?.name ?? ''
  const message = normalisedMessage(letter.error?.message ?? '')
  return Buffer.from(JSON.stringify([letter.group, letter.reason, name, message])).toString('base64url')
}

/** Most dead letters one grouping reads: beyond it, the page says it counted only the first ones. */
export const maxScanned = 200_000

/** Reads every dead letter (a page of 1,000 at a time) matching `group`, and groups them by failure. */
export async function scanFailures(
  store: DeadLetterStore,
  group: string | undefined,
  visit?: (letter: DeadLetter, key: string) => void,
): Promise<{ groups: FailureGroup[]; scanned: number; complete: boolean }> {
  const groups = new Map<string, FailureGroup>()
  let scanned = 0
  let cursor: string | undefined
  do {
    const page = await store.listDeadLetters({
      limit: 1_000,
      ...(group === undefined ? {} : { group }),
      ...(cursor === undefined ? {} : { cursor }),
    })
    for (const letter of page.items) {
      const key = failureKeyOf(letter)
      visit?.(letter, key)
      const found = groups.get(key)
      if (found === undefined) {
        groups.set(key, {
          key,
          group: letter.group,
          reason: letter.reason,
          errorName: letter.error?.name ?? '',
          message: normalisedMessage(letter.error?.message ?? ''),
          count: 1,
          firstSeen: letter.deadLetteredAt,
          lastSeen: letter.deadLetteredAt,
          sampleId: letter.envelope.id,
        })
      } else {
        found.count++
        found.firstSeen = Math.min(found.firstSeen, letter.deadLetteredAt)
        found.lastSeen = Math.max(found.lastSeen, letter.deadLetteredAt)
      }
    }
    scanned += page.items.length
    cursor = page.nextCursor
  } while (cursor !== undefined && scanned < maxScanned)
  return { groups: [...groups.values()].sort((a, b) => b.count - a.count), scanned, complete: cursor === undefined }
}

export function failuresPage(
  result: { groups: readonly FailureGroup[]; scanned: number; complete: boolean },
  group: string | undefined,
): SafeHtml {
  return layout(
    'Failures',
    html`<h1>Failures by cause</h1>
<form method="get" action="/failures"><label>Group <input name="group" value="${group ?? ''}"></label> <button>Show</button></form>
<p class="muted">Dead letters grouped by group, reason, error type and message (ids, numbers and quoted text masked).
${result.complete ? html`${result.scanned} dead letters.` : html`<b>Counted the first ${result.scanned} dead letters only.</b>`}</p>
<p id="result" class="muted"></p>
${
  result.groups.length === 0
    ? html`<p>No dead letters.</p>`
    : html`<table id="failures"><thead><tr><th class="n">count</th><th>group</th><th>reason</th><th>error</th><th>message</th>
<th>first seen</th><th>last seen</th><th></th></tr></thead><tbody>${result.groups.map(
        (
          f,
        ) => html`<tr id="failure-${f.key}"><td class="n"><b>${f.count}</b></td><td>${f.group}</td><td>${f.reason}</td>
<td>${f.errorName}</td><td><code>${f.message}</code><br><a class="muted" href="/dead-letters/${encodeURIComponent(f.sampleId)}?group=${encodeURIComponent(f.group)}">an example</a></td>
<td>${timeTag(f.firstSeen)}</td><td>${timeTag(f.lastSeen)}</td>
<td><button type="button" hx-post="/failures/redrive" hx-vals='${JSON.stringify({ failure: f.key })}' hx-target="#result"
hx-confirm="${`Redrive the ${f.count} dead letters of group ${f.group} that failed with ${f.reason}${f.errorName === '' ? '' : ` (${f.errorName})`}?`}">Redrive all</button>
<button type="button" hx-post="/failures/purge" hx-vals='${JSON.stringify({ failure: f.key })}' hx-target="#result"
hx-confirm="${`Delete the ${f.count} dead letters of group ${f.group} that failed with ${f.reason}? They cannot be recovered.`}">Purge all</button></td></tr>`,
      )}</tbody></table>`
}`,
  )
}

/** What is bound to what, in the transport's own names: where publishes go, each group's queue, delays, dead letters. */
export function topologyPage(topology: TopologyDescription | undefined, transport: string): SafeHtml {
  if (topology === undefined)
    return layout('Topology', html`<h1>Topology</h1><p>${transport} cannot describe its topology.</p>`)
  // Which groups each topic pattern feeds: the same pattern bound to several groups fans out to each.
  const byPattern = new Map<string, string[]>()
  for (const g of topology.groups)
    for (const pattern of g.patterns) byPattern.set(pattern, [...(byPattern.get(pattern) ?? []), g.group])
  return layout(
    'Topology',
    html`<h1>Topology</h1>
<table id="topology-entry"><tbody>
<tr><th>transport</th><td>${topology.transport}</td></tr>
<tr><th>publishes go to</th><td><code>${topology.entry}</code></td></tr>
<tr><th>delays and retries wait in</th><td><code>${topology.delays}</code></td></tr>
<tr><th>dead letters are kept in</th><td><code>${topology.deadLetters}</code></td></tr>
</tbody></table>
<h2>Groups</h2>
<table id="topology-groups"><thead><tr><th>group</th><th>bound to</th><th>its messages wait in</th></tr></thead>
<tbody>${topology.groups.map(
      (g) =>
        html`<tr data-group="${g.group}"><td><b>${g.group}</b></td><td>${g.patterns.map((p) => html`<code>${p}</code> `)}</td><td><code>${g.queue}</code></td></tr>`,
    )}</tbody></table>
<h2>Patterns</h2>
<p class="muted">Every group bound to a pattern gets its own copy of each message that matches it; consumers of one
group share that group's copies.</p>
<table id="topology-patterns"><thead><tr><th>pattern</th><th>groups</th></tr></thead>
<tbody>${[...byPattern]
      .sort(([a], [b]) => (a < b ? -1 : 1))
      .map(
        ([pattern, groups]) => html`<tr><td><code>${pattern}</code></td><td>${groups.join(', ')}</td></tr>`,
      )}</tbody></table>`,
  )
}

/** A bulk action running in the background: how many it found, how many it has done, and how it ended. */
export interface Job {
  readonly id: string
  readonly action: 'redrive' | 'purge'
  readonly group: string
  /** Undefined while the dead letters are still being found. */
  total: number | undefined
  done: number
  state: 'running' | 'finished' | 'failed'
  error: string | undefined
}

/** The console's jobs, the last 100 kept. */
export function createJobs() {
  const jobs = new Map<string, Job>()
  return {
    start(action: Job['action'], group: string, work: (progress: Job) => Promise<void>): Job {
      const job: Job = {
        id: randomUUID(),
        action,
        group,
        total: undefined,
        done: 0,
        state: 'running',
        error: undefined,
      }
      jobs.set(job.id, job)
      if (jobs.size > 100) jobs.delete(jobs.keys().next().value!)
      work(job).then(
        () => {
          job.state = 'finished'
        },
        (err: unknown) => {
          job.state = 'failed'
          job.error = err instanceof Error ? err.message : String(err)
        },
      )
      return job
    },
    get: (id: string) => jobs.get(id),
  }
}

/** A job's progress; while it runs, it asks for itself again every second. */
export function jobFragment(job: Job): SafeHtml {
  const plural = (n: number) => `${n} dead letter${n === 1 ? '' : 's'}`
  const verb = job.action === 'redrive' ? 'Redrove' : 'Purged'
  if (job.state === 'finished')
    return html`<span id="job-${job.id}" data-state="finished">${verb} ${plural(job.done)} of group ${job.group}.</span>`
  if (job.state === 'failed')
    return html`<span id="job-${job.id}" data-state="failed" class="bad">${verb} ${plural(job.done)} of group ${job.group}, then failed: ${job.error}</span>`
  const doing = job.action === 'redrive' ? 'Redriving' : 'Purging'
  const where =
    job.total === undefined
      ? 'finding the dead letters…'
      : `${job.done} of ${job.total} (${Math.floor((100 * job.done) / Math.max(1, job.total))}%)`
  return html`<span id="job-${job.id}" data-state="running" hx-get="/jobs/${job.id}" hx-trigger="every 1s" hx-swap="outerHTML">${doing} group ${job.group}: ${where}</span>`
}
