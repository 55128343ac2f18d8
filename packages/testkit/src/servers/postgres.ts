import { type ChildProcess, execFileSync, spawn } from 'node:child_process'
import { chownSync, existsSync, mkdtempSync, readdirSync, rmSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import pg from 'pg'
import { freePort } from './free-port.js'

export interface PostgresServer {
  /** `postgres://herald@127.0.0.1:<port>/herald` */
  readonly url: string
  readonly port: number
  /** The postmaster's PID while it runs. */
  readonly pid: () => number | undefined
  /** Immediate shutdown (`pg_ctl stop -m immediate`): no checkpoint, crash recovery at the next start. */
  crash(): Promise<void>
  /** Starts the server again on the same data directory and port. */
  restart(): Promise<void>
  /** Terminates every client backend (all connections drop, the server stays up). Returns how many. */
  terminateConnections(filter?: { applicationName?: string }): Promise<number>
  /** Smart shutdown, then removes the data directory. */
  stop(): Promise<void>
}

export interface StartPostgresOptions {
  /** Extra `-c name=value` settings. */
  readonly settings?: Readonly<Record<string, string>>
}

/** Debian installs the server binaries under /usr/lib/postgresql/<major>/bin; HERALD_PG_BIN overrides. */
function findBinDir(): string {
  const fromEnv = process.env.HERALD_PG_BIN
  if (fromEnv) return fromEnv
  const root = '/usr/lib/postgresql'
  const majors = existsSync(root)
    ? readdirSync(root)
        .filter((v) => existsSync(join(root, v, 'bin', 'postgres')))
        .sort((a, b) => Number(b) - Number(a))
    : []
  if (majors[0] === undefined) {
    throw new Error('PostgreSQL server binaries not found: apt-get install -y postgresql (or set HERALD_PG_BIN)')
  }
  return join(root, majors[0], 'bin')
}

/** PostgreSQL refuses to run as root: as root, run it as the `postgres` user the Debian package creates. */
function serverUser(): { uid: number; gid: number } | undefined {
  if (process.getuid?.() !== 0) return undefined
  const uid = Number(execFileSync('id', ['-u', 'postgres'], { encoding: 'utf8' }).trim())
  const gid = Number(execFileSync('id', ['-g', 'postgres'], { encoding: 'utf8' }).trim())
  return { uid, gid }
}

/**
 * Starts a private PostgreSQL server for tests: `initdb` into a temp dir, the postmaster as a child process on a
 * free loopback port, with controls to crash it, restart it on the same data, and drop every connection.
 */
export async function startPostgres(options: StartPostgresOptions = {}): Promise<PostgresServer> {
  const bin = findBinDir()
  const user = serverUser()
  const dir = mkdtempSync(join(tmpdir(), 'herald-pg-'))
  const dataDir = join(dir, 'data')
  if (user) chownSync(dir, user.uid, user.gid)
  const asUser = user ? { uid: user.uid, gid: user.gid } : {}
  execFileSync(
    join(bin, 'initdb'),
    ['-D', dataDir, '-U', 'herald', '--auth=trust', '-E', 'UTF8', '--locale=C', '--no-sync'],
    { ...asUser, stdio: 'pipe', cwd: dir },
  )
  const port = await freePort()
  const settings: Record<string, string> = {
    listen_addresses: '127.0.0.1',
    unix_socket_directories: dir,
    max_connections: '200',
    shared_buffers: '64MB',
    synchronous_commit: 'on',
    fsync: 'on',
    ...options.settings,
  }
  writeFileSync(
    join(dataDir, 'postgresql.auto.conf'),
    Object.entries(settings)
      .map(([k, v]) => `${k} = '${v}'`)
      .join('\n'),
  )
  const url = `postgres://herald@127.0.0.1:${port}/postgres`
  let child: ChildProcess | undefined

  async function start(): Promise<void> {
    const proc = spawn(join(bin, 'postgres'), ['-D', dataDir, '-p', String(port)], {
      ...asUser,
      cwd: dir,
      stdio: ['ignore', 'pipe', 'pipe'],
    })
    child = proc
    let log = ''
    await new Promise<void>((resolve, reject) => {
      const onData = (chunk: Buffer) => {
        log += chunk.toString()
        if (log.includes('database system is ready to accept connections')) {
          proc.stderr?.off('data', onData)
          proc.stderr?.resume()
          resolve()
        }
      }
      proc.stderr?.on('data', onData)
      proc.stdout?.resume()
      proc.once('exit', (code) => reject(new Error(`postgres exited with ${code} before it was ready:\n${log}`)))
    })
    await exec('CREATE DATABASE herald').catch((err: { code?: string }) => {
      if (err.code !== '42P04') throw err // already exists (a restart)
    })
  }

  async function exec<R extends pg.QueryResultRow>(sql: string, params: unknown[] = []): Promise<pg.QueryResult<R>> {
    const client = new pg.Client({ connectionString: url })
    await client.connect()
    try {
      return await client.query<R>(sql, params)
    } finally {
      await client.end()
    }
  }

  async function signalAndWait(signal: NodeJS.Signals): Promise<void> {
    const proc = child
    if (!proc || proc.exitCode !== null || proc.signalCode !== null) return
    const exited = new Promise<void>((resolve) => proc.once('exit', () => resolve()))
    proc.kill(signal)
    await exited
    child = undefined
  }

  await start()
  return {
    url: url.replace(/\/postgres$/, '/herald'),
    port,
    pid: () => child?.pid,
    crash: () => signalAndWait('SIGQUIT'),
    restart: async () => {
      await signalAndWait('SIGQUIT')
      await start()
    },
    async terminateConnections(filter = {}) {
      const result = await exec<{ n: string }>(
        `SELECT count(pg_terminate_backend(pid)) AS n FROM pg_stat_activity
         WHERE backend_type = 'client backend' AND pid <> pg_backend_pid()
           AND ($1::text IS NULL OR application_name = $1)`,
        [filter.applicationName ?? null],
      )
      return Number(result.rows[0]?.n ?? 0)
    },
    async stop() {
      await signalAndWait('SIGINT') // fast shutdown: disconnects clients, checkpoints
      rmSync(dir, { recursive: true, force: true })
    },
  }
}
