import { mkdtempSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { fileURLToPath } from 'node:url'
import { describeEventStore } from '@herald/testkit'
import { createSqliteEventStore } from '../src/index.js'

const factoryModule = fileURLToPath(new URL('../src/index.ts', import.meta.url))

describeEventStore(
  'sqlite',
  async () => {
    const dir = mkdtempSync(join(tmpdir(), 'herald-events-'))
    const path = join(dir, 'herald.db')
    return {
      open: async () => createSqliteEventStore({ path }),
      worker: () => ({ module: factoryModule, exportName: 'createSqliteEventStore', options: { path } }),
      cleanup: async () => rmSync(dir, { recursive: true, force: true }),
    }
  },
  { persistent: true },
)
