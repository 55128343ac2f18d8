import { type EventStore, isHeraldError, isTopologyAdmin, type Transport } from '@herald/core'
import { Command } from 'commander'
import { registerDashboardCommand } from './commands/dashboard.js'
import { registerDlqCommands } from './commands/dlq.js'
import { registerEventCommands } from './commands/events.js'
import { registerKeyCommands } from './commands/keys.js'
import { registerNotificationCommands } from './commands/notifications.js'
import { registerPublishAndTail } from './commands/publish-and-tail.js'
import { registerStatsCommands } from './commands/stats.js'
import { registerTopicCommands } from './commands/topics.js'
import { formatTable, type Output, processOutput } from './output.js'
import { defaultTransportUrl, openEventStore, openNotificationStore, openTransport } from './transport-url.js'

export interface CliOptions {
  readonly output?: Output
  readonly env?: Readonly<Record<string, string | undefined>>
  /** Resolves when a long-running command (tail) should stop. Default: SIGINT or SIGTERM. */
  readonly untilInterrupted?: () => Promise<void>
}

function waitForSignal(): Promise<void> {
  return new Promise((resolve) => {
    process.once('SIGINT', () => resolve())
    process.once('SIGTERM', () => resolve())
  })
}

/** Runs the `herald` command line with `argv` (without node and script). Resolves to the exit code. */
export async function runCli(argv: readonly string[], options: CliOptions = {}): Promise<number> {
  const output = options.output ?? processOutput
  const env = options.env ?? process.env
  const program = new Command('herald')
    .description('Herald: events and commands for TypeScript services')
    .option(
      '-t, --transport <url>',
      `transport URL, or a herald.config.yaml|json file (env HERALD_TRANSPORT; default ${defaultTransportUrl})`,
    )
    .exitOverride()
    .configureOutput({ writeOut: (s) => output.out(s.trimEnd()), writeErr: (s) => output.err(s.trimEnd()) })

  const url = () => (program.opts().transport as string | undefined) ?? env.HERALD_TRANSPORT ?? defaultTransportUrl

  async function withTransport<T>(run: (transport: Transport) => Promise<T>): Promise<T> {
    const transport = await openTransport(url())
    try {
      return await run(transport)
    } finally {
      await transport.close()
    }
  }

  /** The event store lives where the transport does (same SQLite file, same PostgreSQL schema). */
  async function withEventStore<T>(run: (store: EventStore) => Promise<T>): Promise<T> {
    const store = await openEventStore(url())
    try {
      return await run(store)
    } finally {
      await store.close()
    }
  }

  registerDlqCommands(program, withTransport, output)
  registerNotificationCommands(
    program,
    async (run) => {
      const store = await openNotificationStore(url())
      try {
        return await run(store)
      } finally {
        await store.close()
      }
    },
    output,
  )
  registerPublishAndTail(program, withTransport, output, options.untilInterrupted ?? waitForSignal)
  registerEventCommands(program, withEventStore, withTransport, output)
  registerTopicCommands(program, withTransport, output)
  registerKeyCommands(program, withTransport, output)
  registerStatsCommands(program, withTransport, output)
  registerDashboardCommand(
    program,
    async () => ({
      transport: await openTransport(url()),
      eventStore: await openEventStore(url()).catch(() => undefined),
    }),
    output,
    env,
    options.untilInterrupted ?? waitForSignal,
  )
  program
    .command('groups')
    .description('list groups with their bindings, queue depth and dead letters')
    .option('--json', 'one JSON object per line')
    .action((flags: { json?: boolean }) =>
      withTransport(async (transport) => {
        if (!isTopologyAdmin(transport)) throw new Error(`${transport.name} cannot list groups`)
        const groups = await transport.listGroups()
        if (flags.json) for (const g of groups) output.out(JSON.stringify(g))
        else {
          const rows = groups.map((g) => [g.group, g.patterns.join(' '), String(g.depth), String(g.deadLetters)])
          for (const line of formatTable(['GROUP', 'PATTERNS', 'DEPTH', 'DEAD'], rows)) output.out(line)
        }
      }),
    )

  try {
    await program.parseAsync([...argv], { from: 'user' })
    return 0
  } catch (err) {
    const code = (err as { code?: string }).code
    if (code === 'commander.helpDisplayed' || code === 'commander.version') return 0
    if (typeof code === 'string' && code.startsWith('commander.')) return 2
    output.err(`herald: ${isHeraldError(err) ? err.message : String(err)}`)
    return 1
  }
}
