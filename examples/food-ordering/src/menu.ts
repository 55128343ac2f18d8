/** The dishes the stock service starts with, when its database is new. */
export interface Dish {
  readonly id: string
  readonly name: string
  readonly priceCents: number
  readonly stock: number
}

export const menu: readonly Dish[] = [
  { id: 'noodles', name: 'Beef noodles', priceCents: 1200, stock: 400 },
  { id: 'dumplings', name: 'Pork dumplings (12)', priceCents: 900, stock: 400 },
  { id: 'mapo-tofu', name: 'Mapo tofu', priceCents: 1100, stock: 300 },
  { id: 'fried-rice', name: 'Egg fried rice', priceCents: 800, stock: 400 },
  // Two a day: the third customer who wants one finds it sold out, and the whole order is rejected with why.
  { id: 'chefs-special', name: "Chef's special", priceCents: 2400, stock: 2 },
  // The kitchen's soufflé collapses: an order with one is refunded and its stock released (the demo's failure).
  { id: 'souffle', name: 'Chocolate soufflé', priceCents: 700, stock: 100 },
]
