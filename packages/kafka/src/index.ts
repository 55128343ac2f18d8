export { createKafkaTransport, type KafkaTransport, type KafkaTransportOptions } from './kafka-transport.js'
export { type KafkaNames, kafkaNames } from './names.js'
