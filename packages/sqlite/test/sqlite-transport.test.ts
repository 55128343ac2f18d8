import { mkdtempSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { isHeraldError, uuidV7 } from '@herald/core'
import { createLatch } from '@herald/testkit'
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
      { group: 'billing', patterns: ['order.#'], depth: 0, deadLetters: 0, scheduled: 0, oldestDueAgeMs: 0 },
    ])
    await publisherSide.close()
  })

  it('rejects invalid options when built, naming the field', () => {
    expect(() => createSqliteTransport({ path: join(dir, 'b.db'), leaseMs: 0 })).toThrow(/"leaseMs"/)
  })
})
