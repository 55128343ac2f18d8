import { afterEach, beforeEach, describe } from 'vitest'
import type { HarnessFactory, TransportFeatures } from './harness.js'
import { busCases } from './suite/bus-cases.js'
import { createSuiteContext, type SuiteContext } from './suite/context.js'
import { coreCases } from './suite/core-cases.js'
import { failureCases } from './suite/failure-cases.js'
import { requestCases } from './suite/request-cases.js'

/**
 * The conformance suite every transport passes (docs/reliability.md lists its cases). Each case prints
 * the checker's line (`lost=0 unexpected=0 duplicates=…`) and asserts it. A transport's suite file is one call.
 */
export function describeTransport(name: string, setup: HarnessFactory, features: TransportFeatures): void {
  describe(`${name} transport conformance`, () => {
    let context: SuiteContext | undefined
    beforeEach(async () => {
      context = createSuiteContext(name, await setup())
    })
    afterEach(async () => {
      await context?.dispose()
      context = undefined
    })
    const ctx = () => {
      if (!context) throw new Error('suite context used outside a test')
      return context
    }
    describe('A. delivery and routing', () => coreCases(ctx, features))
    describe('B/F. failures and shutdown', () => failureCases(ctx, features))
    describe('C/D. bus, bad input and delays', () => busCases(ctx, features))
    describe('E. request and reply', () => requestCases(ctx))
  })
}
