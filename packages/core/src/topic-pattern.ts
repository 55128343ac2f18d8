import { ConfigurationError } from './errors.js'

const wordPattern = /^[A-Za-z0-9_\-:]+$/

/** Throws when `topic` is not a dot-separated list of non-empty words (no wildcards). */
export function assertTopic(topic: string): void {
  if (topic.length === 0 || topic.length > 255 || !topic.split('.').every((w) => wordPattern.test(w))) {
    throw new ConfigurationError('topic', `"${topic}" must be dot-separated words of letters, digits, _ - : (max 255)`)
  }
}

/** Throws when `pattern` is not words, `*` (exactly one word) and `#` (zero or more words) joined by dots. */
export function assertTopicPattern(pattern: string): void {
  if (pattern.length === 0 || !pattern.split('.').every((w) => w === '*' || w === '#' || wordPattern.test(w))) {
    throw new ConfigurationError('pattern', `"${pattern}" must be dot-separated words, "*" or "#"`)
  }
}

/**
 * Compiles an AMQP topic pattern into a predicate: `*` matches exactly one word, `#` zero or more.
 * `order.#` matches `order`, `order.created` and `order.item.added`; `order.*` matches only `order.created`.
 */
export function compileTopicPattern(pattern: string): (topic: string) => boolean {
  assertTopicPattern(pattern)
  const parts = pattern.split('.')
  if (!parts.some((p) => p === '*' || p === '#')) return (topic) => topic === pattern
  return (topic) => matchWords(parts, 0, topic.split('.'), 0)
}

function matchWords(pattern: readonly string[], p: number, words: readonly string[], w: number): boolean {
  for (;;) {
    if (p === pattern.length) return w === words.length
    const part = pattern[p]
    if (part === '#') {
      // `#` may swallow any number of words, including none: try each split point.
      for (let skip = w; skip <= words.length; skip++) if (matchWords(pattern, p + 1, words, skip)) return true
      return false
    }
    if (w === words.length) return false
    if (part !== '*' && part !== words[w]) return false
    p++
    w++
  }
}

/** True when `topic` matches `pattern` under AMQP topic semantics. Prefer {@link compileTopicPattern} on hot paths. */
export function matchesTopic(pattern: string, topic: string): boolean {
  return compileTopicPattern(pattern)(topic)
}
