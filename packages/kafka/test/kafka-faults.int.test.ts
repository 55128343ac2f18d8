import { fileURLToPath } from 'node:url'
import { type Envelope, uuidV7 } from '@herald/core'
import {
  type ConsumerWorkerConfig,
  createHistory,
  type History,
  type KafkaCluster,
  spawnConsumer,
  startKafka,
  type WorkerEvent,
  waitFor,
} from '@herald/testkit'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { createKafkaTransport, type KafkaTransport, type KafkaTransportOptions } from '../src/index.js'

const factoryModule = fileURLToPath(new URL('../src/index.ts', import.meta.url))
const body = new TextEncoder().encode('{}')
const tick = (topic: string, key: string): Envelope => ({
  id: uuidV7(),
  headers: { type: topic, partitionkey: key },
  body,
})

// A three-node cluster (replication factor 3, min.insync.replicas 2): losing one node must lose nothing that was
// acknowledged, on the publishing side or the consuming one.
describe('Kafka transport under broker faults (three nodes)', () => {
  let cluster: KafkaCluster
  beforeAll(async () => {
    cluster = await startKafka({ nodes: 3 })
  })
  afterAll(async () => {
    await cluster?.stop()
  })

  it('broker-kill9-during-publish-and-consume: a node killed and restarted mid-run; every acknowledged publish handled', async () => {
    const errors: string[] = []
    const open = () =>
      createKafkaTransport({
        brokers: cluster.brokers,
        prefix: 'faults',
        partitions: 3,
        sessionTimeoutMs: 6_000,
        onError: (err) => errors.push(String(err)),
      })
    const publisher = await open()
    const consumer = await open()
    const history = createHistory()
    await consumer.subscribe({ group: 'g', patterns: ['fault.#'], maxInFlight: 20 }, async (e) => {
      history.delivered(e.id)
      history.completed(e.id)
    })
    const body = new TextEncoder().encode('{}')
    const total = 3_000
    let acknowledged = 0
    const publishTask = async (task: number) => {
      for (let n = task; n < total; n += 20) {
        const e = { id: uuidV7(), headers: { type: 'fault.tick', partitionkey: `k${n % 50}` }, body }
        history.attempted(e.id)
        // An indeterminate publish is published again with the same id, as the error says.
        for (;;) {
          try {
            await publisher.publish('fault.tick', [e])
            history.ok(e.id)
            acknowledged++
            break
          } catch {
            history.indeterminate(e.id)
          }
        }
        if (task === 0 && acknowledged >= 1_000 && cluster.nodes[0]!.running && n < 1_500)
          await cluster.nodes[0]!.crash()
      }
    }
    await Promise.all(Array.from({ length: 20 }, (_, task) => publishTask(task)))
    expect(cluster.nodes[0]!.running).toBe(false)
    await cluster.nodes[0]!.start()
    await waitFor(() => history.check().lost.length === 0, history.onChange, { timeoutMs: 90_000 }).catch((err) => {
      console.log(
        `[kafka] still lost: ${history.check().lost.length}; errors survived:\n${errors.slice(-20).join('\n')}`,
      )
      throw err
    })
    const check = history.check()
    console.log(
      `[kafka] broker-kill9-during-publish-and-consume: ${history.summary()} (${errors.length} errors survived)`,
    )
    expect(check.lost).toEqual([])
    expect(check.unexpected).toEqual([])
    await consumer.close()
    await publisher.close()
  })

  // Consumers on their own side of a fault: one killed with SIGKILL while its handlers run, and members joining and
  // leaving a group whose handlers are busy. What the dead or departing member had not committed is handled again
  // by another (counted as duplicates); nothing is lost.
  const options = (prefix: string): KafkaTransportOptions => ({
    brokers: cluster.brokers,
    prefix,
    partitions: 6,
    sessionTimeoutMs: 6_000,
    commitIntervalMs: 100,
  })
  /** A member of `group` in its own process, on the transport `options(prefix)` makes. */
  const member = (
    prefix: string,
    extra: Partial<ConsumerWorkerConfig> & Pick<ConsumerWorkerConfig, 'group' | 'patterns'>,
  ): ConsumerWorkerConfig => ({
    module: factoryModule,
    exportName: 'createKafkaTransport',
    options: options(prefix),
    ...extra,
  })
  /** Publishes `sent` in batches of 200, each recorded as attempted, then acknowledged. */
  const publishAll = async (transport: KafkaTransport, topic: string, sent: readonly Envelope[], history: History) => {
    for (let i = 0; i < sent.length; i += 200) {
      const batch = sent.slice(i, i + 200)
      for (const e of batch) history.attempted(e.id)
      await transport.publish(topic, batch)
      for (const e of batch) history.ok(e.id)
    }
  }

  it('consumer-kill9-mid-batch: a member killed mid-handler loses nothing; its uncommitted records go to the other', async () => {
    const history = createHistory()
    const admin = await createKafkaTransport(options('kill'))
    const record = (e: WorkerEvent) => {
      if (e.event === 'delivered') history.delivered(e.id!)
      if (e.event === 'completed') history.completed(e.id!)
    }
    // Both members join before anything is published: a new group starts at the end of its topics.
    const kill = { group: 'kill-g', patterns: ['kill.t'], maxInFlight: 20, handlerDelayMs: 10 }
    const survivor = spawnConsumer(member('kill', kill), record)
    const victim = spawnConsumer(member('kill', { ...kill, crashAtDelivery: 300 }), record)
    try {
      await Promise.all([survivor.ready, victim.ready])
      const sent = Array.from({ length: 3_000 }, (_, i) => tick('kill.t', `k${i % 60}`))
      await publishAll(admin, 'kill.t', sent, history)
      const exit = await victim.exited
      expect(exit.signal).toBe('SIGKILL')
      await waitFor(() => sent.every((e) => history.isCompleted(e.id)), history.onChange, { timeoutMs: 90_000 })
    } finally {
      await Promise.all([survivor.stop(), victim.stop()])
      await admin.close()
    }
    const check = history.check()
    console.log(`[kafka] consumer-kill9-mid-batch: ${history.summary()}`)
    expect(check.lost).toEqual([])
    expect(check.unexpected).toEqual([])
    // Bounded by what the victim had read but not committed: its window plus one commit interval's worth.
    expect(check.duplicates).toBeLessThanOrEqual(300)
  })

  it('rebalance-while-handlers-run: members join and leave mid-run; none lost, every double handling counted', async () => {
    const history = createHistory()
    const transport = await createKafkaTransport(options('rebalance'))
    /** Per message, the handlers running it now: two at once is a double handling during a rebalance. */
    const running = new Map<string, number>()
    let overlaps = 0
    /** Deliveries per joining member (by pid): each must have been given partitions while the run went on. */
    const byMember = new Map<number, number>()
    const enter = (id: string) => {
      const now = (running.get(id) ?? 0) + 1
      running.set(id, now)
      if (now > 1) overlaps++
      history.delivered(id)
    }
    const leave = (id: string) => {
      running.set(id, (running.get(id) ?? 1) - 1)
      history.completed(id)
    }
    await transport.subscribe({ group: 'rb-g', patterns: ['rb.t'], maxInFlight: 10 }, async (e) => {
      enter(e.id)
      await new Promise((resolve) => setTimeout(resolve, 40))
      leave(e.id)
    })
    const joiner = () =>
      spawnConsumer(
        member('rebalance', { group: 'rb-g', patterns: ['rb.t'], maxInFlight: 10, handlerDelayMs: 40 }),
        (e) => {
          if (e.event === 'delivered') {
            enter(e.id!)
            byMember.set(e.pid, (byMember.get(e.pid) ?? 0) + 1)
          }
          if (e.event === 'completed') leave(e.id!)
        },
      )
    const stage = (what: string) =>
      console.log(
        `[kafka] rebalance ${what}: completed=${history.counts.completed} members=${JSON.stringify([...byMember])}`,
      )
    const total = 4_000
    const sent = Array.from({ length: total }, (_, i) => tick('rb.t', `k${i % 60}`))
    await publishAll(transport, 'rb.t', sent, history)
    // Each change of membership lands while handlers run: paced by progress, not by the clock.
    await waitFor(() => history.counts.completed >= total / 5, history.onChange, { timeoutMs: 60_000 })
    stage('first joins')
    const first = joiner()
    await first.ready
    await waitFor(() => history.counts.completed >= (2 * total) / 5, history.onChange, { timeoutMs: 60_000 })
    stage('second joins')
    const second = joiner()
    await second.ready
    await waitFor(() => history.counts.completed >= (3 * total) / 5, history.onChange, { timeoutMs: 60_000 })
    stage('first leaves')
    await first.stop()
    stage('first left')
    try {
      await waitFor(() => sent.every((e) => history.isCompleted(e.id)), history.onChange, { timeoutMs: 90_000 })
    } catch (err) {
      stage('gave up')
      const missing = sent.filter((e) => !history.isCompleted(e.id))
      console.log(
        `[kafka] missing ${missing.length}: keys ${[...new Set(missing.map((e) => e.headers.partitionkey))].join(',')}`,
      )
      throw err
    } finally {
      await second.stop()
      await transport.close()
    }
    const check = history.check()
    console.log(`[kafka] rebalance-while-handlers-run: ${history.summary()} overlaps=${overlaps}`)
    expect(check.lost).toEqual([])
    expect(check.unexpected).toEqual([])
    // Both joiners were given partitions mid-run: the rebalances happened while handlers ran.
    expect(byMember.size).toBe(2)
    for (const count of byMember.values()) expect(count).toBeGreaterThan(0)
    // A message handled by two members at once (a revoked partition's handler still running) is a duplicate the
    // checker counts: at least once, reported, never lost.
    expect(overlaps).toBeLessThanOrEqual(check.duplicates)
  })
})
