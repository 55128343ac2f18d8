import {
  channels,
  type NotificationRecord,
  type NotificationStatus,
  type NotificationStore,
  notificationStatuses,
} from '@herald/notifications'
import type { Command } from 'commander'
import { formatTable, type Output } from '../output.js'

type WithStore = <T>(run: (store: NotificationStore) => Promise<T>) => Promise<T>

function oneOf<T extends string>(value: string | undefined, allowed: readonly T[], flag: string): T | undefined {
  if (value === undefined) return undefined
  if (!(allowed as readonly string[]).includes(value)) throw new Error(`--${flag} must be one of ${allowed.join(', ')}`)
  return value as T
}

const iso = (ms: number | undefined) => (ms === undefined ? '' : new Date(ms).toISOString())

function toJson(r: NotificationRecord) {
  return { ...r, lastError: r.lastError?.message }
}

/** Notification records where the transport keeps them (the same SQLite file or PostgreSQL schema). */
export function registerNotificationCommands(program: Command, withStore: WithStore, output: Output): void {
  const notifications = program
    .command('notifications')
    .description('notification records, newest first: by user, status, channel or batch')
    .option('-u, --user <user>', 'only this user')
    .option('-s, --status <status>', `only this status (${notificationStatuses.join(', ')})`)
    .option('-c, --channel <channel>', `only this channel (${channels.join(', ')})`)
    .option('-b, --batch <batch>', 'only this batch')
    .option('-n, --limit <n>', 'at most this many (default 50, at most 1000)', '50')
    .option('--json', 'one JSON object per line')
    .action(
      (flags: { user?: string; status?: string; channel?: string; batch?: string; limit: string; json?: boolean }) =>
        withStore(async (store) => {
          const limit = Number(flags.limit)
          if (!Number.isInteger(limit) || limit < 1) throw new Error('--limit must be a whole number >= 1')
          const status = oneOf<NotificationStatus>(flags.status, notificationStatuses, 'status')
          const channel = oneOf(flags.channel, channels, 'channel')
          const records = await store.query({
            limit,
            ...(flags.user === undefined ? {} : { user: flags.user }),
            ...(status === undefined ? {} : { status }),
            ...(channel === undefined ? {} : { channel }),
            ...(flags.batch === undefined ? {} : { batch: flags.batch }),
          })
          if (flags.json) {
            for (const r of records) output.out(JSON.stringify(toJson(r)))
            return
          }
          if (records.length === 0) {
            output.out('no notifications')
            return
          }
          const rows = records.map((r) => [
            r.id,
            r.user,
            r.channel,
            r.status,
            String(r.attempts),
            iso(r.createdAt),
            (r.lastError?.message ?? '').slice(0, 60),
          ])
          for (const line of formatTable(
            ['ID', 'USER', 'CHANNEL', 'STATUS', 'ATTEMPTS', 'CREATED', 'LAST ERROR'],
            rows,
          ))
            output.out(line)
          if (flags.batch !== undefined) {
            const counts = await store.counts({ batch: flags.batch })
            output.out(notificationStatuses.map((s) => `${s} ${counts[s]}`).join(', '))
          }
        }),
    )

  notifications
    .command('show <id>')
    .description('one notification: its rendered subject and body, attempts and last error')
    .option('--json', 'print it as JSON')
    .action((id: string, flags: { json?: boolean }) =>
      withStore(async (store) => {
        const r = await store.get(id)
        if (r === undefined) throw new Error(`no notification ${id}`)
        if (flags.json) {
          output.out(JSON.stringify({ ...r }))
          return
        }
        const lines: [string, string][] = [
          ['id', r.id],
          ['user', r.user],
          ['channel', `${r.channel} → ${r.to}`],
          ['template', `${r.template} (${r.locale})`],
          ['category', r.category],
          ['status', r.status],
          ['attempts', String(r.attempts)],
          ['provider id', r.providerId ?? ''],
          ['rule', r.rule ?? ''],
          ['batch', r.batch ?? ''],
          ['created', iso(r.createdAt)],
          ['sent', iso(r.sentAt)],
          ['read', iso(r.readAt)],
          ['last error', r.lastError === undefined ? '' : `${r.lastError.name}: ${r.lastError.message}`],
          ['subject', r.subject ?? ''],
        ]
        for (const [name, value] of lines) if (value !== '') output.out(`${name.padEnd(12)} ${value}`)
        if (r.body !== undefined) {
          output.out('')
          output.out(r.body)
        }
      }),
    )
}
