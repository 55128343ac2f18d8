import type { GroupSettings } from './capabilities.js'
import type { Envelope } from './envelope.js'
import { HeaderNames } from './envelope.js'
import { ConfigurationError } from './errors.js'
import type { SubscriptionSpec, Transport } from './transport.js'

/** What a group does with a key whose message was dead-lettered. */
export type AfterDeadLetter = 'continue' | 'hold'

/**
 * How a group handles messages that carry a key (the `partitionkey` header, set by `partitionKey` on publish or
 * by the contract's `key`). Messages without a key are not affected.
 */
export interface KeyOrdering {
  /**
   * Messages of one key handled at once across every consumer of the group. 1 (default): one at a time, in the
   * order they were published. Above 1: at most that many at a time per key, in no promised order.
   */
  readonly concurrency?: number
  /**
   * When a key's message is dead-lettered: `continue` (default) with the key's next message, or `hold` the key
   * until that dead letter is redriven (it then goes first) or purged, or an operator releases the key.
   */
  readonly afterDeadLetter?: AfterDeadLetter
}

export interface ResolvedKeyOrdering {
  readonly concurrency: number
  readonly afterDeadLetter: AfterDeadLetter
}

export const defaultKeyOrdering: ResolvedKeyOrdering = Object.freeze({ concurrency: 1, afterDeadLetter: 'continue' })

export function resolveKeyOrdering(input: KeyOrdering | undefined): ResolvedKeyOrdering {
  if (input === undefined) return defaultKeyOrdering
  const concurrency = input.concurrency ?? 1
  if (!(Number.isInteger(concurrency) && concurrency > 0))
    throw new ConfigurationError('ordering.concurrency', 'must be a positive integer')
  const afterDeadLetter = input.afterDeadLetter ?? 'continue'
  if (afterDeadLetter !== 'continue' && afterDeadLetter !== 'hold')
    throw new ConfigurationError('ordering.afterDeadLetter', 'must be "continue" or "hold"')
  return { concurrency, afterDeadLetter }
}

/** What a subscription asks of its group: the resolved ordering, and the settings to store with the group. */
export function groupSettingsOf(spec: SubscriptionSpec): {
  readonly ordering: ResolvedKeyOrdering
  readonly settings: GroupSettings
} {
  const ordering = resolveKeyOrdering(spec.ordering)
  const { maxPerSecond } = spec
  return { ordering, settings: maxPerSecond === undefined ? { ordering } : { ordering, maxPerSecond } }
}

/** Longest key a bus publishes (characters): keys are indexed and named in every store. */
export const maxKeyLength = 512

/** The key a message is ordered by: its `partitionkey` header when that is a non-empty string. */
export function orderingKeyOf(envelope: Envelope): string | undefined {
  const key: unknown = envelope.headers[HeaderNames.partitionKey]
  return typeof key === 'string' && key.length > 0 ? key : undefined
}

/** A key that waits on a dead letter (policy `hold`): none of its messages are handed out until it is released. */
export interface HeldKey {
  readonly group: string
  readonly key: string
  /** The dead-lettered message holding the key. */
  readonly deadLetterId: string
  /** The key's messages waiting behind it. */
  readonly waiting: number
}

/** Keys held by dead letters, and the operator's way to let one go on without redriving its dead letter. */
export interface KeyAdmin {
  listHeldKeys(group?: string): Promise<readonly HeldKey[]>
  /**
   * Lets the key's next message go. The dead letter stays in the dead-letter store; redriving it later sends it
   * behind the key's messages published since. Resolves false when the key was not held.
   */
  releaseKey(group: string, key: string): Promise<boolean>
}

export function isKeyAdmin(transport: Transport): transport is Transport & KeyAdmin {
  const t = transport as unknown as Record<string, unknown>
  return typeof t.listHeldKeys === 'function' && typeof t.releaseKey === 'function'
}
