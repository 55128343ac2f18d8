/**
 * `npm run bench [-- --json] [-- --transport NAME] [-- --bench NAME]`: for each benchmark, Herald's figure at the
 * bus a user calls, the same at the transport under it, and the raw client's, measured in the same run (each side
 * in its own process, so peak RSS is its own), with the ratios.
 */
import { execFile } from 'node:child_process'
import { fileURLToPath } from 'node:url'
import { parseArgs, promisify } from 'node:util'
import { startKafka, startPostgres, startRabbitMq, startRedis } from '@herald/testkit'
import { benchCases } from './cases.js'
import { type Measurement, round } from './measure.js'

const { values: args } = parseArgs({
  options: { json: { type: 'boolean', default: false }, transport: { type: 'string' }, bench: { type: 'string' } },
})
// `npm run bench` runs the compiled JavaScript (what production runs); started from the sources (tsx), the cases
// run from the sources too, with tsx's per-closure overhead on both sides.
const fromSources = import.meta.url.endsWith('.ts')
const runCase = fileURLToPath(new URL(fromSources ? './run-case.ts' : './run-case.js', import.meta.url))
const nodeArgs = fromSources ? ['--conditions=herald-source', '--import', 'tsx'] : []

type Side = 'bus' | 'transport' | 'raw'

async function measure(index: number, side: Side): Promise<Measurement & { peakRssMb: number }> {
  const which = side === 'raw' ? 'raw' : 'herald'
  const { stdout } = await promisify(execFile)(process.execPath, [...nodeArgs, runCase, String(index), which], {
    env: { ...process.env, ...serverEnv, HERALD_BENCH_LEVEL: side === 'transport' ? 'transport' : 'bus' },
  })
  return JSON.parse(stdout.trim().split('\n').at(-1)!)
}

const selected = benchCases
  .map((c, i) => ({ c, i }))
  .filter(({ c }) => !args.transport || c.transport === args.transport)
  .filter(({ c }) => !args.bench || c.bench === args.bench)
if (selected.length === 0) {
  throw new Error(
    `no benchmark matches; transports: in-memory, sqlite, postgres, redis, rabbitmq, kafka; benches: ${[...new Set(benchCases.map((c) => c.bench))].join(', ')}`,
  )
}
// Servers the selected cases need, started once here (private, on free ports) and passed to each side's process.
const serverEnv: Record<string, string> = {}
const postgres = selected.some(({ c }) => c.transport === 'postgres') ? await startPostgres() : undefined
if (postgres) serverEnv.HERALD_BENCH_PG_URL = postgres.url
// Redis with AOF fsynced every second: Herald's durable default profile (strict mode requires AOF on).
const redis = selected.some(({ c }) => c.transport === 'redis') ? await startRedis({ profile: 'everysec' }) : undefined
if (redis) serverEnv.HERALD_BENCH_REDIS_URL = redis.url
const rabbitmq = selected.some(({ c }) => c.transport === 'rabbitmq') ? await startRabbitMq() : undefined
if (rabbitmq) serverEnv.HERALD_BENCH_RABBITMQ_URL = rabbitmq.url
const kafka = selected.some(({ c }) => c.transport === 'kafka') ? await startKafka() : undefined
if (kafka) serverEnv.HERALD_BENCH_KAFKA_BROKERS = kafka.brokers.join(',')
for (const { c, i } of selected) {
  if (!args.json) {
    const sides = c.api ? 'Herald' : 'Herald at the bus, at the transport'
    process.stderr.write(`running ${c.bench} on ${c.transport} (${sides}, then ${c.raw})...\n`)
  }
  const herald = await measure(i, 'bus')
  const atTransport = c.api ? undefined : await measure(i, 'transport')
  const raw = await measure(i, 'raw')
  const line = {
    bench: c.bench,
    transport: c.transport,
    // What Herald's figure is measured at: the bus a user calls, or the one user API the case is about.
    level: c.api ? `api: ${c.api}` : 'bus',
    herald_per_s: Math.round(herald.perSecond),
    raw_per_s: Math.round(raw.perSecond),
    ratio: round(herald.perSecond / raw.perSecond),
    ...(atTransport === undefined
      ? {}
      : {
          transport_per_s: Math.round(atTransport.perSecond),
          transport_ratio: round(atTransport.perSecond / raw.perSecond),
          bus_vs_transport: round(herald.perSecond / atTransport.perSecond),
        }),
    ...(herald.p50Ms === undefined ? {} : { p50_ms: herald.p50Ms, p99_ms: herald.p99Ms }),
    ...(atTransport?.p50Ms === undefined
      ? {}
      : { transport_p50_ms: atTransport.p50Ms, transport_p99_ms: atTransport.p99Ms }),
    ...(raw.p50Ms === undefined ? {} : { raw_p50_ms: raw.p50Ms, raw_p99_ms: raw.p99Ms }),
    herald_peak_rss_mb: herald.peakRssMb,
    ...(atTransport === undefined ? {} : { transport_peak_rss_mb: atTransport.peakRssMb }),
    raw_peak_rss_mb: raw.peakRssMb,
    // Memory over a long run: RSS at the end less RSS at the first tenth of the messages.
    ...(c.once ? { herald_rss_growth_mb: herald.rssGrowthMb, raw_rss_growth_mb: raw.rssGrowthMb } : {}),
  }
  if (args.json) process.stdout.write(`${JSON.stringify(line)}\n`)
  else {
    const latency =
      line.p50_ms === undefined ? '' : `  p50 ${line.p50_ms} ms, p99 ${line.p99_ms} ms (raw p99 ${line.raw_p99_ms} ms)`
    const growth =
      c.once && herald.rssGrowthMb !== undefined
        ? `, RSS growth after the first tenth ${herald.rssGrowthMb} MB vs ${raw.rssGrowthMb} MB`
        : ''
    const transportLevel =
      atTransport === undefined
        ? ''
        : `  [transport level ${line.transport_per_s}/s = ${line.transport_ratio}x raw; bus/transport ${line.bus_vs_transport}]`
    process.stdout.write(
      `${c.bench} ${c.transport}: Herald ${line.herald_per_s}/s vs ${c.raw} ${line.raw_per_s}/s = ${line.ratio}x${latency}  ` +
        `peak RSS ${line.herald_peak_rss_mb} MB vs ${line.raw_peak_rss_mb} MB${growth}${transportLevel}\n`,
    )
  }
}
await postgres?.stop()
await redis?.stop()
await rabbitmq?.stop()
await kafka?.stop()
