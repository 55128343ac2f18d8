import { startRabbitMq } from '@herald/testkit'
import amqp from 'amqplib'
import { uuidV7 } from '@herald/core'
import { createRabbitMqTransport } from './src/index.js'
const s = await startRabbitMq()
const N = 30_000
const body = new TextEncoder().encode('{"n":1}')
try {
  for (let round = 0; round < 2; round++) {
    const name = `p${round}`
    const t = await createRabbitMqTransport({ url: s.url, exchange: name, namespace: name, queueName: (g) => `${name}.${g}` })
    await t.declareGroup('g', ['bench.#'])
    let t0 = performance.now()
    for (let sent = 0; sent < N; sent += 1000)
      await Promise.all(Array.from({ length: 1000 }, () => t.publish('bench.tick', [{ id: uuidV7(), headers: { type: 'bench.tick' }, body }])))
    const pub = N / ((performance.now() - t0) / 1000)
    t0 = performance.now()
    let n = 0
    let done!: () => void
    const all = new Promise<void>((r) => (done = r))
    await t.subscribe({ group: 'g', patterns: ['bench.#'], maxInFlight: 100 }, async () => { if (++n === N) done() })
    await all
    const con = N / ((performance.now() - t0) / 1000)
    await t.close()
    // raw
    const c = await amqp.connect(s.url, { noDelay: true })
    const ch = await c.createConfirmChannel()
    const q = `raw${round}`
    await ch.assertExchange(q, 'topic', { durable: true })
    await ch.assertQueue(q, { durable: true, arguments: { 'x-queue-type': 'quorum' } })
    await ch.bindQueue(q, q, 'bench.#')
    t0 = performance.now()
    for (let sent = 0; sent < N; sent += 1000)
      await Promise.all(Array.from({ length: 1000 }, () => new Promise<void>((res, rej) => ch.publish(q, 'bench.tick', Buffer.from(body), process.env.HDR ? { persistent: true, mandatory: false, messageId: 'x0190', type: 'bench.tick', headers: { 'cloudEvents:id': 'x0190aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa', 'cloudEvents:type': 'bench.tick' } } : { persistent: true }, (e) => (e ? rej(e) : res())))))
    const rpub = N / ((performance.now() - t0) / 1000)
    const cc = await c.createChannel()
    await cc.prefetch(100)
    let m = 0
    let rdone!: () => void
    const rall = new Promise<void>((r) => (rdone = r))
    t0 = performance.now()
    await cc.consume(q, (msg) => { if (!msg) return; cc.ack(msg); if (++m === N) rdone() })
    await rall
    const rcon = N / ((performance.now() - t0) / 1000)
    await c.close()
    console.log({ pub: Math.round(pub), rpub: Math.round(rpub), con: Math.round(con), rcon: Math.round(rcon) })
  }
} finally {
  await s.stop()
}
