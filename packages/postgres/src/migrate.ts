import { ConfigurationError } from '@herald/core'
import type pg from 'pg'
import { keysSql } from './keys-sql.js'
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
    // Version 2's columns and functions, only where missing: ALTER TABLE and CREATE OR REPLACE FUNCTION take locks
    // that running consumers in other processes would deadlock against.
    const keyed = await client.query<{ ready: boolean }>(
      `SELECT EXISTS (SELECT 1 FROM information_schema.columns WHERE table_schema = $1 AND table_name = 'queue'
                        AND column_name = 'due_at')
          AND to_regprocedure($2) IS NOT NULL AS ready`,
      [schema, `${schema}.claim(text,text,bigint,integer,double precision)`],
    )
    if (keyed.rows[0]?.ready !== true) {
      await client.query(keysSql(schema))
      await client.query(`UPDATE ${schema}.meta SET value = $1 WHERE key = 'schema_version' AND value < $1`, [
        schemaVersion,
      ])
    }
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
