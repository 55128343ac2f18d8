import { randomBytes } from 'node:crypto'
import type { EventStore, Transport } from '@herald/core'
import { createDashboard } from '@herald/dashboard'
import type { Command } from 'commander'
import type { Output } from '../output.js'

/** `herald dashboard`: serves the web dashboard over the transport (and its event store, where there is one). */
export function registerDashboardCommand(
  program: Command,
  open: () => Promise<{ transport: Transport; eventStore: EventStore | undefined }>,
  output: Output,
  env: Readonly<Record<string, string | undefined>>,
  untilInterrupted: () => Promise<void>,
): void {
  program
    .command('dashboard')
    .description('serve the web dashboard: live tail, dead letters with redrive, event search, flows')
    .option('-p, --port <port>', 'port to listen on', '8080')
    .option('--host <host>', 'address to listen on', '127.0.0.1')
    .option('--token <token>', 'access token (env HERALD_DASHBOARD_TOKEN; default: a new random one, printed)')
    .option('--json', 'print {"url": …} once listening')
    .action(async (flags: { port: string; host: string; token?: string; json?: boolean }) => {
      const token = flags.token ?? env.HERALD_DASHBOARD_TOKEN ?? randomBytes(24).toString('base64url')
      const { transport, eventStore } = await open()
      const app = await createDashboard({ transport, token, ...(eventStore === undefined ? {} : { eventStore }) })
      try {
        const address = await app.listen({ port: Number(flags.port), host: flags.host })
        const url = `${address}/?token=${token}`
        output.out(flags.json ? JSON.stringify({ url }) : `Herald dashboard: ${url}`)
        await untilInterrupted()
      } finally {
        await app.close()
        await eventStore?.close()
        await transport.close()
      }
    })
}
