import { compileTopicPattern, orderingKeyOf, type ResolvedKeyOrdering } from '@herald/core'
import type { PulledMessage, Settlement, StoppablePullSource, WakeSignal } from '@herald/core/adapter'
import { Consumer, type Message } from '@platformatic/kafka'
import type { KafkaNames } from './names.js'
import type { HeraldProducer } from './producer.js'
import { deadLetterRecord, H, type Headers, headerMap, incoming, outgoing } from './records.js'

/** One record this consumer holds, from the moment it is read until its offset may be committed. */
interface Held extends PulledMessage {
  readonly track: PartitionTrack
  readonly offset: bigint
  readonly message: Message<Buffer, Buffer, Buffer, Buffer>
  readonly key: string | undefined
  readonly firstFailedAt: number | undefined
  attempt: number
  timer?: NodeJS.Timeout | undefined
}

/**
 * The offsets of one assigned partition. Records finish in any order; the committed offset is the lowest one not
 * finished, so a crash redelivers what was running and never skips it.
 */
class PartitionTrack {
  /** Lowest offset not finished. */
  next: bigint | undefined
  readonly finished = new Map<bigint, Held>()
  /** The last finished record below `next`: its commit() commits `next`. */
  commitWith: Held | undefined
  committed: bigint | undefined
  revoked = false

  constructor(readonly name: string) {}

  seen(offset: bigint): void {
    if (this.next === undefined || offset < this.next) this.next = offset
  }

  finish(held: Held): void {
    this.finished.set(held.offset, held)
    while (this.next !== undefined) {
      const done = this.finished.get(this.next)
      if (done === undefined) break
      this.finished.delete(this.next)
      this.commitWith = done
      this.next++
    }
  }
}

export interface GroupSourceOptions {
  readonly group: string
  readonly names: KafkaNames
  readonly brokers: readonly string[]
  readonly clientId: string
  /** The group's patterns: records of Herald topics that match none are skipped. */
  readonly patterns: () => readonly string[]
  /** Kafka topics to read, beside the group's own. */
  readonly topics: () => Promise<readonly string[]>
  readonly ordering: ResolvedKeyOrdering
  readonly producer: HeraldProducer
  readonly maxBuffered: number
  readonly sessionTimeoutMs: number
  readonly commitIntervalMs: number
  readonly topicRefreshMs: number
  readonly wake: WakeSignal
  readonly onError: (err: unknown) => void
  readonly now: () => number
  /** Told of the consumer's closing once `stop()` starts it (the transport's `close()` awaits it). */
  readonly onStopping: (closing: Promise<void>) => void
}

type Pulled = Held

/**
 * A group's consumer on Kafka, as a pull source for core's consumer loop: a Kafka consumer in the group's
 * consumer group reads the group's topics; each record is handed out once its key is free (one at a time per key
 * by default) and it is due; offsets are committed up to the lowest unfinished record of each partition.
 *
 * Failures: a keyed record is retried in place, so its key keeps its order; an unkeyed one is copied to the
 * group's own topic with its attempt count and due time, and its offset finishes. Dead letters go to the
 * compacted dead-letter topic before the offset finishes.
 */
export function createGroupSource(
  options: GroupSourceOptions,
): StoppablePullSource<Pulled> & { readonly ready: Promise<void> } {
  const { names, group } = options
  function createConsumer(): Consumer {
    const created = new Consumer({
      groupId: names.consumerGroup(group),
      clientId: options.clientId,
      bootstrapBrokers: [...options.brokers],
      sessionTimeout: options.sessionTimeoutMs,
      // Heartbeats are how a member learns of a rebalance: frequent ones make a joining consumer get work sooner.
      heartbeatInterval: Math.min(500, Math.floor(options.sessionTimeoutMs / 3)),
      rebalanceTimeout: options.sessionTimeoutMs * 2,
      maxWaitTime: 200,
      autocommit: false,
      retries: 3,
      retryDelay: 250,
    })
    created.on('consumer:group:join', () => {
      if (created === consumer) dropRevoked()
    })
    // The client emits 'error' on itself when it gives up rejoining the group (after a broker's restart, or while
    // it is being closed); with no listener that is an uncaught exception. A live consumer starts again on a new
    // client; a closed or replaced one has nothing left to do.
    created.on('error', (err: unknown) => {
      if (stopped || created !== consumer) return
      options.onError(err)
      restart().catch(options.onError)
    })
    return created
  }
  let consumer = createConsumer()
  const tracks = new Map<string, PartitionTrack>()
  /** `topic:partition` of the partitions the group gave this consumer at its last join. */
  const assigned = new Set<string>()
  /** Records due and free to start, oldest first. */
  const ready: Held[] = []
  let readyHead = 0
  /** Per key: records started and not settled, and records waiting behind them. */
  const keys = new Map<string, { running: number; waiting: Held[] }>()
  const waitingForDue = new Set<Held>()
  let buffered = 0
  let stream: Awaited<ReturnType<Consumer['consume']>> | undefined
  let subscribed: readonly string[] = []
  let stopped = false
  let paused = false
  let matchers: { patterns: readonly string[]; test: ((topic: string) => boolean)[] } = { patterns: [], test: [] }
  const groupTopic = names.groupTopic(group)

  function matches(topic: string): boolean {
    const patterns = options.patterns()
    if (patterns !== matchers.patterns) matchers = { patterns, test: patterns.map(compileTopicPattern) }
    return matchers.test.some((test) => test(topic))
  }

  function trackOf(message: Message<Buffer, Buffer, Buffer, Buffer>): PartitionTrack {
    const name = `${message.topic}:${message.partition}`
    let track = tracks.get(name)
    if (track === undefined) {
      track = new PartitionTrack(name)
      tracks.set(name, track)
    }
    return track
  }

  function onRecord(message: Message<Buffer, Buffer, Buffer, Buffer>): void {
    // A fetch sent before a rebalance can answer after it: records of a partition this consumer no longer owns
    // are its new owner's to read.
    if (!assigned.has(`${message.topic}:${message.partition}`)) return
    const track = trackOf(message)
    track.seen(message.offset)
    const headers = headerMap(message.headers as unknown as Headers)
    const read = incoming(headers, message.value ?? undefined, message)
    const own = message.topic === groupTopic
    if (!own && !matches(read.topic)) {
      finishUnheld(track, message)
      return
    }
    const attempt = Number(headers.get(H.attempt) ?? '0') + 1
    const firstFailed = headers.get(H.firstFailed)
    const held: Held = {
      envelope: read.envelope,
      topic: read.topic,
      attempt: Number.isSafeInteger(attempt) && attempt > 0 ? attempt : 1,
      track,
      offset: message.offset,
      message,
      key: orderingKeyOf(read.envelope),
      firstFailedAt: firstFailed === undefined ? undefined : Number(firstFailed),
    }
    buffered++
    const due = Number(headers.get(H.due) ?? '0')
    if (due > options.now()) {
      waitingForDue.add(held)
      // A timer can fire a millisecond before the wall clock says it is due: check again, and wait the rest.
      const check = () => {
        const wait = due - options.now()
        if (wait > 0) {
          held.timer = setTimeout(check, wait)
          return
        }
        held.timer = undefined
        waitingForDue.delete(held)
        if (!held.track.revoked) admit(held)
      }
      check()
    } else {
      admit(held)
    }
    if (buffered >= options.maxBuffered && !paused) {
      paused = true
      stream?.pause()
    }
  }

  /** A record this group skips (no pattern of its matches): finished at once. */
  function finishUnheld(track: PartitionTrack, message: Message<Buffer, Buffer, Buffer, Buffer>): void {
    track.finish({ track, offset: message.offset, message } as Held)
  }

  function admit(held: Held): void {
    if (held.key !== undefined) {
      let slot = keys.get(held.key)
      if (slot === undefined) {
        slot = { running: 0, waiting: [] }
        keys.set(held.key, slot)
      }
      if (slot.running >= options.ordering.concurrency) {
        slot.waiting.push(held)
        return
      }
      slot.running++
    }
    ready.push(held)
    options.wake.notify()
  }

  /** The key's slot is free again: its next waiting record may start. */
  function freeKey(held: Held): void {
    if (held.key === undefined) return
    const slot = keys.get(held.key)
    if (slot === undefined) return
    slot.running--
    let next = slot.waiting.shift()
    while (next?.track.revoked) next = slot.waiting.shift()
    if (next !== undefined) {
      slot.running++
      ready.push(next)
      options.wake.notify()
    } else if (slot.running <= 0) {
      keys.delete(held.key)
    }
  }

  /**
   * Records leave the buffer here, whichever way (finished, released, dropped with a revoked partition): a stream
   * paused at the buffer's limit reads again once half of it is free. (Resuming only on finished records left a
   * member that lost its partitions in a rebalance paused for good.)
   */
  function unbuffer(count = 1): void {
    buffered -= count
    if (paused && buffered < options.maxBuffered / 2) {
      paused = false
      stream?.resume()
    }
  }

  function done(held: Held): void {
    freeKey(held)
    if (!held.track.revoked) held.track.finish(held)
    unbuffer()
  }

  /** Partitions this consumer lost in a rebalance: what it held of them is someone else's now. */
  function dropRevoked(): void {
    assigned.clear()
    for (const assignment of consumer.assignments ?? []) {
      for (const partition of assignment.partitions) assigned.add(`${assignment.topic}:${partition}`)
    }
    for (const [name, track] of tracks) {
      if (assigned.has(name)) continue
      track.revoked = true
      tracks.delete(name)
    }
    for (const held of waitingForDue) {
      if (!held.track.revoked) continue
      clearTimeout(held.timer)
      waitingForDue.delete(held)
      unbuffer()
    }
    for (const [key, slot] of keys) {
      const before = slot.waiting.length
      slot.waiting = slot.waiting.filter((h) => !h.track.revoked)
      unbuffer(before - slot.waiting.length)
      if (slot.running <= 0 && slot.waiting.length === 0) keys.delete(key)
    }
    // A ready record holds its key's slot: dropping it frees the slot (else the key waits for it for good).
    const pending = ready.slice(readyHead)
    const dropped = pending.filter((h) => h.track.revoked)
    ready.length = 0
    readyHead = 0
    ready.push(...pending.filter((h) => !h.track.revoked))
    for (const held of dropped) freeKey(held)
    unbuffer(dropped.length)
  }

  async function commitFinished(): Promise<void> {
    const commits: Promise<unknown>[] = []
    for (const track of tracks.values()) {
      const held = track.commitWith
      if (held === undefined || track.next === undefined || track.committed === track.next) continue
      const offset = track.next
      commits.push(
        Promise.resolve()
          .then(() => held.message.commit())
          .then(
            () => {
              track.committed = offset
            },
            (err: unknown) => options.onError(err),
          ),
      )
    }
    await Promise.all(commits)
  }

  let committing: Promise<void> = Promise.resolve()
  const commitTimer = setInterval(() => {
    committing = committing.then(commitFinished).catch(options.onError)
  }, options.commitIntervalMs)

  async function subscribe(): Promise<void> {
    const topics = [...new Set([groupTopic, ...(await options.topics())])].sort()
    await options.producer.ensureTopics(topics)
    subscribed = topics
    const opened = await consumer.consume({
      topics,
      mode: 'committed',
      fallbackMode: 'earliest',
      autocommit: false,
    })
    stream = opened
    // A new stream reads until the buffer is full again, whatever the old one's state.
    paused = buffered >= options.maxBuffered
    if (paused) opened.pause()
    opened.on('data', onRecord)
    opened.on('error', (err: unknown) => {
      if (stopped) return
      options.onError(err)
      restart().catch(options.onError)
    })
  }

  let restarting: Promise<void> | undefined
  function restart(): Promise<void> {
    restarting ??= (async () => {
      try {
        const old = stream
        stream = undefined
        old?.removeAllListeners('data')
        await old?.close().catch(() => {})
        // Everything held was read under the old membership and comes back from the committed offsets.
        for (const track of tracks.values()) track.revoked = true
        tracks.clear()
        while (!stopped) {
          // A new client each time: after a broker's crash the old one can keep failing on what it remembers
          // (seen as "Listing offsets failed" until the test gave up, with the node long back).
          const previous = consumer
          consumer = createConsumer()
          dropRevoked()
          await (previous.close(true) as unknown as Promise<void>).catch(() => {})
          try {
            await subscribe()
            return
          } catch (err) {
            options.onError(err)
            await new Promise((resolve) => setTimeout(resolve, 500))
          }
        }
      } finally {
        restarting = undefined
      }
    })()
    return restarting
  }

  // Patterns whose first word is a wildcard read every message topic, including ones created later.
  const refreshTimer = setInterval(() => {
    if (stopped || restarting !== undefined) return
    options.topics().then(
      (topics) => {
        const wanted = [...new Set([groupTopic, ...topics])].sort()
        if (wanted.join('\n') !== subscribed.join('\n')) restart().catch(options.onError)
      },
      (err: unknown) => options.onError(err),
    )
  }, options.topicRefreshMs)

  const started = subscribe().catch(async (err) => {
    options.onError(err)
    await restart()
  })

  return {
    ready: started,
    async fetch(max) {
      await started
      const out: Held[] = []
      while (out.length < max && readyHead < ready.length) {
        const held = ready[readyHead++] as Held
        if (held.track.revoked) {
          freeKey(held)
          unbuffer()
          continue
        }
        out.push(held)
      }
      if (readyHead === ready.length) {
        ready.length = 0
        readyHead = 0
      } else if (readyHead > 1_024) {
        ready.splice(0, readyHead)
        readyHead = 0
      }
      return out
    },

    async settle(held, settlement: Settlement) {
      if (held.track.revoked) {
        // Another consumer owns the partition now and delivers the record again.
        freeKey(held)
        unbuffer()
        return
      }
      switch (settlement.kind) {
        case 'ack':
          done(held)
          return
        case 'release':
          // Not finished: its offset stays uncommitted, so it is delivered again after this consumer leaves.
          freeKey(held)
          unbuffer()
          return
        case 'retry': {
          const now = options.now()
          if (held.key !== undefined) {
            // In place: the key stays taken, so nothing of it overtakes the retry.
            held.attempt++
            held.timer = setTimeout(() => {
              held.timer = undefined
              if (held.track.revoked) {
                freeKey(held)
                unbuffer()
                return
              }
              ready.push(held)
              options.wake.notify()
            }, settlement.delayMs)
            return
          }
          await options.producer.send([
            outgoing(groupTopic, held.topic, held.envelope, undefined, {
              [H.attempt]: String(held.attempt),
              [H.due]: String(now + settlement.delayMs),
              [H.firstFailed]: String(held.firstFailedAt ?? now),
            }),
          ])
          done(held)
          return
        }
        case 'dead-letter': {
          const now = options.now()
          await options.producer.send([
            deadLetterRecord(names.deadLetters, {
              group,
              topic: held.topic,
              envelope: held.envelope,
              reason: settlement.reason,
              attempts: settlement.attempts,
              error: settlement.error,
              firstFailedAt: held.firstFailedAt ?? now,
              lastFailedAt: now,
              deadLetteredAt: now,
            }),
          ])
          done(held)
          return
        }
      }
    },

    waitForWork(signal) {
      return options.wake.wait(1_000, signal)
    },

    stop() {
      stopped = true
      clearInterval(commitTimer)
      clearInterval(refreshTimer)
      for (const held of waitingForDue) clearTimeout(held.timer)
      options.onStopping(
        (async () => {
          await started
          await restarting
          committing = committing.then(commitFinished)
          await committing
          await stream?.close().catch(() => {})
          await (consumer.close(true) as unknown as Promise<void>).catch(options.onError)
        })(),
      )
    },
  }
}
