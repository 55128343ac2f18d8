import { assertTopicPattern } from '@herald/core'

/**
 * An AMQP topic pattern as a POSIX regular expression, matched by PostgreSQL against `'.' || topic`: every word
 * is preceded by a dot, so `*` is one `\.[^.]+` and `#` is any number of them, including none.
 * `order.#` becomes `^\.order(\.[^.]+)*$`, which matches `.order` and `.order.item.added`.
 */
export function topicPatternToRegex(pattern: string): string {
  assertTopicPattern(pattern)
  const parts = pattern.split('.').map((word) => {
    if (word === '*') return '\\.[^.]+'
    if (word === '#') return '(\\.[^.]+)*'
    // Words are letters, digits, _ - and : (assertTopicPattern), none of them special outside brackets.
    return `\\.${word}`
  })
  return `^${parts.join('')}$`
}
