export { type HeraldConfig, parseConfig, readConfigFile, type SingleTransportConfig } from './config-file.js'
export { type CliOptions, runCli } from './program.js'
export { defaultTransportUrl, openEventStore, openTransport, redactUrl } from './transport-url.js'
