import { execFileSync } from 'node:child_process'
import { readFileSync } from 'node:fs'
import { join } from 'node:path'
import { fileURLToPath } from 'node:url'
import semver from 'semver'
import { expect, it } from 'vitest'

const root = fileURLToPath(new URL('..', import.meta.url))
const rootPackage = JSON.parse(readFileSync(join(root, 'package.json'), 'utf8')) as { engines: { node: string } }

/**
 * Declared stricter than they are: the Kafka client (@platformatic/kafka 1.x, which itself declares Node 20.19.4)
 * depends on these, which declare Node 22.19 but use nothing Node 20 lacks (plain code and WebAssembly.Module /
 * Instance, checked in 0.3.1 and 0.2.1), and the Kafka suites run them on Node 20. npm ci warns for these two alone.
 */
const reviewedEngineExceptions = new Set([
  'node_modules/@platformatic/dynamic-buffer@0.3.1',
  'node_modules/@platformatic/wasm-utils@0.2.1',
])

it('every locked dependency runs on the oldest Node the project declares (npm ci warns for no other)', () => {
  const oldest = semver.minVersion(rootPackage.engines.node)
  expect(oldest?.version).toBe('20.19.4')
  const lock = JSON.parse(readFileSync(join(root, 'package-lock.json'), 'utf8')) as {
    packages: Record<string, { version?: string; engines?: { node?: string } | string[]; optional?: boolean }>
  }
  const refused = Object.entries(lock.packages)
    .filter(([, meta]) => {
      const range = Array.isArray(meta.engines) ? undefined : meta.engines?.node
      return range !== undefined && !semver.satisfies(oldest!, range)
    })
    .filter(([path, meta]) => !reviewedEngineExceptions.has(`${path}@${meta.version}`))
    .map(([path, meta]) => `${path}@${meta.version} wants node ${(meta.engines as { node: string }).node}`)
  expect(refused).toEqual([])
})

it('nothing in the repository cites a file outside it', () => {
  // Tracked files only, so what a clone holds is what is checked.
  const files = execFileSync('git', ['ls-files'], { cwd: root, encoding: 'utf8' })
    .split('\n')
    .filter((f) => /\.(ts|mjs|js|md|json|html|css|sh|yml|yaml)$/.test(f) || f.startsWith('.ci/'))
    .filter((f) => f !== 'package-lock.json' && f !== 'test/repository.test.ts')
  const outside = /\.\.\/shared|RELIABILITY\.md|ECOSYSTEM\.md|STYLE\.md|DESIGN\.md|shared\/seeds/
  const citing = files.filter((f) => outside.test(readFileSync(join(root, f), 'utf8')))
  expect(citing).toEqual([])
})

it('every case docs/reliability.md names is a test whose title starts with that name', () => {
  const doc = readFileSync(join(root, 'docs', 'reliability.md'), 'utf8')
  const named = [...doc.matchAll(/^\| `([a-z0-9]+(?:-[a-z0-9]+)+)`/gm)].map((m) => m[1]!)
  expect(named.length).toBeGreaterThan(50)
  const sources = execFileSync('git', ['ls-files', '-co', '--exclude-standard', 'packages', 'examples'], {
    cwd: root,
    encoding: 'utf8',
  })
    .split('\n')
    .filter((f) => f.endsWith('.ts'))
    .map((f) => readFileSync(join(root, f), 'utf8'))
    .join('\n')
  const titled = new Set(
    [...sources.matchAll(/\bit(?:\.\w+\([^)]*\))?\(\s*[`'"]([a-z0-9]+(?:-[a-z0-9]+)+)[:` '"]/g)].map((m) => m[1]),
  )
  expect(named.filter((name) => !titled.has(name))).toEqual([])
})
