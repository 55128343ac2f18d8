import { createPostgresTransport } from '@herald/postgres'
import { type PostgresServer, startPostgres } from '@herald/testkit'
import pg from 'pg'
import { afterAll, beforeAll } from 'vitest'
import { createPostgresSagaStore } from '../src/postgres.js'
import { describeSagaStore } from './saga-cases.js'

let server: PostgresServer
beforeAll(async () => {
  server = await startPostgres()
})
afterAll(async () => {
  await server?.stop()
})

let schemas = 0

describeSagaStore('postgres', async () => {
  const schema = `saga_${process.pid}_${++schemas}`
  const transport = await createPostgresTransport({ connectionString: server.url, schema: `${schema}_bus` })
  const pool = new pg.Pool({ connectionString: server.url, max: 10 })
  pool.on('error', () => {})
  await pool.query(`CREATE SCHEMA IF NOT EXISTS ${schema}`)
  return {
    transport: () => transport,
    // A store per host, as two processes would each make their own, over one schema.
    store: () => createPostgresSagaStore({ pool, schema }),
    async cleanup() {
      await transport.close()
      await pool.end()
    },
  }
})
