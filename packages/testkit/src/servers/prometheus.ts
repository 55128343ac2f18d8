import { type ChildProcess, spawn } from 'node:child_process'
import { existsSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { freePort } from './free-port.js'

export interface PrometheusServer {
  readonly url: string
  /** Runs an instant PromQL query and returns its vector as (labels, value) pairs. */
  query(promql: string): Promise<{ labels: Record<string, string>; value: number }[]>
  stop(): Promise<void>
}

/**
 * Starts Debian's `prometheus` on a free loopback port in a temp dir, scraping `targets` (host:port, path
 * `/metrics`) every `scrapeIntervalMs`. Waits for its "ready" log line, never a sleep.
 */
export async function startPrometheus(options: {
  readonly targets: readonly string[]
  readonly scrapeIntervalMs?: number
}): Promise<PrometheusServer> {
  const bin = process.env.HERALD_PROMETHEUS ?? '/usr/bin/prometheus'
  if (!existsSync(bin))
    throw new Error('prometheus not found: apt-get install -y prometheus (or set HERALD_PROMETHEUS)')
  const dir = mkdtempSync(join(tmpdir(), 'herald-prometheus-'))
  const port = await freePort()
  const interval = `${options.scrapeIntervalMs ?? 500}ms`
  writeFileSync(
    join(dir, 'prometheus.yml'),
    [
      'global:',
      `  scrape_interval: ${interval}`,
      `  scrape_timeout: ${interval}`,
      'scrape_configs:',
      '  - job_name: herald',
      '    static_configs:',
      `      - targets: [${options.targets.map((t) => `'${t}'`).join(', ')}]`,
      '',
    ].join('\n'),
  )
  const child: ChildProcess = spawn(
    bin,
    [
      `--config.file=${join(dir, 'prometheus.yml')}`,
      `--storage.tsdb.path=${join(dir, 'data')}`,
      `--web.listen-address=127.0.0.1:${port}`,
    ],
    { cwd: dir, stdio: ['ignore', 'pipe', 'pipe'] },
  )
  let log = ''
  await new Promise<void>((resolve, reject) => {
    const onData = (chunk: Buffer) => {
      log = (log + chunk.toString()).slice(-20_000)
      if (log.includes('Server is ready to receive web requests')) resolve()
    }
    child.stdout?.on('data', onData)
    child.stderr?.on('data', onData)
    child.once('exit', (code) => reject(new Error(`prometheus exited with ${code} before it was ready:\n${log}`)))
  })
  const url = `http://127.0.0.1:${port}`
  return {
    url,
    async query(promql) {
      const response = await fetch(`${url}/api/v1/query?query=${encodeURIComponent(promql)}`)
      const body = (await response.json()) as {
        status: string
        error?: string
        data?: { result: { metric: Record<string, string>; value: [number, string] }[] }
      }
      if (body.status !== 'success') throw new Error(`PromQL ${promql} failed: ${body.error}`)
      return (body.data?.result ?? []).map((r) => ({ labels: r.metric, value: Number(r.value[1]) }))
    },
    async stop() {
      if (child.exitCode === null && child.signalCode === null) {
        const exited = new Promise<void>((resolve) => child.once('exit', () => resolve()))
        child.kill('SIGTERM')
        await exited
      }
      rmSync(dir, { recursive: true, force: true })
    },
  }
}
