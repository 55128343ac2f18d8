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

  // Times in the reader's zone and as how long ago; ids copied by their button. Run again after every htmx swap.
  const ago = (ms) => {
    const s = Math.round((Date.now() - ms) / 1_000)
    if (s < 5) return 'just now'
    if (s < 90) return `${s} s ago`
    if (s < 5_400) return `${Math.round(s / 60)} min ago`
    if (s < 129_600) return `${Math.round(s / 3_600)} h ago`
    return `${Math.round(s / 86_400)} days ago`
  }
  const times = (root) => {
    for (const t of root.querySelectorAll('time[datetime]')) {
      const ms = Date.parse(t.getAttribute('datetime'))
      if (Number.isFinite(ms)) t.textContent = `${new Date(ms).toLocaleString()} (${ago(ms)})`
    }
  }
  times(document)
  document.addEventListener('htmx:afterSwap', (event) => times(event.detail.target.parentElement ?? document))
  setInterval(() => times(document), 30_000)
  document.addEventListener('click', (event) => {
    const button = event.target.closest?.('button.copy')
    if (button === null || button === undefined) return
    event.preventDefault()
    void navigator.clipboard?.writeText(button.dataset.copy ?? '').then(() => {
      button.textContent = 'copied'
      setTimeout(() => {
        button.textContent = 'copy'
      }, 1_000)
    })
  })

  const charts = document.getElementById('charts')
  if (charts !== null && typeof uPlot === 'function') drawCharts(charts)

  const rows = document.getElementById('tail')
  if (rows === null) return
  const source = new EventSource(`/tail/stream?pattern=${encodeURIComponent(rows.dataset.pattern ?? '#')}`)
  // Pause holds the rows still (messages keep being counted); the rate is what arrived over the last 5 s.
  let paused = false
  const pause = document.getElementById('tail-pause')
  const rate = document.getElementById('tail-rate')
  pause?.addEventListener('click', () => {
    paused = !paused
    pause.textContent = paused ? 'Resume' : 'Pause'
  })
  const arrivals = []
  setInterval(() => {
    while (arrivals.length > 0 && arrivals[0] < Date.now() - 5_000) arrivals.shift()
    if (rate !== null) rate.textContent = `${(arrivals.length / 5).toFixed(1)} msg/s`
  }, 1_000)
  let received = 0
  source.addEventListener('message', (e) => {
    arrivals.push(Date.now())
    if (rate !== null) rate.dataset.received = String(++received)
    if (paused) return
    const m = JSON.parse(e.data)
    const tr = document.createElement('tr')
    for (const text of [new Date(m.time).toLocaleTimeString(), m.topic, m.type, m.id, m.body]) {
      const td = document.createElement('td')
      td.textContent = text
      tr.appendChild(td)
    }
    // The id shortened, whole on hover.
    const idCell = tr.children[3]
    idCell.title = m.id
    idCell.className = 'nowrap'
    if (m.id.length > 16) idCell.textContent = `${m.id.slice(0, 8)}…${m.id.slice(-4)}`
    tr.dataset.id = m.id
    rows.prepend(tr)
    while (rows.children.length > 500) rows.lastChild.remove()
  })

  // Live charts: one uPlot per chart, redrawn with each sample the server sends over server-sent events.
  function drawCharts(container) {
    const plots = new Map()
    // Distinct colours for any number of series: hues a golden angle apart.
    const colour = (i) => `hsl(${Math.round((i * 137.508) % 360)} 65% 42%)`
    const width = () => Math.max(320, Math.min(container.clientWidth, 1200))
    const source = new EventSource(container.dataset.stream)
    source.addEventListener('message', (e) => {
      for (const chart of JSON.parse(e.data)) {
        let plot = plots.get(chart.id)
        if (plot !== undefined && plot.series.length !== chart.series.length + 1) {
          plot.destroy()
          plot.root.parentElement.remove()
          plot = undefined
        }
        if (plot === undefined) {
          const figure = document.createElement('figure')
          figure.dataset.chart = chart.id
          container.appendChild(figure)
          plot = new uPlot(
            {
              title: chart.title,
              width: width(),
              height: 220,
              series: [
                {},
                ...chart.series.map((name, i) => ({
                  label: name,
                  stroke: colour(i),
                  width: 2,
                  points: { show: true, size: 4 },
                  value: (_u, v) => (v == null ? '–' : `${v} ${chart.unit}`),
                })),
              ],
              axes: [{}, { label: chart.unit, size: 60 }],
              scales: { y: { range: (_u, _min, max) => [0, Math.max(1, max * 1.1)] } },
            },
            chart.data,
            figure,
          )
          plots.set(chart.id, plot)
        } else {
          plot.setData(chart.data)
        }
        plot.root.parentElement.dataset.points = String(chart.data[0].length)
      }
    })
  }
})()
