import { ConfigurationError, createInMemoryTransport, type Transport } from '@herald/core'
import { createSqliteTransport } from '@herald/sqlite'

export const defaultTransportUrl = 'sqlite:./herald.db'

/**
 * Opens the transport a URL names: `sqlite:./herald.db`, `sqlite:/abs/path.db` or `memory:`.
 * Read from `--transport`, else `HERALD_TRANSPORT`, else `sqlite:./herald.db`.
 */
export function openTransport(url: string): Transport {
  const colon = url.indexOf(':')
  const scheme = colon < 0 ? '' : url.slice(0, colon)
  const rest = url.slice(colon + 1)
  switch (scheme) {
    case 'sqlite': {
      const path = rest.startsWith('//') ? rest.slice(2) : rest
      if (path.length === 0) throw new ConfigurationError('transport', `"${url}" names no file; try sqlite:./herald.db`)
      return createSqliteTransport({ path })
    }
    case 'memory':
      return createInMemoryTransport()
    default:
      throw new ConfigurationError(
        'transport',
        `"${redactUrl(url)}" has an unknown scheme; use sqlite:./herald.db (other transports arrive with their packages)`,
      )
  }
}

/** The URL with any password replaced, for messages and logs. */
export function redactUrl(url: string): string {
  return url.replace(/\/\/([^:/@]+):([^@]+)@/, '//$1:***@')
}
