import { assertTopicPattern, isHealthCheck, isTopologyAdmin, type TopologyAdmin, type Transport } from '@herald/core'
import type { Command } from 'commander'
import { formatTable, type Output } from '../output.js'

type WithTransport = <T>(run: (transport: Transport) => Promise<T>) => Promise<T>

function admin(transport: Transport): Transport & TopologyAdmin {
  if (!isTopologyAdmin(transport)) throw new Error(`${transport.name} cannot manage topics`)
  return transport
}

/**
 * The messaging API's topics, in Herald's terms: a topic (or pattern) is bound to groups, each group a queue of
 * work. `create` binds one to a group, `delete` unbinds it (from one group or from all), `list` shows the bindings.
 */
export function registerTopicCommands(program: Command, withTransport: WithTransport, output: Output): void {
  const topics = program.command('topics').description('bind, unbind and list topics (patterns) of groups')

  topics
    .command('list')
    .description('every bound topic or pattern with the groups it feeds')
    .option('--json', 'one JSON object per line')
    .action((flags: { json?: boolean }) =>
      withTransport(async (transport) => {
        const byTopic = new Map<string, string[]>()
        for (const g of await admin(transport).listGroups())
          for (const pattern of g.patterns) byTopic.set(pattern, [...(byTopic.get(pattern) ?? []), g.group])
        const rows = [...byTopic].sort(([x], [y]) => (x < y ? -1 : x > y ? 1 : 0))
        if (flags.json) for (const [topic, groups] of rows) output.out(JSON.stringify({ topic, groups }))
        else
          for (const line of formatTable(
            ['TOPIC', 'GROUPS'],
            rows.map(([t, gs]) => [t, gs.join(' ')]),
          ))
            output.out(line)
      }),
    )

  topics
    .command('create <topic>')
    .description('bind a topic or pattern (trip.event.*, order.#) to a group, creating the group if needed')
    .requiredOption('-g, --group <group>', 'the group (queue) that receives it')
    .option('--json', 'print {"topic": …, "groups": […]}')
    .action((topic: string, flags: { group: string; json?: boolean }) =>
      withTransport(async (transport) => {
        assertTopicPattern(topic)
        await admin(transport).declareGroup(flags.group, [topic])
        if (flags.json) output.out(JSON.stringify({ topic, bound: [flags.group] }))
        else output.out(`bound ${topic} to group ${flags.group}`)
      }),
    )

  topics
    .command('delete <topic>')
    .description('unbind a topic or pattern from one group, or from every group bound to it; queued work stays')
    .option('-g, --group <group>', 'only this group')
    .option('--json', 'print {"topic": …, "unbound": […]}')
    .action((topic: string, flags: { group?: string; json?: boolean }) =>
      withTransport(async (transport) => {
        const topology = admin(transport)
        const bound = (await topology.listGroups())
          .filter((g) => g.patterns.includes(topic) && (flags.group === undefined || g.group === flags.group))
          .map((g) => g.group)
        if (bound.length === 0)
          throw new Error(`no group${flags.group ? ` "${flags.group}"` : ''} is bound to ${topic}`)
        for (const group of bound) await topology.unbindGroup(group, [topic])
        if (flags.json) output.out(JSON.stringify({ topic, unbound: bound }))
        else output.out(`unbound ${topic} from ${bound.join(', ')}`)
      }),
    )

  program
    .command('health')
    .description("the transport's health check; exit code 1 when unhealthy")
    .option('--json', 'print the report as JSON')
    .action((flags: { json?: boolean }) =>
      withTransport(async (transport) => {
        if (!isHealthCheck(transport)) throw new Error(`${transport.name} has no health check`)
        const report = await transport.checkHealth()
        if (flags.json) output.out(JSON.stringify(report))
        else output.out(`${report.ok ? 'ok' : 'unhealthy'} ${JSON.stringify(report.details)}`)
        if (!report.ok) throw new Error(`${transport.name} is unhealthy`)
      }),
    )
}
