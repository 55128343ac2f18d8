import { describe, expect, it } from 'vitest'
import { assertTopic, compileTopicPattern } from '../src/index.js'

describe('topic patterns (AMQP semantics)', () => {
  const cases: [string, string, boolean][] = [
    ['order.created', 'order.created', true],
    ['order.created', 'order.updated', false],
    ['order.*', 'order.created', true],
    ['order.*', 'order', false],
    ['order.*', 'order.item.added', false],
    ['order.#', 'order', true],
    ['order.#', 'order.created', true],
    ['order.#', 'order.item.added', true],
    ['order.#', 'orders.created', false],
    ['#', 'anything.at.all', true],
    ['#.added', 'order.item.added', true],
    ['#.added', 'added', true],
    ['*.item.#', 'order.item', true],
    ['*.item.#', 'item', false],
    ['trip.event.*', 'trip.event.started', true],
    ['trip.event.*', 'trip.event.x.y', false],
    ['a.#.b.#.c', 'a.x.b.y.z.c', true],
    ['a.#.b.#.c', 'a.b.c', true],
    ['a.#.b.#.c', 'a.c', false],
  ]
  it.each(cases)('%s matches %s: %s', (pattern, topic, expected) => {
    expect(compileTopicPattern(pattern)(topic)).toBe(expected)
  })

  it('rejects malformed topics and patterns with a clear error', () => {
    expect(() => assertTopic('order..created')).toThrow(/dot-separated words/)
    expect(() => assertTopic('order.*')).toThrow(/dot-separated words/)
    expect(() => compileTopicPattern('order.*x')).toThrow(/Invalid option "pattern"/)
  })
})
