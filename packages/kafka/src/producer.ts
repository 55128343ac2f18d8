import { PublishIndeterminateError } from '@herald/core'
import { type BatchOutcome, createCoalescer, succeeded } from '@herald/core/adapter'
import { type Admin, ProduceAcks, Producer } from '@platformatic/kafka'

/** One Kafka record to write. */
export interface Outgoing {
  readonly topic: string
  readonly key: Buffer | undefined
  /** Undefined writes a tombstone (compacted topics drop the key). */
  readonly value: Buffer | undefined
  readonly headers: Record<string, Buffer>
}

export interface HeraldProducer {
  /** Resolves once every record is written with acks=all; rejects with `PublishIndeterminateError` after the deadline. */
  send(records: readonly Outgoing[]): Promise<void>
  /** Creates the topics that do not exist yet (once per topic per process), with `configs` if given. */
  ensureTopics(topics: Iterable<string>, configs?: Readonly<Record<string, string>>): Promise<void>
  close(): Promise<void>
}

export interface ProducerSettings {
  readonly clientId: string
  readonly brokers: readonly string[]
  readonly admin: Admin
  readonly partitions: number
  readonly replicas: number
  /** How long one publish may keep trying before it is indeterminate. */
  readonly publishTimeoutMs: number
  readonly onError: (err: unknown) => void
}

const failoverPauseMs = 250

/** Every message and Kafka error name in an error and the errors it aggregates. */
export function errorText(err: unknown, depth = 0): string {
  if (typeof err !== 'object' || err === null || depth > 4) return String(err)
  const e = err as { message?: unknown; apiId?: unknown; errors?: unknown }
  const inner = Array.isArray(e.errors) ? e.errors.map((x) => errorText(x, depth + 1)).join('; ') : ''
  return [e.message, e.apiId, inner].filter((part) => typeof part === 'string' && part !== '').join(' ')
}

/** True for Kafka's "already exists" answer to CreateTopics, which is what a second creator gets. */
function alreadyExists(err: unknown): boolean {
  const text = errorText(err)
  return text.includes('TOPIC_ALREADY_EXISTS') || text.includes('already exists')
}

/** Records per write stay under Kafka's default message.max.bytes (1 MiB per batch). */
const maxWriteBytes = 512 * 1024

function chunks(records: readonly Outgoing[]): Outgoing[][] {
  const out: Outgoing[][] = []
  let current: Outgoing[] = []
  let bytes = 0
  for (const record of records) {
    let size = (record.value?.length ?? 0) + (record.key?.length ?? 0) + 64
    for (const name in record.headers) size += name.length + (record.headers[name]?.length ?? 0)
    if (current.length > 0 && bytes + size > maxWriteBytes) {
      out.push(current)
      current = []
      bytes = 0
    }
    current.push(record)
    bytes += size
  }
  if (current.length > 0) out.push(current)
  return out
}

/**
 * An idempotent, acks=all producer with one write in flight at a time. Writes made meanwhile wait and go
 * together in the next one, which is how the transport batches. The single write in flight is not a choice for
 * speed: @platformatic/kafka 1.x's idempotent producer loses or refuses writes sent concurrently (its issues
 * #326 and the OUT_OF_ORDER_SEQUENCE_NUMBER seen here), and after a leader dies it keeps retrying the dead node
 * without new metadata (#377). So a failed write refreshes metadata and goes again until the deadline; a write
 * that failed may have been stored, and then is stored twice (at least once: consumers dedupe by id).
 */
export function createProducer(settings: ProducerSettings): HeraldProducer {
  const producer = new Producer({
    clientId: settings.clientId,
    bootstrapBrokers: [...settings.brokers],
    idempotent: true,
    acks: ProduceAcks.ALL,
    retries: 2,
    retryDelay: failoverPauseMs,
    autocreateTopics: false,
  })
  producer.on('error', settings.onError)
  const known = new Set<string>()
  let closed = false

  async function write(records: readonly Outgoing[]): Promise<void> {
    const deadline = Date.now() + settings.publishTimeoutMs
    const messages = records.map((r) => ({
      topic: r.topic,
      ...(r.key === undefined ? {} : { key: r.key }),
      ...(r.value === undefined ? {} : { value: r.value }),
      headers: new Map(Object.entries(r.headers).map(([name, value]) => [Buffer.from(name), value])),
    }))
    for (;;) {
      try {
        await producer.send({ messages })
        return
      } catch (err) {
        if (closed || Date.now() + failoverPauseMs >= deadline) {
          throw new PublishIndeterminateError('kafka', errorText(err), settings.publishTimeoutMs)
        }
        settings.onError(err)
        await new Promise((resolve) => setTimeout(resolve, failoverPauseMs))
        const topics = [...new Set(records.map((r) => r.topic))]
        await producer.metadata({ topics, forceUpdate: true }).catch(() => {})
      }
    }
  }

  const batches = createCoalescer<readonly Outgoing[], void>(
    async (items) => {
      for (const chunk of chunks(items.flat())) await write(chunk)
      return items.map(() => succeeded) as BatchOutcome<void>
    },
    { maxBatch: 200, maxConcurrent: 1 },
  )

  async function ensureTopics(topics: Iterable<string>, configs: Readonly<Record<string, string>> = {}): Promise<void> {
    const missing = [...new Set(topics)].filter((t) => !known.has(t))
    if (missing.length === 0) return
    try {
      await settings.admin.createTopics({
        topics: missing,
        partitions: settings.partitions,
        replicas: settings.replicas,
        configs: Object.entries(configs).map(([name, value]) => ({ name, value })),
      })
    } catch (err) {
      if (!alreadyExists(err)) {
        // Some may exist and some not: create them one by one to know which.
        if (missing.length > 1) {
          for (const topic of missing) await ensureTopics([topic], configs)
          return
        }
        throw err
      }
    }
    for (const topic of missing) known.add(topic)
  }

  return {
    async send(records) {
      if (records.length === 0) return
      await ensureTopics(records.map((r) => r.topic))
      await batches.submit(records)
    },
    ensureTopics,
    async close() {
      await batches.flush()
      closed = true
      await producer.close()
    },
  }
}
