import { describe, expect, it } from 'vitest'
import { createInMemoryNotificationStore, createTemplates, localeChain, TemplateError } from '../src/index.js'

const fresh = () => createTemplates({ store: createInMemoryNotificationStore().templates, refreshMs: 0 })

describe('templates', () => {
  it('templates: HTML bodies escape variables unless written triple-braced', async () => {
    const templates = fresh()
    await templates.save({
      name: 'welcome',
      channel: 'email',
      locale: 'en',
      subject: 'Hi {{name}}',
      body: '<p>{{name}}</p>{{{footer}}}',
    })
    const out = await templates.render('welcome', 'email', 'en', { name: '<script>x</script>', footer: '<b>ok</b>' })
    expect(out.body).toBe('<p>&lt;script&gt;x&lt;/script&gt;</p><b>ok</b>')
    expect(out.subject).toBe('Hi <script>x</script>')
    expect(out.format).toBe('html')
  })

  it('templates: text bodies (SMS) are not escaped', async () => {
    const templates = fresh()
    await templates.save({ name: 'code', channel: 'sms', locale: 'en', body: 'Code {{code}} & go' })
    expect((await templates.render('code', 'sms', 'en', { code: '<1>' })).body).toBe('Code <1> & go')
  })

  it('templates: conditions and loops, as the seed asks', async () => {
    const templates = fresh()
    await templates.save({
      name: 'order',
      channel: 'in_app',
      locale: 'en',
      body: '{{#each items}}{{name}} x{{qty}};{{/each}}{{#if coupon}} coupon {{coupon}}{{else}} no coupon{{/if}}',
    })
    const out = await templates.render('order', 'in_app', 'en', {
      items: [
        { name: 'tea', qty: 2 },
        { name: 'bun', qty: 1 },
      ],
    })
    expect(out.body).toBe('tea x2;bun x1; no coupon')
  })

  it('templates: a missing variable is an error naming it, never an empty string', async () => {
    const templates = fresh()
    await templates.save({ name: 'topup', channel: 'sms', locale: 'en', body: 'Wallet +{{amount}} ({{currency}})' })
    await expect(templates.render('topup', 'sms', 'en', { amount: 5 })).rejects.toThrow(
      /template "topup" \(sms, en, v1\) needs variable "currency" \(line 1, column 23\)/,
    )
  })

  it('templates: a template is checked when saved (syntax, unknown helpers, its example)', async () => {
    const templates = fresh()
    await expect(templates.save({ name: 'a', channel: 'sms', locale: 'en', body: 'Hi {{#if x}}' })).rejects.toThrow(
      TemplateError,
    )
    await expect(templates.save({ name: 'b', channel: 'sms', locale: 'en', body: '{{shout name}}' })).rejects.toThrow(
      /does not compile/,
    )
    await expect(
      templates.save({ name: 'c', channel: 'sms', locale: 'en', body: '{{name}} {{age}}', example: { name: 'x' } }),
    ).rejects.toThrow(/does not render its example: needs variable "age"/)
    await expect(templates.save({ name: 'd', channel: 'sms', locale: 'english!', body: 'x' })).rejects.toThrow(
      /is not a locale/,
    )
    expect(await templates.list()).toEqual([])
  })

  it('templates: zh-CN falls back to zh, then to the fallback locale', async () => {
    expect(localeChain('zh-CN', 'en')).toEqual(['zh-CN', 'zh', 'en'])
    const templates = fresh()
    await templates.save({ name: 'w', channel: 'in_app', locale: 'en', body: 'Welcome {{name}}' })
    await templates.save({ name: 'w', channel: 'in_app', locale: 'zh', body: '欢迎 {{name}}' })
    expect((await templates.render('w', 'in_app', 'zh-CN', { name: '李雷' })).body).toBe('欢迎 李雷')
    expect((await templates.render('w', 'in_app', 'fr', { name: 'Luc' })).body).toBe('Welcome Luc')
    await expect(templates.render('nope', 'in_app', 'zh-CN', {})).rejects.toThrow(
      'no template "nope" for in_app in zh-CN, zh, en: save one first',
    )
  })

  it('templates: each save is a new version and rendering uses the newest', async () => {
    const store = createInMemoryNotificationStore().templates
    const templates = createTemplates({ store, refreshMs: 0 })
    expect((await templates.save({ name: 'n', channel: 'sms', locale: 'en', body: 'one' })).version).toBe(1)
    expect((await templates.save({ name: 'n', channel: 'sms', locale: 'en', body: 'two' })).version).toBe(2)
    const out = await templates.render('n', 'sms', 'en', {})
    expect(out).toMatchObject({ body: 'two', template: { version: 2 } })
    expect((await store.get('n', 'sms', 'en', 1))?.body).toBe('one')
  })
})
