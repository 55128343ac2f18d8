import { ConfigurationError } from '@herald/core'

/** The database does not give the durability Herald promises in `strict` mode. */
export function durabilityError(setting: string, actual: string, fix: string): ConfigurationError {
  return new ConfigurationError('durability', `SQLite ${setting} is ${actual}; ${fix}, or pass durability: 'relaxed'`)
}
