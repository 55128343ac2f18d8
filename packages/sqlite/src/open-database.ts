import Database from 'better-sqlite3'
import { durabilityError } from './errors.js'
import { addedColumns, keyIndexSql, schemaSql } from './schema.js'

export type SqliteDurability = 'strict' | 'relaxed'

export interface OpenedDatabase {
  readonly db: Database.Database
  readonly settings: { readonly journalMode: string; readonly synchronous: number }
}

/**
 * Opens the database with WAL (readers never block the writer) and, in `strict` durability, `synchronous=FULL`:
 * better-sqlite3 builds SQLite so that WAL mode defaults to NORMAL, which can lose commits on power loss.
 */
export function openDatabase(path: string, durability: SqliteDurability, busyTimeoutMs: number): OpenedDatabase {
  const db = new Database(path)
  try {
    db.pragma(`busy_timeout = ${busyTimeoutMs}`)
    const journalMode = String(db.pragma('journal_mode = WAL', { simple: true })).toLowerCase()
    db.pragma(`synchronous = ${durability === 'strict' ? 'FULL' : 'NORMAL'}`)
    const synchronous = Number(db.pragma('synchronous', { simple: true }))
    if (durability === 'strict') {
      if (journalMode !== 'wal') throw durabilityError('journal_mode', journalMode, 'use a file on a local disk')
      if (synchronous < 2) throw durabilityError('synchronous', String(synchronous), 'set PRAGMA synchronous=FULL')
    }
    db.exec(schemaSql)
    addMissingColumns(db)
    db.exec(keyIndexSql)
    return { db, settings: { journalMode, synchronous } }
  } catch (err) {
    db.close()
    throw err
  }
}

/** Brings a database made by an earlier version up to date: `CREATE TABLE IF NOT EXISTS` keeps old tables as they were. */
function addMissingColumns(db: Database.Database): void {
  db.transaction(() => {
    for (const [table, column, definition] of addedColumns) {
      const columns = db.prepare<[], { name: string }>(`SELECT name FROM pragma_table_info('${table}')`).all()
      if (!columns.some((c) => c.name === column)) db.exec(`ALTER TABLE ${table} ADD COLUMN ${column} ${definition}`)
    }
  }).immediate()
}
