/**
 * Reads headers stored as JSON text by a database transport. Rows written by other tools may hold anything:
 * bad JSON yields no headers (the consumer then dead-letters the message as `envelope_invalid`).
 */
export function parseStoredHeaders(text: string): Record<string, string> {
  let parsed: unknown
  try {
    parsed = JSON.parse(text)
  } catch {
    return {}
  }
  if (typeof parsed !== 'object' || parsed === null || Array.isArray(parsed)) return {}
  const headers: Record<string, string> = {}
  for (const [key, value] of Object.entries(parsed)) if (typeof value === 'string') headers[key] = value
  return headers
}

/** A body as a Node Buffer without copying. */
export function toBuffer(body: Uint8Array): Buffer {
  return Buffer.isBuffer(body) ? body : Buffer.from(body.buffer, body.byteOffset, body.byteLength)
}
