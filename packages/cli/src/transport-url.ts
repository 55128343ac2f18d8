import {
  ConfigurationError,
  createHybridTransport,
  createInMemoryEventStore,
  createInMemoryTransport,
  type EventStore,
  type Transport,
} from '@herald/core'
import { createKafkaTransport } from '@herald/kafka'
import type { NotificationStore } from '@herald/notifications'
import { createPostgresNotificationStore } from '@herald/notifications/postgres'
import { createSqliteNotificationStore } from '@herald/notifications/sqlite'
import { createPostgresEventStore, createPostgresTransport } from '@herald/postgres'
import { createRabbitMqTransport } from '@herald/rabbitmq'
import { createRedisTransport } from '@herald/redis'
import { createSqliteEventStore, createSqliteTransport } from '@herald/sqlite'
import { isConfigFile, readConfigFile, urlOf } from './config-file.js'

export const defaultTransportUrl = 'sqlite:./herald.db'

type Target =
  | { readonly kind: 'sqlite'; readonly path: string }
  | { readonly kind: 'postgres'; readonly connectionString: string; readonly schema?: string }
  | { readonly kind: 'redis'; readonly url: string; readonly prefix?: string }
  | {
      readonly kind: 'rabbitmq'
      readonly url: string
      readonly exchange?: string
      readonly namespace?: string
      readonly managementUrl?: string
    }
  | { readonly kind: 'kafka'; readonly brokers: readonly string[]; readonly prefix?: string }
  | { readonly kind: 'memory' }

/** Reads a URL: `sqlite:./herald.db`, `postgres://user@host/db?schema=herald` or `memory:`; or a config file's. */
function parseUrl(value: string): Target {
  let url = value
  if (isConfigFile(value)) {
    const config = readConfigFile(value)
    // A hybrid's stores (events, notifications) are its local half's.
    url = urlOf(config.type === 'hybrid' ? config.local : config)
  }
  const colon = url.indexOf(':')
  const scheme = colon < 0 ? '' : url.slice(0, colon)
  const rest = url.slice(colon + 1)
  switch (scheme) {
    case 'sqlite': {
      const path = rest.startsWith('//') ? rest.slice(2) : rest
      if (path.length === 0) throw new ConfigurationError('transport', `"${url}" names no file; try sqlite:./herald.db`)
      return { kind: 'sqlite', path }
    }
    case 'postgres':
    case 'postgresql': {
      // `schema` is Herald's, not libpq's: take it off before the URL reaches pg.
      const parsed = new URL(url)
      const schema = parsed.searchParams.get('schema') ?? undefined
      parsed.searchParams.delete('schema')
      return { kind: 'postgres', connectionString: parsed.toString(), ...(schema === undefined ? {} : { schema }) }
    }
    case 'redis': {
      // `prefix` is Herald's: take it off before the URL reaches ioredis.
      const parsed = new URL(url)
      const prefix = parsed.searchParams.get('prefix') ?? undefined
      parsed.searchParams.delete('prefix')
      return { kind: 'redis', url: parsed.toString(), ...(prefix === undefined ? {} : { prefix }) }
    }
    case 'amqp':
    case 'amqps': {
      // `exchange`, `namespace` and `management` are Herald's: take them off before the URL reaches amqplib.
      const parsed = new URL(url)
      const exchange = parsed.searchParams.get('exchange') ?? undefined
      const namespace = parsed.searchParams.get('namespace') ?? undefined
      const managementUrl = parsed.searchParams.get('management') ?? undefined
      for (const name of ['exchange', 'namespace', 'management']) parsed.searchParams.delete(name)
      return {
        kind: 'rabbitmq',
        url: parsed.toString(),
        ...(exchange === undefined ? {} : { exchange }),
        ...(namespace === undefined ? {} : { namespace }),
        ...(managementUrl === undefined ? {} : { managementUrl }),
      }
    }
    case 'kafka': {
      // `kafka://host:9092,host2:9092?prefix=herald`: several brokers, so not a URL that `URL` can read.
      const [hosts = '', query = ''] = rest.replace(/^\/\//, '').split('?', 2)
      const brokers = hosts.split(',').filter((b) => b.length > 0)
      if (brokers.length === 0 || !brokers.every((b) => /^[^\s:@/]+:\d{1,5}$/.test(b))) {
        // Not echoed: a malformed URL may carry a credential.
        throw new ConfigurationError(
          'transport',
          'a kafka:// URL lists brokers as host:port, comma-separated: kafka://127.0.0.1:9092',
        )
      }
      const prefix = new URLSearchParams(query).get('prefix') ?? undefined
      return { kind: 'kafka', brokers, ...(prefix === undefined ? {} : { prefix }) }
    }
    case 'memory':
      return { kind: 'memory' }
    default:
      throw new ConfigurationError(
        'transport',
        `"${redactUrl(url)}" has an unknown scheme; use sqlite:./herald.db, postgres://user@host/db, redis://host:6379, amqp://user:pass@host:5672, kafka://host:9092 or memory:`,
      )
  }
}

/**
 * Opens the transport a URL names: `sqlite:./herald.db`, `postgres://…` (`?schema=` picks Herald's schema),
 * `redis://…` (`?prefix=` picks Herald's key prefix), `amqp://…` (`?exchange=`, `?namespace=`,
 * `?management=http://user:pass@host:15672` for the broker's management API), `kafka://host:9092,host2:9092`
 * (`?prefix=` picks Herald's topic and group prefix) or `memory:`. Read from `--transport`,
 * else `HERALD_TRANSPORT`, else `sqlite:./herald.db`.
 */
export async function openTransport(url: string): Promise<Transport> {
  if (isConfigFile(url)) {
    const config = readConfigFile(url)
    if (config.type !== 'hybrid') return openTransport(urlOf(config))
    const local = await openTransport(urlOf(config.local))
    const remote = await openTransport(urlOf(config.remote)).catch(async (err: unknown) => {
      await local.close()
      throw err
    })
    return createHybridTransport({ local, remote, localOnly: config.local_only })
  }
  const target = parseUrl(url)
  switch (target.kind) {
    case 'sqlite':
      return createSqliteTransport({ path: target.path })
    case 'postgres':
      return createPostgresTransport(target)
    case 'redis':
      return createRedisTransport(target)
    case 'rabbitmq':
      return createRabbitMqTransport(target)
    case 'kafka':
      return createKafkaTransport(target)
    case 'memory':
      return createInMemoryTransport()
  }
}

/** Opens the event store at the same place as the transport of that URL. */
export async function openEventStore(url: string): Promise<EventStore> {
  const target = parseUrl(url)
  switch (target.kind) {
    case 'sqlite':
      return createSqliteEventStore({ path: target.path })
    case 'postgres':
      return createPostgresEventStore(target)
    case 'redis':
    case 'rabbitmq':
    case 'kafka':
      throw new ConfigurationError(
        'transport',
        `${{ redis: 'Redis', rabbitmq: 'RabbitMQ', kafka: 'Kafka' }[target.kind]} keeps no event store; point --transport at sqlite: or postgres:`,
      )
    case 'memory':
      return createInMemoryEventStore()
  }
}

/** Notification records live where the transport does: the same SQLite file, the same PostgreSQL schema. */
export async function openNotificationStore(url: string): Promise<NotificationStore> {
  const target = parseUrl(url)
  switch (target.kind) {
    case 'sqlite':
      return createSqliteNotificationStore({ path: target.path })
    case 'postgres': {
      const pg = (await import('pg')).default
      const pool = new pg.Pool({ connectionString: target.connectionString, max: 2 })
      const store = await createPostgresNotificationStore({
        pool,
        ...(target.schema === undefined ? {} : { schema: target.schema }),
      })
      return { ...store, close: async () => pool.end() }
    }
    default:
      throw new ConfigurationError(
        'transport',
        `notification records live in SQLite or PostgreSQL; point --transport at sqlite: or postgres:`,
      )
  }
}

/** The URL with any password replaced, for messages and logs. */
export function redactUrl(url: string): string {
  return url.replace(/\/\/([^:/@]+):([^@]+)@/, '//$1:***@')
}
