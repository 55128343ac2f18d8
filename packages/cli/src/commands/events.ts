import {
  ConfigurationError,
  type EventFilter,
  type EventStore,
  replayEvents,
  type StoredEvent,
  type Transport,
} from '@herald/core'
import type { Command } from 'commander'
import { formatTable, type Output } from '../output.js'
import { createProgress } from '../progress.js'
import { parseTime } from './dlq.js'

type WithEventStore = <T>(run: (store: EventStore) => Promise<T>) => Promise<T>
type WithTransport = <T>(run: (transport: Transport) => Promise<T>) => Promise<T>

interface FilterFlags {
  readonly type?: string[]
  readonly source?: string
  readonly correlation?: string
  readonly stream?: string
  readonly since?: string
  readonly until?: string
}

function collect(value: string, previous: string[] = []): string[] {
  return [...previous, value]
}

function positiveInt(field: string) {
  return (value: string): number => {
    const n = Number(value)
    if (!(Number.isInteger(n) && n >= 0)) throw new ConfigurationError(field, `"${value}" is not a whole number`)
    return n
  }
}

function toFilter(flags: FilterFlags): EventFilter {
  const filter: { -readonly [K in keyof EventFilter]: EventFilter[K] } = {}
  if (flags.type !== undefined) filter.types = flags.type
  if (flags.source !== undefined) filter.source = flags.source
  if (flags.correlation !== undefined) filter.correlationId = flags.correlation
  if (flags.stream !== undefined) filter.stream = flags.stream
  const since = parseTime('since', flags.since)
  const until = parseTime('until', flags.until)
  if (since !== undefined) filter.since = since
  if (until !== undefined) filter.until = until
  return filter
}

function withFilterOptions(command: Command): Command {
  return command
    .option('--type <type>', 'event type, repeatable', collect)
    .option('--source <service>', 'publishing service')
    .option('--correlation <id>', 'correlation id')
    .option('--stream <stream>', 'stream name')
    .option('--since <time>', 'event time from (inclusive), e.g. 2026-11-21T10:00:00Z')
    .option('--until <time>', 'event time until (exclusive)')
}

function summary(event: StoredEvent) {
  return {
    position: event.position,
    time: new Date(event.time).toISOString(),
    type: event.type,
    source: event.source,
    id: event.envelope.id,
    correlationId: event.correlationId ?? null,
    stream: event.stream ?? null,
    streamVersion: event.streamVersion ?? null,
    topic: event.topic,
    data: new TextDecoder().decode(event.envelope.body),
  }
}

/** `[#####.....] 1200/5000 24%` */
export function registerEventCommands(
  program: Command,
  withEventStore: WithEventStore,
  withTransport: WithTransport,
  output: Output,
): void {
  const events = program.command('events').description('query the event store')
  withFilterOptions(events.command('query'))
    .description('list stored events matching the filter, oldest first')
    .option('--after <position>', 'only events after this position (the cursor printed last)', positiveInt('after'))
    .option('--limit <n>', 'events per page (default 50)', positiveInt('limit'))
    .option('--json', 'one JSON object per line')
    .action((flags: FilterFlags & { after?: number; limit?: number; json?: boolean }) =>
      withEventStore(async (store) => {
        const page = await store.queryEvents({
          ...toFilter(flags),
          limit: flags.limit ?? 50,
          ...(flags.after === undefined ? {} : { after: flags.after }),
        })
        if (flags.json) for (const e of page.items) output.out(JSON.stringify(summary(e)))
        else {
          const rows = page.items.map((e) => {
            const s = summary(e)
            return [String(s.position), s.time, s.type, s.source, s.id, s.correlationId ?? '']
          })
          for (const line of formatTable(['POSITION', 'TIME', 'TYPE', 'SOURCE', 'ID', 'CORRELATION'], rows))
            output.out(line)
          if (page.nextCursor !== undefined) output.err(`more: --after ${page.nextCursor}`)
        }
      }),
    )

  withFilterOptions(program.command('replay'))
    .description('publish stored events again, same ids and topics, to every group bound to them')
    .option('--all', 'replay every stored event (required when no filter is given)')
    .option('--dry-run', 'count what would be replayed, publish nothing')
    .option('--json', 'print {"replayed": n} (or {"wouldReplay": n})')
    .action((flags: FilterFlags & { all?: boolean; dryRun?: boolean; json?: boolean }) =>
      withEventStore((store) =>
        withTransport(async (transport) => {
          const filter = toFilter(flags)
          if (Object.keys(filter).length === 0 && flags.all !== true) {
            throw new ConfigurationError(
              'selection',
              'give a filter (--type, --source, --correlation, --stream, --since, --until) or --all',
            )
          }
          const total = await countMatching(store, filter)
          let published = 0
          if (!flags.dryRun) {
            const progress = createProgress(output, 'replay', total)
            await replayEvents(
              store,
              async (event) => {
                await transport.publish(event.topic, [event.envelope])
                published++
              },
              { filter, onProgress: (p) => progress.update(p.handled) },
            )
            progress.finish(published)
          }
          if (flags.json) output.out(JSON.stringify(flags.dryRun ? { wouldReplay: total } : { replayed: published }))
          else output.out(flags.dryRun ? `would replay ${total} events` : `replayed ${published} events`)
        }),
      ),
    )
}

async function countMatching(store: EventStore, filter: EventFilter): Promise<number> {
  let count = 0
  let after: number | undefined
  do {
    const page = await store.queryEvents({ ...filter, limit: 10_000, ...(after === undefined ? {} : { after }) })
    count += page.items.length
    after = page.nextCursor
  } while (after !== undefined)
  return count
}
