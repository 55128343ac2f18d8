import { type GroupInfo, isTopologyAdmin, type OutboxStats, type Transport } from '@herald/core'
import { Counter, Gauge, Histogram, type Registry } from 'prom-client'

/** Herald's Prometheus metrics, registered on one registry. Names and labels are stable: dashboards key on them. */
export interface HeraldMetrics {
  readonly published: Counter<'service' | 'type' | 'topic'>
  readonly publishFailures: Counter<'service' | 'topic' | 'code'>
  readonly handled: Counter<'service' | 'type' | 'group' | 'outcome'>
  readonly deadLettered: Counter<'service' | 'group' | 'reason'>
  readonly handleDuration: Histogram<'service' | 'type' | 'group'>
  /**
   * Reports, at each scrape, every group of `transport`: depth, dead letters and, where the transport can tell,
   * the scheduled backlog (delays and retries not yet due) and the consumer lag (age of the oldest due message).
   */
  watchGroups(transport: Transport): void
  /**
   * A counter child that counts in a plain number and hands the count to prom-client at each scrape: prom-client
   * hashes a child's labels on every `inc`, which on the delivery path costs more than the delivery.
   */
  countingChild(counter: Counter<string>, labels: Readonly<Record<string, string>>): { inc(): void }
  /** Reports an outbox's backlog and lag (age of its oldest unsent message) at each scrape, labelled `outbox`. */
  watchOutbox(name: string, source: { stats(): Promise<OutboxStats> }): void
  /**
   * Drops every series labelled with this group (handled, dead-lettered, handle duration): the group is gone, as
   * when the transport deletes it, so its series would only grow the scrape.
   */
  forgetGroup(group: string): Promise<void>
  /** Saga events by saga: started, completed, timed_out, compensated, failed. */
  readonly sagaEvents: Counter<'saga' | 'event'>
  /** An `onEvent` for `registerSagas` that counts each event in `sagaEvents`. */
  countSagaEvent(report: { readonly saga: string; readonly event: string }): void
  /** Reports, at each scrape, each named saga's instances by status (running, completed, compensated, failed). */
  watchSagas(
    sagas: readonly string[],
    source: { counts(saga: string): Promise<Readonly<Record<string, number>>> },
  ): void
}

export function createHeraldMetrics(registry: Registry): HeraldMetrics {
  const registers = [registry]
  // Counts not yet handed to their counter, by counter: flushed when the counter is collected (every scrape).
  // One entry per label set, shared by every caller asking for it: bounded by the label sets, like the counter.
  const pending = new Map<Counter<string>, Map<string, { labels: Readonly<Record<string, string>>; n: number }>>()
  function flush(this: Counter<string>): void {
    for (const entry of pending.get(this)?.values() ?? []) {
      if (entry.n === 0) continue
      this.inc(entry.labels, entry.n)
      entry.n = 0
    }
  }
  const watched = new Set<Transport>()
  // Both gauges read the same listing: one read per scrape, shared for a second, not one per gauge.
  let recent: { at: number; groups: Promise<GroupInfo[]> } | undefined
  function groupsOnce(): Promise<GroupInfo[]> {
    if (recent === undefined || Date.now() - recent.at > 1_000) recent = { at: Date.now(), groups: groups() }
    return recent.groups
  }
  function groupGauge(name: string, help: string, pick: (g: GroupInfo) => number | undefined): void {
    new Gauge({
      name,
      help,
      labelNames: ['group'],
      registers,
      async collect() {
        this.reset()
        for (const g of await groupsOnce()) {
          const value = pick(g)
          if (value !== undefined) this.set({ group: g.group }, value)
        }
      },
    })
  }
  const outboxes = new Map<string, { stats(): Promise<OutboxStats> }>()
  let recentOutboxes: { at: number; stats: Promise<[string, OutboxStats][]> } | undefined
  function outboxStatsOnce(): Promise<[string, OutboxStats][]> {
    if (recentOutboxes === undefined || Date.now() - recentOutboxes.at > 1_000) {
      const read = Promise.all(
        [...outboxes].map(async ([name, source]) => {
          try {
            return [[name, await source.stats()] as [string, OutboxStats]]
          } catch {
            return []
          }
        }),
      ).then((rows) => rows.flat())
      recentOutboxes = { at: Date.now(), stats: read }
    }
    return recentOutboxes.stats
  }
  function outboxGauge(name: string, help: string, pick: (s: OutboxStats) => number): void {
    new Gauge({
      name,
      help,
      labelNames: ['outbox'],
      registers,
      async collect() {
        this.reset()
        for (const [outbox, stats] of await outboxStatsOnce()) this.set({ outbox }, pick(stats))
      },
    })
  }
  async function groups(): Promise<GroupInfo[]> {
    const all: GroupInfo[] = []
    for (const transport of watched) {
      if (!isTopologyAdmin(transport)) continue
      try {
        all.push(...(await transport.listGroups()))
      } catch {
        // A transport that cannot answer right now reports nothing for this scrape.
      }
    }
    return all
  }
  const sagaSources: { sagas: readonly string[]; counts(saga: string): Promise<Readonly<Record<string, number>>> }[] =
    []
  const sagaEvents = new Counter({
    name: 'herald_saga_events_total',
    help: 'Saga events: instances started, completed, timed out (a timeout handler ran), compensated and failed.',
    labelNames: ['saga', 'event'],
    registers,
  })
  const metrics: HeraldMetrics = {
    sagaEvents,
    countSagaEvent(report) {
      sagaEvents.inc({ saga: report.saga, event: report.event })
    },
    watchSagas(sagas, source) {
      if (sagaSources.length === 0) {
        new Gauge({
          name: 'herald_saga_instances',
          help: 'Saga instances by saga and status.',
          labelNames: ['saga', 'status'],
          registers,
          async collect() {
            this.reset()
            for (const { sagas: names, counts } of sagaSources) {
              for (const saga of names) {
                try {
                  for (const [status, n] of Object.entries(await counts(saga))) this.set({ saga, status }, n)
                } catch {
                  // A store that cannot answer right now reports nothing for this scrape.
                }
              }
            }
          },
        })
      }
      sagaSources.push({ sagas, counts: (saga) => source.counts(saga) })
    },
    published: new Counter({
      name: 'herald_messages_published_total',
      help: 'Messages the broker accepted, by type and topic.',
      labelNames: ['service', 'type', 'topic'],
      registers,
      collect: flush,
    }),
    publishFailures: new Counter({
      name: 'herald_publish_failures_total',
      help: 'Publishes that failed, by topic and Herald error code.',
      labelNames: ['service', 'topic', 'code'],
      registers,
    }),
    handled: new Counter({
      name: 'herald_messages_handled_total',
      help: 'Deliveries handled, by outcome: acked, retried (redelivered later) or dead_lettered.',
      labelNames: ['service', 'type', 'group', 'outcome'],
      registers,
      collect: flush,
    }),
    deadLettered: new Counter({
      name: 'herald_dead_lettered_total',
      help: 'Messages moved to the dead-letter queue, by group and reason.',
      labelNames: ['service', 'group', 'reason'],
      registers,
    }),
    handleDuration: new Histogram({
      name: 'herald_handle_duration_seconds',
      help: 'Handler time per delivery (immediate in-process retries included).',
      labelNames: ['service', 'type', 'group'],
      buckets: [0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30],
      registers,
    }),
    watchGroups(transport) {
      if (watched.size === 0) {
        groupGauge('herald_group_depth', 'Messages waiting or being handled in each group.', (g) => g.depth)
        groupGauge('herald_group_dead_letters', 'Dead letters held for each group.', (g) => g.deadLetters)
        groupGauge(
          'herald_group_scheduled',
          'Messages of each group not yet due: delayed publishes and retries waiting for their backoff.',
          (g) => g.scheduled,
        )
        groupGauge(
          'herald_group_waiting_on_key',
          'Keyed messages of each group waiting for an earlier message of their key.',
          (g) => g.waitingOnKey,
        )
        groupGauge(
          'herald_group_held_keys',
          'Keys of each group held by a dead letter (ordering policy hold).',
          (g) => g.heldKeys,
        )
        groupGauge(
          'herald_group_lag_seconds',
          'Consumer lag: how long the oldest due message of each group has been waiting.',
          (g) => (g.oldestDueAgeMs === undefined ? undefined : g.oldestDueAgeMs / 1_000),
        )
      }
      watched.add(transport)
    },
    countingChild(counter, labels) {
      let entries = pending.get(counter)
      if (entries === undefined) {
        entries = new Map()
        pending.set(counter, entries)
      }
      const key = JSON.stringify(labels)
      let entry = entries.get(key)
      if (entry === undefined) {
        entry = { labels, n: 0 }
        entries.set(key, entry)
      }
      const counted = entry
      return {
        inc() {
          counted.n++
        },
      }
    },
    async forgetGroup(group) {
      for (const [counter, entries] of pending)
        for (const [key, entry] of entries)
          if (entry.labels.group === group) {
            entries.delete(key)
            counter.remove(entry.labels)
          }
      const perGroup: (Counter<string> | Histogram<string>)[] = [
        metrics.handled,
        metrics.deadLettered,
        metrics.handleDuration,
      ]
      for (const metric of perGroup) {
        for (const value of (await metric.get()).values) {
          if (value.labels.group !== group) continue
          // A histogram's values are its buckets, sum and count: the series' own labels are all but `le`.
          const { le: _bucket, ...labels } = value.labels
          metric.remove(labels as Record<string, string>)
        }
      }
    },
    watchOutbox(name, source) {
      if (outboxes.size === 0) {
        outboxGauge('herald_outbox_backlog', 'Messages staged in the outbox and not yet sent.', (s) => s.backlog)
        outboxGauge(
          'herald_outbox_lag_seconds',
          'Age of the oldest message not yet sent from the outbox.',
          (s) => s.lagMs / 1_000,
        )
      }
      outboxes.set(name, source)
    },
  }
  return metrics
}
