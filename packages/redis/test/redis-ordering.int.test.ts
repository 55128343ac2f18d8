import { fileURLToPath } from 'node:url'
import { describeKeyOrdering, type RedisServer, startRedis } from '@herald/testkit'
import { afterAll, beforeAll } from 'vitest'
import { createRedisTransport } from '../src/index.js'

const factoryModule = fileURLToPath(new URL('../src/index.ts', import.meta.url))
let server: RedisServer
let runs = 0
beforeAll(async () => {
  server = await startRedis()
})
afterAll(async () => {
  await server?.stop()
})

describeKeyOrdering('redis', async () => {
  const prefix = `ordering-${process.pid}-${++runs}`
  // The taker measures the lease on Redis: every consumer uses the same leaseMs.
  const options = { url: server.url, prefix, leaseMs: 1_000, pollIntervalMs: 20 }
  return {
    open: () => createRedisTransport(options),
    worker: () => ({
      module: factoryModule,
      exportName: 'createRedisTransport',
      options,
    }),
    rateAcrossProcesses: true,
    cleanup: async () => {},
  }
})
