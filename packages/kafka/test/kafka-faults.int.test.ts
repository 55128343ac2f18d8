import { uuidV7 } from '@herald/core'
import { createHistory, type KafkaCluster, startKafka, waitFor } from '@herald/testkit'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { createKafkaTransport } from '../src/index.js'

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
})
