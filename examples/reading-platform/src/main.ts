import { mkdirSync, rmSync } from 'node:fs'
import { join, resolve } from 'node:path'
import { parseArgs } from 'node:util'
import { exampleCli, runServiceProcess } from '@herald/example-kit'
import { openTransport, redactUrl } from 'herald'
import { simulate } from './simulation.js'
import { rebuildStatistics } from './statistics.js'
import { type RunningService, type ServiceName, serviceNames, startService } from './system.js'

const usage = `reading-platform: users, bookstore, finance, reading and notification services on Herald

  npm run start:reading                      every service in one process on SQLite, one simulated month
                                             (from an empty --data-dir), a report
  npm run start:reading -- --exit-when-idle --json
                                             the same, ending with one JSON summary line
  npm run start:reading -- --transport herald.config.yaml
                                             on the transport the file names (hybrid: reading.# in process,
                                             the rest on Kafka or another broker)
  npm run start:reading -- --service <${serviceNames.join('|')}> --transport <url|file>
                                             one service as its own process

options: --readers N  --day-ms N (how long a VIP day lasts)  --data-dir DIR  --royalty-percent N`

const { values: args } = parseArgs({
  options: {
    'exit-when-idle': { type: 'boolean', default: false },
    json: { type: 'boolean', default: false },
    service: { type: 'string' },
    transport: { type: 'string' },
    readers: { type: 'string' },
    'day-ms': { type: 'string' },
    'royalty-percent': { type: 'string' },
    'data-dir': { type: 'string', default: '.herald/reading-platform' },
    help: { type: 'boolean', default: false },
  },
})
if (args.help) {
  console.log(usage)
  process.exit(0)
}

const cli = exampleCli('reading-platform')
const dataDir = resolve(args['data-dir'])
const dayMs = cli.number(args['day-ms'], 400)
const onError = (err: unknown) => console.error(`reading-platform: ${(err as Error).message}`)

if (args.service !== undefined) {
  const name = args.service as ServiceName
  if (!serviceNames.includes(name)) cli.fail(`--service is one of ${serviceNames.join(', ')}`)
  mkdirSync(dataDir, { recursive: true })
  await runServiceProcess({
    name,
    transportUrl: args.transport ?? process.env.HERALD_TRANSPORT,
    openTransport,
    host: '127.0.0.1',
    cli,
    start: (transport) => startService(name, { transport, dataDir, dayMs, onError }),
  })
} else {
  // The simulated month starts from nothing, so its figures are the same every time.
  rmSync(dataDir, { recursive: true, force: true })
  mkdirSync(dataDir, { recursive: true })
  const url = args.transport ?? process.env.HERALD_TRANSPORT ?? `sqlite:${join(dataDir, 'herald.db')}`
  const transport = await openTransport(url)
  const services: RunningService[] = []
  try {
    for (const name of serviceNames) services.push(await startService(name, { transport, dataDir, dayMs, onError }))
    const report = await simulate({
      transport,
      readers: cli.number(args.readers, 24),
      royaltyPercent: cli.number(args['royalty-percent'], 60),
      deadlineMs: 60_000,
      ...(args.json ? {} : { log: (line: string) => console.log(`  ${line}`) }),
    })
    // Stage 3: the statistics, thrown away and built again from the stored events, match the live ones.
    const reading = services.find((s) => s.name === 'reading')?.events
    let rebuilt: boolean | undefined
    if (reading !== undefined) {
      const { store, statistics } = reading
      const head = await store.headPosition()
      const deadline = Date.now() + 20_000
      while ((await store.loadCheckpoint('reading-statistics')) !== head && Date.now() < deadline)
        await new Promise((r) => setTimeout(r, 25))
      const live = statistics.snapshot()
      const fresh = await rebuildStatistics(store, join(dataDir, `statistics-rebuilt-${Date.now()}.db`))
      rebuilt = JSON.stringify(fresh) === JSON.stringify(live)
    }
    const summary = { transport: redactUrl(url), ...report, statistics_rebuilt: rebuilt }
    if (args.json) console.log(JSON.stringify(summary))
    else console.log(JSON.stringify(summary, null, 2))
  } finally {
    for (const service of services.reverse()) await service.stop()
    await transport.close()
  }
}
