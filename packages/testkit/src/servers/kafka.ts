import { type ChildProcess, execFileSync, spawn } from 'node:child_process'
import { randomBytes } from 'node:crypto'
import { existsSync, mkdirSync, mkdtempSync, readFileSync, renameSync, rmSync, writeFileSync } from 'node:fs'
import { homedir, tmpdir } from 'node:os'
import { join } from 'node:path'
import { fileURLToPath } from 'node:url'
import { freePort } from './free-port.js'

/** One broker of a running cluster (a KRaft node that is both broker and controller). */
export interface KafkaNode {
  readonly id: number
  /** `127.0.0.1:<port>`, the client listener. */
  readonly address: string
  /** kill -9 of the JVM: whatever was not replicated or flushed is the cluster's problem, as in production. */
  crash(): Promise<void>
  /** Starts the node again on its data directory and ports (after `crash` or `stop`). */
  start(): Promise<void>
  /** SIGSTOP / SIGCONT: the node stops answering without closing connections. */
  pause(): void
  resume(): void
  readonly running: boolean
}

export interface KafkaCluster {
  /** Every node's client address, for `bootstrapBrokers`. */
  readonly brokers: readonly string[]
  readonly nodes: readonly KafkaNode[]
  /** kill -9 of one node (the first by default), then start it again on the same data and ports. */
  restart(node?: number): Promise<void>
  /** Stops every node and removes the data directories. */
  stop(): Promise<void>
}

export interface StartKafkaOptions {
  /** Nodes in the cluster: 1 for conformance, 3 for fault tests. Default 1. */
  readonly nodes?: number
  /** Extra `server.properties` lines, as key → value. */
  readonly properties?: Readonly<Record<string, string | number | boolean>>
}

const pom = fileURLToPath(new URL('../../kafka/pom.xml', import.meta.url))

/**
 * The broker's jars (Apache Kafka from Maven Central, as `kafka/pom.xml` names them), resolved once per machine
 * into `~/.cache/herald/kafka-<version>` (or `HERALD_KAFKA_JARS`). Safe to call from several processes at once:
 * each resolves into its own directory and the first rename wins.
 */
export function kafkaJars(): string {
  const fromEnv = process.env.HERALD_KAFKA_JARS
  if (fromEnv) {
    if (!existsSync(fromEnv)) throw new Error(`HERALD_KAFKA_JARS=${fromEnv} does not exist`)
    return fromEnv
  }
  const version = /<kafka\.version>([^<]+)<\/kafka\.version>/.exec(readFileSync(pom, 'utf8'))?.[1]
  if (version === undefined) throw new Error(`${pom} names no <kafka.version>`)
  const base = join(process.env.XDG_CACHE_HOME ?? join(homedir(), '.cache'), 'herald')
  const dir = join(base, `kafka-${version}`)
  if (existsSync(join(dir, 'resolved'))) return dir
  mkdirSync(base, { recursive: true })
  const partial = mkdtempSync(join(base, `kafka-${version}-partial-`))
  try {
    execFileSync(
      process.env.HERALD_MVN ?? 'mvn',
      ['-q', '-B', '-f', pom, 'dependency:copy-dependencies', `-DoutputDirectory=${partial}`, '-DincludeScope=runtime'],
      { stdio: ['ignore', 'pipe', 'pipe'] },
    )
  } catch (err) {
    rmSync(partial, { recursive: true, force: true })
    const output = err instanceof Error && 'stdout' in err ? String((err as { stdout: unknown }).stdout) : ''
    throw new Error(
      `could not resolve the Kafka broker's jars with Maven (is mvn installed? npm run provision):\n${output}`,
    )
  }
  writeFileSync(join(partial, 'resolved'), `${version}\n`)
  try {
    renameSync(partial, dir)
  } catch {
    rmSync(partial, { recursive: true, force: true }) // another process got there first
  }
  return dir
}

const log4j = `status = error
appender.file.type = File
appender.file.name = file
appender.file.fileName = \${sys:kafka.logs.dir}/server.log
appender.file.layout.type = PatternLayout
appender.file.layout.pattern = [%d] %p %m (%c)%n
rootLogger.level = info
rootLogger.appenderRef.file.ref = file
logger.kafka.name = kafka
logger.kafka.level = warn
logger.apache.name = org.apache.kafka
logger.apache.level = warn
`

/** A KRaft cluster id: 16 random bytes, base64url without padding. */
function clusterId(): string {
  return randomBytes(16).toString('base64url')
}

/**
 * Starts a private Apache Kafka cluster (KRaft: every node is broker and controller) on free loopback ports in a
 * temp dir. One node uses replication factor 1 everywhere; three use 3 with `min.insync.replicas=2`, so a cluster
 * that loses one node keeps accepting `acks=all` writes.
 */
export async function startKafka(options: StartKafkaOptions = {}): Promise<KafkaCluster> {
  const count = options.nodes ?? 1
  if (!(Number.isInteger(count) && count >= 1)) throw new Error('nodes must be a positive integer')
  const java = process.env.HERALD_JAVA ?? 'java'
  const jars = kafkaJars()
  const root = mkdtempSync(join(tmpdir(), 'herald-kafka-'))
  const ports = await Promise.all(
    Array.from({ length: count }, async () => ({ client: await freePort(), controller: await freePort() })),
  )
  const replication = Math.min(3, count)
  const voters = ports.map((p, i) => `${i + 1}@127.0.0.1:${p.controller}`).join(',')
  const id = clusterId()
  const nodes: KafkaNode[] = []
  const children = new Map<number, ChildProcess>()

  for (const [index, port] of ports.entries()) {
    const nodeId = index + 1
    const dir = join(root, `node-${nodeId}`)
    mkdirSync(join(dir, 'data'), { recursive: true })
    const properties: Record<string, string | number | boolean> = {
      'process.roles': 'broker,controller',
      'node.id': nodeId,
      'controller.quorum.voters': voters,
      listeners: `PLAINTEXT://127.0.0.1:${port.client},CONTROLLER://127.0.0.1:${port.controller}`,
      'advertised.listeners': `PLAINTEXT://127.0.0.1:${port.client}`,
      'controller.listener.names': 'CONTROLLER',
      'listener.security.protocol.map': 'PLAINTEXT:PLAINTEXT,CONTROLLER:PLAINTEXT',
      'inter.broker.listener.name': 'PLAINTEXT',
      'log.dirs': join(dir, 'data'),
      'num.partitions': 1,
      'default.replication.factor': replication,
      'min.insync.replicas': Math.min(2, replication),
      'offsets.topic.replication.factor': replication,
      'offsets.topic.num.partitions': 4,
      'transaction.state.log.replication.factor': replication,
      'transaction.state.log.min.isr': Math.min(2, replication),
      'group.initial.rebalance.delay.ms': 0,
      // A crashed node is fenced (its partitions get new leaders) after 3 s rather than 9 s.
      'broker.session.timeout.ms': 3_000,
      'broker.heartbeat.interval.ms': 500,
      'auto.create.topics.enable': false,
      'unclean.leader.election.enable': false,
      ...options.properties,
    }
    writeFileSync(
      join(dir, 'server.properties'),
      `${Object.entries(properties)
        .map(([k, v]) => `${k}=${v}`)
        .join('\n')}\n`,
    )
    writeFileSync(join(dir, 'log4j2.properties'), log4j)
    execFileSync(
      java,
      [
        '-cp',
        `${jars}/*`,
        'kafka.tools.StorageTool',
        'format',
        '-t',
        id,
        '-c',
        join(dir, 'server.properties'),
        '--ignore-formatted',
      ],
      { stdio: ['ignore', 'pipe', 'pipe'] },
    )

    const start = async (): Promise<void> => {
      const child = spawn(
        java,
        [
          '-Xms256m',
          '-Xmx512m',
          '-XX:+UseSerialGC',
          '-XX:TieredStopAtLevel=1',
          `-Dkafka.logs.dir=${dir}`,
          `-Dlog4j2.configurationFile=${join(dir, 'log4j2.properties')}`,
          '-cp',
          `${jars}/*`,
          'kafka.Kafka',
          join(dir, 'server.properties'),
        ],
        { cwd: dir, stdio: ['ignore', 'pipe', 'pipe'] },
      )
      children.set(nodeId, child)
      let output = ''
      const collect = (chunk: Buffer) => {
        output = (output + chunk.toString()).slice(-4_000)
      }
      child.stdout?.on('data', collect)
      child.stderr?.on('data', collect)
      const exited = new Promise<never>((_, reject) =>
        child.once('exit', (code, signal) =>
          reject(new Error(`Kafka node ${nodeId} exited (${code ?? signal}) before it was ready:\n${output}`)),
        ),
      )
      await Promise.race([listening(port.client), exited])
    }

    const signalAndWait = async (signal: NodeJS.Signals): Promise<void> => {
      const child = children.get(nodeId)
      if (!child || child.exitCode !== null || child.signalCode !== null) return
      const exited = new Promise<void>((resolve) => child.once('exit', () => resolve()))
      if (signal === 'SIGKILL') child.kill('SIGCONT')
      child.kill(signal)
      await exited
      children.delete(nodeId)
    }

    nodes.push({
      id: nodeId,
      address: `127.0.0.1:${port.client}`,
      crash: () => signalAndWait('SIGKILL'),
      start,
      pause: () => children.get(nodeId)?.kill('SIGSTOP'),
      resume: () => children.get(nodeId)?.kill('SIGCONT'),
      get running() {
        return children.has(nodeId)
      },
    })
  }

  try {
    // A quorum of controllers must be up before any of them reports ready, so the nodes start together.
    await Promise.all(nodes.map((node) => node.start()))
  } catch (err) {
    await Promise.all(nodes.map((node) => node.crash()))
    rmSync(root, { recursive: true, force: true })
    throw err
  }

  return {
    brokers: nodes.map((node) => node.address),
    nodes,
    async restart(index = 0) {
      const node = nodes[index]
      if (!node) throw new Error(`no node ${index}`)
      await node.crash()
      await node.start()
    },
    async stop() {
      await Promise.all(
        nodes.map(async (node) => {
          node.resume()
          await node.crash()
        }),
      )
      rmSync(root, { recursive: true, force: true })
    },
  }
}

/**
 * Resolves once the broker on `port` has joined its cluster: it answers a Kafka ApiVersions request over its client
 * listener (which it opens only after recovery and registration).
 */
async function listening(port: number): Promise<void> {
  const { connect } = await import('node:net')
  // ApiVersions v0: size, api key 18, version 0, correlation id 1, client id "herald".
  const clientId = Buffer.from('herald')
  const body = Buffer.alloc(10 + clientId.length)
  body.writeInt16BE(18, 0)
  body.writeInt16BE(0, 2)
  body.writeInt32BE(1, 4)
  body.writeInt16BE(clientId.length, 8)
  clientId.copy(body, 10)
  const request = Buffer.concat([Buffer.from([0, 0, 0, body.length]), body])
  for (;;) {
    const ok = await new Promise<boolean>((resolve) => {
      const socket = connect({ host: '127.0.0.1', port })
      const done = (result: boolean) => {
        socket.destroy()
        resolve(result)
      }
      socket.setTimeout(2_000, () => done(false))
      socket.once('error', () => done(false))
      socket.once('connect', () => socket.write(request))
      socket.once('data', (chunk) => done(chunk.length >= 10 && chunk.readInt16BE(8) === 0))
    })
    if (ok) return
    await new Promise((resolve) => setTimeout(resolve, 200))
  }
}
