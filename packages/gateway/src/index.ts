export {
  ClientRequestError,
  CloseCodes,
  createGateway,
  type Gateway,
  type GatewayOptions,
  type GatewayStats,
  type Target,
} from './gateway.js'
export { type GatewayUser, signToken, TokenError, type TokenOptions, verifyToken } from './token.js'
