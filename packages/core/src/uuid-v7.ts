// Hex digits as character codes, two per byte value.
const hexCodes = new Uint8Array(512)
for (let i = 0; i < 256; i++) {
  const pair = i.toString(16).padStart(2, '0')
  hexCodes[2 * i] = pair.charCodeAt(0)
  hexCodes[2 * i + 1] = pair.charCodeAt(1)
}

// Random bytes are drawn in blocks: one getRandomValues call per 256 ids instead of one per id.
const pool = new Uint8Array(16 * 256)
let poolOffset = pool.length

// The id's characters are written here, then read out as one string: assembling it by concatenation would
// allocate twenty intermediate strings per id.
const text = Buffer.alloc(36, '-')
/** Where each byte's two hex digits go in "xxxxxxxx-xxxx-7xxx-Nxxx-xxxxxxxxxxxx". */
const at = [0, 2, 4, 6, 9, 11, 14, 16, 19, 21, 24, 26, 28, 30, 32, 34]

/**
 * Returns a UUIDv7 (RFC 9562): 48 bits of Unix milliseconds, then random bits.
 * Ids from one process sort by creation time (to the millisecond); ids are unique across processes with
 * overwhelming probability.
 */
export function uuidV7(nowMs: number = Date.now()): string {
  if (poolOffset === pool.length) {
    globalThis.crypto.getRandomValues(pool)
    poolOffset = 0
  }
  // The id's 16 bytes are pool[o] to pool[o + 15]: the time goes into the first six, then version and variant.
  const o = poolOffset
  poolOffset += 16
  let ms = nowMs
  for (let i = 5; i >= 0; i--) {
    pool[o + i] = ms % 256
    ms = Math.floor(ms / 256)
  }
  pool[o + 6] = 0x70 | ((pool[o + 6] ?? 0) & 0x0f)
  pool[o + 8] = 0x80 | ((pool[o + 8] ?? 0) & 0x3f)
  for (let i = 0; i < 16; i++) {
    const code = 2 * (pool[o + i] ?? 0)
    const position = at[i] ?? 0
    text[position] = hexCodes[code] ?? 0
    text[position + 1] = hexCodes[code + 1] ?? 0
  }
  return text.toString('latin1', 0, 36)
}
