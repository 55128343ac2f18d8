import { createHmac, randomBytes, timingSafeEqual } from 'node:crypto'

/**
 * Browser sessions of the dashboard. The access token logs a browser in once; from then on the browser holds an
 * opaque session value, never the token: `v1.<expiry>.<random>.<signature>`, signed with a key derived from the
 * token (HMAC-SHA256), so it cannot be forged, cannot be stretched past its expiry, and stops working when the
 * token changes. Each session has a CSRF token derived the same way, which every state-changing request from a
 * browser must carry.
 */
export interface Session {
  /** The session's own random part: what its CSRF token is derived from. */
  readonly id: string
  readonly expiresAt: number
  readonly csrf: string
}

export interface Sessions {
  /** A new session and the cookie value that carries it. */
  issue(now: number): { readonly session: Session; readonly value: string }
  /** The session a cookie value carries, if it is well-formed, signed by us and unexpired. */
  verify(value: string | undefined, now: number): Session | undefined
  /** True when `given` is this session's CSRF token. */
  checkCsrf(session: Session, given: unknown): boolean
}

function equal(a: string, b: string): boolean {
  const x = Buffer.from(a)
  const y = Buffer.from(b)
  return x.length === y.length && timingSafeEqual(x, y)
}

export function createSessions(token: string, ttlMs: number): Sessions {
  const key = createHmac('sha256', token).update('herald dashboard sessions v1').digest()
  const sign = (text: string) => createHmac('sha256', key).update(text).digest('base64url')
  const session = (id: string, expiresAt: number): Session => ({ id, expiresAt, csrf: sign(`csrf.${id}`) })

  return {
    issue(now) {
      const id = randomBytes(18).toString('base64url')
      const expiresAt = now + ttlMs
      const body = `v1.${expiresAt.toString(36)}.${id}`
      return { session: session(id, expiresAt), value: `${body}.${sign(body)}` }
    },
    verify(value, now) {
      if (value === undefined || value.length > 200) return undefined
      const parts = value.split('.')
      if (parts.length !== 4 || parts[0] !== 'v1') return undefined
      const [, expiry, id, signature] = parts as [string, string, string, string]
      if (!equal(signature, sign(`v1.${expiry}.${id}`))) return undefined
      const expiresAt = Number.parseInt(expiry, 36)
      if (!Number.isSafeInteger(expiresAt) || expiresAt <= now) return undefined
      return session(id, expiresAt)
    },
    checkCsrf(s, given) {
      return typeof given === 'string' && equal(given, s.csrf)
    },
  }
}

/** The value of cookie `name` in a Cookie header; undefined when absent or malformed, never a throw. */
export function readCookie(header: string | undefined, name: string): string | undefined {
  for (const part of (header ?? '').split(';')) {
    const eq = part.indexOf('=')
    if (eq < 0 || part.slice(0, eq).trim() !== name) continue
    try {
      return decodeURIComponent(part.slice(eq + 1).trim())
    } catch {
      return undefined
    }
  }
  return undefined
}
