import { type PostgresServer, startPostgres } from '@herald/testkit'
import pg from 'pg'
import { afterAll, beforeAll } from 'vitest'
import { createPostgresNotificationStore } from '../src/postgres.js'
import { describeNotificationStore } from './store-cases.js'

let server: PostgresServer
let pool: pg.Pool
beforeAll(async () => {
  server = await startPostgres()
  pool = new pg.Pool({ connectionString: server.url, max: 10 })
  pool.on('error', () => {})
})
afterAll(async () => {
  await pool?.end()
  await server?.stop()
})

let schemas = 0
// Each case its own schema: the cases expect an empty store.
describeNotificationStore('postgres', () =>
  createPostgresNotificationStore({ pool, schema: `notify_${process.pid}_${++schemas}` }),
)
