/**
 * A consumer in its own process, so tests can kill it with SIGKILL at an exact point. Started by
 * `spawnConsumer` with one JSON argument; writes one JSON line per event to stdout (synchronous on Linux pipes,
 * so a line written before the kill is never lost). SIGTERM closes it gracefully.
 */
import { resolve } from 'node:path'
import { pathToFileURL } from 'node:url'
import type { Delivery, Envelope, Transport } from '@herald/core'
import type { ConsumerWorkerConfig } from './spawn-consumer.js'

const config = JSON.parse(process.argv[2] ?? '{}') as ConsumerWorkerConfig
const decoder = new TextDecoder()

function emit(event: Record<string, unknown>): void {
  process.stdout.write(`${JSON.stringify(event)}\n`)
}

const factoryModule = (await import(pathToFileURL(resolve(config.module)).href)) as Record<string, unknown>
const factory = factoryModule[config.exportName] as (options: unknown) => Transport | Promise<Transport>
const transport = await factory(config.options)
let deliveries = 0

const spec = {
  group: config.group,
  patterns: config.patterns,
  ...(config.maxInFlight === undefined ? {} : { maxInFlight: config.maxInFlight }),
  ...(config.retry === undefined ? {} : { retry: config.retry }),
  ...(config.ordering === undefined ? {} : { ordering: config.ordering }),
  ...(config.maxPerSecond === undefined ? {} : { maxPerSecond: config.maxPerSecond }),
}

async function handle(envelope: Envelope, delivery: Delivery): Promise<void> {
  deliveries++
  emit({
    event: 'delivered',
    id: envelope.id,
    attempt: delivery.attempt,
    pid: process.pid,
    at: performance.timeOrigin + performance.now(),
  })
  const body = decoder.decode(envelope.body)
  if (config.crashOnBodyContaining !== undefined && body.includes(config.crashOnBodyContaining)) {
    process.kill(process.pid, 'SIGKILL')
  }
  if (config.crashAtDelivery !== undefined && deliveries === config.crashAtDelivery)
    process.kill(process.pid, 'SIGKILL')
  if (config.failFirstAttempt && delivery.attempt === 1) throw new Error('first attempt fails')
  if (config.failRate !== undefined && delivery.attempt < 4 && Math.random() < config.failRate)
    throw new Error('failed at random')
  if (config.hangOnBodyContaining !== undefined && body.includes(config.hangOnBodyContaining)) {
    await new Promise((done) => delivery.signal.addEventListener('abort', done, { once: true }))
    return
  }
  // Let other deliveries start, so a crash catches several in flight.
  if (config.handlerDelayMs === undefined) await new Promise((done) => setImmediate(done))
  else await new Promise((done) => setTimeout(done, config.handlerDelayMs))
  emit({ event: 'completed', id: envelope.id, pid: process.pid, ...(config.echoBody ? { body } : {}) })
}

for (let i = 0; i < (config.consumers ?? 1); i++) await transport.subscribe(spec, handle)
emit({ event: 'ready', pid: process.pid })

process.on('SIGTERM', () => {
  void transport.close().then(() => process.exit(0))
})
