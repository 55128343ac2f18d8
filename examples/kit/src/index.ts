export { type ConsoleRun, type ConsoleRunOptions, liveScreen, recentLines, startConsoleRun } from './console.js'
export { withFixedRun } from './fixed-run.js'
export {
  type ExampleCli,
  exampleCli,
  openTransportUrl,
  runServiceProcess,
  type ServiceProcessOptions,
  signalOnStop,
  untilSignal,
} from './process.js'
export { stripeWebhookRoute } from './stripe-webhook.js'
