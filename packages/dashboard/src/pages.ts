import type { DeadLetter, StoredEvent } from '@herald/core'
import { html, type SafeHtml, trusted } from './html.js'

const style = `
body{font:14px/1.4 system-ui,sans-serif;margin:0;color:#1b1f24}
header{background:#1b1f24;color:#fff;padding:.6rem 1rem;display:flex;gap:1.2rem;align-items:center}
header a{color:#cfe3ff;text-decoration:none} header strong{margin-right:1rem}
main{padding:1rem} table{border-collapse:collapse;width:100%} td,th{border-bottom:1px solid #ddd;padding:.3rem .5rem;text-align:left;vertical-align:top}
pre{background:#f4f6f8;padding:.6rem;overflow:auto;max-height:24rem} .muted{color:#667} button{cursor:pointer}
form.inline{display:inline} td.n,th.n{text-align:right;font-variant-numeric:tabular-nums} .ok{color:#1a7f37} .bad{color:#cf222e} .tree{list-style:none;padding-left:1.2rem;border-left:2px solid #ccd} .tree li{margin:.3rem 0}
`

export function layout(title: string, body: SafeHtml): SafeHtml {
  return html`<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<title>${title} · Herald</title>
<meta name="viewport" content="width=device-width, initial-scale=1">
<style>${trusted(style)}</style>
<script src="/assets/htmx.min.js"></script>
<script src="/assets/dashboard.js" defer></script>
</head>
<body>
<header><strong>Herald</strong>
<a href="/">Overview</a><a href="/failures">Failures</a><a href="/dead-letters">Dead letters</a><a href="/tail">Live tail</a><a href="/events">Events</a><a href="/charts">Charts</a>
</header>
<main>${body}</main>
</body>
</html>`
}

export function tailPage(pattern: string): SafeHtml {
  return layout(
    'Live tail',
    html`<h1>Live tail</h1>
<form method="get" action="/tail"><label>Pattern <input name="pattern" value="${pattern}"></label> <button>Follow</button></form>
<p class="muted">Messages published to <code>${pattern}</code> while this page is open, newest first.</p>
<table><thead><tr><th>time</th><th>topic</th><th>type</th><th>id</th><th>payload</th></tr></thead>
<tbody id="tail" data-pattern="${pattern}"></tbody></table>`,
  )
}

/** A dead letter's place in the page: one (group, id), as a row id and as a form value. */
function rowId(group: string, id: string): string {
  return `dl-${Buffer.from(JSON.stringify([group, id])).toString('base64url')}`
}

function selectionValue(group: string, id: string): string {
  return JSON.stringify([group, id])
}

/** An htmx out-of-band swap that takes a redriven or purged dead letter's row off the page. */
export function removedRow(group: string, id: string): SafeHtml {
  return html`<tr id="${rowId(group, id)}" hx-swap-oob="delete"></tr>`
}

function decode(body: Uint8Array): string {
  return new TextDecoder().decode(body)
}

function when(ms: number): string {
  return new Date(ms).toISOString()
}

export function deadLetterRows(letters: readonly DeadLetter[]): SafeHtml {
  return html`${letters.map(
    (l) => html`<tr id="${rowId(l.group, l.envelope.id)}" data-id="${l.envelope.id}">
<td><input type="checkbox" name="selected" value="${selectionValue(l.group, l.envelope.id)}"></td>
<td><a href="/dead-letters/${encodeURIComponent(l.envelope.id)}?group=${encodeURIComponent(l.group)}">${l.envelope.id}</a></td>
<td>${l.group}</td><td>${l.topic}</td><td>${l.reason}</td><td>${l.attempts}</td><td>${when(l.deadLetteredAt)}</td>
<td>${l.error?.message ?? ''}</td>
<td><button type="button" hx-post="/dead-letters/redrive" hx-vals='${JSON.stringify({ selected: selectionValue(l.group, l.envelope.id) })}' hx-target="#result">Redrive</button></td>
</tr>`,
  )}`
}

export function deadLettersPage(
  letters: readonly DeadLetter[],
  filter: { group?: string; reason?: string },
  nextCursor: string | undefined,
): SafeHtml {
  return layout(
    'Dead letters',
    html`<h1>Dead letters</h1>
<form method="get" action="/dead-letters">
<label>Group <input name="group" value="${filter.group ?? ''}"></label>
<label>Reason <input name="reason" value="${filter.reason ?? ''}"></label> <button>Filter</button>
</form>
<p id="result" class="muted"></p>
<form id="selection" hx-post="/dead-letters/redrive" hx-target="#result">
<table><thead><tr><th></th><th>id</th><th>group</th><th>topic</th><th>reason</th><th>attempts</th><th>dead-lettered</th><th>last error</th><th></th></tr></thead>
<tbody>${deadLetterRows(letters)}</tbody></table>
<p><button type="submit">Redrive selected</button>
<button type="button" hx-post="/dead-letters/redrive" hx-vals='${JSON.stringify({ all: 'true', ...filter })}' hx-target="#result" hx-confirm="Redrive every dead letter matching the filter?">Redrive all shown by the filter</button>
<button type="button" hx-post="/dead-letters/purge" hx-include="#selection" hx-target="#result" hx-confirm="Delete the selected dead letters?">Purge selected</button></p>
</form>
${nextCursor === undefined ? '' : html`<p><a href="/dead-letters?cursor=${encodeURIComponent(nextCursor)}&group=${encodeURIComponent(filter.group ?? '')}&reason=${encodeURIComponent(filter.reason ?? '')}">Next page</a></p>`}`,
  )
}

export function deadLetterPage(letter: DeadLetter): SafeHtml {
  return layout(
    `Dead letter ${letter.envelope.id}`,
    html`<h1>Dead letter <code>${letter.envelope.id}</code></h1>
<p>group <b>${letter.group}</b>, topic <b>${letter.topic}</b>, reason <b>${letter.reason}</b>, ${letter.attempts} attempts;
first failed ${when(letter.firstFailedAt)}, last ${when(letter.lastFailedAt)}, dead-lettered ${when(letter.deadLetteredAt)}</p>
<p id="result" class="muted"></p>
<button type="button" hx-post="/dead-letters/redrive" hx-vals='${JSON.stringify({ selected: selectionValue(letter.group, letter.envelope.id) })}' hx-target="#result">Redrive</button>
<h2>Payload</h2><pre id="payload">${decode(letter.envelope.body)}</pre>
<h2>Headers</h2><pre>${JSON.stringify(letter.envelope.headers, null, 2)}</pre>
<h2>Error</h2><pre>${letter.error === undefined ? 'none (the consumer never finished an attempt)' : JSON.stringify(letter.error, null, 2)}</pre>`,
  )
}

/** The event search as the operator typed it. */
export interface EventSearch {
  readonly type: string | undefined
  readonly source: string | undefined
  readonly correlationId: string | undefined
  readonly since: string | undefined
  readonly until: string | undefined
}

export function eventsPage(
  events: readonly StoredEvent[],
  search: EventSearch,
  nextCursor: number | undefined,
): SafeHtml {
  const next = new URLSearchParams()
  for (const [name, value] of Object.entries(search)) if (value !== undefined) next.set(name, value)
  if (nextCursor !== undefined) next.set('before', String(nextCursor))
  return layout(
    'Events',
    html`<h1>Events</h1>
<form method="get" action="/events">
<label>Types <input name="type" value="${search.type ?? ''}" placeholder="order.placed order.paid"></label>
<label>Source <input name="source" value="${search.source ?? ''}"></label>
<label>Correlation id <input name="correlationId" value="${search.correlationId ?? ''}"></label>
<label>Since <input name="since" value="${search.since ?? ''}" placeholder="2026-12-01T09:00:00Z"></label>
<label>Until <input name="until" value="${search.until ?? ''}"></label> <button>Search</button>
</form>
<p class="muted">Newest first, 100 a page, over the whole history.</p>
<table id="events"><thead><tr><th>position</th><th>time</th><th>type</th><th>source</th><th>correlation</th><th>payload</th></tr></thead>
<tbody>${events.map(
      (
        e,
      ) => html`<tr data-position="${e.position}"><td>${e.position}</td><td>${when(e.time)}</td><td>${e.type}</td><td>${e.source}</td>
<td>${e.correlationId === undefined ? '' : html`<a href="/flows/${encodeURIComponent(e.correlationId)}">${e.correlationId}</a>`}</td>
<td><code>${decode(e.envelope.body).slice(0, 200)}</code></td></tr>`,
    )}</tbody></table>
${nextCursor === undefined ? (events.length === 0 ? html`<p>No events match.</p>` : '') : html`<p><a id="older" href="/events?${next.toString()}">Older events</a></p>`}`,
  )
}

/** The causation tree of one correlation id: each event under the event whose handler produced it. */
export function flowPage(correlationId: string, events: readonly StoredEvent[]): SafeHtml {
  const children = new Map<string | undefined, StoredEvent[]>()
  const ids = new Set(events.map((e) => e.envelope.id))
  for (const e of events) {
    const cause = e.envelope.headers.causationid
    const parent = cause !== undefined && ids.has(cause) ? cause : undefined
    children.set(parent, [...(children.get(parent) ?? []), e])
  }
  const start = events[0]?.time ?? 0
  const branch = (parent: string | undefined): SafeHtml =>
    html`<ul class="tree">${(children.get(parent) ?? []).map(
      (
        e,
      ) => html`<li><b>${e.type}</b> from ${e.source} <span class="muted">+${e.time - start} ms · ${e.envelope.id}</span>
${branch(e.envelope.id)}</li>`,
    )}</ul>`
  return layout(
    `Flow ${correlationId}`,
    html`<h1>Flow <code>${correlationId}</code></h1><p>${events.length} events, ${events.length > 0 ? (events.at(-1)?.time ?? 0) - start : 0} ms from first to last.</p>${branch(undefined)}`,
  )
}
