import {
  type Bus,
  type CommandContract,
  ConfigurationError,
  type ConsumerOptions,
  type DataOf,
  defineCommand,
  defineEvent,
  type EventContract,
  type HandlerContext,
  type Message,
  PermanentError,
  type RetryPolicyInput,
  resolveRetryPolicy,
  toErrorInfo,
} from '@herald/core'
import { z } from 'zod'
import type { Provider } from './providers.js'
import type {
  NotificationQuery,
  NotificationRecord,
  NotificationStatus,
  NotificationStore,
  Preference,
} from './store.js'
import { isFinal } from './store.js'
import { type Channel, channels, createTemplates, TemplateError, type Templates } from './templates.js'

const sendSchema = z.object({
  id: z.string().min(1).max(512),
  user: z.string().min(1).max(256),
  to: z.string().min(1).max(1_024),
  category: z.string().min(1).max(128),
  template: z.string().min(1).max(256),
  locale: z.string().min(2).max(35),
  data: z.record(z.string(), z.unknown()),
  rule: z.string().optional(),
  batch: z.string().optional(),
})

export type SendCommandData = z.infer<typeof sendSchema>

/** The command each channel's worker handles: `notification.<channel>.send`, one group per channel. */
export const sendCommands = Object.fromEntries(
  channels.map((channel) => [
    channel,
    // Keyed by the notification: two deliveries of one notification (a rule's event redelivered while its first
    // send is in flight) are handled one after the other, so the second finds it sent and sends nothing.
    defineCommand(`notification.${channel}.send`, { schema: sendSchema, key: (data) => data.id }),
  ]),
) as Record<Channel, CommandContract<typeof sendSchema>>

/** Published when an in-app notification lands in a user's inbox: route it to the user through the gateway. */
export const InAppNotificationCreated = defineEvent('notification.in_app.created', {
  schema: z.object({
    id: z.string(),
    user: z.string(),
    category: z.string(),
    subject: z.string().optional(),
    body: z.string(),
    createdAt: z.number(),
  }),
})

/** Sends a digest when its window ends: delayed until then by the transport, so it survives restarts. */
export const DigestFlush = defineCommand('notification.digest.flush', {
  schema: z.object({ key: z.string().min(1) }),
  key: (data) => data.key,
})
/** The group that sends digests. */
export const digestGroup = 'notifications-digest'

/** The group that handles a channel's sends; its rate limit is the provider's. */
export const channelGroup = (channel: Channel) => `notifications-${channel}`
/** The group that turns business events into notifications by the rules. */
export const rulesGroup = 'notifications-rules'

/** Whom to notify, and how to reach them on the channel. */
export interface Recipient {
  readonly user: string
  /** Email address, phone number or device token; omit for in-app (the user is the address). */
  readonly to?: string
  /** Default: the service's fallback locale. */
  readonly locale?: string
  /** Template data; merged over the request's shared data. */
  readonly data?: Readonly<Record<string, unknown>>
}

export interface SendRequest extends Recipient {
  readonly channel: Channel
  readonly template: string
  /** What preferences opt out of. Default `general`. */
  readonly category?: string
  /** Give one to make the send idempotent: a second send with this id returns the first one's record. */
  readonly id?: string
}

export interface BatchRequest {
  readonly channel: Channel
  readonly template: string
  readonly category?: string
  /** Data every recipient's template gets (each recipient's own `data` wins). */
  readonly data?: Readonly<Record<string, unknown>>
  readonly recipients: readonly Recipient[]
  /** Give one to make the batch resumable: recipients already accepted under it are not sent twice. */
  readonly batch?: string
}

export interface BatchProgress {
  readonly batch: string
  readonly done: number
  readonly total: number
}

export type RecipientResult =
  | { readonly user: string; readonly accepted: true; readonly id: string }
  | { readonly user: string; readonly accepted: false; readonly error: string }

export interface BatchReport {
  readonly batch: string
  readonly accepted: number
  readonly rejected: number
  /** One per recipient, in the order given. Accepted ones are delivered (or fail) on their own: see `batchStatus`. */
  readonly results: readonly RecipientResult[]
}

/** Binds an event to a template on a channel. */
export interface Rule<C extends EventContract> {
  /** Unique per service: part of every notification id the rule makes, so keep it stable. */
  readonly name: string
  readonly channel: Channel
  readonly template: string
  /** Default: the rule's name. */
  readonly category?: string
  /**
   * The group (queue) whose handler applies the rule; default `notifications-rules`. Rules of one event in one
   * group share a handler. Give the queue names a system already uses (`notification-service.user-created`).
   */
  readonly group?: string
  /**
   * Collect each user's events over a window into one notification (Novu's digest) instead of one per event. The
   * template gets `{ items, count, windowStart, windowEnd }`, `items` being each event's data (or the recipient's
   * `data`). Windows are aligned to the epoch (a 1-hour window runs from one full hour to the next); an event that
   * comes after its window was sent goes to the next one.
   */
  readonly digest?: { readonly windowMs: number }
  /** Who hears of this event: none, one or many. The message's data is each recipient's template data unless given. */
  readonly recipients: (
    message: Message<DataOf<C>>,
  ) => Recipient | readonly Recipient[] | undefined | Promise<Recipient | readonly Recipient[] | undefined>
}

export interface NotificationsOptions {
  /** Register before `bus.start()`: the service adds a group per channel and one for its rules. */
  readonly bus: Bus
  readonly store: NotificationStore
  /** At most one per channel. In-app needs none. */
  readonly providers?: readonly Provider[]
  /** Default `en`. */
  readonly fallbackLocale?: string
  /** Durable redelivery of failed sends. Default 5 attempts, backoff from 1 s. */
  readonly retry?: RetryPolicyInput
  /** Options for the channel groups (the provider's `maxPerSecond` is added). */
  readonly consumer?: ConsumerOptions
  /** Categories preferences cannot turn off (password resets, security alerts). Default `['security']`. */
  readonly mandatoryCategories?: readonly string[]
  readonly now?: () => number
}

export interface Notifications {
  readonly templates: Templates
  /** Stores a pending record and sends it to the channel's worker. Resolves with the record once accepted. */
  send(request: SendRequest): Promise<NotificationRecord>
  /**
   * Sends one template to many recipients. A recipient that cannot be accepted (no address, invalid data) is
   * reported and skipped; the rest go on. Delivery happens afterwards, each on its own; see `batchStatus`.
   */
  sendBatch(request: BatchRequest, onProgress?: (progress: BatchProgress) => void): Promise<BatchReport>
  batchStatus(batch: string): Promise<Record<NotificationStatus, number>>
  /** Registers a rule: call before `bus.start()`. */
  rule<C extends EventContract>(contract: C, rule: Rule<C>): Notifications
  get(id: string): Promise<NotificationRecord | undefined>
  query(query?: NotificationQuery): Promise<NotificationRecord[]>
  readonly inbox: {
    /** The user's in-app notifications, newest first (`sent` ones are unread). */
    list(user: string, options?: { readonly limit?: number; readonly before?: number }): Promise<NotificationRecord[]>
    markRead(user: string, ids: readonly string[]): Promise<number>
    markAllRead(user: string): Promise<number>
    unreadCount(user: string): Promise<number>
  }
  readonly preferences: {
    /** `category: '*'` sets the whole channel; a specific category wins over it. */
    set(preference: Preference): Promise<void>
    of(user: string): Promise<Preference[]>
    allows(user: string, channel: Channel, category: string): Promise<boolean>
  }
}

const defaultCategory = 'general'
const batchChunk = 200

/** The notification service on a bus: every send is a command with Herald's failure model. */
export function createNotifications(options: NotificationsOptions): Notifications {
  const { bus, store } = options
  const now = options.now ?? Date.now
  const fallbackLocale = options.fallbackLocale ?? 'en'
  const retry = resolveRetryPolicy(options.retry)
  const mandatory = new Set(options.mandatoryCategories ?? ['security'])
  const templates = createTemplates({ store: store.templates, fallbackLocale, now })
  const providers = new Map<Channel, Provider>()
  for (const provider of options.providers ?? []) {
    if (providers.has(provider.channel))
      throw new ConfigurationError('providers', `two providers for ${provider.channel}: give one per channel`)
    providers.set(provider.channel, provider)
  }

  async function allows(user: string, channel: Channel, category: string): Promise<boolean> {
    if (mandatory.has(category)) return true
    const prefs = await store.preferences(user)
    const exact = prefs.find((p) => p.channel === channel && p.category === category)
    if (exact !== undefined) return exact.enabled
    return prefs.find((p) => p.channel === channel && p.category === '*')?.enabled ?? true
  }

  async function deliver(message: Message<SendCommandData>, context: HandlerContext, channel: Channel) {
    const request = message.data
    // The record is normally there already; a command sent by another path (a redrive from an older store) makes it.
    const record =
      (await store.get(request.id)) ??
      (
        await store.create(
          {
            id: request.id,
            user: request.user,
            channel,
            to: request.to,
            category: request.category,
            template: request.template,
            locale: request.locale,
            data: request.data,
            rule: request.rule,
            batch: request.batch,
          },
          now(),
        )
      ).record
    if (isFinal(record.status)) return // delivered before: a redelivery sends nothing
    if (!(await allows(request.user, channel, request.category))) {
      await store.settle(request.id, context.attempt, { kind: 'suppressed' }, now())
      return
    }
    try {
      const rendered = await templates.render(request.template, channel, request.locale, request.data).catch((err) => {
        throw err instanceof TemplateError ? new PermanentError(err.message, { cause: err }) : err
      })
      let providerId: string | undefined
      if (channel === 'in_app') {
        // Live delivery first, then the inbox: a crash between them repeats the live event (clients dedupe by id),
        // never loses the inbox entry.
        await context.publish(InAppNotificationCreated, {
          id: request.id,
          user: request.user,
          category: request.category,
          ...(rendered.subject === undefined ? {} : { subject: rendered.subject }),
          body: rendered.body,
          createdAt: record.createdAt,
        })
      } else {
        const provider = providers.get(channel)
        if (provider === undefined) throw new PermanentError(`no provider for ${channel}: configure one`)
        const result = await provider.send(
          {
            id: request.id,
            user: request.user,
            channel,
            to: request.to,
            subject: rendered.subject,
            body: rendered.body,
            format: rendered.format,
            category: request.category,
          },
          context.signal,
        )
        providerId = result.providerId
      }
      const outcome = { kind: 'sent', providerId, subject: rendered.subject, body: rendered.body } as const
      await store.settle(request.id, context.attempt, outcome, now())
    } catch (err) {
      const last = err instanceof PermanentError || context.attempt >= retry.maxAttempts
      const error = toErrorInfo(err)
      await store.settle(request.id, context.attempt, { kind: last ? 'failed' : 'retrying', error }, now())
      throw err
    }
  }

  for (const channel of channels) {
    const provider = providers.get(channel)
    const maxPerSecond = provider?.maxPerSecond ?? options.consumer?.maxPerSecond
    bus
      .group(channelGroup(channel), {
        ...options.consumer,
        retry,
        ...(maxPerSecond === undefined ? {} : { maxPerSecond }),
      })
      .on(sendCommands[channel], (message, context) => deliver(message, context, channel))
  }

  function toCommand(
    request: SendRequest & { readonly rule?: string; readonly batch?: string },
    id: string,
  ): SendCommandData {
    const to = request.to ?? (request.channel === 'in_app' ? request.user : undefined)
    if (to === undefined || to === '')
      throw new PermanentError(`no address for user "${request.user}" on ${request.channel}`)
    return {
      id,
      user: request.user,
      to,
      category: request.category ?? defaultCategory,
      template: request.template,
      locale: request.locale ?? fallbackLocale,
      data: { ...request.data },
      ...(request.rule === undefined ? {} : { rule: request.rule }),
      ...(request.batch === undefined ? {} : { batch: request.batch }),
    }
  }

  /** Stores the record and sends its command; a record that already left `pending` is not sent again. */
  async function accept(
    command: SendCommandData,
    channel: Channel,
    sender: Pick<HandlerContext, 'send'> = bus,
  ): Promise<NotificationRecord> {
    if (!channels.includes(channel)) throw new PermanentError(`unknown channel "${channel}"`)
    const { record, created } = await store.create(
      { ...command, channel, rule: command.rule, batch: command.batch },
      now(),
    )
    if (created || record.status === 'pending') await sender.send(sendCommands[channel], command, { id: command.id })
    return record
  }

  const rules = new Map<string, { contract: EventContract; rules: Rule<EventContract>[] }>()
  const ruleNames = new Map<string, Rule<EventContract>>()

  bus.group(digestGroup, options.consumer).on(DigestFlush, async (message, context) => {
    const digest = await store.closeDigest(message.data.key)
    if (digest === undefined) throw new PermanentError(`no digest "${message.data.key}"`)
    const rule = ruleNames.get(digest.rule)
    if (rule === undefined) throw new PermanentError(`digest "${digest.key}": no rule "${digest.rule}" is registered`)
    const command = toCommand(
      {
        user: digest.user,
        to: digest.to,
        locale: digest.locale,
        channel: rule.channel,
        template: rule.template,
        category: rule.category ?? rule.name,
        data: {
          items: digest.items,
          count: digest.items.length,
          windowStart: digest.windowStart,
          windowEnd: digest.windowEnd,
        },
        rule: rule.name,
      },
      `digest:${digest.key}:${rule.channel}`,
    )
    await accept(command, rule.channel, context)
  })

  const service: Notifications = {
    templates,

    async send(request) {
      return accept(toCommand(request, request.id ?? crypto.randomUUID()), request.channel)
    },

    async sendBatch(request, onProgress) {
      const batch = request.batch ?? crypto.randomUUID()
      const total = request.recipients.length
      const results: RecipientResult[] = new Array(total)
      let done = 0
      for (let start = 0; start < total; start += batchChunk) {
        const chunk = request.recipients.slice(start, start + batchChunk)
        const commands: { index: number; command: SendCommandData }[] = []
        chunk.forEach((recipient, offset) => {
          const index = start + offset
          try {
            const command = toCommand(
              {
                ...recipient,
                channel: request.channel,
                template: request.template,
                ...(request.category === undefined ? {} : { category: request.category }),
                data: { ...request.data, ...recipient.data },
                batch,
              },
              `${batch}:${index}`,
            )
            commands.push({ index, command })
          } catch (err) {
            results[index] = { user: String(recipient.user), accepted: false, error: (err as Error).message }
          }
        })
        // The chunk's records in one transaction, then their commands; a record already past pending (a batch
        // sent again under its id) is not sent again.
        const stored = await store.createMany(
          commands.map(({ command }) => ({ ...command, channel: request.channel, rule: undefined, batch })),
          now(),
        )
        await Promise.all(
          commands.map(async ({ index, command }, n) => {
            const { record, created } = stored[n] as { record: NotificationRecord; created: boolean }
            try {
              if (created || record.status === 'pending')
                await bus.send(sendCommands[request.channel], command, { id: command.id })
              results[index] = { user: command.user, accepted: true, id: command.id }
            } catch (err) {
              results[index] = { user: command.user, accepted: false, error: (err as Error).message }
            }
          }),
        )
        done += chunk.length
        onProgress?.({ batch, done, total })
      }
      const accepted = results.filter((r) => r.accepted).length
      return { batch, accepted, rejected: total - accepted, results }
    },

    batchStatus: (batch) => store.counts({ batch }),

    rule(contract, rule) {
      if (ruleNames.has(rule.name)) throw new ConfigurationError('rule.name', `"${rule.name}" is registered twice`)
      if (rule.digest !== undefined && !(Number.isInteger(rule.digest.windowMs) && rule.digest.windowMs >= 1_000))
        throw new ConfigurationError('rule.digest.windowMs', `of "${rule.name}" must be an integer >= 1000`)
      ruleNames.set(rule.name, rule as Rule<EventContract>)
      const group = rule.group ?? rulesGroup
      const existing = rules.get(`${group}\u0000${contract.type}`)
      if (existing !== undefined) {
        existing.rules.push(rule as Rule<EventContract>)
        return service
      }
      const entry = { contract, rules: [rule as Rule<EventContract>] }
      rules.set(`${group}\u0000${contract.type}`, entry)
      bus.group(group, options.consumer).on(contract, async (message, context) => {
        for (const each of entry.rules) {
          const found = await each.recipients(message)
          const recipients = found === undefined ? [] : Array.isArray(found) ? found : [found as Recipient]
          for (const recipient of recipients) {
            if (each.digest !== undefined) {
              const command = toCommand(
                { ...recipient, channel: each.channel, template: each.template, rule: each.name },
                'digest',
              )
              const { key, windowEnd } = await store.addToDigest(
                {
                  rule: each.name,
                  user: recipient.user,
                  eventId: message.id,
                  to: command.to,
                  locale: command.locale,
                  data: recipient.data ?? (message.data as Record<string, unknown>),
                },
                each.digest.windowMs,
                now(),
              )
              // Sent with every event, not only the first: a crash after the first add must not leave a window
              // nobody flushes. The flush is idempotent, so the extra ones cost a lookup each.
              await context.send(DigestFlush, { key }, { id: `flush:${key}`, deliverAt: windowEnd })
              continue
            }
            // One notification per rule, event, user and channel, however often the event is delivered.
            const id = `${each.name}:${message.id}:${recipient.user}:${each.channel}`
            const command = toCommand(
              {
                ...recipient,
                channel: each.channel,
                template: each.template,
                category: each.category ?? each.name,
                data: recipient.data ?? (message.data as Record<string, unknown>),
                rule: each.name,
              },
              id,
            )
            await accept(command, each.channel, context)
          }
        }
      })
      return service
    },

    get: (id) => store.get(id),
    query: (query) => store.query(query),

    inbox: {
      list: (user, page = {}) => store.query({ user, channel: 'in_app', ...page }),
      markRead: (user, ids) => store.markRead(user, ids, now()),
      markAllRead: (user) => store.markRead(user, undefined, now()),
      unreadCount: (user) => store.unreadCount(user),
    },

    preferences: {
      async set(preference) {
        if (!channels.includes(preference.channel))
          throw new ConfigurationError('channel', `"${preference.channel}" is not one of ${channels.join(', ')}`)
        await store.setPreference(preference)
      },
      of: (user) => store.preferences(user),
      allows,
    },
  }
  return service
}
