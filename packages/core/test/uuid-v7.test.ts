import { describe, expect, it } from 'vitest'
import { uuidV7 } from '../src/index.js'

const shape = /^[0-9a-f]{8}-[0-9a-f]{4}-7[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$/

describe('uuidV7', () => {
  it('has the RFC 9562 layout: version 7, variant 10', () => {
    const ids = Array.from({ length: 1_000 }, () => uuidV7())
    for (const id of ids) expect(id).toMatch(shape)
  })

  it('starts with the 48-bit millisecond time', () => {
    for (const ms of [0, 1, 1_700_000_000_123, 2 ** 48 - 1]) {
      const id = uuidV7(ms)
      expect(Number.parseInt(id.slice(0, 8) + id.slice(9, 13), 16)).toBe(ms)
    }
  })

  it('sorts by time across milliseconds and never repeats', () => {
    const ids = Array.from({ length: 20_000 }, (_, i) => uuidV7(1_700_000_000_000 + Math.floor(i / 100)))
    expect(new Set(ids).size).toBe(ids.length)
    const byTime = ids.filter((_, i) => i % 100 === 0)
    expect([...byTime].sort()).toEqual(byTime)
  })

  it('returns a string of its own each time (no shared buffer leaks into earlier ids)', () => {
    const first = uuidV7(5)
    const copy = `${first}`
    uuidV7(6)
    expect(first).toBe(copy)
  })
})
