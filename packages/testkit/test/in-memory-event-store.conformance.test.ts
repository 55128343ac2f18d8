import { createInMemoryEventStore } from '@herald/core'
import { describeEventStore } from '@herald/testkit'

describeEventStore(
  'in-memory',
  async () => ({ open: async () => createInMemoryEventStore(), cleanup: async () => {} }),
  { persistent: false },
)
