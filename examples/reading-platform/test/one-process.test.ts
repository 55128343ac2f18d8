import { fileURLToPath } from 'node:url'
import { withFixedRun } from '@herald/example-kit'
import { expect, it } from 'vitest'
import { expectedSummary } from './expected.js'

const main = fileURLToPath(new URL('../src/main.ts', import.meta.url))

it('npm run start:reading -- --exit-when-idle --json: the simulated month adds up, on SQLite in one process', async () => {
  await withFixedRun(main, (summary, dataDir) => {
    expect(summary).toEqual({ transport: `sqlite:${dataDir}/herald.db`, ...expectedSummary })
  })
})
