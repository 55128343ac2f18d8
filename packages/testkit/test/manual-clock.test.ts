import { createBus, createInMemoryTransport, defineEvent, type Message } from '@herald/core'
import { describe, expect, it } from 'vitest'
import { z } from 'zod'
import { createManualClock } from '../src/index.js'
import { waitFor } from '../src/wait-for.js'

const Reminder = defineEvent('reminder.due', { schema: z.object({ n: z.number() }) })
const hour = 3_600_000

function setup() {
  const clock = createManualClock()
  const transport = createInMemoryTransport({ clock })
  const bus = createBus({ transport, service: 'reminders', clock })
  const handled: Message<{ n: number }>[] = []
  return { clock, transport, bus, handled }
}

describe('an injected clock', () => {
  it('injected-clock-delay: a delayed message waits for the clock, not for real time; time and id come from the clock', async () => {
    const { clock, bus, handled } = setup()
    bus.on(Reminder, async (message) => {
      handled.push(message)
    })
    await bus.start()
    const publishedAt = clock.now()
    await bus.publish(Reminder, { n: 1 }, { delayMs: 60_000 })
    await clock.advance(59_999)
    expect(handled).toHaveLength(0)
    await clock.advance(1)
    await waitFor(() => handled.length === 1, undefined)
    expect(handled[0]!.time).toBe(new Date(publishedAt).toISOString())
    // A UUIDv7 starts with its 48-bit millisecond timestamp.
    expect(Number.parseInt(handled[0]!.id.replaceAll('-', '').slice(0, 12), 16)).toBe(publishedAt)
    await bus.stop()
  })

  it('injected-clock-step-back: a wall clock set back an hour while a message waits delays it by the hour, never early', async () => {
    const { clock, bus, handled } = setup()
    bus.on(Reminder, async (message) => {
      handled.push(message)
    })
    await bus.start()
    await bus.publish(Reminder, { n: 1 }, { delayMs: 10_000 })
    clock.step(-hour)
    await clock.advance(10_000)
    expect(handled).toHaveLength(0)
    await clock.advance(hour - 1)
    expect(handled).toHaveLength(0)
    await clock.advance(1)
    await waitFor(() => handled.length === 1, undefined)
    await bus.stop()
  })

  it('injected-clock-timeouts: handler timeouts, immediate retries and durable backoff all run on the clock', async () => {
    const { clock, transport, bus } = setup()
    const tries: { attempt: number; aborted: unknown }[] = []
    bus
      .group('slow', {
        handlerTimeoutMs: 5_000,
        immediateRetries: 1,
        immediateRetryDelayMs: 1_000,
        retry: { maxAttempts: 2, backoff: { initialMs: 30_000, jitter: 0 } },
      })
      .on(Reminder, async (_message, context) => {
        const entry = { attempt: context.attempt, aborted: undefined as unknown }
        tries.push(entry)
        // Never settles by itself: only the timeout ends it.
        return new Promise<void>((_resolve, reject) => {
          context.signal.addEventListener('abort', () => {
            entry.aborted = context.signal.reason
            reject(context.signal.reason)
          })
        })
      })
    await bus.start()
    await bus.publish(Reminder, { n: 1 })
    await waitFor(() => tries.length === 1, undefined)
    await clock.advance(4_999)
    expect(tries[0]!.aborted).toBeUndefined()
    await clock.advance(1)
    expect(tries[0]!.aborted).toMatchObject({ code: 'HANDLER_TIMEOUT' })
    await clock.advance(999)
    expect(tries).toHaveLength(1)
    await clock.advance(1)
    expect(tries.map((t) => t.attempt)).toEqual([1, 1])
    // The second try times out too: the delivery fails back to the transport, due again 30 s later.
    await clock.advance(5_000)
    await clock.advance(29_999)
    expect(tries).toHaveLength(2)
    await clock.advance(1)
    await waitFor(() => tries.length === 3, undefined)
    expect(tries[2]!.attempt).toBe(2)
    // Its last tries time out as well, and with its two attempts used it is dead-lettered.
    await clock.advance(5_000 + 1_000 + 5_000)
    await waitFor(async () => (await transport.listDeadLetters()).items.length === 1, undefined)
    const [letter] = (await transport.listDeadLetters()).items
    expect(letter).toMatchObject({ group: 'slow', attempts: 2 })
    expect(tries).toHaveLength(4)
    await bus.stop()
  })
})
