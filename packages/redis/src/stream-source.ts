import { type ResolvedKeyOrdering, type Settlement, sleep, uuidV7 } from '@herald/core'
import {
  createCoalescer,
  type PulledMessage,
  type PullSource,
  parseStoredHeaders,
  succeeded,
} from '@herald/core/adapter'
import type { Redis } from 'ioredis'
import type { RunScript } from './scripts.js'
import { type Fields, idRange, text, toFields } from './stream-entries.js'

export interface RedisPulled extends PulledMessage {
  readonly entryId: string
  /** The key the entry is in play for (its `k` field), if it is keyed. */
  readonly key: string | undefined
  /** Deliveries before this entry was (re)added: retries carry their count along, in Herald's own hash. */
  readonly base: number
}

/** A stored delivery count: a whole number from 0, else 0 (Herald wrote it, but never trusts a malformed one). */
function count(value: string | null): number {
  if (value === null) return 0
  const n = Number(value)
  return Number.isSafeInteger(n) && n >= 0 ? n : 0
}

/** What a group's consumer needs from its transport. */
export interface StreamSourceContext {
  readonly redis: Redis
  readonly run: RunScript
  readonly prefix: string
  readonly leaseMs: number
  readonly pollIntervalMs: number
  readonly commandTimeout: number
  readonly onError: (err: unknown) => void
  /** The blocking readers of every consumer, disconnected together when the transport closes. */
  readonly blocking: Set<Redis>
}

/**
 * One consumer of a group's stream: XREADGROUP on a connection of its own (blocking up to the poll interval),
 * moves due delays and retries in, takes back entries whose lease ran out (XAUTOCLAIM), renews its own leases,
 * and settles through the scripts, acks batched.
 */
export function createStreamSource(
  context: StreamSourceContext,
  group: string,
  ordering: ResolvedKeyOrdering,
  maxPerSecond?: number,
): PullSource<RedisPulled> & { stop(): void } {
  const { redis, run, prefix, leaseMs, pollIntervalMs, commandTimeout, onError, blocking } = context
  const streamKey = (name: string) => `${prefix}:q:${name}`
  const consumer = uuidV7()
  // A blocking read legitimately waits up to pollIntervalMs: its timeout allows for that.
  const reader = redis.duplicate({
    commandTimeout: commandTimeout + pollIntervalMs,
    socketTimeout: commandTimeout + pollIntervalMs,
  })
  reader.on('error', onError)
  blocking.add(reader)
  const held = new Set<string>()
  // Acks of one turn go in one script call.
  const acker = createCoalescer<string, void>(
    async (ids) => {
      const [lowest, highest] = idRange(ids)
      await run('ack', [prefix, group, consumer, lowest, highest, ...ids])
      return ids.map(() => succeeded)
    },
    { maxBatch: 500, maxConcurrent: 2 },
  )
  // Keyed acks also free their key's place and admit its next message, in the same script.
  const keyedAcker = createCoalescer<{ id: string; key: string }, void>(
    async (acks) => {
      const [lowest, highest] = idRange(acks.map((a) => a.id))
      await run('ackKeyed', [prefix, group, consumer, lowest, highest, ...acks.flatMap((a) => [a.id, a.key])])
      return acks.map(() => succeeded)
    },
    { maxBatch: 500, maxConcurrent: 2 },
  )
  const hold = ordering.afterDeadLetter === 'hold' ? '1' : '0'
  // With a rate limit, each fetch first takes tokens from the group's bucket in Redis (shared by every process);
  // with none left it waits for the next one.
  let rateWaitUntil = 0
  let lastReclaim = 0
  // When the group's next delayed message is due (by the last look), and when we last looked.
  let nextDueAt = 0
  let lastMove = 0
  let stopped = false
  // A retry due before the current blocking read ends wakes that read when it falls due (CLIENT UNBLOCK on
  // the reader's connection id), so a short backoff is not stretched to the poll interval.
  let readerId: number | undefined
  reader.on('ready', () => {
    reader.client('ID').then((id) => {
      readerId = Number(id)
    }, onError)
  })
  let blockEndsAt = 0
  let wakeAt = Number.POSITIVE_INFINITY
  let wakeTimer: ReturnType<typeof setTimeout> | undefined
  function wakeReaderAt(at: number): void {
    if (at >= blockEndsAt || at >= wakeAt) return
    clearTimeout(wakeTimer)
    wakeAt = at
    wakeTimer = setTimeout(
      () => {
        wakeAt = Number.POSITIVE_INFINITY
        // Any read still blocking: a wake that fires a little late must still cut it short.
        if (readerId !== undefined && blockEndsAt !== 0)
          redis.call('CLIENT', 'UNBLOCK', readerId, 'TIMEOUT').catch(onError)
      },
      Math.max(0, at - Date.now()),
    )
    wakeTimer.unref()
  }
  const renewTimer = setInterval(() => {
    if (held.size > 0) run('renew', [prefix, group, consumer, ...held]).catch(onError)
  }, leaseMs / 3)
  renewTimer.unref()

  function pulled(entryId: string, fields: Fields, deliveries: number, counted: string | null): RedisPulled {
    const base = count(counted)
    held.add(entryId)
    const id = text(fields, 'i') ?? ''
    return {
      entryId,
      key: text(fields, 'k'),
      base,
      topic: text(fields, 't') ?? '',
      attempt: base + deliveries,
      envelope: {
        id,
        headers: parseStoredHeaders(text(fields, 'h') ?? '', id),
        body: fields.get('b') ?? Buffer.alloc(0),
      },
    }
  }

  /** Every settlement but an ack: each is one script on this entry alone. */
  async function settleByScript(message: RedisPulled, settlement: Exclude<Settlement, { kind: 'ack' }>) {
    const { entryId } = message
    const now = Date.now()
    switch (settlement.kind) {
      case 'release':
        await run('release', [prefix, group, consumer, entryId, message.attempt - 1])
        break
      case 'retry':
        // The server's clock decides when it is due; this consumer's only decides when to look.
        nextDueAt = Math.min(nextDueAt, now + settlement.delayMs)
        wakeReaderAt(now + settlement.delayMs)
        await run('retry', [
          prefix,
          group,
          consumer,
          entryId,
          message.attempt,
          settlement.delayMs,
          0,
          JSON.stringify(settlement.error),
          uuidV7(),
        ])
        break
      case 'dead-letter': {
        const { attempts } = settlement
        const error = settlement.error === undefined ? '' : JSON.stringify(settlement.error)
        await run('deadLetter', [prefix, group, consumer, entryId, settlement.reason, attempts, now, error, hold])
        break
      }
    }
    held.delete(entryId)
  }

  return {
    async fetch(max) {
      if (maxPerSecond === undefined) return fetchUpTo(max)
      const taken = (await run('rateTake', [prefix, group, max, maxPerSecond])) as number
      if (taken === 0) {
        rateWaitUntil = Date.now() + Math.ceil(1_000 / maxPerSecond)
        return []
      }
      const fetched = await fetchUpTo(taken).catch(async (err: unknown) => {
        await run('rateGive', [prefix, group, taken, maxPerSecond]).catch(onError)
        throw err
      })
      if (fetched.length < taken) await run('rateGive', [prefix, group, taken - fetched.length, maxPerSecond])
      return fetched
    },
    settle(message, settlement: Settlement) {
      if (settlement.kind !== 'ack') return settleByScript(message, settlement)
      // The common case without an async frame of its own. The entry stops being renewed now: if the ack
      // fails, the lease runs out and the entry is delivered again, as it would be anyway.
      held.delete(message.entryId)
      if (message.key !== undefined) return keyedAcker.submit({ id: message.entryId, key: message.key })
      return acker.submit(message.entryId)
    },
    async waitForWork(signal) {
      // fetch() already blocked in XREADGROUP; look again at once, unless the rate limit says to wait.
      const wait = rateWaitUntil - Date.now()
      if (wait > 0) await sleep(wait, signal)
    },
    stop() {
      stopped = true
      clearInterval(renewTimer)
      clearTimeout(wakeTimer)
      blocking.delete(reader)
      reader.disconnect()
    },
  }

  /** Moves due delays in, takes back entries whose lease ran out, else reads new entries: up to `max`. */
  async function fetchUpTo(max: number): Promise<RedisPulled[]> {
    const now = Date.now()
    // Look at the delayed set when something there is due, or every poll interval for what other
    // processes scheduled; not on every fetch.
    if (now >= nextDueAt || now - lastMove >= pollIntervalMs) {
      lastMove = now
      const untilDue = (await run('moveDue', [prefix, group, now, 1_000])) as number
      nextDueAt = untilDue < 0 ? Number.POSITIVE_INFINITY : now + Math.max(1, untilDue)
    }
    const untilDue = nextDueAt - now
    if (now - lastReclaim >= leaseMs / 4) {
      lastReclaim = now
      const flat = (await run('reclaim', [prefix, group, consumer, leaseMs, max], true)) as (Buffer | Buffer[])[]
      const taken: RedisPulled[] = []
      for (let i = 0; i + 3 < flat.length; i += 4) {
        const fields = toFields(flat[i + 2] as Buffer[])
        taken.push(pulled(String(flat[i]), fields, Number(String(flat[i + 1])), String(flat[i + 3])))
      }
      if (taken.length > 0) return taken
    }
    if (stopped) return []
    // BLOCK takes whole milliseconds: a fractional one is a command error (and the consumer would back off).
    const block = Math.max(1, Math.ceil(Math.min(pollIntervalMs, untilDue)))
    // Redis checks a blocked read's timeout only on its own timer (10 times a second by default), so a read cut
    // short for a due retry is woken by us, on time, rather than left to time out up to 100 ms late.
    blockEndsAt = Date.now() + block + 1
    if (untilDue < pollIntervalMs) wakeReaderAt(nextDueAt)
    const reply = (await reader
      .callBuffer('XREADGROUP', [
        'GROUP',
        'herald',
        consumer,
        'COUNT',
        max,
        'BLOCK',
        block,
        'STREAMS',
        streamKey(group),
        '>',
      ])
      .finally(() => {
        blockEndsAt = 0
      })) as [Buffer, [Buffer, Buffer[]][]][] | null
    const entries = (reply?.[0]?.[1] ?? []).map(([id, list]) => ({ id: id.toString(), fields: toFields(list) }))
    // Entries re-added after earlier deliveries (retries, hand-backs) carry `r`: their count is in Herald's hash.
    const recounted = entries.filter((e) => e.fields.has('r')).map((e) => e.id)
    const counts = new Map<string, string | null>()
    if (recounted.length > 0) {
      const values = await redis.hmget(`${prefix}:a:${group}`, ...recounted)
      for (let i = 0; i < recounted.length; i++) counts.set(recounted[i]!, values[i] ?? null)
    }
    return entries.map((e) => pulled(e.id, e.fields, 1, counts.get(e.id) ?? null))
  }
}
