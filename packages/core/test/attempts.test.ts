import { getEventListeners } from 'node:events'
import { attempts, type Delivery, type Envelope, HandlerTimeoutError, PermanentError } from '@herald/core'
import { describe, expect, it } from 'vitest'

const envelope: Envelope = { id: 'm-1', headers: {}, body: new Uint8Array() }

function deliveryOn(signal: AbortSignal): Delivery {
  return { topic: 't', group: 'g', attempt: 1, signal }
}

describe('attempts middleware', () => {
  it('adds one abort listener per consumer signal, not one per message, and none per handler signal read', async () => {
    const consumer = new AbortController()
    const gates: (() => void)[] = []
    const run = attempts({ retries: 0, retryDelayMs: 1, timeoutMs: 10_000 })(async (_e, delivery) => {
      expect(delivery.signal.aborted).toBe(false)
      await new Promise<void>((resolve) => gates.push(resolve))
    })
    const running = Array.from({ length: 50 }, () => run(envelope, deliveryOn(consumer.signal)))
    expect(gates).toHaveLength(50)
    expect(getEventListeners(consumer.signal, 'abort')).toHaveLength(1)
    for (const open of gates) open()
    await Promise.all(running)
  })

  it('aborting the consumer signal aborts the signal of every running handler', async () => {
    const consumer = new AbortController()
    const seen: AbortSignal[] = []
    let release!: () => void
    const gate = new Promise<void>((resolve) => {
      release = resolve
    })
    const run = attempts({ retries: 0, retryDelayMs: 1, timeoutMs: 10_000 })(async (_e, delivery) => {
      seen.push(delivery.signal)
      await gate
    })
    const running = [run(envelope, deliveryOn(consumer.signal)), run(envelope, deliveryOn(consumer.signal))]
    consumer.abort(new Error('shutting down'))
    expect(seen.map((s) => s.aborted)).toEqual([true, true])
    release()
    await Promise.all(running)
  })

  it('a try past its timeout fails with HandlerTimeoutError, its signal aborted, and its late outcome is ignored', async () => {
    const consumer = new AbortController()
    let signal: AbortSignal | undefined
    let finish!: () => void
    const run = attempts({ retries: 0, retryDelayMs: 1, timeoutMs: 20 })(async (_e, delivery) => {
      signal = delivery.signal
      await new Promise<void>((resolve) => {
        finish = resolve
      })
    })
    await expect(run(envelope, deliveryOn(consumer.signal))).rejects.toBeInstanceOf(HandlerTimeoutError)
    expect(signal?.aborted).toBe(true)
    expect(signal?.reason).toBeInstanceOf(HandlerTimeoutError)
    finish()
  })

  it('retries a failure immediately, never an error that names a dead-letter reason', async () => {
    let calls = 0
    const flaky = attempts({ retries: 2, retryDelayMs: 1, timeoutMs: 1_000 })(async () => {
      if (++calls < 3) throw new Error('transient')
    })
    await flaky(envelope, deliveryOn(new AbortController().signal))
    expect(calls).toBe(3)

    let permanentCalls = 0
    const permanent = attempts({ retries: 5, retryDelayMs: 1, timeoutMs: 1_000 })(async () => {
      permanentCalls++
      throw new PermanentError('no')
    })
    await expect(permanent(envelope, deliveryOn(new AbortController().signal))).rejects.toBeInstanceOf(PermanentError)
    expect(permanentCalls).toBe(1)
  })

  it('shutdown during the pause between tries ends the pause with the last error, without another try', async () => {
    const consumer = new AbortController()
    let calls = 0
    let failedOnce!: () => void
    const first = new Promise<void>((resolve) => {
      failedOnce = resolve
    })
    const run = attempts({ retries: 3, retryDelayMs: 60_000, timeoutMs: 1_000 })(async () => {
      calls++
      failedOnce()
      throw new Error(`try ${calls}`)
    })
    const outcome = run(envelope, deliveryOn(consumer.signal))
    await first
    // Let the failure reach the pause before shutting down.
    await new Promise((resolve) => setImmediate(resolve))
    consumer.abort()
    await expect(outcome).rejects.toThrow('try 1')
    expect(calls).toBe(1)
  })
})
