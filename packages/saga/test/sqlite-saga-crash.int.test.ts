import { mkdtempSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { createSqliteTransport } from '@herald/sqlite'
import { it } from 'vitest'
import { createSqliteSagaStore } from '../src/sqlite.js'
import { type CrashEnvironment, runSagaCrashScenario, runTwoProcessTally } from './saga-crash-cases.js'

/** A bus file and a saga store file in a temp dir, which the saga worker processes open too. */
async function onSqlite(run: (env: CrashEnvironment) => Promise<void>): Promise<void> {
  const dir = mkdtempSync(join(tmpdir(), 'herald-saga-crash-'))
  const busPath = join(dir, 'bus.db')
  const appPath = join(dir, 'app.db')
  const transport = createSqliteTransport({ path: busPath, pollIntervalMs: 20 })
  const store = createSqliteSagaStore({ path: appPath })
  try {
    await run({ name: 'sqlite', transport, store, workerConfig: { kind: 'sqlite', busPath, appPath } })
  } finally {
    await transport.close()
    await store.close()
    rmSync(dir, { recursive: true, force: true })
  }
}

it('saga-crash-500 on sqlite: SIGKILLs at random points over 500 sagas, each ends once, nothing sent twice', () =>
  onSqlite(runSagaCrashScenario))

it('saga-two-processes on sqlite: 100 messages at once for one instance over two host processes lose no update', () =>
  onSqlite(runTwoProcessTally))
