import { fileURLToPath } from 'node:url'
import * as grpc from '@grpc/grpc-js'
import * as protoLoader from '@grpc/proto-loader'
import { traceCall, traceHeaders } from '@herald/observability'

/** The shapes of proto/stock.proto, as proto-loader gives them (fields camelCased, defaults filled in). */
export interface StockItem {
  readonly id: string
  readonly name: string
  readonly priceCents: number
  readonly available: number
}
export interface ItemWithQuantity {
  readonly id: string
  readonly quantity: number
}
export interface CheckResult {
  readonly inStock: boolean
  readonly items: readonly StockItem[]
  readonly reason: string
}
export interface ReserveResult {
  readonly reserved: boolean
  readonly totalCents: number
  readonly reason: string
}

/** What the stock service answers, in process or over gRPC. */
export interface StockApi {
  getItems(ids: readonly string[]): Promise<readonly StockItem[]>
  checkIfItemInStock(items: readonly ItemWithQuantity[]): Promise<CheckResult>
  reserveItems(orderId: string, items: readonly ItemWithQuantity[]): Promise<ReserveResult>
}

const protoPath = fileURLToPath(new URL('../proto/stock.proto', import.meta.url))

function stockService(): grpc.ServiceClientConstructor {
  const definition = protoLoader.loadSync(protoPath, { keepCase: false, longs: Number, defaults: true })
  const loaded = grpc.loadPackageDefinition(definition) as unknown as {
    food: { stock: { StockService: grpc.ServiceClientConstructor } }
  }
  return loaded.food.stock.StockService
}

/** Headers to send as gRPC metadata with each call; by default the current trace context. */
export type MetadataSource = () => Record<string, string>

/** Serves `api` on a gRPC server bound to `host:port` (0 for any free port); resolves with the address. */
export async function serveStock(
  api: StockApi,
  options: { host: string; port: number },
): Promise<{ address: string; close(): Promise<void> }> {
  const server = new grpc.Server()
  const unary =
    <Req, Res>(call: (request: Req) => Promise<Res>) =>
    (invocation: grpc.ServerUnaryCall<Req, Res>, callback: grpc.sendUnaryData<Res>) => {
      // Each call continues the caller's trace, from the W3C headers in its metadata.
      const metadata: Record<string, string> = {}
      for (const [key, value] of Object.entries(invocation.metadata.getMap()))
        if (typeof value === 'string') metadata[key] = value
      traceCall(`grpc ${invocation.getPath()}`, metadata, () => call(invocation.request)).then(
        (response) => callback(null, response),
        (err: Error) => callback({ code: grpc.status.INTERNAL, details: err.message }),
      )
    }
  server.addService(stockService().service, {
    GetItems: unary((request: { ids: string[] }) => api.getItems(request.ids).then((items) => ({ items }))),
    CheckIfItemInStock: unary((request: { items: ItemWithQuantity[] }) => api.checkIfItemInStock(request.items)),
    ReserveItems: unary((request: { orderId: string; items: ItemWithQuantity[] }) =>
      api.reserveItems(request.orderId, request.items),
    ),
  })
  const port = await new Promise<number>((resolve, reject) =>
    server.bindAsync(`${options.host}:${options.port}`, grpc.ServerCredentials.createInsecure(), (err, bound) =>
      err === null ? resolve(bound) : reject(err),
    ),
  )
  return {
    address: `${options.host}:${port}`,
    close: () =>
      new Promise<void>((resolve) => {
        server.tryShutdown(() => resolve())
        // Calls still open after a second are cut, so a stop never hangs on a stuck client.
        setTimeout(() => server.forceShutdown(), 1_000).unref()
      }),
  }
}

/** Thrown when the stock service cannot be reached or fails: the order is neither reserved nor rejected. */
export class StockUnavailableError extends Error {
  constructor(cause: grpc.ServiceError) {
    super(`stock service unavailable: ${cause.details || cause.message}`, { cause })
    this.name = 'StockUnavailableError'
  }
}

/** A gRPC client of the stock service at `address` (`host:port`). Each call has a deadline of `deadlineMs`. */
export function connectStock(
  address: string,
  options: { deadlineMs?: number; metadata?: MetadataSource } = {},
): StockApi & { close(): void } {
  const Client = stockService()
  const client = new Client(address, grpc.credentials.createInsecure())
  const deadlineMs = options.deadlineMs ?? 2_000
  function call<Res>(method: string, request: unknown): Promise<Res> {
    const metadata = new grpc.Metadata()
    for (const [key, value] of Object.entries((options.metadata ?? traceHeaders)())) metadata.set(key, value)
    return new Promise((resolve, reject) => {
      const rpc = client[method] as (
        request: unknown,
        metadata: grpc.Metadata,
        options: grpc.CallOptions,
        callback: (err: grpc.ServiceError | null, response: Res) => void,
      ) => void
      rpc.call(client, request, metadata, { deadline: Date.now() + deadlineMs }, (err, response) =>
        err === null ? resolve(response) : reject(new StockUnavailableError(err)),
      )
    })
  }
  return {
    getItems: (ids) => call<{ items: StockItem[] }>('GetItems', { ids }).then((r) => r.items),
    checkIfItemInStock: (items) => call('CheckIfItemInStock', { items }),
    reserveItems: (orderId, items) => call('ReserveItems', { orderId, items }),
    close: () => client.close(),
  }
}
