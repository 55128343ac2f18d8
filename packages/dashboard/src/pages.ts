import type { DeadLetter, StoredEvent } from '@herald/core'
import { html, payloadBlock, type SafeHtml, shortId, timeTag, trusted } from './html.js'

const style = `
body{font:14px/1.4 system-ui,sans-serif;margin:0;color:#1b1f24}
header{background:#1b1f24;color:#fff;padding:.6rem 1rem;display:flex;flex-wrap:wrap;gap:.4rem 1.2rem;align-items:center}
header a{color:#cfe3ff;text-decoration:none} header strong{margin-right:1rem}
main{padding:1rem;max-width:100vw;box-sizing:border-box} table{border-collapse:collapse;width:100%;display:block;overflow-x:auto} td,th{border-bottom:1px solid #ddd;padding:.3rem .5rem;text-align:left;vertical-align:top}
pre{background:#f4f6f8;padding:.6rem;overflow:auto;max-height:24rem} .muted{color:#667} button{cursor:pointer}
form.inline{display:inline} .spark{vertical-align:middle;margin-left:.3rem} .nowrap{white-space:nowrap} code.id{font-size:.92em} button.copy{border:none;background:none;color:#667;padding:0 .3rem;font-size:.8em;text-decoration:underline} details summary{cursor:pointer;color:#445} td.lane,th.lane{width:45%} .bar{height:.8rem;background:#4c8bf5;border-radius:2px;min-width:3px} .bad-bar{background:#cf222e} tr.failed td{background:#fff5f5} td.n,th.n{text-align:right;font-variant-numeric:tabular-nums} .ok{color:#1a7f37} .bad{color:#cf222e} .tree{list-style:none;padding-left:1.2rem;border-left:2px solid #ccd} .tree li{margin:.3rem 0}
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
<a href="/">Overview</a><a href="/failures">Failures</a><a href="/dead-letters">Dead letters</a><a href="/tail">Live tail</a><a href="/events">Events</a><a href="/sagas">Sagas</a><a href="/notifications">Notifications</a><a href="/charts">Charts</a><a href="/topology">Topology</a>
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
<p class="muted">Messages published to <code>${pattern}</code> while this page is open, newest first.
<button type="button" id="tail-pause">Pause</button> <span id="tail-rate">0.0 msg/s</span></p>
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
<td class="nowrap"><a href="/dead-letters/${encodeURIComponent(l.envelope.id)}?group=${encodeURIComponent(l.group)}">${shortId(l.envelope.id)}</a></td>
<td>${l.group}</td><td>${l.topic}</td><td>${l.reason}</td><td>${l.attempts}</td><td>${timeTag(l.deadLetteredAt)}</td>
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
first failed ${timeTag(letter.firstFailedAt)}, last ${timeTag(letter.lastFailedAt)}, dead-lettered ${timeTag(letter.deadLetteredAt)}</p>
<p id="result" class="muted"></p>
<button type="button" hx-post="/dead-letters/redrive" hx-vals='${JSON.stringify({ selected: selectionValue(letter.group, letter.envelope.id) })}' hx-target="#result">Redrive</button>
<p><a href="/flows/${encodeURIComponent(letter.envelope.headers.correlationid ?? letter.envelope.id)}">The flow this message belongs to</a></p>
<h2>Payload</h2>${payloadBlock(decode(letter.envelope.body))}
<h2>Headers</h2><details open><summary>${Object.keys(letter.envelope.headers).length} headers</summary><pre>${JSON.stringify(letter.envelope.headers, null, 2)}</pre></details>
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
<label>Types <input name="type" value="${search.type ?? ''}" placeholder="order.placed payment.#"></label>
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

/**
 * One flow as a timeline: each event of the correlation id on its own row, under the event whose handler produced
 * it, with a bar from its time to the last event it led to; events that were dead-lettered are marked failed.
 */
export function flowPage(correlationId: string, events: readonly StoredEvent[], failed: ReadonlySet<string>): SafeHtml {
  const children = new Map<string | undefined, StoredEvent[]>()
  const ids = new Set(events.map((e) => e.envelope.id))
  for (const e of events) {
    const cause = e.envelope.headers.causationid
    const parent = cause !== undefined && ids.has(cause) ? cause : undefined
    children.set(parent, [...(children.get(parent) ?? []), e])
  }
  const start = events.length === 0 ? 0 : Math.min(...events.map((e) => e.time))
  const end = events.length === 0 ? 0 : Math.max(...events.map((e) => e.time))
  const total = Math.max(1, end - start)
  // The last time reached by an event and everything it caused.
  const reach = new Map<string, number>()
  const reachOf = (e: StoredEvent): number => {
    let last = reach.get(e.envelope.id)
    if (last === undefined) {
      last = Math.max(e.time, ...(children.get(e.envelope.id) ?? []).map(reachOf))
      reach.set(e.envelope.id, last)
    }
    return last
  }
  const rows: SafeHtml[] = []
  const visit = (parent: string | undefined, depth: number) => {
    for (const e of children.get(parent) ?? []) {
      const left = ((e.time - start) / total) * 100
      const span = reachOf(e) - e.time
      const width = Math.max(0.4, (span / total) * 100)
      const bad = failed.has(e.envelope.id)
      rows.push(html`<tr class="${bad ? 'failed' : ''}" data-id="${e.envelope.id}">
<td style="padding-left:${0.5 + depth * 1.2}rem"><b>${e.type}</b> <span class="muted">from ${e.source}</span>${bad ? html` <a class="bad" href="/dead-letters/${encodeURIComponent(e.envelope.id)}">dead-lettered</a>` : ''}</td>
<td class="n">+${e.time - start} ms</td><td class="n">${span} ms</td>
<td class="lane"><div class="bar${bad ? ' bad-bar' : ''}" style="margin-left:${left.toFixed(2)}%;width:${Math.min(width, 100 - left).toFixed(2)}%"></div></td></tr>`)
      visit(e.envelope.id, depth + 1)
    }
  }
  visit(undefined, 0)
  return layout(
    `Flow ${correlationId}`,
    html`<h1>Flow <code>${correlationId}</code></h1>
<p>${events.length} events, ${end - start} ms from first to last${failed.size > 0 ? html`; <b class="bad">${failed.size} dead-lettered</b>` : ''}.
Each event sits under the event whose handler published it; its bar runs from its time to the last event it led to.</p>
<table id="timeline"><thead><tr><th>event</th><th class="n">at</th><th class="n">led on for</th><th class="lane">timeline</th></tr></thead>
<tbody>${rows}</tbody></table>`,
  )
}
