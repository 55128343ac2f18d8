export {
  type Decision,
  decide,
  type Incoming,
  type InstanceView,
  type PendingTimeout,
  type SagaEvent,
} from './decide.js'
export {
  defineSaga,
  message,
  type Saga,
  type SagaBuilder,
  type SagaMessage,
  type SagaMessageOptions,
  type SagaStatus,
  type SagaStep,
  type SagaTimeout,
  type TimeoutRequest,
  type WhenMissing,
} from './define.js'
export {
  registerSagas,
  type SagaEventReport,
  type SagaHost,
  type SagaHostOptions,
  SagaNotStartedError,
  type TimeoutData,
  timeoutContract,
} from './runner.js'
export {
  type CommitResult,
  createInMemorySagaStore,
  type SagaCommit,
  type SagaCounts,
  type SagaHistoryEntry,
  type SagaInstance,
  type SagaQuery,
  type SagaStore,
} from './store.js'
export { type Expected, type SagaSpec, type StepResult, sagaSpec, type TimeoutFiring, timeout } from './testing.js'
