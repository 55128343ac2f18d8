import type { Consumer } from '@platformatic/kafka'
import { type Headers, headerMap } from './records.js'

/** One record of a topic read from start to end. */
export interface LogRecord {
  readonly partition: number
  readonly offset: bigint
  readonly key: string | undefined
  /** Undefined for a tombstone. */
  readonly value: Buffer | undefined
  readonly headers: Map<string, string>
}

const offsetOutOfRange = 1
const unknownTopic = 3

/**
 * Reads every record of `topic` up to the end it had when the read began, without joining a consumer group:
 * straight Fetch requests to each partition's leader. For Herald's small compacted topics (bindings, dead
 * letters); a topic that does not exist reads as empty.
 */
export async function readLog(consumer: Consumer, topic: string): Promise<LogRecord[]> {
  let metadata: Awaited<ReturnType<Consumer['metadata']>>
  try {
    metadata = await consumer.metadata({ topics: [topic], forceUpdate: true })
  } catch (err) {
    if (String(err).includes('UNKNOWN_TOPIC') || JSON.stringify(err ?? '').includes('UNKNOWN_TOPIC')) return []
    throw err
  }
  const info = metadata.topics.get(topic)
  if (info === undefined) return []
  const records: LogRecord[] = []
  await Promise.all(
    info.partitions.map(async (partitionInfo, partition) => {
      let offset = 0n
      let end: bigint | undefined
      for (;;) {
        const response = await consumer.fetch({
          node: partitionInfo.leader,
          topics: [
            {
              topicId: info.id,
              partitions: [
                {
                  partition,
                  currentLeaderEpoch: partitionInfo.leaderEpoch,
                  fetchOffset: offset,
                  lastFetchedEpoch: -1,
                  partitionMaxBytes: 4 * 1024 * 1024,
                },
              ],
            },
          ],
          maxWaitTime: 0,
          minBytes: 0,
          maxBytes: 8 * 1024 * 1024,
        })
        const answer = response.responses[0]?.partitions[0]
        if (answer === undefined || answer.errorCode === unknownTopic) return
        if (answer.errorCode === offsetOutOfRange) {
          offset = answer.logStartOffset
          continue
        }
        if (answer.errorCode !== 0)
          throw new Error(`fetching ${topic}/${partition} failed with Kafka error ${answer.errorCode}`)
        end ??= answer.highWatermark
        let last = offset - 1n
        for (const batch of answer.records ?? []) {
          for (const record of batch.records) {
            const at = batch.firstOffset + BigInt(record.offsetDelta)
            last = at
            if (at < offset || at >= end) continue
            records.push({
              partition,
              offset: at,
              key: record.key === null ? undefined : record.key.toString(),
              value: record.value === null ? undefined : record.value,
              headers: headerMap(record.headers as Headers),
            })
          }
          last = batch.firstOffset + BigInt(batch.lastOffsetDelta)
        }
        offset = last + 1n
        if (offset >= end || (answer.records ?? []).length === 0) return
      }
    }),
  )
  return records
}

/** The latest value of each key, tombstones applied, in the order the keys were last written. */
export function latestByKey(records: readonly LogRecord[]): Map<string, LogRecord> {
  const latest = new Map<string, LogRecord>()
  const ordered = [...records].sort((a, b) => (a.offset < b.offset ? -1 : a.offset > b.offset ? 1 : 0))
  for (const record of ordered) {
    if (record.key === undefined) continue
    latest.delete(record.key)
    if (record.value !== undefined) latest.set(record.key, record)
  }
  return latest
}
