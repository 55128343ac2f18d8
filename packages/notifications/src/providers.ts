import { PermanentError } from '@herald/core'
import nodemailer from 'nodemailer'
import type SMTPTransport from 'nodemailer/lib/smtp-transport/index.js'
import type { Channel } from './templates.js'

/** One rendered notification, handed to the provider of its channel. */
export interface Delivery {
  /** The notification's id: providers that take an idempotency key get this one. */
  readonly id: string
  readonly user: string
  readonly channel: Channel
  readonly to: string
  readonly subject: string | undefined
  readonly body: string
  readonly format: 'html' | 'text'
  readonly category: string
}

/**
 * Sends one channel's notifications. Throw {@link PermanentError} when retrying cannot help (the address is
 * invalid, the vendor refused the request): the notification is marked failed and dead-lettered with the reason.
 * Throw anything else (a 5xx, a timeout, a dropped connection) to have it retried with backoff.
 */
export interface Provider {
  readonly name: string
  readonly channel: Exclude<Channel, 'in_app'>
  /** Sends per second at most, across every consumer of the channel's group (the vendor's rate limit). */
  readonly maxPerSecond?: number
  send(delivery: Delivery, signal: AbortSignal): Promise<{ readonly providerId?: string }>
  close?(): Promise<void>
}

/** A provider was unreachable or answered with a transient failure: the notification is retried. */
export class ProviderUnavailableError extends Error {
  constructor(
    message: string,
    readonly status?: number,
  ) {
    super(message)
    this.name = 'ProviderUnavailableError'
  }
}

const defaultTimeoutMs = 10_000
const maxErrorBodyChars = 300

/** 408 and 429 are the vendor asking to try later; every other 4xx is a request that will fail again. */
function isTransientStatus(status: number): boolean {
  return status >= 500 || status === 408 || status === 429
}

/** Calls an HTTP provider and classifies its failure. Error messages carry the status and the vendor's reply, never credentials. */
async function callHttp(
  provider: string,
  url: string,
  init: RequestInit,
  signal: AbortSignal,
  timeoutMs: number,
): Promise<unknown> {
  let response: Response
  try {
    response = await fetch(url, { ...init, signal: AbortSignal.any([signal, AbortSignal.timeout(timeoutMs)]) })
  } catch (err) {
    const reason = (err as Error).name === 'TimeoutError' ? `no answer in ${timeoutMs} ms` : (err as Error).message
    throw new ProviderUnavailableError(`${provider}: ${reason}`)
  }
  const text = await response.text()
  if (response.ok) {
    try {
      return text === '' ? {} : JSON.parse(text)
    } catch {
      return {}
    }
  }
  const message = `${provider} answered ${response.status}: ${text.slice(0, maxErrorBodyChars)}`
  if (isTransientStatus(response.status)) throw new ProviderUnavailableError(message, response.status)
  throw new PermanentError(message)
}

const stringField = (value: unknown, field: string): string | undefined => {
  const found = (value as Record<string, unknown> | null)?.[field]
  return typeof found === 'string' ? found : undefined
}

export interface WebhookProviderOptions {
  readonly channel: Exclude<Channel, 'in_app'>
  readonly url: string
  /** Sent with every request, e.g. `{ authorization: 'Bearer …' }`. */
  readonly headers?: Readonly<Record<string, string>>
  readonly name?: string
  readonly maxPerSecond?: number
  readonly timeoutMs?: number
}

/**
 * Any HTTP endpoint: POSTs `{ id, user, channel, to, subject, body, format, category }` as JSON with an
 * `Idempotency-Key` header (the notification id). A JSON reply's `id` becomes the provider id.
 */
export function webhookProvider(options: WebhookProviderOptions): Provider {
  const name = options.name ?? `webhook-${options.channel}`
  return {
    name,
    channel: options.channel,
    ...(options.maxPerSecond === undefined ? {} : { maxPerSecond: options.maxPerSecond }),
    async send(delivery, signal) {
      const reply = await callHttp(
        name,
        options.url,
        {
          method: 'POST',
          headers: { 'content-type': 'application/json', 'idempotency-key': delivery.id, ...options.headers },
          body: JSON.stringify(delivery),
        },
        signal,
        options.timeoutMs ?? defaultTimeoutMs,
      )
      const providerId = stringField(reply, 'id')
      return providerId === undefined ? {} : { providerId }
    },
  }
}

export interface TwilioSmsOptions {
  readonly accountSid: string
  readonly authToken: string
  /** The sending number, E.164 (`+15005550006`), or a messaging service sid. */
  readonly from: string
  /** Default `https://api.twilio.com`; a test points it at a local server. */
  readonly baseUrl?: string
  readonly maxPerSecond?: number
  readonly timeoutMs?: number
}

const e164 = /^\+[1-9]\d{6,14}$/

/** SMS through Twilio's Messages API (`POST /2010-04-01/Accounts/{sid}/Messages.json`); the reply's `sid` is the provider id. */
export function twilioSmsProvider(options: TwilioSmsOptions): Provider {
  const base = (options.baseUrl ?? 'https://api.twilio.com').replace(/\/$/, '')
  const url = `${base}/2010-04-01/Accounts/${encodeURIComponent(options.accountSid)}/Messages.json`
  const authorization = `Basic ${Buffer.from(`${options.accountSid}:${options.authToken}`).toString('base64')}`
  return {
    name: 'twilio',
    channel: 'sms',
    maxPerSecond: options.maxPerSecond ?? 1,
    async send(delivery, signal) {
      if (!e164.test(delivery.to)) throw new PermanentError(`twilio: "${delivery.to}" is not an E.164 phone number`)
      const body = new URLSearchParams({ To: delivery.to, From: options.from, Body: delivery.body })
      const reply = await callHttp(
        'twilio',
        url,
        {
          method: 'POST',
          headers: {
            authorization,
            'content-type': 'application/x-www-form-urlencoded',
            'i-twilio-idempotency-token': delivery.id,
          },
          body,
        },
        signal,
        options.timeoutMs ?? defaultTimeoutMs,
      )
      const sid = stringField(reply, 'sid')
      return sid === undefined ? {} : { providerId: sid }
    },
  }
}

export interface FcmPushOptions {
  readonly projectId: string
  /** An OAuth 2 access token for the project, asked for at each send (tokens expire; cache in the function). */
  readonly accessToken: () => Promise<string> | string
  /** Default `https://fcm.googleapis.com`. */
  readonly baseUrl?: string
  readonly maxPerSecond?: number
  readonly timeoutMs?: number
}

/** Push through Firebase Cloud Messaging's HTTP v1 API; `to` is the device's registration token. */
export function fcmPushProvider(options: FcmPushOptions): Provider {
  const base = (options.baseUrl ?? 'https://fcm.googleapis.com').replace(/\/$/, '')
  const url = `${base}/v1/projects/${encodeURIComponent(options.projectId)}/messages:send`
  return {
    name: 'fcm',
    channel: 'push',
    ...(options.maxPerSecond === undefined ? {} : { maxPerSecond: options.maxPerSecond }),
    async send(delivery, signal) {
      const token = await options.accessToken()
      const reply = await callHttp(
        'fcm',
        url,
        {
          method: 'POST',
          headers: { authorization: `Bearer ${token}`, 'content-type': 'application/json' },
          body: JSON.stringify({
            message: {
              token: delivery.to,
              notification: { title: delivery.subject ?? '', body: delivery.body },
              data: { notificationId: delivery.id, category: delivery.category },
            },
          }),
        },
        signal,
        options.timeoutMs ?? defaultTimeoutMs,
      )
      const name = stringField(reply, 'name')
      return name === undefined ? {} : { providerId: name }
    },
  }
}

export interface SmtpProviderOptions {
  /** `smtp://user:pass@host:587`, or nodemailer's SMTP options. */
  readonly smtp: string | SMTPTransport.Options
  /** The sender, e.g. `"Herald" <noreply@example.com>`. */
  readonly from: string
  readonly maxPerSecond?: number
}

/** A bare address (`name@domain`); the server decides whether the mailbox exists. */
const emailAddress = /^[^\s@<>",;]+@[^\s@<>",;]+\.[^\s@<>",;]+$/

interface SmtpFailure {
  readonly code?: string
  readonly responseCode?: number
  readonly response?: string
  readonly message: string
}

/**
 * Email over SMTP with nodemailer. HTML templates are sent as HTML with nodemailer's text alternative; the
 * Message-ID is derived from the notification id, so a resent notification is recognisably the same mail.
 * SMTP 5xx replies and addresses the server rejects are permanent; 4xx replies and connection failures are retried.
 */
export function smtpProvider(options: SmtpProviderOptions): Provider {
  const transport = nodemailer.createTransport(options.smtp as SMTPTransport.Options)
  const domain = /@([^>\s]+)>?\s*$/.exec(options.from)?.[1] ?? 'herald.invalid'
  return {
    name: 'smtp',
    channel: 'email',
    ...(options.maxPerSecond === undefined ? {} : { maxPerSecond: options.maxPerSecond }),
    async send(delivery, signal) {
      if (signal.aborted) throw signal.reason
      if (!emailAddress.test(delivery.to)) throw new PermanentError(`smtp: "${delivery.to}" is not an email address`)
      try {
        const info = await transport.sendMail({
          from: options.from,
          to: delivery.to,
          subject: delivery.subject ?? '',
          messageId: `<${delivery.id}@${domain}>`,
          ...(delivery.format === 'html' ? { html: delivery.body, textEncoding: 'base64' } : { text: delivery.body }),
        })
        if (info.rejected.length > 0) throw new PermanentError(`smtp: the server rejected ${delivery.to}`)
        return { providerId: info.messageId }
      } catch (err) {
        if (err instanceof PermanentError) throw err
        const failure = err as SmtpFailure
        const reply = failure.response ?? failure.message
        if (failure.responseCode !== undefined && failure.responseCode >= 500)
          throw new PermanentError(`smtp: ${reply}`)
        if (failure.code === 'EENVELOPE' && failure.responseCode === undefined)
          throw new PermanentError(`smtp: ${failure.message}`)
        throw new ProviderUnavailableError(`smtp: ${reply}`, failure.responseCode)
      }
    },
    async close() {
      transport.close()
    },
  }
}
