export { createRabbitMqTransport, type RabbitMqTransport, type RabbitMqTransportOptions } from './rabbitmq-transport.js'
export { delayLevels, maxDelayMs, type QueueType, roundDelay } from './topology.js'
