import {
  ConfigurationError,
  type DeadLetter,
  type DeadLetterFilter,
  type DeadLetterReason,
  type DeadLetterStore,
  isDeadLetterStore,
  type Transport,
} from '@herald/core'
import type { Command } from 'commander'
import { formatTable, type Output } from '../output.js'
import { createProgress } from '../progress.js'

export interface FilterFlags {
  readonly group?: string
  readonly topic?: string
  readonly reason?: string
  readonly since?: string
  readonly until?: string
  readonly all?: boolean
}

function store(transport: Transport): DeadLetterStore {
  if (!isDeadLetterStore(transport))
    throw new ConfigurationError('transport', `${transport.name} keeps no dead letters`)
  return transport
}

export function parseTime(field: string, value: string | undefined): number | undefined {
  if (value === undefined) return undefined
  const ms = Date.parse(value)
  if (Number.isNaN(ms)) throw new ConfigurationError(field, `"${value}" is not a date (try 2026-11-21T10:00:00Z)`)
  return ms
}

/** Builds a filter; refuses an empty one unless `--all` says that everything is meant. */
export function toFilter(ids: readonly string[], flags: FilterFlags, requireSelection: boolean): DeadLetterFilter {
  const filter: { -readonly [K in keyof DeadLetterFilter]: DeadLetterFilter[K] } = {}
  if (ids.length > 0) filter.ids = ids
  if (flags.group !== undefined) filter.group = flags.group
  if (flags.topic !== undefined) filter.topic = flags.topic
  if (flags.reason !== undefined) filter.reason = flags.reason as DeadLetterReason
  const since = parseTime('since', flags.since)
  const until = parseTime('until', flags.until)
  if (since !== undefined) filter.since = since
  if (until !== undefined) filter.until = until
  if (requireSelection && Object.keys(filter).length === 0 && flags.all !== true) {
    throw new ConfigurationError(
      'selection',
      'name message ids, a filter (--group, --topic, --reason, --since, --until) or --all',
    )
  }
  return filter
}

function summary(letter: DeadLetter) {
  return {
    id: letter.envelope.id,
    group: letter.group,
    topic: letter.topic,
    type: letter.envelope.headers.type ?? '',
    reason: letter.reason,
    attempts: letter.attempts,
    error: letter.error?.message ?? '',
    deadLetteredAt: new Date(letter.deadLetteredAt).toISOString(),
  }
}

function details(letter: DeadLetter) {
  const text = new TextDecoder().decode(letter.envelope.body)
  let payload: unknown = text
  try {
    payload = JSON.parse(text)
  } catch {
    // Not JSON: show the text as it is (it is why many messages end up here).
  }
  return {
    ...summary(letter),
    headers: letter.envelope.headers,
    payload,
    error: letter.error,
    firstFailedAt: new Date(letter.firstFailedAt).toISOString(),
    lastFailedAt: new Date(letter.lastFailedAt).toISOString(),
  }
}

type WithTransport = <T>(run: (transport: Transport) => Promise<T>) => Promise<T>

const batchSize = 1_000

/**
 * Redrives or purges what `filter` selects a page at a time, each page by (group, ids), with progress on stderr.
 * Counts the selection first and stops there: dead letters that arrive meanwhile (a redriven message failing
 * again) are left for the next run, so the command always ends.
 */
async function inBatches(
  dead: DeadLetterStore,
  filter: DeadLetterFilter,
  label: string,
  output: Output,
  act: (selection: DeadLetterFilter) => Promise<number>,
): Promise<number> {
  let total = 0
  // A dead letter is one (group, id): ids alone that name copies in several groups must say which group.
  const groupsOf = new Map<string, Set<string>>()
  // Counted in large pages: on RabbitMQ every listing browses the whole dead-letter queue.
  for (let cursor: string | undefined, first = true; first || cursor !== undefined; first = false) {
    const page = await dead.listDeadLetters({ ...filter, limit: 10 * batchSize, ...(cursor ? { cursor } : {}) })
    total += page.items.length
    cursor = page.nextCursor
    if (filter.ids !== undefined && filter.group === undefined)
      for (const l of page.items) groupsOf.set(l.envelope.id, (groupsOf.get(l.envelope.id) ?? new Set()).add(l.group))
  }
  for (const [id, groups] of groupsOf)
    if (groups.size > 1)
      throw new ConfigurationError(
        'group',
        `${id} was dead-lettered by ${[...groups].sort().join(', ')}: name one with --group`,
      )
  // A selection with no id in two groups, small enough to show no progress, is one call.
  if (total <= batchSize) return total === 0 ? 0 : act(filter)
  const progress = createProgress(output, label, total)
  let done = 0
  let seen = 0
  for (let cursor: string | undefined, first = true; (first || cursor !== undefined) && seen < total; first = false) {
    const page = await dead.listDeadLetters({ ...filter, limit: batchSize, ...(cursor ? { cursor } : {}) })
    cursor = page.nextCursor
    const items = page.items.slice(0, total - seen)
    seen += items.length
    const byGroup = new Map<string, string[]>()
    for (const letter of items) {
      const ids = byGroup.get(letter.group)
      if (ids === undefined) byGroup.set(letter.group, [letter.envelope.id])
      else ids.push(letter.envelope.id)
    }
    for (const [group, ids] of byGroup) done += await act({ ...filter, group, ids })
    progress.update(done)
  }
  progress.finish(done)
  return done
}

export function registerDlqCommands(program: Command, withTransport: WithTransport, output: Output): void {
  const dlq = program.command('dlq').description('inspect and act on dead letters')
  const filterOptions = (command: Command) =>
    command
      .option('--group <group>', 'only this group')
      .option('--topic <topic>', 'only this topic')
      .option('--reason <reason>', 'only this reason (handler_error, decode_error, ...)')
      .option('--since <time>', 'dead-lettered at or after this time')
      .option('--until <time>', 'dead-lettered before this time')

  filterOptions(dlq.command('list').description('list dead letters, newest last'))
    .option('--limit <n>', 'page size', '50')
    .option('--cursor <cursor>', 'continue after a previous page')
    .option('--json', 'one JSON object per line')
    .action((flags: FilterFlags & { limit: string; cursor?: string; json?: boolean }) =>
      withTransport(async (transport) => {
        const query = {
          ...toFilter([], flags, false),
          limit: Number(flags.limit),
          ...(flags.cursor ? { cursor: flags.cursor } : {}),
        }
        const page = await store(transport).listDeadLetters(query)
        if (flags.json) {
          for (const letter of page.items) output.out(JSON.stringify(summary(letter)))
          if (page.nextCursor) output.err(`more: --cursor ${page.nextCursor}`)
          return
        }
        const rows = page.items.map((l) => {
          const s = summary(l)
          return [s.id, s.group, s.type, s.reason, String(s.attempts), s.error.slice(0, 60)]
        })
        for (const line of formatTable(['ID', 'GROUP', 'TYPE', 'REASON', 'ATTEMPTS', 'ERROR'], rows)) output.out(line)
        output.out(page.nextCursor ? `(more: --cursor ${page.nextCursor})` : `(${page.items.length} shown)`)
      }),
    )

  dlq
    .command('show <id>')
    .description('everything known about one dead letter: payload, headers, error, attempts')
    .option('--group <group>', 'when several groups dead-lettered the same message')
    .option('--json', 'compact JSON')
    .action((id: string, flags: { group?: string; json?: boolean }) =>
      withTransport(async (transport) => {
        const letter = await store(transport).getDeadLetter(id, flags.group)
        if (!letter) throw new ConfigurationError('id', `no dead letter with id ${id}`)
        output.out(JSON.stringify(details(letter), null, flags.json ? undefined : 2))
      }),
    )

  filterOptions(dlq.command('redrive [ids...]').description('send dead letters back to their group, attempts reset'))
    .option('--all', 'every dead letter')
    .option('--json', 'print {"redriven": n}')
    .action((ids: string[], flags: FilterFlags & { json?: boolean }) =>
      withTransport(async (transport) => {
        const dead = store(transport)
        const count = await inBatches(dead, toFilter(ids, flags, true), 'redrive', output, (selection) =>
          dead.redriveDeadLetters(selection),
        )
        output.out(flags.json ? JSON.stringify({ redriven: count }) : `redriven ${count} dead letter(s)`)
      }),
    )

  filterOptions(dlq.command('purge [ids...]').description('delete dead letters for good'))
    .option('--all', 'every dead letter')
    .option('--json', 'print {"purged": n}')
    .action((ids: string[], flags: FilterFlags & { json?: boolean }) =>
      withTransport(async (transport) => {
        const dead = store(transport)
        const count = await inBatches(dead, toFilter(ids, flags, true), 'purge', output, (selection) =>
          dead.purgeDeadLetters(selection),
        )
        output.out(flags.json ? JSON.stringify({ purged: count }) : `purged ${count} dead letter(s)`)
      }),
    )
}
