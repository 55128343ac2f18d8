import { isKeyAdmin, type KeyAdmin, type Transport } from '@herald/core'
import type { Command } from 'commander'
import { formatTable, type Output } from '../output.js'

type WithTransport = <T>(run: (transport: Transport) => Promise<T>) => Promise<T>

function keyAdmin(transport: Transport): Transport & KeyAdmin {
  if (!isKeyAdmin(transport)) throw new Error(`${transport.name} does not order messages by key`)
  return transport
}

/** Keys held by a dead letter (ordering policy `hold`): list them, and let one go on without redriving. */
export function registerKeyCommands(program: Command, withTransport: WithTransport, output: Output): void {
  const keys = program
    .command('keys')
    .description('keys held by a dead letter (ordering policy hold): list, release')
    .option('-g, --group <group>', 'only this group')
    .option('--json', 'one JSON object per line')
    .action((flags: { group?: string; json?: boolean }) =>
      withTransport(async (transport) => {
        const held = await keyAdmin(transport).listHeldKeys(flags.group)
        if (flags.json) {
          for (const key of held) output.out(JSON.stringify(key))
          return
        }
        if (held.length === 0) {
          output.out(`no held keys${flags.group === undefined ? '' : ` in group ${flags.group}`}`)
          return
        }
        const rows = held.map((k) => [k.group, k.key, k.deadLetterId, String(k.waiting)])
        for (const line of formatTable(['GROUP', 'KEY', 'DEAD LETTER', 'WAITING'], rows)) output.out(line)
      }),
    )

  keys
    .command('release <group> <key>')
    .description('let a held key go on with its next message; its dead letter stays (redrive sends it behind)')
    .option('--json', 'print {"group": …, "key": …, "released": true|false}')
    .action((group: string, key: string, flags: { json?: boolean }) =>
      withTransport(async (transport) => {
        const released = await keyAdmin(transport).releaseKey(group, key)
        if (flags.json) output.out(JSON.stringify({ group, key, released }))
        else if (released) output.out(`released key ${key} of group ${group}`)
        else throw new Error(`key ${key} of group ${group} is not held`)
      }),
    )
}
