import { HandlerTimeoutError } from '../errors.js'
import type { Middleware } from '../transport.js'

/**
 * Fails an attempt that runs longer than `timeoutMs`: aborts the handler's signal and rejects with
 * `HandlerTimeoutError`, which is retried like any error. A handler that ignores its signal keeps running,
 * but its late outcome settles nothing.
 */
export function timeout(timeoutMs: number): Middleware {
  return (next) => async (envelope, delivery) => {
    const controller = new AbortController()
    const forwardAbort = () => controller.abort(delivery.signal.reason)
    delivery.signal.addEventListener('abort', forwardAbort, { once: true })
    let timer: ReturnType<typeof setTimeout> | undefined
    const expired = new Promise<never>((_, reject) => {
      timer = setTimeout(() => {
        const error = new HandlerTimeoutError(timeoutMs)
        controller.abort(error)
        reject(error)
      }, timeoutMs)
    })
    try {
      await Promise.race([next(envelope, { ...delivery, signal: controller.signal }), expired])
    } finally {
      clearTimeout(timer)
      delivery.signal.removeEventListener('abort', forwardAbort)
    }
  }
}
