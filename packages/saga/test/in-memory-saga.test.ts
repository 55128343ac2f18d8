import { createInMemoryTransport } from '@herald/core'
import { createInMemorySagaStore } from '../src/index.js'
import { describeSagaStore } from './saga-cases.js'

describeSagaStore('in-memory', async () => {
  const transport = createInMemoryTransport()
  const store = createInMemorySagaStore()
  return {
    transport: () => transport,
    store: async () => store,
    cleanup: () => transport.close(),
  }
})
