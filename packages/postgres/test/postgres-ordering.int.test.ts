import { fileURLToPath } from 'node:url'
import { describeKeyOrdering } from '@herald/testkit'
import { createPostgresTransport } from '../src/index.js'
import { freshSchema, usePostgresServer, withClient } from './server.js'

const server = usePostgresServer()
const factoryModule = fileURLToPath(new URL('../src/index.ts', import.meta.url))

describeKeyOrdering('postgres', async () => {
  const url = server().url
  const schema = freshSchema('ordering')
  return {
    open: () => createPostgresTransport({ connectionString: url, schema, pollIntervalMs: 20 }),
    worker: () => ({
      module: factoryModule,
      exportName: 'createPostgresTransport',
      options: { connectionString: url, schema, leaseMs: 1_000, pollIntervalMs: 20 },
    }),
    rateAcrossProcesses: true,
    cleanup: () => withClient(url, (c) => c.query(`DROP SCHEMA ${schema} CASCADE`)).then(() => {}),
  }
})
