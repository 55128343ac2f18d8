import { ConfigurationError } from '@herald/core'
import { errors, jwtVerify, SignJWT } from 'jose'

/** Who a connection belongs to, as its token says. */
export interface GatewayUser {
  readonly id: string
  readonly role: string
}

export interface TokenOptions {
  /** Lifetime. Default 1 h. */
  readonly ttlSeconds?: number
}

/** Why a token was refused; never echoes the token itself. */
export class TokenError extends Error {
  override readonly name = 'TokenError'
}

const issuer = 'herald-gateway'

function keyOf(secret: string): Uint8Array {
  if (typeof secret !== 'string' || Buffer.byteLength(secret) < 32)
    throw new ConfigurationError('secret', 'must be at least 32 bytes: it signs every gateway token (HS256)')
  return new TextEncoder().encode(secret)
}

/**
 * A signed token (a JWT, HS256) naming a user and a role. Any service holding the secret can issue one, in any
 * language; the gateway accepts nothing else.
 */
export async function signToken(secret: string, user: GatewayUser, options: TokenOptions = {}): Promise<string> {
  if (!user.id || !user.role) throw new ConfigurationError('user', 'needs an id and a role')
  return new SignJWT({ role: user.role })
    .setProtectedHeader({ alg: 'HS256', typ: 'JWT' })
    .setSubject(user.id)
    .setIssuer(issuer)
    .setIssuedAt()
    .setExpirationTime(`${options.ttlSeconds ?? 3_600}s`)
    .sign(keyOf(secret))
}

/** A verified token's user and when it stops being valid. */
export interface VerifiedToken extends GatewayUser {
  /** Epoch ms of the token's `exp`: a connection it opened is closed then. */
  readonly expiresAt: number
}

/**
 * Verifies signature, algorithm, issuer and expiry (`exp` is required: a token that never expires is refused);
 * throws `TokenError` with a reason fit for a 401 body.
 */
export async function verifyToken(secret: string, token: string): Promise<VerifiedToken> {
  try {
    const { payload } = await jwtVerify(token, keyOf(secret), {
      algorithms: ['HS256'],
      issuer,
      requiredClaims: ['exp', 'sub'],
    })
    if (typeof payload.sub !== 'string' || payload.sub === '') throw new TokenError('token names no user')
    if (typeof payload.role !== 'string' || payload.role.trim() === '') throw new TokenError('token names no role')
    return { id: payload.sub, role: payload.role, expiresAt: (payload.exp as number) * 1_000 }
  } catch (err) {
    if (err instanceof TokenError) throw err
    if (err instanceof errors.JWTExpired) throw new TokenError('token expired')
    if (err instanceof errors.JWTClaimValidationFailed) throw new TokenError(`token has no "${err.claim}" claim`)
    throw new TokenError('token invalid')
  }
}
