export {
  createRedisTransport,
  type RedisDurability,
  type RedisTransport,
  type RedisTransportOptions,
} from './redis-transport.js'
