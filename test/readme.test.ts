import { execFile } from 'node:child_process'
import { existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs'
import { join } from 'node:path'
import { fileURLToPath } from 'node:url'
import { promisify } from 'node:util'
import { expect, it } from 'vitest'

const root = fileURLToPath(new URL('..', import.meta.url))

/** The README's first TypeScript block, as a reader copies it. */
function firstExample(): string {
  const readme = readFileSync(join(root, 'README.md'), 'utf8')
  const match = /```ts\n([\s\S]*?)```/.exec(readme)
  if (!match?.[1]) throw new Error('README.md has no ```ts block')
  return match[1]
}

it("the README's first example runs as written: it prints the invoice and exits", async () => {
  // Inside the repository (so its packages resolve), in an ignored folder.
  mkdirSync(join(root, '.herald'), { recursive: true })
  const dir = mkdtempSync(join(root, '.herald', 'readme-'))
  try {
    writeFileSync(join(dir, 'billing.ts'), firstExample())
    const { stdout } = await promisify(execFile)(
      process.execPath,
      ['--conditions=herald-source', '--import', 'tsx', 'billing.ts'],
      { cwd: dir, timeout: 60_000 },
    )
    expect(stdout).toMatch(/^invoice inv-o-1 for order o-1 \(flow [0-9a-f-]{36}\)\n$/)
    expect(existsSync(join(dir, 'herald.db'))).toBe(true)
  } finally {
    rmSync(dir, { recursive: true, force: true })
  }
})

it('test/readme-example.ts, which the typecheck covers, is the same code as the README block', () => {
  expect(firstExample()).toBe(readFileSync(join(root, 'test', 'readme-example.ts'), 'utf8'))
})
