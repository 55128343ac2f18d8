import { mkdtempSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { isScheduler, isTopologyAdmin, type TopologyDescription, uuidV7 } from '@herald/core'
import {
  type KafkaCluster,
  type PostgresServer,
  type RabbitMqServer,
  type RedisServer,
  startKafka,
  startPostgres,
  startRabbitMq,
  startRedis,
} from '@herald/testkit'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import type { GroupStats } from '../src/commands/stats.js'
import { openTransport, runCli } from '../src/index.js'

function capture() {
  const out: string[] = []
  const err: string[] = []
  return { out, err, output: { out: (l: string) => out.push(l), err: (l: string) => err.push(l) } }
}

async function cli(args: string[]): Promise<string[]> {
  const io = capture()
  const code = await runCli(args, { output: io.output })
  expect(code, io.err.join('\n')).toBe(0)
  return io.out
}

describe('herald stats and topology on every transport', () => {
  let dir: string
  let postgres: PostgresServer
  let redis: RedisServer
  let rabbitmq: RabbitMqServer
  let kafka: KafkaCluster
  beforeAll(async () => {
    dir = mkdtempSync(join(tmpdir(), 'herald-cli-'))
    ;[postgres, redis, rabbitmq, kafka] = await Promise.all([
      startPostgres(),
      startRedis(),
      startRabbitMq({ management: true }),
      startKafka(),
    ])
  })
  afterAll(async () => {
    await Promise.all([postgres?.stop(), redis?.stop(), rabbitmq?.stop(), kafka?.stop()])
    rmSync(dir, { recursive: true, force: true })
  })

  const urls: [string, () => string][] = [
    ['sqlite', () => `sqlite:${join(dir, 'stats.db')}`],
    ['postgres', () => `${postgres.url}?schema=cli_stats`],
    ['redis', () => `${redis.url}?prefix=cli-stats`],
    // The management API is how a process that declared nothing lists RabbitMQ's groups.
    [
      'rabbitmq',
      () =>
        `${rabbitmq.url}?exchange=cli-stats&namespace=cli-stats&management=${encodeURIComponent(rabbitmq.managementUrl!)}`,
    ],
    ['kafka', () => `kafka://${kafka.brokers.join(',')}?prefix=cli-stats`],
  ]

  for (const [name, url] of urls) {
    it(`${name}: stats --json counts a group's waiting and scheduled messages; topology --json shows its binding`, async () => {
      const transport = await openTransport(url())
      try {
        if (!isTopologyAdmin(transport) || !isScheduler(transport)) throw new Error(`${name} lacks the capabilities`)
        await transport.declareGroup('billing', ['order.#'])
        const envelope = () => ({
          id: uuidV7(),
          headers: { type: 'order.placed' },
          body: new TextEncoder().encode('{}'),
        })
        await transport.publish('order.placed', [envelope(), envelope(), envelope()])
        await transport.schedule('order.placed', [envelope()], Date.now() + 600_000)

        const stats = (await cli(['-t', url(), 'stats', '--json', '--interval', '0'])).map(
          (line) => JSON.parse(line) as GroupStats,
        )
        const billing = stats.find((s) => s.group === 'billing')
        expect(billing).toMatchObject({ deadLetters: 0, drainedPerS: null })
        // RabbitMQ keeps a delayed message in its delay levels, outside the group's queue, and cannot count it.
        if (name === 'rabbitmq') expect(billing).toMatchObject({ depth: 3, scheduled: null, inFlight: 0 })
        // Kafka's depth is the group's lag, the delayed message in it (it waits in the topic, held by a consumer).
        else if (name === 'kafka') expect(billing).toMatchObject({ depth: 4, scheduled: null, inFlight: null })
        else expect(billing).toMatchObject({ depth: 4, scheduled: 1, inFlight: 0 })
        expect(billing?.lagMs).not.toBeUndefined()

        const twoSamples = (await cli(['-t', url(), 'stats', '--json', '--interval', '50'])).map(
          (line) => JSON.parse(line) as GroupStats,
        )
        // Nothing consumes: the backlog did not fall.
        expect(twoSamples.find((s) => s.group === 'billing')?.drainedPerS).toBe(0)

        const [line] = await cli(['-t', url(), 'topology', '--json'])
        const topology = JSON.parse(line!) as TopologyDescription
        expect(topology.transport).toBe(name)
        expect(topology.groups).toContainEqual(expect.objectContaining({ group: 'billing', patterns: ['order.#'] }))
        expect(topology.deadLetters.length).toBeGreaterThan(0)
        const table = await cli(['-t', url(), 'stats', '--interval', '0'])
        expect(table[0]).toMatch(
          /^GROUP\s+DEPTH\s+IN FLIGHT\s+SCHEDULED\s+DEAD\s+ON KEY\s+HELD KEYS\s+LAG\s+DRAINED\s+ACKED$/,
        )
      } finally {
        await transport.close()
      }
    })
  }

  it('memory: each command opens a new in-memory transport, so stats lists nothing and topology no group', async () => {
    expect(await cli(['-t', 'memory:', 'stats', '--json', '--interval', '0'])).toEqual([])
    const topology = JSON.parse((await cli(['-t', 'memory:', 'topology', '--json']))[0]!) as TopologyDescription
    expect(topology).toMatchObject({ transport: 'in-memory', groups: [] })
  })
})
