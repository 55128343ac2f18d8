import { mkdtempSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { isHeraldError, uuidV7 } from '@herald/core'
import { createLatch, pollUntil as waitFor } from '@herald/testkit'
import Database from 'better-sqlite3'
import { afterEach, beforeEach, describe, expect, it } from 'vitest'
import { createSqliteTransport } from '../src/index.js'

describe('sqlite transport', () => {
  let dir: string
  beforeEach(() => {
    dir = mkdtempSync(join(tmpdir(), 'herald-sqlite-unit-'))
  })
  afterEach(() => rmSync(dir, { recursive: true, force: true }))

  it('startup-durability-guards: strict durability runs WAL with synchronous=FULL', async () => {
    const transport = createSqliteTransport({ path: join(dir, 'a.db') })
    expect(await transport.checkHealth()).toEqual({
      ok: true,
      details: { path: join(dir, 'a.db'), journalMode: 'wal', synchronous: 2 },
    })
    await transport.close()
    expect((await transport.checkHealth()).ok).toBe(false)
  })

  it('startup-durability-guards: strict durability refuses a database that cannot run WAL, naming the setting', () => {
    let error: unknown
    try {
      createSqliteTransport({ path: ':memory:' })
    } catch (err) {
      error = err
    }
    expect(isHeraldError(error, 'CONFIGURATION')).toBe(true)
    expect(String(error)).toMatch(/journal_mode is memory.*durability: 'relaxed'/)
    const relaxed = createSqliteTransport({ path: ':memory:', durability: 'relaxed' })
    return relaxed.close()
  })

  it('forged-stored-attempts: a row written around Herald with a negative or non-numeric count is tried maxAttempts times', async () => {
    const path = join(dir, 'forged.db')
    const transport = createSqliteTransport({ path, pollIntervalMs: 10 })
    const calls = new Map<string, number[]>()
    const sub = await transport.subscribe(
      {
        group: 'g',
        patterns: ['t.#'],
        retry: { maxAttempts: 3, backoff: { initialMs: 5, maxMs: 5, factor: 1, jitter: 0 } },
      },
      async (envelope, delivery) => {
        calls.set(envelope.id, [...(calls.get(envelope.id) ?? []), delivery.attempt])
        throw new Error('always fails')
      },
    )
    const raw = new Database(path)
    const insert = raw.prepare(
      `INSERT INTO herald_queue (group_name, message_id, topic, headers, body, visible_at, enqueued_at, attempts)
       VALUES ('g', ?, 't.x', '{}', x'7b7d', ?, ?, ?)`,
    )
    insert.run('negative', Date.now(), Date.now(), -20)
    insert.run('text', Date.now(), Date.now(), 'many')
    raw.close()
    await waitFor(async () => (await transport.listDeadLetters()).items.length === 2)
    expect(calls.get('negative')).toEqual([1, 2, 3])
    expect(calls.get('text')).toEqual([1, 2, 3])
    expect((await transport.getDeadLetter('negative'))?.attempts).toBe(3)
    await sub.close()
    await transport.close()
  })

  it('sqlite-text-body: a body another tool stored as TEXT reaches the handler as its UTF-8 bytes', async () => {
    const path = join(dir, 'text-body.db')
    const transport = createSqliteTransport({ path, pollIntervalMs: 10 })
    const bodies: unknown[] = []
    const sub = await transport.subscribe({ group: 'g', patterns: ['t.#'] }, async (envelope) => {
      bodies.push(envelope.body)
    })
    const raw = new Database(path)
    raw
      .prepare(
        `INSERT INTO herald_queue (group_name, message_id, topic, headers, body, visible_at, enqueued_at)
         VALUES ('g', 'text', 't.x', '{}', ?, ?, ?)`,
      )
      .run('{"note":"é"}', Date.now(), Date.now())
    raw.close()
    await waitFor(async () => bodies.length === 1)
    expect(bodies[0]).toBeInstanceOf(Uint8Array)
    expect(new TextDecoder('utf-8', { fatal: true }).decode(bodies[0] as Uint8Array)).toBe('{"note":"é"}')
    await sub.close()
    await transport.close()
  })

  it('routes by bindings another connection declared, and wakes on work published elsewhere', async () => {
    const path = join(dir, 'shared.db')
    const consumerSide = createSqliteTransport({ path, pollIntervalMs: 10 })
    const publisherSide = createSqliteTransport({ path })
    const got = createLatch()
    const ids: string[] = []
    await consumerSide.subscribe({ group: 'billing', patterns: ['order.#'] }, async (envelope) => {
      ids.push(envelope.id)
      got.open()
    })
    const id = uuidV7()
    await publisherSide.publish('order.created', [
      { id, headers: { type: 'order.created' }, body: new Uint8Array([123, 125]) },
    ])
    await got.wait
    expect(ids).toEqual([id])
    await consumerSide.close()
    expect(await publisherSide.listGroups()).toEqual([
      {
        group: 'billing',
        patterns: ['order.#'],
        depth: 0,
        deadLetters: 0,
        inFlight: 0,
        scheduled: 0,
        oldestDueAgeMs: 0,
        waitingOnKey: 0,
        heldKeys: 0,
      },
    ])
    await publisherSide.close()
  })

  it('schema-upgrade: a database made before keyed ordering gains its columns on open and keeps its queued rows', async () => {
    const path = join(dir, 'v1.db')
    // The queue table as schema version 1 made it, with one message waiting.
    const old = new Database(path)
    old.exec(`CREATE TABLE herald_queue (seq INTEGER PRIMARY KEY, group_name TEXT NOT NULL, message_id TEXT NOT NULL,
      topic TEXT NOT NULL, headers TEXT NOT NULL, body BLOB NOT NULL, visible_at INTEGER NOT NULL,
      attempts INTEGER NOT NULL DEFAULT 0, lease_token TEXT, enqueued_at INTEGER NOT NULL, first_failed_at INTEGER,
      last_error TEXT)`)
    old.exec(`CREATE TABLE herald_meta (key TEXT PRIMARY KEY, value INTEGER NOT NULL) WITHOUT ROWID;
      INSERT INTO herald_meta VALUES ('schema_version', 1)`)
    old
      .prepare(
        'INSERT INTO herald_queue (group_name, message_id, topic, headers, body, visible_at, enqueued_at) VALUES (?, ?, ?, ?, ?, ?, ?)',
      )
      .run('g', 'old-1', 't', '{"type":"x"}', Buffer.from('{}'), 0, 0)
    old.close()

    const transport = createSqliteTransport({ path })
    const seen: string[] = []
    const done = createLatch()
    await transport.subscribe({ group: 'g', patterns: ['t'] }, async (envelope) => {
      seen.push(envelope.id)
      if (seen.length === 3) done.open()
    })
    const keyed = (id: string) => ({ id, headers: { type: 'x', partitionkey: 'k' }, body: new Uint8Array() })
    await transport.publish('t', [keyed('new-1'), keyed('new-2')])
    await done.wait
    await transport.close()
    expect(seen).toEqual(['old-1', 'new-1', 'new-2'])
    const db = new Database(path, { readonly: true })
    expect(db.prepare("SELECT value FROM herald_meta WHERE key = 'schema_version'").get()).toEqual({ value: 2 })
    db.close()
  })

  it('rejects invalid options when built, naming the field', () => {
    expect(() => createSqliteTransport({ path: join(dir, 'b.db'), leaseMs: 0 })).toThrow(/"leaseMs"/)
  })
})
