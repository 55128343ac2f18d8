import { createInMemoryTransport } from '@herald/core'
import { describeKeyOrdering } from '../src/index.js'

describeKeyOrdering('in-memory', async () => {
  const transport = createInMemoryTransport()
  return {
    // One in-process broker per test: every "connection" is the same transport, closed once at cleanup.
    open: async () => ({ ...transport, close: async () => {} }),
    cleanup: () => transport.close(),
  }
})
