import type { PreparedMessage } from './bus.js'
import { isScheduler } from './capabilities.js'
import { type Clock, systemClock } from './clock.js'
import { HeraldError } from './errors.js'
import type { PublishOptions, Transport } from './transport.js'

/**
 * Hands a prepared message to a transport: published now, or scheduled when it is due later. A transport that
 * cannot delay gets a clear error rather than an early delivery.
 */
export async function sendPrepared(
  transport: Transport,
  message: PreparedMessage,
  { withinHandler = false, clock = systemClock }: Pick<PublishOptions, 'withinHandler'> & { clock?: Clock } = {},
): Promise<void> {
  const { topic, envelope, deliverAt } = message
  const options: PublishOptions = { mandatory: message.mandatory, withinHandler }
  if (deliverAt === undefined || deliverAt <= clock.now()) {
    await transport.publish(topic, [envelope], options)
  } else if (isScheduler(transport)) {
    await transport.schedule(topic, [envelope], deliverAt, options)
  } else {
    throw new HeraldError(
      'NOT_SUPPORTED',
      `Transport "${transport.name}" cannot delay messages; publish without delayMs/deliverAt`,
    )
  }
}
