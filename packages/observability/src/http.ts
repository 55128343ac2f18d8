import type { IncomingMessage, ServerResponse } from 'node:http'
import { isHealthCheck, type Transport } from '@herald/core'
import type { Registry } from 'prom-client'
import { redactSecrets } from './redact.js'

/**
 * A `node:http` request handler for `/metrics` (Prometheus text), `/healthz` (the process answers) and `/readyz`
 * (every transport's health check passes; 503 with the reports otherwise). Returns false for other paths, so it
 * can sit in front of an application's own routes.
 */
export function createObservabilityHandler(registry: Registry, transports: () => readonly Transport[]) {
  return async (req: IncomingMessage, res: ServerResponse): Promise<boolean> => {
    const path = (req.url ?? '/').split('?')[0]
    if (path === '/metrics') {
      const body = await registry.metrics()
      res.writeHead(200, { 'content-type': registry.contentType })
      res.end(body)
      return true
    }
    if (path === '/healthz') {
      res.writeHead(200, { 'content-type': 'application/json' })
      res.end('{"ok":true}')
      return true
    }
    if (path === '/readyz') {
      const reports = await Promise.all(
        transports().map(async (t) => ({
          transport: t.name,
          ...(isHealthCheck(t) ? await t.checkHealth() : { ok: true, details: { healthCheck: 'none' } }),
        })),
      )
      const ok = reports.every((r) => r.ok)
      res.writeHead(ok ? 200 : 503, { 'content-type': 'application/json' })
      res.end(redactSecrets(JSON.stringify({ ok, transports: reports })))
      return true
    }
    return false
  }
}
