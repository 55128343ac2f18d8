// The dashboard's only script (the page allows no inline script): the CSRF header on every htmx request,
// refusals shown where results go, and the live tail.
;(() => {
  const csrf = () => {
    const found = document.cookie.split('; ').find((c) => c.startsWith('herald_dashboard_csrf='))
    return found === undefined ? '' : decodeURIComponent(found.slice('herald_dashboard_csrf='.length))
  }
  document.addEventListener('htmx:configRequest', (event) => {
    event.detail.headers['x-csrf-token'] = csrf()
  })
  // A 400 (nothing selected) or 403 (refused) says why: show it rather than swallow it.
  document.addEventListener('htmx:beforeSwap', (event) => {
    const status = event.detail.xhr.status
    if (status === 400 || status === 403) {
      event.detail.shouldSwap = true
      event.detail.isError = false
    }
  })

  const rows = document.getElementById('tail')
  if (rows === null) return
  const source = new EventSource(`/tail/stream?pattern=${encodeURIComponent(rows.dataset.pattern ?? '#')}`)
  source.addEventListener('message', (e) => {
    const m = JSON.parse(e.data)
    const tr = document.createElement('tr')
    for (const text of [m.time, m.topic, m.type, m.id, m.body]) {
      const td = document.createElement('td')
      td.textContent = text
      tr.appendChild(td)
    }
    tr.dataset.id = m.id
    rows.prepend(tr)
    while (rows.children.length > 500) rows.lastChild.remove()
  })
})()
