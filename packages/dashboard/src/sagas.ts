import { html, payloadBlock, type SafeHtml, timeTag } from './html.js'
import { layout } from './pages.js'

/** A saga instance as the console shows it (what `@herald/saga`'s stores return). */
export interface SagaInstanceView {
  readonly saga: string
  readonly key: string
  readonly state: unknown
  readonly status: string
  readonly reason: string | undefined
  readonly version: number
  readonly timeouts: Readonly<Record<string, { readonly dueAt: number }>>
  readonly compensations: readonly { readonly envelope: { readonly headers: Readonly<Record<string, string>> } }[]
  readonly startedAt: number
  readonly updatedAt: number
  readonly endedAt: number | undefined
}

export interface SagaHistoryView {
  readonly at: number
  readonly messageId: string
  readonly handled: string
  readonly outcome: string
  readonly events: readonly string[]
  readonly status: string | undefined
  readonly sent: readonly string[]
  readonly timeouts: readonly string[]
  readonly note: string | undefined
}

/** Where the console reads sagas: a saga store or a saga host of `@herald/saga`. */
export interface SagaSource {
  find(query: {
    readonly saga?: string
    readonly key?: string
    readonly status?: 'running' | 'completed' | 'compensated' | 'failed'
    readonly startedBefore?: number
    readonly limit?: number
  }): Promise<readonly SagaInstanceView[]>
  history(saga: string, key: string): Promise<readonly SagaHistoryView[]>
  counts(saga?: string): Promise<Readonly<Record<string, number>>>
}

export const sagaStatuses = ['running', 'completed', 'compensated', 'failed'] as const
export type SagaStatusFilter = (typeof sagaStatuses)[number]

export interface SagaSearch {
  readonly saga: string
  readonly key: string
  readonly status: SagaStatusFilter | ''
  /** Minutes: instances that started at least this long ago (the stuck ones, when running). */
  readonly olderThanMinutes: number | undefined
}

/** Reads the sagas page's query; anything else is ignored rather than passed to the store. */
export function sagaSearchFrom(query: Record<string, unknown>): SagaSearch {
  const text = (v: unknown) => (typeof v === 'string' ? v.trim().slice(0, 512) : '')
  const status = text(query.status)
  const minutes = Number(text(query.olderThan))
  return {
    saga: text(query.saga),
    key: text(query.key),
    status: (sagaStatuses as readonly string[]).includes(status) ? (status as SagaStatusFilter) : '',
    olderThanMinutes: text(query.olderThan) !== '' && Number.isFinite(minutes) && minutes >= 0 ? minutes : undefined,
  }
}

function instanceLink(i: { saga: string; key: string }): string {
  return `/sagas/${encodeURIComponent(i.saga)}/${encodeURIComponent(i.key)}`
}

export function sagasPage(
  search: SagaSearch,
  counts: Readonly<Record<string, number>>,
  instances: readonly SagaInstanceView[],
  now: number,
): SafeHtml {
  const rows = instances.map(
    (i) => html`<tr class="${i.status === 'compensated' || i.status === 'failed' ? 'failed' : ''}">
<td>${i.saga}</td><td><a href="${instanceLink(i)}"><code>${i.key}</code></a></td><td>${i.status}</td><td>${i.reason ?? ''}</td>
<td class="n">${i.version}</td><td>${timeTag(i.startedAt)}</td><td>${timeTag(i.updatedAt)}</td>
<td class="n">${Math.round(((i.endedAt ?? now) - i.startedAt) / 1000)} s</td><td>${Object.keys(i.timeouts).join(', ')}</td></tr>`,
  )
  const options = ['', ...sagaStatuses].map(
    (s) => html`<option value="${s}" ${s === search.status ? html`selected` : ''}>${s === '' ? 'any' : s}</option>`,
  )
  return layout(
    'Sagas',
    html`<h1>Sagas</h1>
<p id="saga-counts">${sagaStatuses.map((s) => html`<span class="figure"><b>${counts[s] ?? 0}</b> ${s}</span> `)}</p>
<form method="get" action="/sagas">
<label>Saga <input name="saga" value="${search.saga}" placeholder="shop.order"></label>
<label>Key <input name="key" value="${search.key}"></label>
<label>Status <select name="status">${options}</select></label>
<label>Started over <input name="olderThan" size="4" value="${search.olderThanMinutes ?? ''}"> minutes ago</label>
<button>Find</button></form>
<table id="sagas"><thead><tr><th>saga</th><th>key</th><th>status</th><th>reason</th><th class="n">steps</th><th>started</th><th>updated</th><th class="n">age</th><th>waiting for</th></tr></thead>
<tbody>${rows.length > 0 ? rows : html`<tr><td colspan="9" class="muted">No instance matches.</td></tr>`}</tbody></table>
<p class="muted">The 100 most recently updated matches.</p>`,
  )
}

export function sagaPage(instance: SagaInstanceView, history: readonly SagaHistoryView[]): SafeHtml {
  const timeouts = Object.entries(instance.timeouts).map(
    ([name, t]) => html`<li><b>${name}</b> due ${timeTag(t.dueAt)}</li>`,
  )
  const compensations = instance.compensations.map((c) => html`<li>${c.envelope.headers.type ?? '?'}</li>`)
  const rows = history.map(
    (h) => html`<tr class="${h.outcome === 'ignored' ? 'muted' : ''}">
<td>${timeTag(h.at)}</td><td><b>${h.handled}</b><br><code class="muted">${h.messageId}</code></td><td>${h.outcome}${h.note === undefined ? '' : html` (${h.note})`}</td>
<td>${h.events.join(', ')}</td><td>${h.status ?? ''}</td><td>${h.sent.join(', ')}</td><td>${h.timeouts.join(', ')}</td></tr>`,
  )
  return layout(
    `Saga ${instance.saga} ${instance.key}`,
    html`<h1>Saga <code>${instance.saga}</code> · <code>${instance.key}</code></h1>
<p id="saga-status"><b>${instance.status}</b>${instance.reason === undefined ? '' : html` (${instance.reason})`}, ${instance.version} steps, started ${timeTag(instance.startedAt)}${instance.endedAt === undefined ? '' : html`, ended ${timeTag(instance.endedAt)}`}.</p>
<h2>State</h2>${payloadBlock(JSON.stringify(instance.state))}
<h2>Waiting for</h2>${timeouts.length > 0 ? html`<ul>${timeouts}</ul>` : html`<p class="muted">No timeout.</p>`}
<h2>Would undo, newest last</h2>${compensations.length > 0 ? html`<ol>${compensations}</ol>` : html`<p class="muted">Nothing recorded.</p>`}
<h2>History</h2>
<table id="saga-history"><thead><tr><th>at</th><th>handled</th><th>outcome</th><th>events</th><th>status after</th><th>sent</th><th>timeouts asked</th></tr></thead>
<tbody>${rows}</tbody></table>`,
  )
}
