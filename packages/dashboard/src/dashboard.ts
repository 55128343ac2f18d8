import { timingSafeEqual } from 'node:crypto'
import { readFileSync } from 'node:fs'
import { createRequire } from 'node:module'
import {
  assertTopicPattern,
  type DeadLetterFilter,
  type DeadLetterReason,
  type EventStore,
  isDeadLetterStore,
  isTopologyAdmin,
  type Transport,
  uuidV7,
} from '@herald/core'
import Fastify, { type FastifyInstance, type FastifyReply, type FastifyRequest } from 'fastify'
import { createMetricsSampler, lineChart, type MetricsSource } from './charts.js'
import type { SafeHtml } from './html.js'
import { html } from './html.js'
import { deadLetterPage, deadLettersPage, eventsPage, flowPage, layout, tailPage } from './pages.js'

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
}

const cookieName = 'herald_dashboard'
const htmxPath = createRequire(import.meta.url).resolve('htmx.org/dist/htmx.min.js')

function sameToken(given: string | undefined, expected: Buffer): boolean {
  if (given === undefined) return false
  const bytes = Buffer.from(given)
  return bytes.length === expected.length && timingSafeEqual(bytes, expected)
}

function cookieToken(header: string | undefined): string | undefined {
  for (const part of (header ?? '').split(';')) {
    const [name, ...value] = part.trim().split('=')
    if (name === cookieName) return decodeURIComponent(value.join('='))
  }
  return undefined
}

function page(reply: FastifyReply, body: SafeHtml, status = 200): FastifyReply {
  return reply
    .code(status)
    .header('content-type', 'text/html; charset=utf-8')
    .header(
      'content-security-policy',
      "default-src 'self'; script-src 'self' 'unsafe-inline'; style-src 'unsafe-inline'",
    )
    .header('x-content-type-options', 'nosniff')
    .send(body.value)
}

/** Reads a form or query field that may be repeated. */
function list(value: unknown): string[] {
  if (value === undefined || value === null || value === '') return []
  return (Array.isArray(value) ? value : [value]).map(String).filter((v) => v !== '')
}

function filterFrom(fields: Record<string, unknown>): DeadLetterFilter {
  const filter: { ids?: string[]; group?: string; reason?: DeadLetterReason } = {}
  const ids = list(fields.ids)
  if (ids.length > 0) filter.ids = ids
  if (typeof fields.group === 'string' && fields.group !== '') filter.group = fields.group
  if (typeof fields.reason === 'string' && fields.reason !== '') filter.reason = fields.reason as DeadLetterReason
  return filter
}

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
  const app = Fastify({ logger: false })
  await app.register(import('@fastify/formbody').then((m) => m.default))

  app.addHook('onRequest', async (request: FastifyRequest, reply: FastifyReply) => {
    const auth = request.headers.authorization
    const bearer = auth?.startsWith('Bearer ') ? auth.slice(7) : undefined
    const query = (request.query as Record<string, unknown>).token
    if (sameToken(bearer, expected) || sameToken(cookieToken(request.headers.cookie), expected)) return
    if (typeof query === 'string' && sameToken(query, expected)) {
      // A link with the token logs in once; the cookie keeps it out of later URLs and referrers.
      reply.header(
        'set-cookie',
        `${cookieName}=${encodeURIComponent(options.token)}; HttpOnly; SameSite=Strict; Path=/`,
      )
      return
    }
    return reply.code(401).header('content-type', 'text/plain').send('Herald dashboard: a valid token is required\n')
  })

  app.get('/assets/htmx.min.js', async (_request, reply) =>
    reply
      .header('content-type', 'text/javascript')
      .header('cache-control', 'max-age=3600')
      .send(readFileSync(htmxPath)),
  )

  app.get('/', async (request, reply) => {
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
    const group = `herald-dashboard-${uuidV7()}`
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

  // Redrive and purge need an explicit selection: ids, or `all` with the filter fields.
  for (const action of ['redrive', 'purge'] as const) {
    app.post(`/dead-letters/${action}`, async (request, reply) => {
      if (!isDeadLetterStore(transport)) return reply.code(404).send()
      const body = (request.body ?? {}) as Record<string, unknown>
      const filter = filterFrom(body)
      if (filter.ids === undefined && body.all !== 'true')
        return reply.code(400).header('content-type', 'text/plain').send('select dead letters first\n')
      const count =
        action === 'redrive' ? await transport.redriveDeadLetters(filter) : await transport.purgeDeadLetters(filter)
      return reply
        .header('content-type', 'text/html; charset=utf-8')
        .send(`${action === 'redrive' ? 'Redrove' : 'Purged'} ${count} dead letter${count === 1 ? '' : 's'}.`)
    })
  }

  const sampler =
    options.metrics === undefined
      ? undefined
      : createMetricsSampler(options.metrics, { intervalMs: options.sampleIntervalMs ?? 5_000 })
  app.addHook('onClose', async () => sampler?.stop())

  app.get('/charts', async (_request, reply) => {
    if (sampler === undefined)
      return page(
        reply,
        layout('Charts', html`<p>Pass the observability registry as <code>metrics</code> for charts.</p>`),
      )
    const latency = sampler.latency()
    return page(
      reply,
      layout(
        'Charts',
        html`<h1>Throughput and handler latency</h1>
<p class="muted">Sampled every ${(options.sampleIntervalMs ?? 5_000) / 1_000} s; reload for the latest.</p>
${lineChart('Messages handled per second, by type', 'msg/s', sampler.throughput())}
${latency.map((l) => lineChart(`Handler latency in group ${l.group}`, 'ms', l.series))}`,
      ),
    )
  })

  app.get('/events', async (request, reply) => {
    const store = options.eventStore
    if (store === undefined) return page(reply, layout('Events', html`<p>No event store is configured.</p>`))
    const q = request.query as Record<string, unknown>
    const filter: { type?: string; correlationId?: string } = {}
    if (typeof q.type === 'string' && q.type !== '') filter.type = q.type
    if (typeof q.correlationId === 'string' && q.correlationId !== '') filter.correlationId = q.correlationId
    const head = await store.headPosition()
    const result = await store.queryEvents({
      ...(filter.type === undefined ? {} : { types: [filter.type] }),
      ...(filter.correlationId === undefined ? {} : { correlationId: filter.correlationId }),
      after: Math.max(0, head - 10_000),
      limit: 10_000,
    })
    return page(reply, eventsPage(result.items.slice(-200).reverse(), filter))
  })

  app.get('/flows/:correlationId', async (request, reply) => {
    const store = options.eventStore
    if (store === undefined) return page(reply, layout('Flow', html`<p>No event store is configured.</p>`))
    const { correlationId } = request.params as { correlationId: string }
    const result = await store.queryEvents({ correlationId, limit: 1_000 })
    return page(reply, flowPage(correlationId, result.items))
  })

  return app
}
