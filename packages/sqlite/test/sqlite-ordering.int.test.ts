import { mkdtempSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { fileURLToPath } from 'node:url'
import { describeKeyOrdering } from '@herald/testkit'
import { createSqliteTransport } from '../src/index.js'

const factoryModule = fileURLToPath(new URL('../src/index.ts', import.meta.url))

describeKeyOrdering('sqlite', async () => {
  const dir = mkdtempSync(join(tmpdir(), 'herald-ordering-'))
  const path = join(dir, 'herald.db')
  return {
    open: async () => createSqliteTransport({ path, pollIntervalMs: 20 }),
    worker: () => ({
      module: factoryModule,
      exportName: 'createSqliteTransport',
      options: { path, leaseMs: 1_000, pollIntervalMs: 20 },
    }),
    rateAcrossProcesses: true,
    cleanup: async () => rmSync(dir, { recursive: true, force: true }),
  }
})
