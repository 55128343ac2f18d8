import { createInMemoryTransport } from '@herald/core'
import { describeTransport } from '../src/index.js'

describeTransport(
  'in-memory',
  async () => {
    const transport = createInMemoryTransport()
    return {
      // One in-process broker per test: every "connection" is the same transport, closed once at cleanup.
      create: async () => ({ ...transport, close: async () => {} }),
      injectRaw: async (group, topic, envelope) => transport.injectRaw(group, topic, envelope),
      cleanup: () => transport.close(),
    }
  },
  { persistent: false },
)
