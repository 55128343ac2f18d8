import { ConfigurationError } from '@herald/core'
import type pg from 'pg'
import { schemaSql, schemaVersion } from './schema.js'

/**
 * Creates Herald's tables if missing. Runs under a transaction-scoped advisory lock, so processes starting
 * together do not race on `CREATE ... IF NOT EXISTS` (which is not safe concurrently in PostgreSQL).
 */
export async function migrate(pool: pg.Pool, schema: string): Promise<void> {
  const client = await pool.connect()
  try {
    await client.query('BEGIN')
    await client.query('SELECT pg_advisory_xact_lock(hashtext($1))', [`herald:${schema}`])
    await client.query(schemaSql(schema))
    const result = await client.query<{ value: string }>(
      `SELECT value FROM ${schema}.meta WHERE key = 'schema_version'`,
    )
    const found = Number(result.rows[0]?.value ?? schemaVersion)
    if (found > schemaVersion) {
      throw new ConfigurationError(
        'schema',
        `"${schema}" holds Herald tables of version ${found}; this Herald knows up to ${schemaVersion}: upgrade Herald`,
      )
    }
    await client.query('COMMIT')
  } catch (err) {
    await client.query('ROLLBACK').catch(() => {})
    throw err
  } finally {
    client.release()
  }
}
