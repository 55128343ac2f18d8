import { fileURLToPath } from 'node:url'
import { defineConfig } from 'vitest/config'

const packagesDir = fileURLToPath(new URL('./packages/', import.meta.url))

export default defineConfig({
  resolve: {
    // Tests run against the TypeScript sources of every workspace package, never a stale build.
    alias: [{ find: /^@herald\/([a-z-]+)$/, replacement: `${packagesDir}$1/src/index.ts` }],
  },
  test: {
    include: ['packages/*/test/**/*.test.ts', 'examples/*/test/**/*.test.ts'],
    testTimeout: 120_000,
    hookTimeout: 120_000,
    pool: 'forks',
    reporters: ['default'],
  },
})
