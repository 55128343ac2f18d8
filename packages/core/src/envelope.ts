/**
 * The unit every transport carries. `id` is fixed by the producer and kept across redeliveries;
 * `headers` are strings only, so every broker can carry them natively; `body` is the encoded payload.
 */
export interface Envelope {
  readonly id: string
  readonly headers: Readonly<Record<string, string>>
  readonly body: Uint8Array
}

/**
 * Header names. CloudEvents 1.0 attributes keep their CloudEvents names; Herald's extensions use
 * CloudEvents-legal names (lowercase letters and digits), so a CloudEvents binding can carry them unchanged.
 */
export const HeaderNames = {
  specVersion: 'specversion',
  type: 'type',
  source: 'source',
  time: 'time',
  subject: 'subject',
  dataContentType: 'datacontenttype',
  dataSchema: 'dataschema',
  traceParent: 'traceparent',
  traceState: 'tracestate',
  correlationId: 'correlationid',
  causationId: 'causationid',
  partitionKey: 'partitionkey',
  schemaVersion: 'schemaversion',
  /** `event` or `command`. */
  kind: 'heraldkind',
} as const
