import { fileURLToPath } from 'node:url'
import { defineConfig } from 'vitest/config'

const packagesDir = fileURLToPath(new URL('./packages/', import.meta.url))

/** Test files that start a server or a browser of their own, or need libfaketime (`npm test` provisions them). */
const needServers = [
  'packages/postgres/test/**/*.int.test.ts',
  'packages/postgres/test/**/*.conformance.test.ts',
  'packages/redis/test/**/*.test.ts',
  'packages/rabbitmq/test/**/*.test.ts',
  'packages/kafka/test/**/*.test.ts',
  'packages/observability/test/prometheus.int.test.ts',
  'packages/cli/test/cli-transports.int.test.ts',
  'packages/core/test/in-memory-clock.int.test.ts',
  'packages/sqlite/test/sqlite-clock.int.test.ts',
  'packages/saga/test/postgres-*.test.ts',
  'packages/notifications/test/postgres-*.test.ts',
  '*/*/test/**/*.browser.int.test.ts',
  'examples/*/test/**/*.e2e.test.ts',
]
const all = ['packages/*/test/**/*.test.ts', 'examples/*/test/**/*.test.ts', 'test/**/*.test.ts']
const unit = ['packages/core/test/**/*.test.ts', 'packages/postgres/test/topic-regex.test.ts']

export default defineConfig({
  resolve: {
    // Tests run against the TypeScript sources of every workspace package, never a stale build.
    alias: [
      {
        find: /^@herald\/example-kit$/,
        replacement: fileURLToPath(new URL('./examples/kit/src/index.ts', import.meta.url)),
      },
      { find: /^herald$/, replacement: `${packagesDir}cli/src/index.ts` },
      { find: /^@herald\/([a-z-]+)$/, replacement: `${packagesDir}$1/src/index.ts` },
      { find: /^@herald\/([a-z-]+)\/([a-z-]+)$/, replacement: `${packagesDir}$1/src/$2.ts` },
    ],
  },
  test: {
    testTimeout: 120_000,
    hookTimeout: 120_000,
    pool: 'forks',
    reporters: ['default'],
    projects: [
      // Pure logic: no disk beyond temp files, no child processes.
      { extends: true, test: { name: 'unit', include: unit, exclude: needServers } },
      // In-memory and SQLite conformance, crash tests, CLI, dashboard over HTTP, gateway, the one-process demos.
      { extends: true, test: { name: 'embedded', include: all, exclude: [...unit, ...needServers] } },
      // PostgreSQL, Redis, RabbitMQ, Prometheus and Chromium, each started by the test on free loopback ports.
      { extends: true, test: { name: 'servers', include: needServers } },
    ],
  },
})
