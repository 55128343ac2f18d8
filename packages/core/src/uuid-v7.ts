const hex: string[] = Array.from({ length: 256 }, (_, i) => i.toString(16).padStart(2, '0'))

// Random bytes are drawn in blocks: one getRandomValues call per 256 ids instead of one per id.
const pool = new Uint8Array(16 * 256)
let poolOffset = pool.length

/**
 * Returns a UUIDv7 (RFC 9562): 48 bits of Unix milliseconds, then random bits.
 * Ids from one process sort by creation time; ids are unique across processes with overwhelming probability.
 */
export function uuidV7(nowMs: number = Date.now()): string {
  if (poolOffset === pool.length) {
    globalThis.crypto.getRandomValues(pool)
    poolOffset = 0
  }
  const bytes = pool.subarray(poolOffset, poolOffset + 16)
  poolOffset += 16
  let ms = nowMs
  for (let i = 5; i >= 0; i--) {
    bytes[i] = ms % 256
    ms = Math.floor(ms / 256)
  }
  bytes[6] = 0x70 | ((bytes[6] ?? 0) & 0x0f)
  bytes[8] = 0x80 | ((bytes[8] ?? 0) & 0x3f)
  let out = ''
  for (let i = 0; i < 16; i++) {
    if (i === 4 || i === 6 || i === 8 || i === 10) out += '-'
    out += hex[bytes[i] ?? 0]
  }
  return out
}
