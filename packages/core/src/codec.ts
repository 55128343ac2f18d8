import { MessageTooLargeError, poisonError } from './errors.js'

/** Turns payloads into bytes and back. `decode` throws a Herald error with reason `decode_error` on bad input. */
export interface Codec {
  readonly contentType: string
  readonly maxMessageBytes: number
  encode(value: unknown): Uint8Array
  decode(bytes: Uint8Array): unknown
}

export interface JsonCodecOptions {
  /** Largest encoded payload accepted on publish and on consume. Default 1 MiB. */
  readonly maxMessageBytes?: number
}

export const defaultMaxMessageBytes = 1024 * 1024

const decoder = new TextDecoder('utf-8', { fatal: true })

/** UTF-8 JSON. Rejects oversized payloads on both sides and invalid UTF-8 or JSON on decode. */
export function createJsonCodec(options: JsonCodecOptions = {}): Codec {
  const maxMessageBytes = options.maxMessageBytes ?? defaultMaxMessageBytes
  return {
    contentType: 'application/json',
    maxMessageBytes,
    encode(value) {
      // Buffer.from writes short strings into a shared pool: about half the cost of TextEncoder per message.
      // Every transport reads a body through its offset and length, never its whole ArrayBuffer.
      const text = JSON.stringify(value) as string | undefined
      const bytes = text === undefined ? new Uint8Array() : Buffer.from(text, 'utf8')
      if (bytes.byteLength > maxMessageBytes) throw new MessageTooLargeError(bytes.byteLength, maxMessageBytes)
      return bytes
    },
    decode(bytes) {
      if (bytes.byteLength > maxMessageBytes) throw new MessageTooLargeError(bytes.byteLength, maxMessageBytes)
      if (bytes.byteLength === 0)
        throw poisonError('DECODE_FAILED', 'decode_error', 'Message body is empty; expected JSON')
      let text: string
      try {
        text = decoder.decode(bytes)
      } catch {
        throw poisonError('DECODE_FAILED', 'decode_error', 'Message body is not valid UTF-8')
      }
      try {
        return JSON.parse(text) as unknown
      } catch (err) {
        throw poisonError('DECODE_FAILED', 'decode_error', `Message body is not valid JSON: ${(err as Error).message}`)
      }
    },
  }
}
