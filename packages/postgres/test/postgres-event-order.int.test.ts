import { type EventStore, uuidV7 } from '@herald/core'
import { afterEach, expect, it } from 'vitest'
import { createPostgresEventStore } from '../src/index.js'
import { freshSchema, usePostgresServer } from './server.js'

const server = usePostgresServer()
const opened: EventStore[] = []
afterEach(async () => {
  await Promise.all(opened.splice(0).map((s) => s.close()))
})

it('event-store-tail-never-skips-late-commit: a reader tailing by position while 8 processes-worth of writers append never skips a late commit', async () => {
  const schema = freshSchema('order')
  const open = async () => {
    const store = await createPostgresEventStore({ connectionString: server().url, schema })
    opened.push(store)
    return store
  }
  const writers = await Promise.all(Array.from({ length: 8 }, open))
  const reader = await open()
  const body = new TextEncoder().encode('{}')
  const event = () => ({ topic: 't', envelope: { id: uuidV7(), headers: { type: 't' }, body } })

  let writing = true
  const seen: number[] = []
  const tail = (async () => {
    let after = 0
    for (;;) {
      const done = !writing
      const page = await reader.queryEvents({ after, limit: 1_000 })
      for (const e of page.items) seen.push(e.position)
      after = page.items.at(-1)?.position ?? after
      // One more full read after the writers finished, so the tail ends with everything.
      if (done && page.nextCursor === undefined) break
    }
  })()
  const written = (
    await Promise.all(
      writers.map(async (store, w) => {
        const positions: number[] = []
        for (let n = 0; n < 50; n++) {
          // Stream appends and plain appends interleave; both take the store's lock.
          if (n % 2 === 0) positions.push(...(await store.append([event(), event()])))
          else positions.push(...(await store.appendToStream(`s-${w}`, [event()])).positions)
        }
        return positions
      }),
    )
  ).flat()
  writing = false
  await tail
  const sorted = [...written].sort((a, b) => a - b)
  console.log(
    `[postgres] event-order: appended=${written.length} seenByTail=${seen.length} skipped=${sorted.length - seen.length}`,
  )
  expect(seen).toEqual(sorted)
})
