#!/usr/bin/env node
// Finds, or installs, every server and browser the test suite starts: `npm test` runs this first.
//
// Each test starts its own private server on a free loopback port in a temp dir; nothing here starts one.
// A missing program is installed from Debian's packages when this runs as root on a machine with apt-get
// (with the packages' own system services kept from starting). Anywhere else it stops at once, with one line
// that says what to install. Each program can also be pointed to with the environment variable beside it.
//
//   node scripts/provision.mjs           find or install everything
//   node scripts/provision.mjs --check   only report; exit 1 if anything is missing
import { execFileSync, spawnSync } from 'node:child_process'
import { existsSync, readdirSync, rmSync, writeFileSync } from 'node:fs'

/** What the suite needs: the Debian package, where the tests look for it, and the variable that overrides it. */
const needs = [
  { pkg: 'postgresql', env: 'HERALD_PG_BIN', find: findPostgres, for: 'PostgreSQL transport, event store, outbox' },
  { pkg: 'redis-server', env: 'HERALD_REDIS_SERVER', find: file('/usr/bin/redis-server'), for: 'Redis transport' },
  {
    pkg: 'rabbitmq-server',
    env: 'HERALD_RABBITMQ_BIN',
    find: file('/usr/lib/rabbitmq/bin'),
    for: 'RabbitMQ transport and ride-sharing e2e',
  },
  { pkg: 'prometheus', env: 'HERALD_PROMETHEUS', find: file('/usr/bin/prometheus'), for: 'metrics scrape test' },
  { pkg: 'chromium', env: 'HERALD_CHROMIUM', find: file('/usr/bin/chromium'), for: 'dashboard browser test' },
  { pkg: 'openjdk-17-jre-headless', env: 'HERALD_JAVA', find: onPath('java'), for: 'Kafka broker' },
  { pkg: 'maven', env: 'HERALD_MVN', find: onPath('mvn'), for: "resolving the Kafka broker's jars" },
  {
    pkg: 'faketime',
    env: 'HERALD_LIBFAKETIME',
    find: file('/usr/lib/x86_64-linux-gnu/faketime/libfaketime.so.1'),
    for: 'consumers on skewed clocks',
  },
]

function file(path) {
  return () => (existsSync(path) ? path : undefined)
}

function onPath(command) {
  return () => {
    const found = spawnSync('sh', ['-c', `command -v ${command}`], { encoding: 'utf8' })
    return found.status === 0 ? found.stdout.trim() : undefined
  }
}

function findPostgres() {
  const base = '/usr/lib/postgresql'
  if (!existsSync(base)) return undefined
  const versions = readdirSync(base).filter((v) => existsSync(`${base}/${v}/bin/postgres`))
  return versions.length > 0 ? `${base}/${versions.sort((a, b) => Number(b) - Number(a))[0]}/bin` : undefined
}

function located(need) {
  const fromEnv = process.env[need.env]
  if (fromEnv) return existsSync(fromEnv) ? fromEnv : undefined
  return need.find()
}

const checkOnly = process.argv.includes('--check')
const missing = needs.filter((need) => located(need) === undefined)

/**
 * The Kafka broker comes from Maven Central as jars (packages/testkit/kafka/pom.xml), resolved once per machine
 * into a cache the tests read; the testkit's own function does it, so both agree on where.
 */
function resolveKafkaJars() {
  const resolved = spawnSync(
    process.execPath,
    [
      '--import',
      'tsx',
      '--input-type=module',
      '-e',
      "const { kafkaJars } = await import('./packages/testkit/src/servers/kafka.ts'); console.log(kafkaJars())",
    ],
    { encoding: 'utf8', stdio: ['ignore', 'pipe', 'inherit'] },
  )
  if (resolved.status !== 0) {
    console.error("provision: could not resolve the Kafka broker's jars (see above)")
    process.exit(1)
  }
  if (checkOnly) console.log(`provision: Kafka broker jars in ${resolved.stdout.trim()}`)
}

if (missing.length === 0) {
  if (checkOnly) console.log('provision: every server and browser the suite uses is installed')
  else resolveKafkaJars()
  process.exit(0)
}

const names = missing.map((need) => need.pkg)
const howTo = `apt-get install -y ${names.join(' ')}`
const isRoot = typeof process.getuid === 'function' && process.getuid() === 0
const hasApt = spawnSync('sh', ['-c', 'command -v apt-get'], { stdio: 'ignore' }).status === 0

if (checkOnly || !isRoot || !hasApt) {
  const why = checkOnly ? 'missing' : !hasApt ? 'missing, and this machine has no apt-get' : 'missing (not root)'
  const lines = missing.map((need) => `  ${need.pkg} (${need.for}; or set ${need.env})`).join('\n')
  console.error(`provision: ${why}:\n${lines}\nprovision: install them with: sudo ${howTo}`)
  process.exit(1)
}

console.log(`provision: installing ${names.join(', ')} from Debian's packages (once per machine)`)
// Keep the packages' system services from starting: the tests never use them, and they would hold ports.
const policy = '/usr/sbin/policy-rc.d'
const madePolicy = !existsSync(policy)
if (madePolicy) writeFileSync(policy, '#!/bin/sh\nexit 101\n', { mode: 0o755 })
try {
  const env = { ...process.env, DEBIAN_FRONTEND: 'noninteractive' }
  execFileSync('apt-get', ['update', '-qq'], { stdio: 'inherit', env })
  execFileSync('apt-get', ['install', '-y', '-qq', ...names], { stdio: 'inherit', env })
} catch {
  console.error(`provision: apt-get failed; run it by hand: ${howTo}`)
  process.exit(1)
} finally {
  if (madePolicy) rmSync(policy, { force: true })
}

const still = missing.filter((need) => located(need) === undefined)
if (still.length > 0) {
  console.error(`provision: still missing after apt-get: ${still.map((need) => need.pkg).join(', ')}`)
  process.exit(1)
}
resolveKafkaJars()
console.log('provision: done')
