import { type ChildProcess, execFile, spawn } from 'node:child_process'
import { existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { promisify } from 'node:util'
import { freePort } from './free-port.js'

const run = promisify(execFile)

export interface RabbitMqServer {
  /** `amqp://guest:guest@127.0.0.1:<port>` */
  readonly url: string
  /** `http://guest:guest@127.0.0.1:<port>`: the management HTTP API, when started with `management: true`. */
  readonly managementUrl: string | undefined
  readonly port: number
  /** kill -9 of the Erlang VM: whatever the broker had not written to disk is gone. */
  crash(): Promise<void>
  /** kill -9, then starts again on the same data directory and ports. */
  restart(): Promise<void>
  /** `rabbitmqctl shutdown` (clean), then starts again on the same data and ports. */
  gracefulRestart(): Promise<void>
  /** SIGSTOP / SIGCONT of the Erlang VM: the broker stops answering without closing connections. */
  pause(): void
  resume(): void
  /** Closes every client connection from the broker's side. */
  closeAllConnections(): Promise<void>
  /** Raises (true) or clears (false) a memory alarm: the broker blocks publishing connections. */
  memoryAlarm(on: boolean): Promise<void>
  /** Runs `rabbitmqctl <args>` against this node and returns its output. */
  ctl(...args: string[]): Promise<string>
  /** Stops the broker and its epmd, then removes the data directory. */
  stop(): Promise<void>
}

/** Debian's package puts the broker's scripts here; HERALD_RABBITMQ_BIN overrides. */
const libDir = process.env.HERALD_RABBITMQ_BIN ?? '/usr/lib/rabbitmq/bin'

/**
 * Starts a private `rabbitmq-server` (Debian's package) on free loopback ports in a temp dir, with its own epmd
 * and Erlang cookie. Takes about 5 s: start it once per test file and give each test its own names.
 */
export async function startRabbitMq(options: { readonly management?: boolean } = {}): Promise<RabbitMqServer> {
  const server = join(libDir, 'rabbitmq-server')
  if (!existsSync(server))
    throw new Error('rabbitmq-server not found: apt-get install -y rabbitmq-server (or set HERALD_RABBITMQ_BIN)')
  const dir = mkdtempSync(join(tmpdir(), 'herald-rabbitmq-'))
  const [port, distPort, epmdPort] = [await freePort(), await freePort(), await freePort()]
  const node = `herald-${port}@localhost`
  mkdirSync(join(dir, 'log'))
  // The management plugin (Debian's package ships it) is the only way a client can list queues and bindings.
  const managementPort = options.management ? await freePort() : undefined
  writeFileSync(join(dir, 'enabled_plugins'), managementPort === undefined ? '[].\n' : '[rabbitmq_management].\n')
  // The broker's own defaults suit a test box except the disk alarm (50 MB free) and the 1-minute boot wait.
  const management =
    managementPort === undefined
      ? ''
      : `management.tcp.port = ${managementPort}\nmanagement.tcp.ip = 127.0.0.1\ncollect_statistics_interval = 100\n`
  writeFileSync(join(dir, 'rabbitmq.conf'), `disk_free_limit.absolute = 1MB\nloopback_users = none\n${management}`)
  const env: NodeJS.ProcessEnv = {
    ...process.env,
    HOME: dir,
    RABBITMQ_MNESIA_BASE: join(dir, 'mnesia'),
    RABBITMQ_LOG_BASE: join(dir, 'log'),
    RABBITMQ_ENABLED_PLUGINS_FILE: join(dir, 'enabled_plugins'),
    RABBITMQ_CONFIG_FILE: join(dir, 'rabbitmq.conf'),
    RABBITMQ_PID_FILE: join(dir, 'rabbit.pid'),
    RABBITMQ_NODENAME: node,
    RABBITMQ_NODE_PORT: String(port),
    RABBITMQ_DIST_PORT: String(distPort),
    RABBITMQ_NODE_IP_ADDRESS: '127.0.0.1',
    ERL_EPMD_ADDRESS: '127.0.0.1',
    ERL_EPMD_PORT: String(epmdPort),
    RABBITMQ_SERVER_ADDITIONAL_ERL_ARGS: '-kernel inet_dist_use_interface {127,0,0,1}',
  }
  let child: ChildProcess | undefined
  let log = ''

  async function ctl(...args: string[]): Promise<string> {
    const { stdout } = await run(join(libDir, 'rabbitmqctl'), ['-n', node, ...args], { env, timeout: 120_000 })
    return stdout
  }

  function vmPid(): number | undefined {
    try {
      return Number(readFileSync(env.RABBITMQ_PID_FILE as string, 'utf8').trim()) || undefined
    } catch {
      return undefined
    }
  }

  async function start(): Promise<void> {
    rmSync(env.RABBITMQ_PID_FILE as string, { force: true })
    const proc = spawn(server, [], { cwd: dir, env, stdio: ['ignore', 'pipe', 'pipe'] })
    child = proc
    log = ''
    const collect = (chunk: Buffer) => {
      log = (log + chunk.toString()).slice(-20_000)
    }
    proc.stdout?.on('data', collect)
    proc.stderr?.on('data', collect)
    const exited = new Promise<never>((_, reject) =>
      proc.once('exit', (code) =>
        reject(new Error(`rabbitmq-server exited with ${code} before it was ready:\n${log}`)),
      ),
    )
    exited.catch(() => {})
    // `wait` blocks until the node has booted (or fails once the pid is gone); the pid file appears first.
    const pidFile = env.RABBITMQ_PID_FILE as string
    const ready = (async () => {
      const deadline = Date.now() + 60_000
      while (!existsSync(pidFile) && Date.now() < deadline) await new Promise((r) => setTimeout(r, 50))
      await run(join(libDir, 'rabbitmqctl'), ['-n', node, 'wait', pidFile, '--timeout', '120'], {
        env,
        timeout: 130_000,
      })
    })()
    await Promise.race([ready, exited])
  }

  async function vmExit(signal: NodeJS.Signals): Promise<void> {
    const proc = child
    const pid = vmPid()
    if (!proc || proc.exitCode !== null || proc.signalCode !== null) return
    const exited = new Promise<void>((resolve) => proc.once('exit', () => resolve()))
    if (pid !== undefined) {
      process.kill(pid, 'SIGCONT')
      process.kill(pid, signal)
    } else proc.kill(signal)
    await exited
    child = undefined
  }

  async function graceful(): Promise<void> {
    const proc = child
    if (!proc || proc.exitCode !== null || proc.signalCode !== null) return
    const exited = new Promise<void>((resolve) => proc.once('exit', () => resolve()))
    const pid = vmPid()
    if (pid !== undefined) process.kill(pid, 'SIGCONT')
    await ctl('shutdown').catch(() => vmExit('SIGKILL'))
    await exited
    child = undefined
  }

  // Lifecycle operations run one after another: a restart asked for while another is still booting the broker
  // waits for it, rather than killing a half-started node.
  let lifecycle: Promise<unknown> = Promise.resolve()
  function serial<T>(operation: () => Promise<T>): Promise<T> {
    const next = lifecycle.then(operation, operation)
    lifecycle = next.catch(() => {})
    return next
  }

  await start()
  return {
    url: `amqp://guest:guest@127.0.0.1:${port}`,
    managementUrl: managementPort === undefined ? undefined : `http://guest:guest@127.0.0.1:${managementPort}`,
    port,
    crash: () => serial(() => vmExit('SIGKILL')),
    restart: () =>
      serial(async () => {
        await vmExit('SIGKILL')
        await start()
      }),
    gracefulRestart: () =>
      serial(async () => {
        await graceful()
        await start()
      }),
    pause: () => {
      const pid = vmPid()
      if (pid !== undefined) process.kill(pid, 'SIGSTOP')
    },
    resume: () => {
      const pid = vmPid()
      if (pid !== undefined) process.kill(pid, 'SIGCONT')
    },
    closeAllConnections: async () => {
      await ctl('close_all_connections', 'closed by the test harness')
    },
    memoryAlarm: async (on) => {
      await ctl('set_vm_memory_high_watermark', on ? '0.000001' : '0.4')
    },
    ctl,
    stop: () =>
      serial(async () => {
        await graceful()
        // epmd outlives the broker; this one listens on our private port only.
        await run('epmd', ['-port', String(epmdPort), '-kill'], { env }).catch(() => {})
        rmSync(dir, { recursive: true, force: true })
      }),
  }
}
