import { ConfigurationError } from '@herald/core'

/**
 * Where Herald's messages live on Kafka. A Herald topic (`order.created`) goes to the Kafka topic of its first
 * word (`<prefix>-order`), so every message about one kind of thing shares a topic, and with it the partition
 * of its key: an order's `order.created` and `order.paid` keep their order. A group reads the Kafka topics its
 * patterns can match and skips the messages they don't.
 */
export interface KafkaNames {
  /** The Kafka topic a Herald topic is written to. */
  topicOf(heraldTopic: string): string
  /** The Kafka topics a pattern can match, or `all` when its first word is a wildcard. */
  topicsOf(pattern: string): readonly string[] | 'all'
  /** True for the Kafka topics that hold published messages (not Herald's own bookkeeping). */
  isMessageTopic(kafkaTopic: string): boolean
  /** The Kafka consumer group of a Herald group. */
  consumerGroup(group: string): string
  /** A group's own topic: its retries, redriven dead letters and messages injected for it alone. */
  groupTopic(group: string): string
  /** The compacted topic of group bindings, keyed by group. */
  readonly bindings: string
  /** The compacted topic of dead letters, keyed by group and message id. */
  readonly deadLetters: string
}

/** Kafka allows letters, digits, `.`, `_` and `-`; Herald words may also hold `:`. */
function encodeWord(word: string): string {
  return word.replace(/_/g, '__').replace(/:/g, '_c')
}

const kafkaTopicPattern = /^[A-Za-z0-9._-]{1,249}$/

function checked(field: string, name: string, topic: string): string {
  if (!kafkaTopicPattern.test(topic)) {
    throw new ConfigurationError(
      field,
      `"${name}" gives the Kafka name "${topic}", which Kafka refuses (letters, digits, . _ -, at most 249)`,
    )
  }
  return topic
}

export function kafkaNames(prefix: string): KafkaNames {
  if (!/^[A-Za-z0-9-]{1,40}$/.test(prefix)) {
    throw new ConfigurationError('prefix', `"${prefix}" must be 1 to 40 letters, digits or -`)
  }
  const messages = `${prefix}-t.`
  const groups = `${prefix}-g.`
  return {
    topicOf: (topic) => checked('topic', topic, `${messages}${encodeWord(topic.split('.', 1)[0] ?? topic)}`),
    topicsOf(pattern) {
      const first = pattern.split('.', 1)[0] ?? pattern
      return first === '*' || first === '#' ? 'all' : [`${messages}${encodeWord(first)}`]
    },
    isMessageTopic: (kafkaTopic) => kafkaTopic.startsWith(messages),
    consumerGroup: (group) => `${prefix}.${group}`,
    groupTopic: (group) => checked('group', group, `${groups}${encodeWord(group)}`),
    bindings: `${prefix}-bindings`,
    deadLetters: `${prefix}-dead-letters`,
  }
}
