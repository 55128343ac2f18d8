import { type ChildProcess, spawn } from 'node:child_process'
import { existsSync, mkdtempSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { freePort } from './free-port.js'

/** How the server persists: nothing, AOF fsynced every second, or AOF fsynced on every write. */
export type RedisProfile = 'volatile' | 'everysec' | 'always'

export interface RedisServer {
  /** `redis://127.0.0.1:<port>` */
  readonly url: string
  readonly port: number
  /** kill -9: whatever the profile did not persist is gone. */
  crash(): Promise<void>
  /** kill -9, then starts again on the same data directory and port (AOF replayed). */
  restart(): Promise<void>
  /** SIGTERM (Redis flushes and exits cleanly), then starts again on the same data and port. */
  gracefulRestart(): Promise<void>
  /** SIGSTOP / SIGCONT: the server stops answering without closing connections. */
  pause(): void
  resume(): void
  /** SIGTERM, then removes the data directory. */
  stop(): Promise<void>
}

const profiles: Record<RedisProfile, string[]> = {
  volatile: ['--appendonly', 'no'],
  everysec: ['--appendonly', 'yes', '--appendfsync', 'everysec'],
  always: ['--appendonly', 'yes', '--appendfsync', 'always'],
}

/** Starts a private `redis-server` (Debian's package) on a free loopback port in a temp dir. */
export async function startRedis(options: { readonly profile?: RedisProfile } = {}): Promise<RedisServer> {
  const bin = process.env.HERALD_REDIS_SERVER ?? '/usr/bin/redis-server'
  if (!existsSync(bin))
    throw new Error('redis-server not found: apt-get install -y redis-server (or set HERALD_REDIS_SERVER)')
  const dir = mkdtempSync(join(tmpdir(), 'herald-redis-'))
  const port = await freePort()
  const args = [
    '--port',
    String(port),
    '--bind',
    '127.0.0.1',
    '--dir',
    dir,
    '--save',
    '',
    '--daemonize',
    'no',
    ...profiles[options.profile ?? 'always'],
  ]
  let child: ChildProcess | undefined

  async function start(): Promise<void> {
    const proc = spawn(bin, args, { cwd: dir, stdio: ['ignore', 'pipe', 'pipe'] })
    child = proc
    let log = ''
    await new Promise<void>((resolve, reject) => {
      const onData = (chunk: Buffer) => {
        log += chunk.toString()
        if (log.includes('Ready to accept connections')) {
          proc.stdout?.off('data', onData)
          proc.stdout?.resume()
          resolve()
        }
      }
      proc.stdout?.on('data', onData)
      proc.stderr?.resume()
      proc.once('exit', (code) => reject(new Error(`redis-server exited with ${code} before it was ready:\n${log}`)))
    })
  }

  async function signalAndWait(signal: NodeJS.Signals): Promise<void> {
    const proc = child
    if (!proc || proc.exitCode !== null || proc.signalCode !== null) return
    const exited = new Promise<void>((resolve) => proc.once('exit', () => resolve()))
    if (signal === 'SIGKILL') proc.kill('SIGCONT')
    proc.kill(signal)
    await exited
    child = undefined
  }

  await start()
  return {
    url: `redis://127.0.0.1:${port}`,
    port,
    crash: () => signalAndWait('SIGKILL'),
    restart: async () => {
      await signalAndWait('SIGKILL')
      await start()
    },
    gracefulRestart: async () => {
      await signalAndWait('SIGTERM')
      await start()
    },
    pause: () => child?.kill('SIGSTOP'),
    resume: () => child?.kill('SIGCONT'),
    async stop() {
      child?.kill('SIGCONT')
      await signalAndWait('SIGTERM')
      rmSync(dir, { recursive: true, force: true })
    },
  }
}
