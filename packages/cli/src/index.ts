export { type CliOptions, runCli } from './program.js'
export { defaultTransportUrl, openTransport, redactUrl } from './transport-url.js'
