import { mkdtempSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { fileURLToPath } from 'node:url'
import { describeConsumerCrashes } from '@herald/testkit'
import { createSqliteTransport } from '../src/index.js'

const factoryModule = fileURLToPath(new URL('../src/index.ts', import.meta.url))

describeConsumerCrashes('sqlite', async () => {
  const dir = mkdtempSync(join(tmpdir(), 'herald-crash-'))
  const path = join(dir, 'herald.db')
  return {
    admin: async () => createSqliteTransport({ path }),
    worker: () => ({
      module: factoryModule,
      exportName: 'createSqliteTransport',
      options: { path, leaseMs: 500, pollIntervalMs: 20 },
    }),
    cleanup: async () => rmSync(dir, { recursive: true, force: true }),
  }
})
