import { html, payloadBlock, type SafeHtml, timeTag } from './html.js'
import { layout } from './pages.js'

/** A notification record as the console shows it (what `@herald/notifications`' stores return). */
export interface NotificationView {
  readonly id: string
  readonly user: string
  readonly channel: string
  readonly to: string
  readonly category: string
  readonly template: string
  readonly locale: string
  readonly data: unknown
  readonly status: string
  readonly attempts: number
  readonly lastError: { readonly name: string; readonly message: string } | undefined
  readonly providerId: string | undefined
  readonly subject: string | undefined
  readonly body: string | undefined
  readonly rule: string | undefined
  readonly batch: string | undefined
  readonly createdAt: number
  readonly sentAt: number | undefined
  readonly readAt: number | undefined
}

/** Where the console reads notification records: a store of `@herald/notifications`. */
export interface NotificationSource {
  query(query: {
    readonly user?: string
    readonly status?: 'pending' | 'sent' | 'read' | 'failed' | 'suppressed'
    readonly channel?: 'email' | 'sms' | 'push' | 'in_app'
    readonly batch?: string
    readonly limit?: number
  }): Promise<readonly NotificationView[]>
  get(id: string): Promise<NotificationView | undefined>
  counts(filter?: { readonly user?: string; readonly batch?: string }): Promise<Readonly<Record<string, number>>>
}

export const notificationStatuses = ['pending', 'sent', 'read', 'failed', 'suppressed'] as const
export const notificationChannels = ['email', 'sms', 'push', 'in_app'] as const

export interface NotificationSearch {
  readonly user: string
  readonly batch: string
  readonly status: (typeof notificationStatuses)[number] | ''
  readonly channel: (typeof notificationChannels)[number] | ''
}

/** Reads the page's query; values outside the known ones are dropped rather than passed to the store. */
export function notificationSearchFrom(query: Record<string, unknown>): NotificationSearch {
  const text = (v: unknown) => (typeof v === 'string' ? v.trim().slice(0, 512) : '')
  const pick = <T extends string>(value: string, allowed: readonly T[]): T | '' =>
    (allowed as readonly string[]).includes(value) ? (value as T) : ''
  return {
    user: text(query.user),
    batch: text(query.batch),
    status: pick(text(query.status), notificationStatuses),
    channel: pick(text(query.channel), notificationChannels),
  }
}

const select = (name: string, values: readonly string[], chosen: string) =>
  html`<select name="${name}">${['', ...values].map(
    (v) => html`<option value="${v}" ${v === chosen ? html`selected` : ''}>${v === '' ? 'any' : v}</option>`,
  )}</select>`

export function notificationsPage(
  search: NotificationSearch,
  counts: Readonly<Record<string, number>>,
  records: readonly NotificationView[],
): SafeHtml {
  const rows = records.map(
    (r) => html`<tr class="${r.status === 'failed' ? 'failed' : ''}">
<td><a href="/notifications/${encodeURIComponent(r.id)}"><code>${r.id}</code></a></td><td>${r.user}</td><td>${r.channel}</td>
<td>${r.status}</td><td class="n">${r.attempts}</td><td>${r.rule ?? ''}</td><td>${timeTag(r.createdAt)}</td>
<td>${r.lastError?.message ?? ''}</td></tr>`,
  )
  return layout(
    'Notifications',
    html`<h1>Notifications</h1>
<p id="notification-counts">${notificationStatuses.map((s) => html`<span class="figure"><b>${counts[s] ?? 0}</b> ${s}</span> `)}</p>
<form method="get" action="/notifications">
<label>User <input name="user" value="${search.user}"></label>
<label>Batch <input name="batch" value="${search.batch}"></label>
<label>Status ${select('status', notificationStatuses, search.status)}</label>
<label>Channel ${select('channel', notificationChannels, search.channel)}</label>
<button>Find</button></form>
<table id="notifications"><thead><tr><th>id</th><th>user</th><th>channel</th><th>status</th><th class="n">attempts</th><th>rule</th><th>created</th><th>last error</th></tr></thead>
<tbody>${rows.length > 0 ? rows : html`<tr><td colspan="8" class="muted">No notification matches.</td></tr>`}</tbody></table>
<p class="muted">The 100 newest matches.</p>`,
  )
}

export function notificationPage(r: NotificationView): SafeHtml {
  const times = [
    html`created ${timeTag(r.createdAt)}`,
    ...(r.sentAt === undefined ? [] : [html`, sent ${timeTag(r.sentAt)}`]),
    ...(r.readAt === undefined ? [] : [html`, read ${timeTag(r.readAt)}`]),
  ]
  return layout(
    `Notification ${r.id}`,
    html`<h1>Notification <code>${r.id}</code></h1>
<p id="notification-status"><b>${r.status}</b> after ${r.attempts} attempts, ${times}.</p>
<table><tbody>
<tr><th>user</th><td>${r.user}</td></tr><tr><th>channel</th><td>${r.channel} → ${r.to}</td></tr>
<tr><th>template</th><td>${r.template} (${r.locale})</td></tr><tr><th>category</th><td>${r.category}</td></tr>
<tr><th>rule</th><td>${r.rule ?? ''}</td></tr><tr><th>batch</th><td>${r.batch ?? ''}</td></tr>
<tr><th>provider id</th><td><code>${r.providerId ?? ''}</code></td></tr>
<tr><th>last error</th><td>${r.lastError === undefined ? '' : `${r.lastError.name}: ${r.lastError.message}`}</td></tr>
</tbody></table>
<h2>Sent</h2>${r.body === undefined ? html`<p class="muted">Not rendered yet.</p>` : html`<p><b>${r.subject ?? ''}</b></p><pre id="notification-body">${r.body}</pre>`}
<h2>Template data</h2>${payloadBlock(JSON.stringify(r.data))}`,
  )
}
