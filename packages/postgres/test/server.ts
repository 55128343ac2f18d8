import { type PostgresServer, startPostgres } from '@herald/testkit'
import pg from 'pg'
import { afterAll, beforeAll } from 'vitest'

/** Starts one private PostgreSQL server for the test file; returns an accessor. */
export function usePostgresServer(): () => PostgresServer {
  let server: PostgresServer | undefined
  beforeAll(async () => {
    server = await startPostgres()
  })
  afterAll(async () => {
    await server?.stop()
  })
  return () => {
    if (!server) throw new Error('PostgreSQL test server not started')
    return server
  }
}

let schemas = 0

/** A schema name no other test in this process uses. */
export function freshSchema(prefix: string): string {
  return `${prefix}_${process.pid}_${++schemas}`
}

/** Runs `work` on a fresh client, then closes it. */
export async function withClient<T>(url: string, work: (client: pg.Client) => Promise<T>): Promise<T> {
  const client = new pg.Client(url)
  await client.connect()
  try {
    return await work(client)
  } finally {
    await client.end()
  }
}

/**
 * A pool for test code. `pool.end()` resolves before its sockets close, so a server stopped right after may
 * still reach a closing client: without an error listener on the pool, that would be an uncaught exception.
 */
export function testPool(url: string, max = 10): pg.Pool {
  const pool = new pg.Pool({ connectionString: url, max })
  pool.on('error', () => {})
  return pool
}
