import { describeTransport, type PostgresServer, startPostgres } from '@herald/testkit'
import pg from 'pg'
import { afterAll, beforeAll } from 'vitest'
import { createPostgresTransport } from '../src/index.js'

let server: PostgresServer | undefined
beforeAll(async () => {
  server = await startPostgres()
})
afterAll(async () => {
  await server?.stop()
})

let schemas = 0

describeTransport(
  'postgres',
  async () => {
    if (!server) throw new Error('server not started')
    const url = server.url
    // Each test gets its own schema in one server: isolated tables, no server start per test.
    const schema = `conformance_${++schemas}`
    return {
      create: () => createPostgresTransport({ connectionString: url, schema, pollIntervalMs: 200 }),
      // Poison goes in with the raw client, bypassing every check Herald's publisher makes.
      injectRaw: async (group, topic, envelope) => {
        const client = new pg.Client(url)
        await client.connect()
        await client.query(
          `INSERT INTO ${schema}.queue (group_name, message_id, topic, headers, body, visible_at, enqueued_at)
           VALUES ($1, $2, $3, $4, $5, $6, $6)`,
          [group, envelope.id, topic, JSON.stringify(envelope.headers), Buffer.from(envelope.body), Date.now()],
        )
        await client.end()
      },
      cleanup: async () => {
        const client = new pg.Client(url)
        await client.connect()
        await client.query(`DROP SCHEMA IF EXISTS ${schema} CASCADE`)
        await client.end()
      },
    }
  },
  { persistent: true },
)
