import {
  type DeadLetterStore,
  type GroupInfo,
  isDeadLetterStore,
  isScheduler,
  isTopologyAdmin,
  type Scheduler,
  type TopologyAdmin,
} from './capabilities.js'
import type { DeadLetterPage, DeadLetterQuery } from './dead-letter.js'
import { ConfigurationError } from './errors.js'
import { compileTopicPattern } from './topic-pattern.js'
import type { CloseReport, Subscription, SubscriptionSpec, Transport } from './transport.js'

export interface HybridTransportOptions {
  /** Where local topics live: in process (in-memory) or embedded (SQLite). */
  readonly local: Transport
  /** Where every other topic goes: a broker or a shared database. */
  readonly remote: Transport
  /** Topic patterns (`order.*`, `audit.#`) that stay local. A topic matching none goes to the remote transport. */
  readonly localOnly: readonly string[]
}

export type HybridTransport = Transport & Scheduler & DeadLetterStore & TopologyAdmin

type Half = 'local' | 'remote'

function withCursor(query: DeadLetterQuery, cursor: string | undefined): DeadLetterQuery {
  const { cursor: _old, ...rest } = query
  return cursor === undefined ? rest : { ...rest, cursor }
}

function hasWildcard(pattern: string): boolean {
  return pattern.split('.').some((w) => w === '*' || w === '#')
}

/**
 * One transport over two: topics matching `localOnly` are published to and consumed from `local`, everything else
 * from `remote`. The choice is made per topic at publish time, so a local topic can never reach the remote
 * transport: nothing else writes to it. A group is subscribed on the halves its patterns can match (a wildcard
 * pattern on both), with one handler, and closes on both. Dead letters, groups and delays are the two halves'
 * together.
 */
export function createHybridTransport(options: HybridTransportOptions): HybridTransport {
  const { local, remote } = options
  const isLocal = options.localOnly.map(compileTopicPattern)
  const localTopic = (topic: string) => isLocal.some((test) => test(topic))
  const halves = { local, remote }

  /**
   * The patterns each half is given: a literal pattern (or one of `localOnly` itself) goes to the half that owns
   * it; any other wildcard could match either, so it goes to both. A half with no pattern is not subscribed, and a
   * remote transport never hears of a local topic (Kafka, for one, would create a topic for it).
   */
  function split(patterns: readonly string[]): [Half, string[]][] {
    const byHalf: Record<Half, string[]> = { local: [], remote: [] }
    for (const pattern of patterns) {
      if (options.localOnly.includes(pattern)) byHalf.local.push(pattern)
      else if (!hasWildcard(pattern)) byHalf[localTopic(pattern) ? 'local' : 'remote'].push(pattern)
      else {
        byHalf.local.push(pattern)
        byHalf.remote.push(pattern)
      }
    }
    return (['local', 'remote'] as const).filter((h) => byHalf[h].length > 0).map((h) => [h, byHalf[h]])
  }

  function admin(half: Half): TopologyAdmin {
    const t = halves[half]
    if (!isTopologyAdmin(t)) throw new ConfigurationError(half, `the ${t.name} transport has no topology admin`)
    return t
  }

  function deadLetters(half: Half): DeadLetterStore | undefined {
    const t = halves[half]
    return isDeadLetterStore(t) ? t : undefined
  }

  return {
    name: `hybrid(${local.name}+${remote.name})`,

    publish(topic, envelopes, publishOptions) {
      return (localTopic(topic) ? local : remote).publish(topic, envelopes, publishOptions)
    },

    schedule(topic, envelopes, deliverAt, publishOptions) {
      const t = localTopic(topic) ? local : remote
      if (!isScheduler(t)) throw new ConfigurationError('delayMs', `the ${t.name} transport cannot delay messages`)
      return t.schedule(topic, envelopes, deliverAt, publishOptions)
    },

    async subscribe(spec: SubscriptionSpec, handler) {
      const opened: Subscription[] = []
      try {
        for (const [half, patterns] of split(spec.patterns))
          opened.push(await halves[half].subscribe({ ...spec, patterns }, handler))
      } catch (err) {
        await Promise.allSettled(opened.map((s) => s.close()))
        throw err
      }
      let closing: Promise<CloseReport> | undefined
      return {
        group: spec.group,
        close() {
          closing ??= Promise.all(opened.map((s) => s.close())).then((reports) => ({
            drained: reports.reduce((n, r) => n + r.drained, 0),
            abandoned: reports.reduce((n, r) => n + r.abandoned, 0),
          }))
          return closing
        },
      }
    },

    async listDeadLetters(query = {}): Promise<DeadLetterPage> {
      // Local dead letters first, then remote ones; the cursor says which half and where in it.
      const cursor = query.cursor ?? 'l:'
      const half: Half = cursor.startsWith('r:') ? 'remote' : 'local'
      const inner = cursor.slice(2)
      const store = deadLetters(half)
      const page: DeadLetterPage =
        store === undefined
          ? { items: [] }
          : await store.listDeadLetters(withCursor(query, inner === '' ? undefined : inner))
      if (page.nextCursor !== undefined) return { items: page.items, nextCursor: `${half[0]}:${page.nextCursor}` }
      if (half === 'local' && deadLetters('remote') !== undefined) {
        if (page.items.length > 0) return { items: page.items, nextCursor: 'r:' }
        return this.listDeadLetters({ ...query, cursor: 'r:' })
      }
      return { items: page.items }
    },

    async getDeadLetter(id, group) {
      return (await deadLetters('local')?.getDeadLetter(id, group)) ?? deadLetters('remote')?.getDeadLetter(id, group)
    },

    async redriveDeadLetters(filter) {
      const counts = await Promise.all(
        [deadLetters('local'), deadLetters('remote')].map((s) => s?.redriveDeadLetters(filter) ?? 0),
      )
      return counts.reduce((a, b) => a + b, 0)
    },

    async purgeDeadLetters(filter) {
      const counts = await Promise.all(
        [deadLetters('local'), deadLetters('remote')].map((s) => s?.purgeDeadLetters(filter) ?? 0),
      )
      return counts.reduce((a, b) => a + b, 0)
    },

    async declareGroup(group, patterns, settings) {
      for (const [half, own] of split(patterns)) await admin(half).declareGroup(group, own, settings)
    },

    async listGroups() {
      const merged = new Map<string, GroupInfo>()
      for (const half of ['local', 'remote'] as const) {
        for (const info of await admin(half).listGroups()) {
          const seen = merged.get(info.group)
          merged.set(
            info.group,
            seen === undefined
              ? info
              : {
                  group: info.group,
                  patterns: [...new Set([...seen.patterns, ...info.patterns])].sort(),
                  depth: seen.depth + info.depth,
                  deadLetters: seen.deadLetters + info.deadLetters,
                },
          )
        }
      }
      return [...merged.values()].sort((a, b) => (a.group < b.group ? -1 : a.group > b.group ? 1 : 0))
    },

    async unbindGroup(group, patterns) {
      await Promise.all((['local', 'remote'] as const).map((half) => admin(half).unbindGroup(group, patterns)))
    },

    async deleteGroup(group) {
      await Promise.all((['local', 'remote'] as const).map((half) => admin(half).deleteGroup(group)))
    },

    async close() {
      await Promise.all([local.close(), remote.close()])
    },
  }
}
