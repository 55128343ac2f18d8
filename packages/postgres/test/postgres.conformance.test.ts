import { describeTransport } from '@herald/testkit'
import { createPostgresTransport } from '../src/index.js'
import { freshSchema, usePostgresServer, withClient } from './server.js'

const server = usePostgresServer()

describeTransport(
  'postgres',
  async () => {
    const url = server().url
    // Each test gets its own schema in one server: isolated tables, no server start per test.
    const schema = freshSchema('conformance')
    return {
      create: () => createPostgresTransport({ connectionString: url, schema, pollIntervalMs: 200 }),
      // Poison goes in with the raw client, bypassing every check Herald's publisher makes.
      injectRaw: (group, topic, envelope) =>
        withClient(url, async (client) => {
          await client.query(
            `INSERT INTO ${schema}.queue (group_name, message_id, topic, headers, body, visible_at, enqueued_at)
             VALUES ($1, $2, $3, $4, $5, $6, $6)`,
            [group, envelope.id, topic, JSON.stringify(envelope.headers), Buffer.from(envelope.body), Date.now()],
          )
        }),
      cleanup: () =>
        withClient(url, (client) => client.query(`DROP SCHEMA IF EXISTS ${schema} CASCADE`)).then(() => {}),
    }
  },
  { persistent: true },
)
