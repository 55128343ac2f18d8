import { mkdtempSync, rmSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { fileURLToPath } from 'node:url'
import { withFixedRun } from '@herald/example-kit'
import { type KafkaCluster, startKafka } from '@herald/testkit'
import { Admin } from '@platformatic/kafka'
import { afterAll, beforeAll, expect, it } from 'vitest'
import { expectedSummary } from './expected.js'

const main = fileURLToPath(new URL('../src/main.ts', import.meta.url))

let cluster: KafkaCluster | undefined
const dir = mkdtempSync(join(tmpdir(), 'herald-reading-hybrid-'))
beforeAll(async () => {
  cluster = await startKafka({ nodes: 1 })
})
afterAll(async () => {
  await cluster?.stop()
  rmSync(dir, { recursive: true, force: true })
})

it('the same month on the hybrid bus from herald.config.yaml: reading.# stays in process (SQLite), the rest goes to Kafka', async () => {
  if (!cluster) throw new Error('Kafka test cluster not started')
  const local = join(dir, 'local.db')
  const config = join(dir, 'herald.config.yaml')
  writeFileSync(
    config,
    [
      'type: hybrid',
      'local_only: [reading.#]',
      `local: { type: sqlite, path: ${local} }`,
      `remote: { type: kafka, brokers: [${cluster.brokers.join(', ')}], prefix: reading }`,
      '',
    ].join('\n'),
  )
  await withFixedRun(main, (summary) => expect(summary).toEqual({ transport: config, ...expectedSummary }), [
    '--transport',
    config,
  ])
  // Money and every other remote event went through Kafka topics; no reading event did (the summary's 102
  // chapters read were all carried by the local half).
  const admin = new Admin({ clientId: 'reading-check', bootstrapBrokers: [...cluster.brokers] })
  const topics = await admin.listTopics()
  await admin.close()
  expect(topics).toEqual(expect.arrayContaining(['reading-t.chapter', 'reading-t.revenue', 'reading-t.settlement']))
  expect(topics.filter((t) => t.startsWith('reading-t.reading'))).toEqual([])
})
