import { timingSafeEqual } from 'node:crypto'
import { readFileSync } from 'node:fs'
import { createRequire } from 'node:module'
import { dirname, join } from 'node:path'
import { fileURLToPath } from 'node:url'
import {
  assertTopicPattern,
  type DeadLetterFilter,
  type EventStore,
  isDeadLetterStore,
  isHealthCheck,
  isHeraldError,
  isKeyAdmin,
  isTopologyAdmin,
  isTopologyDescriber,
  type Transport,
  uuidV7,
} from '@herald/core'
import Fastify, { type FastifyInstance, type FastifyReply, type FastifyRequest } from 'fastify'
import { alignedChart, type ChartData, createMetricsSampler, type MetricsSource } from './charts.js'
import { eventSearchFrom, filterFrom, groupOfFailure, selectionFrom } from './forms.js'
import type { SafeHtml } from './html.js'
import { html } from './html.js'
import {
  type NotificationSource,
  notificationPage,
  notificationSearchFrom,
  notificationsPage,
} from './notifications.js'
import {
  createJobs,
  failuresPage,
  jobFragment,
  type Overview,
  overviewFigures,
  overviewPage,
  scanFailures,
  topologyPage,
} from './operations.js'
import { deadLetterPage, deadLettersPage, eventsPage, flowPage, layout, removedRow, tailPage } from './pages.js'
import { type SagaSource, sagaPage, sagaSearchFrom, sagasPage } from './sagas.js'
import { createSessions, readCookie, type Session } from './session.js'

export interface DashboardOptions {
  readonly transport: Transport
  /** Enables event search and flows. */
  readonly eventStore?: EventStore
  /** Required on every request: `Authorization: Bearer <token>`, or `?token=` once (it then sets a cookie). */
  readonly token: string
  /** Most tail connections at once (each holds a temporary group). Default 20. */
  readonly maxTails?: number
  /** Herald's metrics (the `registry` of `@herald/observability`): enables the charts page. */
  readonly metrics?: MetricsSource
  /** How often the charts sample the metrics. Default 5 s. */
  readonly sampleIntervalMs?: number
  /** A saga store or host (`@herald/saga`): enables the sagas pages. */
  readonly sagas?: SagaSource
  /** A notification store (`@herald/notifications`): enables the notifications pages. */
  readonly notifications?: NotificationSource
  /** How long a browser stays logged in after opening the token link. Default 8 h. */
  readonly sessionTtlMs?: number
}

const cookieName = 'herald_dashboard_session'
/** The dashboard's own temporary groups, one per live tail: never shown as the operator's. */
const tailGroupPrefix = 'herald-dashboard-'
/** Readable by the page's own script (never by another site's), which sends it back as `x-csrf-token`. */
const csrfCookieName = 'herald_dashboard_csrf'
const htmxPath = createRequire(import.meta.url).resolve('htmx.org/dist/htmx.min.js')
/** uPlot's package directory: its `exports` name no files, so it is found through its package.json. */
const uplotDir = join(dirname(createRequire(import.meta.url).resolve('uplot/package.json')), 'dist')
const scriptPath = fileURLToPath(new URL('../assets/dashboard.js', import.meta.url))

function sameToken(given: string | undefined, expected: Buffer): boolean {
  if (given === undefined) return false
  const bytes = Buffer.from(given)
  return bytes.length === expected.length && timingSafeEqual(bytes, expected)
}

/** No inline script, no framing, no referrer: set on every response. */
const securityHeaders = {
  'content-security-policy':
    "default-src 'self'; script-src 'self'; style-src 'self' 'unsafe-inline'; img-src 'self' data:; connect-src 'self'; frame-ancestors 'none'; base-uri 'none'; form-action 'self'",
  'x-frame-options': 'DENY',
  'referrer-policy': 'no-referrer',
  'x-content-type-options': 'nosniff',
}

function page(reply: FastifyReply, body: SafeHtml, status = 200): FastifyReply {
  return reply
    .code(status)
    .header('content-type', 'text/html; charset=utf-8')
    .header('cache-control', 'no-store')
    .send(body.value)
}

function text(reply: FastifyReply, status: number, body: string): FastifyReply {
  return reply.code(status).header('content-type', 'text/plain; charset=utf-8').send(`${body}\n`)
}

/** A request from this dashboard's own pages: the browser says so (`Sec-Fetch-Site`), or its `Origin` matches. */
function sameOrigin(request: FastifyRequest): boolean {
  const site = request.headers['sec-fetch-site']
  if (typeof site === 'string') return site === 'same-origin'
  const origin = request.headers.origin
  return typeof origin === 'string' && origin === `${request.protocol}://${request.headers.host}`
}

const safeMethods = new Set(['GET', 'HEAD', 'OPTIONS'])

/**
 * The dashboard: a fastify app serving plain HTML (htmx for the buttons, no build step). Every page and API call
 * needs the token; everything from messages is escaped, never rendered as markup.
 */
export async function createDashboard(options: DashboardOptions): Promise<FastifyInstance> {
  if (options.token.length < 16) throw new Error('the dashboard token must be at least 16 characters')
  const expected = Buffer.from(options.token)
  const transport = options.transport
  const maxTails = options.maxTails ?? 20
  let tails = 0
  const sessionTtlMs = options.sessionTtlMs ?? 8 * 3_600_000
  const sessions = createSessions(options.token, sessionTtlMs)
  const sessionOf = new WeakMap<FastifyRequest, Session>()
  const app = Fastify({ logger: false })
  await app.register(import('@fastify/formbody').then((m) => m.default))

  app.addHook('onSend', async (_request, reply, payload) => {
    for (const [name, value] of Object.entries(securityHeaders)) reply.header(name, value)
    return payload
  })

  // Who is asking: an API client with the token as a bearer (no cookie, so no cross-site risk), a browser with a
  // signed session, or a browser opening the token link, which swaps it for a session and a clean URL.
  app.addHook('onRequest', async (request: FastifyRequest, reply: FastifyReply) => {
    const auth = request.headers.authorization
    if (sameToken(auth?.startsWith('Bearer ') ? auth.slice(7) : undefined, expected)) return
    const now = Date.now()
    const session = sessions.verify(readCookie(request.headers.cookie, cookieName), now)
    if (session !== undefined) {
      sessionOf.set(request, session)
      return
    }
    const query = (request.query as Record<string, unknown>).token
    if (request.method === 'GET' && typeof query === 'string' && sameToken(query, expected)) {
      const issued = sessions.issue(now)
      const maxAge = Math.floor(sessionTtlMs / 1_000)
      reply.header('set-cookie', [
        `${cookieName}=${issued.value}; HttpOnly; SameSite=Strict; Path=/; Max-Age=${maxAge}`,
        `${csrfCookieName}=${issued.session.csrf}; SameSite=Strict; Path=/; Max-Age=${maxAge}`,
      ])
      const clean = new URL(request.url, 'http://dashboard')
      clean.searchParams.delete('token')
      return reply.code(303).header('location', `${clean.pathname}${clean.search}`).send()
    }
    return text(reply, 401, 'Herald dashboard: a valid token is required')
  })

  // A state-changing request from a browser comes from this dashboard's own pages, with the session's CSRF token.
  app.addHook('preHandler', async (request: FastifyRequest, reply: FastifyReply) => {
    if (safeMethods.has(request.method)) return
    const session = sessionOf.get(request)
    if (session === undefined) return
    if (!sameOrigin(request)) return text(reply, 403, 'refused: the request did not come from this dashboard')
    const given = request.headers['x-csrf-token'] ?? (request.body as Record<string, unknown> | undefined)?.csrf
    if (!sessions.checkCsrf(session, given)) return text(reply, 403, 'refused: missing or wrong CSRF token; reload')
  })

  app.setErrorHandler(async (error, _request, reply) => {
    if (isHeraldError(error, 'CONFIGURATION')) return text(reply, 400, error.message)
    const status = (error as { statusCode?: number }).statusCode
    if (status !== undefined && status >= 400 && status < 500) return text(reply, status, (error as Error).message)
    return text(reply, 500, 'internal error')
  })

  app.get('/assets/htmx.min.js', async (_request, reply) =>
    reply
      .header('content-type', 'text/javascript')
      .header('cache-control', 'max-age=3600')
      .send(readFileSync(htmxPath)),
  )
  app.get('/assets/uplot.iife.min.js', async (_request, reply) =>
    reply
      .header('content-type', 'text/javascript')
      .header('cache-control', 'max-age=3600')
      .send(readFileSync(join(uplotDir, 'uPlot.iife.min.js'))),
  )
  app.get('/assets/uplot.min.css', async (_request, reply) =>
    reply
      .header('content-type', 'text/css')
      .header('cache-control', 'max-age=3600')
      .send(readFileSync(join(uplotDir, 'uPlot.min.css'))),
  )
  app.get('/assets/dashboard.js', async (_request, reply) =>
    reply.header('content-type', 'text/javascript').header('cache-control', 'no-cache').send(readFileSync(scriptPath)),
  )

  async function overview(): Promise<Overview> {
    const at = Date.now()
    const [health, groups, heldKeys] = await Promise.all([
      isHealthCheck(transport)
        ? transport.checkHealth().catch((err: unknown) => ({ ok: false, details: { error: String(err) } }))
        : undefined,
      isTopologyAdmin(transport) ? transport.listGroups() : undefined,
      isKeyAdmin(transport) ? transport.listHeldKeys() : undefined,
    ])
    // The dashboard's own temporary groups (live tails) are not the operator's.
    const own = (g: { group: string }) => !g.group.startsWith(tailGroupPrefix)
    const rates = sampler?.groupRates()
    return { transport: transport.name, health, groups: groups?.filter(own), heldKeys, rates, at }
  }

  app.get('/', async (_request, reply) => page(reply, overviewPage(await overview())))
  app.get('/topology', async (_request, reply) => {
    const topology = isTopologyDescriber(transport) ? await transport.describeTopology() : undefined
    const own = topology && { ...topology, groups: topology.groups.filter((g) => !g.group.startsWith(tailGroupPrefix)) }
    return page(reply, topologyPage(own, transport.name))
  })
  app.get('/overview/figures', async (_request, reply) => page(reply, overviewFigures(await overview())))

  app.post('/keys/release', async (request, reply) => {
    if (!isKeyAdmin(transport)) return reply.code(404).send()
    const body = (request.body ?? {}) as Record<string, unknown>
    const { group, key } = body
    if (typeof group !== 'string' || group === '' || typeof key !== 'string' || key === '')
      return text(reply, 400, 'name the group and the key to release')
    const released = await transport.releaseKey(group, key)
    return page(
      reply,
      released ? html`Released key ${key} of group ${group}.` : html`Key ${key} of group ${group} was not held.`,
    )
  })

  app.get('/failures', async (request, reply) => {
    if (!isDeadLetterStore(transport))
      return page(reply, layout('Failures', html`<p>${transport.name} keeps no dead letters.</p>`))
    const group = (request.query as Record<string, unknown>).group
    const only = typeof group === 'string' && group !== '' ? group : undefined
    return page(reply, failuresPage(await scanFailures(transport, only), only))
  })

  // A failure group's dead letters are found again by the same grouping, then acted on 1,000 ids at a time, as a
  // job the page follows: a group of 100,000 takes a while, and the operator sees how far it got.
  const jobs = createJobs()
  for (const action of ['redrive', 'purge'] as const) {
    app.post(`/failures/${action}`, async (request, reply) => {
      if (!isDeadLetterStore(transport)) return reply.code(404).send()
      const failure = ((request.body ?? {}) as Record<string, unknown>).failure
      const group = groupOfFailure(failure)
      if (group === undefined) return text(reply, 400, 'the failure group is malformed')
      const job = jobs.start(action, group, async (progress) => {
        const ids: string[] = []
        await scanFailures(transport, group, (letter, key) => {
          if (key === failure) ids.push(letter.envelope.id)
        })
        progress.total = ids.length
        for (let i = 0; i < ids.length; i += 1_000) {
          const chosen = { group, ids: ids.slice(i, i + 1_000) }
          progress.done +=
            action === 'redrive' ? await transport.redriveDeadLetters(chosen) : await transport.purgeDeadLetters(chosen)
        }
      })
      return page(reply, jobFragment(job))
    })
  }
  app.get('/jobs/:id', async (request, reply) => {
    const job = jobs.get((request.params as { id: string }).id)
    if (job === undefined) return text(reply, 404, 'no such job (the console keeps the last 100)')
    return page(reply, jobFragment(job))
  })

  app.get('/tail', async (request, reply) => {
    const pattern = String((request.query as Record<string, unknown>).pattern ?? '#')
    assertTopicPattern(pattern)
    return page(reply, tailPage(pattern))
  })

  // Server-sent events: a temporary group bound to the pattern, removed when the page goes away.
  app.get('/tail/stream', async (request, reply) => {
    const pattern = String((request.query as Record<string, unknown>).pattern ?? '#')
    assertTopicPattern(pattern)
    if (tails >= maxTails) return reply.code(503).send('too many live tails open\n')
    tails++
    const group = `${tailGroupPrefix}${uuidV7()}`
    reply.hijack()
    const res = reply.raw
    res.writeHead(200, { 'content-type': 'text/event-stream', 'cache-control': 'no-store', connection: 'keep-alive' })
    res.write(': tailing\n\n')
    const decoder = new TextDecoder()
    const subscription = await transport.subscribe({ group, patterns: [pattern], maxInFlight: 50 }, async (e, d) => {
      const data = JSON.stringify({
        id: e.id,
        topic: d.topic,
        type: e.headers.type ?? '',
        time: e.headers.time ?? new Date().toISOString(),
        body: decoder.decode(e.body).slice(0, 2_000),
      })
      res.write(`data: ${data}\n\n`)
    })
    request.raw.on('close', () => {
      tails--
      void subscription
        .close()
        .then(() => (isTopologyAdmin(transport) ? transport.deleteGroup(group) : undefined))
        .catch(() => {})
    })
  })

  app.get('/sagas', async (request, reply) => {
    const source = options.sagas
    if (source === undefined) return page(reply, layout('Sagas', html`<p>No saga store is configured.</p>`))
    const search = sagaSearchFrom(request.query as Record<string, unknown>)
    const now = Date.now()
    const instances = await source.find({
      ...(search.saga === '' ? {} : { saga: search.saga }),
      ...(search.key === '' ? {} : { key: search.key }),
      ...(search.status === '' ? {} : { status: search.status }),
      ...(search.olderThanMinutes === undefined ? {} : { startedBefore: now - search.olderThanMinutes * 60_000 }),
      limit: 100,
    })
    const counts = await source.counts(search.saga === '' ? undefined : search.saga)
    return page(reply, sagasPage(search, counts, instances, now))
  })

  app.get('/sagas/:saga/:key', async (request, reply) => {
    const source = options.sagas
    const { saga, key } = request.params as { saga: string; key: string }
    const [instance] = source === undefined ? [] : await source.find({ saga, key, limit: 1 })
    if (source === undefined || instance === undefined)
      return page(
        reply,
        layout('Not found', html`<p>No saga instance <code>${saga}</code> · <code>${key}</code>.</p>`),
        404,
      )
    return page(reply, sagaPage(instance, await source.history(saga, key)))
  })

  app.get('/notifications', async (request, reply) => {
    const source = options.notifications
    if (source === undefined)
      return page(reply, layout('Notifications', html`<p>No notification store is configured.</p>`))
    const search = notificationSearchFrom(request.query as Record<string, unknown>)
    const records = await source.query({
      ...(search.user === '' ? {} : { user: search.user }),
      ...(search.batch === '' ? {} : { batch: search.batch }),
      ...(search.status === '' ? {} : { status: search.status }),
      ...(search.channel === '' ? {} : { channel: search.channel }),
      limit: 100,
    })
    const counts = await source.counts({
      ...(search.user === '' ? {} : { user: search.user }),
      ...(search.batch === '' ? {} : { batch: search.batch }),
    })
    return page(reply, notificationsPage(search, counts, records))
  })

  app.get('/notifications/:id', async (request, reply) => {
    const { id } = request.params as { id: string }
    const record = await options.notifications?.get(id)
    if (record === undefined)
      return page(reply, layout('Not found', html`<p>No notification <code>${id}</code>.</p>`), 404)
    return page(reply, notificationPage(record))
  })

  app.get('/dead-letters', async (request, reply) => {
    if (!isDeadLetterStore(transport))
      return page(reply, layout('Dead letters', html`<p>${transport.name} keeps no dead letters.</p>`))
    const q = request.query as Record<string, unknown>
    const filter = filterFrom(q)
    const cursor = typeof q.cursor === 'string' && q.cursor !== '' ? q.cursor : undefined
    const result = await transport.listDeadLetters({
      ...filter,
      limit: 50,
      ...(cursor === undefined ? {} : { cursor }),
    })
    return page(reply, deadLettersPage(result.items, filter, result.nextCursor))
  })

  app.get('/dead-letters/:id', async (request, reply) => {
    if (!isDeadLetterStore(transport)) return reply.code(404).send()
    const { id } = request.params as { id: string }
    const group = (request.query as Record<string, unknown>).group
    const letter = await transport.getDeadLetter(id, typeof group === 'string' && group !== '' ? group : undefined)
    if (letter === undefined)
      return page(reply, layout('Not found', html`<p>No dead letter <code>${id}</code>.</p>`), 404)
    return page(reply, deadLetterPage(letter))
  })

  app.get('/api/dead-letters', async (request, reply) => {
    if (!isDeadLetterStore(transport)) return reply.code(404).send({ error: 'no dead-letter store' })
    const page = await transport.listDeadLetters({
      ...filterFrom(request.query as Record<string, unknown>),
      limit: 200,
    })
    return reply.send({
      items: page.items.map((l) => ({
        ...l,
        envelope: { ...l.envelope, body: new TextDecoder().decode(l.envelope.body) },
      })),
      nextCursor: page.nextCursor,
    })
  })

  // Redrive and purge need an explicit selection: (group, id) pairs, or `all` with the filter fields.
  for (const action of ['redrive', 'purge'] as const) {
    app.post(`/dead-letters/${action}`, async (request, reply) => {
      if (!isDeadLetterStore(transport)) return reply.code(404).send()
      const body = (request.body ?? {}) as Record<string, unknown>
      const act = (filter: DeadLetterFilter) =>
        action === 'redrive' ? transport.redriveDeadLetters(filter) : transport.purgeDeadLetters(filter)
      const selection = selectionFrom(body)
      if (selection === undefined) return text(reply, 400, 'the selection is malformed')
      let count = 0
      if (selection.size > 0) for (const [group, ids] of selection) count += await act({ group, ids })
      else if (body.all === 'true') count = await act(filterFrom(body))
      else return text(reply, 400, 'select dead letters first')
      const done = `${action === 'redrive' ? 'Redrove' : 'Purged'} ${count} dead letter${count === 1 ? '' : 's'}.`
      // The rows acted on leave the table (htmx out-of-band swaps).
      const gone = [...selection].flatMap(([group, ids]) => ids.map((id) => removedRow(group, id)))
      return page(reply, html`${done}${gone}`)
    })
  }

  const sampler =
    options.metrics === undefined
      ? undefined
      : createMetricsSampler(options.metrics, { intervalMs: options.sampleIntervalMs ?? 5_000 })
  app.addHook('onClose', async () => sampler?.stop())

  const intervalMs = options.sampleIntervalMs ?? 5_000
  /** Every chart's data; the console's own temporary groups (live tails) are never charted. */
  const chartData = (): ChartData[] =>
    sampler === undefined
      ? []
      : [
          alignedChart('throughput', 'Messages handled per second, by type', 'msg/s', sampler.throughput()),
          ...sampler
            .latency()
            .filter((l) => !l.group.startsWith(tailGroupPrefix))
            .map((l) => alignedChart(`latency-${l.group}`, `Handler latency in group ${l.group}`, 'ms', l.series)),
        ]

  app.get('/charts', async (_request, reply) => {
    if (sampler === undefined)
      return page(
        reply,
        layout('Charts', html`<p>Pass the observability registry as <code>metrics</code> for charts.</p>`),
      )
    return page(
      reply,
      layout(
        'Charts',
        html`<link rel="stylesheet" href="/assets/uplot.min.css"><script src="/assets/uplot.iife.min.js"></script>
<h1>Throughput and handler latency</h1>
<p class="muted">Sampled every ${intervalMs / 1_000} s and drawn as each sample arrives. Drag across a chart to zoom
into a time range, double-click to zoom out; click a legend entry to hide or show its series.</p>
<div id="charts" data-stream="/charts/stream"></div>`,
      ),
    )
  })

  app.get('/charts/data', async (_request, reply) => reply.send(chartData()))

  // Server-sent events: every chart's data at each sample, while the page is open.
  app.get('/charts/stream', async (request, reply) => {
    if (sampler === undefined) return reply.code(404).send()
    reply.hijack()
    const res = reply.raw
    res.writeHead(200, { 'content-type': 'text/event-stream', 'cache-control': 'no-store', connection: 'keep-alive' })
    const send = () => res.write(`data: ${JSON.stringify(chartData())}\n\n`)
    send()
    const timer = setInterval(send, intervalMs)
    request.raw.on('close', () => clearInterval(timer))
  })

  // Search over the whole history, newest first, a page of 100 at a time by cursor: every filter is an indexed
  // column of the event store, so an old event is found as fast as a new one.
  app.get('/events', async (request, reply) => {
    const store = options.eventStore
    if (store === undefined) return page(reply, layout('Events', html`<p>No event store is configured.</p>`))
    const search = eventSearchFrom(request.query as Record<string, unknown>)
    if (typeof search === 'string') return text(reply, 400, search)
    const result = await store.queryEvents({
      ...search.query,
      newestFirst: true,
      limit: 100,
      ...(search.before === undefined ? {} : { before: search.before }),
    })
    return page(reply, eventsPage(result.items, search.fields, result.nextCursor))
  })

  app.get('/flows/:correlationId', async (request, reply) => {
    const store = options.eventStore
    if (store === undefined) return page(reply, layout('Flow', html`<p>No event store is configured.</p>`))
    const { correlationId } = request.params as { correlationId: string }
    const result = await store.queryEvents({ correlationId, limit: 1_000 })
    // Which of the flow's messages were dead-lettered (by any group): one lookup by id each.
    const failed = new Set<string>()
    if (isDeadLetterStore(transport)) {
      const letters = await Promise.all(result.items.map((e) => transport.getDeadLetter(e.envelope.id)))
      for (const letter of letters) if (letter !== undefined) failed.add(letter.envelope.id)
    }
    return page(reply, flowPage(correlationId, result.items, failed))
  })

  return app
}
