import {
  ConfigurationError,
  HeaderNames,
  isScheduler,
  isTopologyAdmin,
  type Subscription,
  type Transport,
  uuidV7,
} from '@herald/core'
import type { Command } from 'commander'
import type { Output } from '../output.js'

type WithTransport = <T>(run: (transport: Transport) => Promise<T>) => Promise<T>

function parseDelay(value: string): number {
  const ms = Number(value)
  if (!Number.isFinite(ms) || ms < 0) throw new ConfigurationError('delay-ms', `"${value}" must be a number of ms >= 0`)
  return ms
}

function parseHeader(value: string, previous: Record<string, string>): Record<string, string> {
  const eq = value.indexOf('=')
  if (eq <= 0) throw new ConfigurationError('header', `"${value}" must look like name=value`)
  return { ...previous, [value.slice(0, eq)]: value.slice(eq + 1) }
}

export function registerPublishAndTail(
  program: Command,
  withTransport: WithTransport,
  output: Output,
  untilInterrupted: () => Promise<void>,
): void {
  program
    .command('publish <topic> <json>')
    .description('publish one JSON message (type defaults to the topic)')
    .option('--type <type>', 'CloudEvents type header')
    .option('--source <source>', 'CloudEvents source header', 'herald-cli')
    .option('--header <name=value>', 'extra header, repeatable', parseHeader, {})
    .option('--command', 'fail unless a group is bound to the topic')
    .option(
      '--delay-ms <ms>',
      'deliver no earlier than this many ms from now (durable where the transport is)',
      parseDelay,
    )
    .option('--json', 'print {"id": …}')
    .action(
      (
        topic: string,
        json: string,
        flags: {
          type?: string
          source: string
          header: Record<string, string>
          command?: boolean
          delayMs?: number
          json?: boolean
        },
      ) =>
        withTransport(async (transport) => {
          try {
            JSON.parse(json)
          } catch (err) {
            throw new ConfigurationError('json', `is not valid JSON: ${(err as Error).message}`)
          }
          const id = uuidV7()
          const headers = {
            ...flags.header,
            [HeaderNames.specVersion]: '1.0',
            [HeaderNames.type]: flags.type ?? topic,
            [HeaderNames.source]: flags.source,
            [HeaderNames.time]: new Date().toISOString(),
            [HeaderNames.dataContentType]: 'application/json',
            [HeaderNames.correlationId]: flags.header[HeaderNames.correlationId] ?? id,
          }
          const envelopes = [{ id, headers, body: new TextEncoder().encode(json) }]
          const options = { mandatory: flags.command === true }
          if (flags.delayMs !== undefined && flags.delayMs > 0) {
            if (!isScheduler(transport))
              throw new ConfigurationError('delay-ms', `${transport.name} cannot hold delayed messages`)
            const deliverAt = Date.now() + flags.delayMs
            await transport.schedule(topic, envelopes, deliverAt, options)
            const at = new Date(deliverAt).toISOString()
            output.out(flags.json ? JSON.stringify({ id, deliverAt: at }) : `scheduled ${id} to ${topic} for ${at}`)
            return
          }
          await transport.publish(topic, envelopes, options)
          output.out(flags.json ? JSON.stringify({ id }) : `published ${id} to ${topic}`)
        }),
    )

  program
    .command('tail <patterns...>')
    .description('print messages published from now on to topics matching the patterns, until Ctrl-C')
    .option('--json', 'one JSON object per line')
    .action((patterns: string[], flags: { json?: boolean }) =>
      withTransport(async (transport) => {
        // A private group sees a copy of everything, without taking work from the real consumers.
        const group = `herald-tail-${uuidV7()}`
        const decoder = new TextDecoder()
        const subscription: Subscription = await transport.subscribe(
          { group, patterns, maxInFlight: 1 },
          async (envelope, delivery) => {
            const body = decoder.decode(envelope.body)
            const line = {
              id: envelope.id,
              topic: delivery.topic,
              type: envelope.headers[HeaderNames.type],
              correlationId: envelope.headers[HeaderNames.correlationId],
              body,
            }
            output.out(
              flags.json
                ? JSON.stringify(line)
                : `${new Date().toISOString()} ${line.topic} ${line.type ?? ''} ${line.id} ${body}`,
            )
          },
        )
        output.err(`tailing ${patterns.join(', ')} (Ctrl-C to stop)`)
        await untilInterrupted()
        await subscription.close()
        if (isTopologyAdmin(transport)) await transport.deleteGroup(group)
      }),
    )
}
