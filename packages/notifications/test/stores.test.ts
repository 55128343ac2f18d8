import { mkdtempSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { afterAll, describe, expect, it } from 'vitest'
import { createInMemoryNotificationStore, type NotificationStore } from '../src/index.js'
import { createSqliteNotificationStore } from '../src/sqlite.js'
import { base, describeNotificationStore, sent } from './store-cases.js'

const dir = mkdtempSync(join(tmpdir(), 'herald-notifications-'))
afterAll(() => rmSync(dir, { recursive: true, force: true }))

const stores: [string, () => NotificationStore][] = [
  ['in-memory', createInMemoryNotificationStore],
  ['sqlite', () => createSqliteNotificationStore({ path: join(dir, `${crypto.randomUUID()}.db`) })],
]

for (const [name, open] of stores) describeNotificationStore(name, open)

describe('notification store on sqlite, reopened', () => {
  it('store: records, preferences and templates survive a restart', async () => {
    const path = join(dir, 'reopen.db')
    const first = createSqliteNotificationStore({ path })
    await first.create(base('a'), 1)
    await first.settle('a', 1, sent, 2)
    await first.setPreference({ user: 'u1', channel: 'push', category: '*', enabled: false })
    await first.templates.save(
      { name: 'w', channel: 'sms', locale: 'en', subject: undefined, body: 'x', format: 'text' },
      1,
    )
    await first.close()
    const second = createSqliteNotificationStore({ path })
    expect(await second.get('a')).toMatchObject({ status: 'sent', providerId: 'p1', data: { n: 1 } })
    expect(await second.preferences('u1')).toHaveLength(1)
    expect(await second.templates.get('w', 'sms', 'en')).toMatchObject({ body: 'x', version: 1 })
    await second.close()
  })
})
