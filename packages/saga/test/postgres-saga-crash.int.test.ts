import { createPostgresTransport } from '@herald/postgres'
import { type PostgresServer, startPostgres } from '@herald/testkit'
import pg from 'pg'
import { afterAll, beforeAll, it } from 'vitest'
import { createPostgresSagaStore } from '../src/postgres.js'
import { type CrashEnvironment, runSagaCrashScenario, runTwoProcessTally } from './saga-crash-cases.js'

let server: PostgresServer
beforeAll(async () => {
  server = await startPostgres()
})
afterAll(async () => {
  await server?.stop()
})

/** A bus schema and a saga store schema on the test's server, which the saga worker processes open too. */
async function onPostgres(schema: string, run: (env: CrashEnvironment) => Promise<void>): Promise<void> {
  const pool = new pg.Pool({ connectionString: server.url, max: 5 })
  pool.on('error', () => {})
  await pool.query(`CREATE SCHEMA IF NOT EXISTS ${schema}`)
  const transport = await createPostgresTransport({ connectionString: server.url, schema: `${schema}_bus` })
  const store = await createPostgresSagaStore({ pool, schema })
  try {
    await run({ name: 'postgres', transport, store, workerConfig: { kind: 'postgres', url: server.url, schema } })
  } finally {
    await transport.close()
    await pool.end()
  }
}

it('saga-crash-500 on postgres: SIGKILLs at random points over 500 sagas, each ends once, nothing sent twice', () =>
  onPostgres('saga_crash', runSagaCrashScenario))

it('saga-two-processes on postgres: 100 messages at once for one instance over two host processes lose no update', () =>
  onPostgres('saga_two', runTwoProcessTally))
