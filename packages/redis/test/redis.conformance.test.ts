import { describeTransport, type RedisServer, startRedis } from '@herald/testkit'
import { Redis } from 'ioredis'
import { afterAll, beforeAll } from 'vitest'
import { createRedisTransport } from '../src/index.js'

let server: RedisServer | undefined
beforeAll(async () => {
  server = await startRedis({ profile: 'always' })
})
afterAll(async () => {
  await server?.stop()
})

let prefixes = 0

describeTransport(
  'redis',
  async () => {
    if (!server) throw new Error('Redis test server not started')
    const url = server.url
    // Each test gets its own key prefix on one server.
    const prefix = `conformance${++prefixes}`
    return {
      // The default poll interval (500 ms): a retry due sooner wakes the blocked XREADGROUP (`backoff-schedule` checks the
      // delays within ±20 ms of their jitter).
      create: () => createRedisTransport({ url, prefix }),
      // Poison goes in with the raw client, bypassing every check Herald's publisher makes.
      injectRaw: async (group, topic, envelope) => {
        const raw = new Redis(url)
        await raw.xadd(
          `${prefix}:q:${group}`,
          '*',
          'i',
          envelope.id,
          't',
          topic,
          'h',
          JSON.stringify(envelope.headers),
          'b',
          Buffer.from(envelope.body),
          'a',
          '0',
        )
        raw.disconnect()
      },
      cleanup: async () => {},
    }
  },
  { persistent: true },
)
