import { fileURLToPath } from 'node:url'
import { withFixedRun } from '@herald/example-kit'
import { expect, it } from 'vitest'

const main = fileURLToPath(new URL('../src/main.ts', import.meta.url))

it('npm run start:food -- --exit-when-idle --json: every order of the fixed run ends as planned, on SQLite in one process', async () => {
  await withFixedRun(main, (summary) => {
    // 40 customers: every tenth never pays, every seventh adds a soufflé the kitchen cannot make (one does both),
    // and customers 6, 19 and 32 want the chef's special, of which there are two.
    expect(summary).toEqual({
      orders_placed: 40,
      ready: 30,
      cancelled: 9,
      rejected: 1,
      reasons: {
        payment_timeout: 4,
        'kitchen: souffle could not be made': 5,
        'out_of_stock: chefs-special (0 left, 1 asked)': 1,
      },
      sagas: { running: 0, completed: 30, compensated: 9, failed: 0 },
      dead_lettered: 0,
      stock_consistent: true,
      lost: 0,
    })
  })
})
