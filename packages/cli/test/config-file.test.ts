import { mkdtempSync, rmSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { isTopologyAdmin, uuidV7 } from '@herald/core'
import { afterEach, describe, expect, it } from 'vitest'
import { parseConfig } from '../src/config-file.js'
import { openTransport, runCli } from '../src/index.js'

const dirs: string[] = []
afterEach(() => {
  for (const dir of dirs.splice(0)) rmSync(dir, { recursive: true, force: true })
})
function file(name: string, text: string): string {
  const dir = mkdtempSync(join(tmpdir(), 'herald-config-'))
  dirs.push(dir)
  const path = join(dir, name)
  writeFileSync(path, text)
  return path
}

describe('herald.config files', () => {
  it('a hybrid in YAML: both halves, the local topics, consumer options', () => {
    const config = parseConfig(
      `type: hybrid
local_only: [cache.*, ui.#]
local: { type: memory }
remote: { type: kafka, brokers: [127.0.0.1:9092, 127.0.0.1:9093], prefix: reading }
consumer: { maxInFlight: 50, retry: { maxAttempts: 8, backoff: { initialMs: 100 } } }
`,
      'herald.config.yaml',
    )
    expect(config).toMatchObject({
      type: 'hybrid',
      local_only: ['cache.*', 'ui.#'],
      remote: { type: 'kafka', brokers: ['127.0.0.1:9092', '127.0.0.1:9093'] },
      consumer: { maxInFlight: 50, retry: { maxAttempts: 8 } },
    })
  })

  it('a bad file names the file and every key that is wrong', () => {
    const bad = (text: string, name = 'herald.config.yaml') => {
      try {
        parseConfig(text, name)
        return 'accepted'
      } catch (err) {
        return String(err)
      }
    }
    expect(bad('type: kafka\nbrokers: [localhost]\n')).toContain('herald.config.yaml: brokers.0: a broker is host:port')
    expect(
      bad('type: hybrid\nlocal_only: [a.*]\nlocal: { type: memory }\nremote: { type: kafka, brokers: [] }\n'),
    ).toContain('remote.brokers: name at least one broker (host:port)')
    expect(bad('type: sqlite\npath: ./h.db\nconsumer: { maxInFlight: 0 }\n')).toContain('consumer.maxInFlight')
    expect(bad('type: sqlite\npath: ./h.db\nfsync: always\n')).toContain('fsync')
    expect(bad('type: mongo\n')).toContain('type')
    expect(bad('{ "type": "memory", ', 'herald.config.json')).toContain('herald.config.json is not valid JSON')
  })

  it('the CLI reads a config file given as -t, a hybrid one included', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'herald-config-'))
    dirs.push(dir)
    const single = file('herald.config.json', JSON.stringify({ type: 'sqlite', path: join(dir, 'one.db') }))
    const hybrid = file(
      'herald.config.yaml',
      `type: hybrid\nlocal_only: [cache.*]\nlocal: { type: sqlite, path: ${join(dir, 'local.db')} }\nremote: { type: sqlite, path: ${join(dir, 'remote.db')} }\n`,
    )
    for (const path of [single, hybrid]) {
      const transport = await openTransport(path)
      if (!isTopologyAdmin(transport)) throw new Error(`${transport.name} has no topology admin`)
      await transport.declareGroup('billing', ['order.#', 'cache.*'])
      await transport.publish('order.placed', [
        { id: uuidV7(), headers: { type: 'order.placed' }, body: new Uint8Array() },
      ])
      await transport.close()
      const out: string[] = []
      const code = await runCli(['-t', path, 'stats', '--json', '--interval', '0'], {
        output: { out: (l) => out.push(l), err: (l) => out.push(l) },
      })
      expect(code, out.join('\n')).toBe(0)
      expect(out.map((l) => JSON.parse(l)).find((s) => s.group === 'billing')).toMatchObject({ depth: 1 })
    }
  })
})
