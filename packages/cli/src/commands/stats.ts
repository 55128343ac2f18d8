import {
  ConfigurationError,
  type GroupInfo,
  isTopologyAdmin,
  isTopologyDescriber,
  type TopologyAdmin,
  type Transport,
} from '@herald/core'
import type { Command } from 'commander'
import { formatTable, type Output } from '../output.js'

type WithTransport = <T>(run: (transport: Transport) => Promise<T>) => Promise<T>

function admin(transport: Transport): Transport & TopologyAdmin {
  if (!isTopologyAdmin(transport)) throw new ConfigurationError('transport', `${transport.name} cannot list groups`)
  return transport
}

/** One group's figures as `herald stats --json` prints them; a figure the transport cannot tell is null. */
export interface GroupStats {
  readonly group: string
  readonly depth: number
  readonly inFlight: number | null
  readonly scheduled: number | null
  readonly deadLetters: number
  /** Keyed messages waiting for an earlier message of their key. */
  readonly waitingOnKey: number | null
  /** Keys held by a dead letter (ordering policy `hold`). */
  readonly heldKeys: number | null
  /** How long the oldest due message has waited. */
  readonly lagMs: number | null
  /**
   * How fast the group's backlog fell between the two samples, in messages per second: negative while publishers
   * outrun consumers. Null with `--interval 0` (one sample).
   */
  readonly drainedPerS: number | null
  /** Acknowledged per second as the store measures it (RabbitMQ with its management API); else null. */
  readonly ackedPerS: number | null
}

export function groupStats(before: GroupInfo | undefined, after: GroupInfo, seconds: number): GroupStats {
  return {
    group: after.group,
    depth: after.depth,
    inFlight: after.inFlight ?? null,
    scheduled: after.scheduled ?? null,
    deadLetters: after.deadLetters,
    waitingOnKey: after.waitingOnKey ?? null,
    heldKeys: after.heldKeys ?? null,
    lagMs: after.oldestDueAgeMs ?? null,
    drainedPerS:
      before === undefined || seconds <= 0 ? null : Math.round(((before.depth - after.depth) / seconds) * 10) / 10,
    ackedPerS: after.ackedPerS ?? null,
  }
}

const show = (n: number | null, unit = ''): string => (n === null ? '-' : `${n}${unit}`)

/** `herald stats` (per group: depth, in flight, scheduled, dead letters, lag, drain rate) and `herald topology`. */
export function registerStatsCommands(program: Command, withTransport: WithTransport, output: Output): void {
  program
    .command('stats')
    .description('per group: depth, in flight, scheduled, dead letters, lag of the oldest due message, drain rate')
    .option('--interval <ms>', 'time between the two samples the rate comes from; 0 for one sample', '1000')
    .option('--json', 'one JSON object per line')
    .action((flags: { interval: string; json?: boolean }) =>
      withTransport(async (transport) => {
        const interval = Number(flags.interval)
        if (!Number.isInteger(interval) || interval < 0)
          throw new ConfigurationError('interval', `"${flags.interval}" is not a whole number of milliseconds`)
        const topology = admin(transport)
        const started = performance.now()
        const first = interval > 0 ? new Map((await topology.listGroups()).map((g) => [g.group, g])) : undefined
        if (interval > 0) await new Promise((resolve) => setTimeout(resolve, interval))
        const second = await topology.listGroups()
        const seconds = (performance.now() - started) / 1_000
        const stats = second.map((g) => groupStats(first?.get(g.group), g, seconds))
        if (flags.json) {
          for (const s of stats) output.out(JSON.stringify(s))
          return
        }
        const rows = stats.map((s) => [
          s.group,
          String(s.depth),
          show(s.inFlight),
          show(s.scheduled),
          String(s.deadLetters),
          show(s.waitingOnKey),
          show(s.heldKeys),
          show(s.lagMs, ' ms'),
          show(s.drainedPerS, '/s'),
          show(s.ackedPerS, '/s'),
        ])
        const headers = [
          'GROUP',
          'DEPTH',
          'IN FLIGHT',
          'SCHEDULED',
          'DEAD',
          'ON KEY',
          'HELD KEYS',
          'LAG',
          'DRAINED',
          'ACKED',
        ]
        for (const line of formatTable(headers, rows)) output.out(line)
      }),
    )

  program
    .command('topology')
    .description(
      "what is bound to what: the transport's entry point, each group's patterns and queue, delays, dead letters",
    )
    .option('--json', 'the description as one JSON object')
    .action((flags: { json?: boolean }) =>
      withTransport(async (transport) => {
        if (!isTopologyDescriber(transport))
          throw new ConfigurationError('transport', `${transport.name} cannot describe its topology`)
        const topology = await transport.describeTopology()
        if (flags.json) {
          output.out(JSON.stringify(topology))
          return
        }
        output.out(`transport     ${topology.transport}`)
        output.out(`publish to    ${topology.entry}`)
        output.out(`delays        ${topology.delays}`)
        output.out(`dead letters  ${topology.deadLetters}`)
        const rows = topology.groups.map((g) => [g.group, g.patterns.join(' '), g.queue])
        for (const line of formatTable(['GROUP', 'PATTERNS', 'QUEUE'], rows)) output.out(line)
      }),
    )
}
