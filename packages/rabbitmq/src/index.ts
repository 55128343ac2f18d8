export { type RabbitMqTransport, type RabbitMqTransportOptions, createRabbitMqTransport } from './rabbitmq-transport.js'
export { delayLevels, maxDelayMs, type QueueType, roundDelay } from './topology.js'
