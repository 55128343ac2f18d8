import { compileTopicPattern } from '@herald/core'
import { describe, expect, it } from 'vitest'
import { topicPatternToRegex } from '../src/index.js'

const patterns = [
  'a',
  'a.b',
  '*',
  '#',
  'a.*',
  'a.#',
  '*.b',
  '#.b',
  'a.*.c',
  'a.#.c',
  '#.b.#',
  '*.*',
  '*.#',
  '#.#',
  'a-b:c.*',
]
const topics = ['a', 'b', 'a.b', 'a.c', 'b.b', 'a.b.c', 'a.x.y.c', 'a.c.c', 'x.b.y', 'a-b:c.d', 'ab', 'a.bb', 'aa.b']

describe('topicPatternToRegex', () => {
  // The regex runs inside PostgreSQL against '.' || topic; JavaScript's engine agrees on this subset.
  it('matches exactly the topics the in-process matcher matches', () => {
    for (const pattern of patterns) {
      const regex = new RegExp(topicPatternToRegex(pattern))
      const matcher = compileTopicPattern(pattern)
      for (const topic of topics) expect(regex.test(`.${topic}`), `${pattern} vs ${topic}`).toBe(matcher(topic))
    }
  })

  it('rejects an invalid pattern before it reaches SQL', () => {
    expect(() => topicPatternToRegex("a.'; DROP TABLE x; --")).toThrow(/pattern/)
  })
})
