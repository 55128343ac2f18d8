import { mkdtempSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { createSqliteTransport } from '@herald/sqlite'
import type { SagaStore } from '../src/index.js'
import { createSqliteSagaStore } from '../src/sqlite.js'
import { describeSagaStore } from './saga-cases.js'

describeSagaStore('sqlite', async () => {
  const dir = mkdtempSync(join(tmpdir(), 'herald-saga-'))
  const transport = createSqliteTransport({ path: join(dir, 'bus.db'), pollIntervalMs: 20 })
  const stores: SagaStore[] = []
  return {
    transport: () => transport,
    // A store per host, as two processes would each open their own, over one file.
    store: async () => {
      const store = createSqliteSagaStore({ path: join(dir, 'app.db') })
      stores.push(store)
      return store
    },
    async cleanup() {
      await transport.close()
      for (const store of stores) await store.close()
      rmSync(dir, { recursive: true, force: true })
    },
  }
})
