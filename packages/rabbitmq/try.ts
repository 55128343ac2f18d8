import { startRabbitMq } from '@herald/testkit'
import { createRabbitMqTransport } from './src/index.js'

const s = await startRabbitMq()
const t0 = Date.now()
const log = (...a: unknown[]) => console.log(((Date.now() - t0) / 1000).toFixed(1), ...a)
try {
  const mk = (n: number) =>
    createRabbitMqTransport({
      url: s.url,
      exchange: 'x1',
      namespace: 'x1',
      onError: (e) => log(n, 'onError', String(e).slice(0, 200)),
    })
  const pub = await mk(9)
  await pub.declareGroup('g', ['t'])
  await Promise.all(
    Array.from({ length: 1000 }, (_, i) =>
      pub.publish('t', [{ id: `m${i}`, headers: { type: 'x' }, body: new Uint8Array([1]) }]),
    ),
  )
  log('published')
  if (process.env.PAUSE) await new Promise((r) => setTimeout(r, Number(process.env.PAUSE)))
  await s.restart()
  log('restarted')
  const c = await mk(1)
  log('opened')
  let n = 0
  await c.subscribe({ group: 'g', patterns: ['t'] }, async () => {
    n++
  })
  log('subscribed')
  for (let i = 0; i < 20 && n < 1000; i++) {
    await new Promise((r) => setTimeout(r, 500))
    log(n, (await c.listGroups())[0]?.depth)
  }
  await c.close()
  await pub.close()
} catch (e) {
  log('ERR', e)
} finally {
  await s.stop()
}
