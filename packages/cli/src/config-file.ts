import { readFileSync } from 'node:fs'
import { ConfigurationError } from '@herald/core'
import { parse as parseYaml } from 'yaml'
import { z } from 'zod'

/**
 * `herald.config.yaml` (or `.yml`, `.json`): which transport a process uses, in one file that services, the CLI
 * (`-t herald.config.yaml`) and the console read alike.
 *
 * ```yaml
 * type: hybrid
 * local_only: [cache.*, ui.#]
 * local: { type: memory }
 * remote: { type: kafka, brokers: [127.0.0.1:9092], prefix: reading }
 * consumer: { maxInFlight: 50, retry: { maxAttempts: 8 } }
 * ```
 */
const name = z.string().min(1)
const sqlite = z.strictObject({ type: z.literal('sqlite'), path: name })
const memory = z.strictObject({ type: z.literal('memory') })
const postgres = z.strictObject({ type: z.literal('postgres'), url: z.url(), schema: name.optional() })
const redis = z.strictObject({ type: z.literal('redis'), url: z.url(), prefix: name.optional() })
const rabbitmq = z.strictObject({
  type: z.literal('rabbitmq'),
  url: z.url(),
  exchange: name.optional(),
  namespace: name.optional(),
  management: z.url().optional(),
})
const kafka = z.strictObject({
  type: z.literal('kafka'),
  brokers: z
    .array(z.string().regex(/^[^\s:,]+:\d{1,5}$/, 'a broker is host:port'))
    .min(1, 'name at least one broker (host:port)'),
  prefix: name.optional(),
})
const single = z.discriminatedUnion('type', [memory, sqlite, postgres, redis, rabbitmq, kafka])
const hybrid = z.strictObject({
  type: z.literal('hybrid'),
  local_only: z.array(name).min(1, 'list the topic patterns that stay local'),
  local: single,
  remote: single,
})
const consumer = z
  .strictObject({
    maxInFlight: z.int().positive().optional(),
    shutdownTimeoutMs: z.int().nonnegative().optional(),
    retry: z
      .strictObject({
        maxAttempts: z.int().positive().optional(),
        backoff: z
          .strictObject({
            initialMs: z.number().nonnegative().optional(),
            factor: z.number().min(1).optional(),
            maxMs: z.number().nonnegative().optional(),
            jitter: z.number().min(0).max(1).optional(),
          })
          .optional(),
      })
      .optional(),
  })
  .optional()

const configSchema = z.discriminatedUnion('type', [
  memory.extend({ consumer }),
  sqlite.extend({ consumer }),
  postgres.extend({ consumer }),
  redis.extend({ consumer }),
  rabbitmq.extend({ consumer }),
  kafka.extend({ consumer }),
  hybrid.extend({ consumer }),
])

export type SingleTransportConfig = z.infer<typeof single>
export type HeraldConfig = z.infer<typeof configSchema>

/** True for a `--transport` value that names a configuration file rather than a URL. */
export function isConfigFile(value: string): boolean {
  return /\.(ya?ml|json)$/i.test(value) && !/^[a-z]+:/i.test(value)
}

/** Every problem in one error, each naming its key: `remote.brokers.0: a broker is host:port`. */
function describe(issues: readonly z.core.$ZodIssue[]): string {
  return issues
    .map((issue) => {
      const key = issue.path.length === 0 ? '(top level)' : issue.path.join('.')
      return `${key}: ${issue.message}`
    })
    .join('; ')
}

/** Reads and validates a configuration file; a bad one is a `ConfigurationError` naming the file and each key. */
export function parseConfig(text: string, file: string): HeraldConfig {
  let raw: unknown
  try {
    raw = /\.json$/i.test(file) ? JSON.parse(text) : parseYaml(text)
  } catch (err) {
    throw new ConfigurationError(
      'config',
      `${file} is not valid ${/\.json$/i.test(file) ? 'JSON' : 'YAML'}: ${String(err)}`,
    )
  }
  const parsed = configSchema.safeParse(raw)
  if (!parsed.success) throw new ConfigurationError('config', `${file}: ${describe(parsed.error.issues)}`)
  return parsed.data
}

export function readConfigFile(file: string): HeraldConfig {
  let text: string
  try {
    text = readFileSync(file, 'utf8')
  } catch (err) {
    throw new ConfigurationError('config', `cannot read ${file}: ${String(err)}`)
  }
  return parseConfig(text, file)
}

/** The transport URL of one transport's configuration (the CLI's URL forms, docs/configuration.md). */
export function urlOf(config: SingleTransportConfig): string {
  const query = (params: Record<string, string | undefined>) => {
    const search = new URLSearchParams()
    for (const [k, v] of Object.entries(params)) if (v !== undefined) search.set(k, v)
    const text = search.toString()
    return text === '' ? '' : `?${text}`
  }
  switch (config.type) {
    case 'memory':
      return 'memory:'
    case 'sqlite':
      return `sqlite:${config.path}`
    case 'postgres': {
      const url = new URL(config.url)
      if (config.schema !== undefined) url.searchParams.set('schema', config.schema)
      return url.toString()
    }
    case 'redis': {
      const url = new URL(config.url)
      if (config.prefix !== undefined) url.searchParams.set('prefix', config.prefix)
      return url.toString()
    }
    case 'rabbitmq': {
      const url = new URL(config.url)
      for (const [k, v] of Object.entries({
        exchange: config.exchange,
        namespace: config.namespace,
        management: config.management,
      }))
        if (v !== undefined) url.searchParams.set(k, v)
      return url.toString()
    }
    case 'kafka':
      return `kafka://${config.brokers.join(',')}${query({ prefix: config.prefix })}`
  }
}
