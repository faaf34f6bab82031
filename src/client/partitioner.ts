// Partitioning as Kafka's Java client does it, so a key lands on the partition a Java,
// librdkafka (murmur2_random) or KafkaJS (DefaultPartitioner) producer would pick:
//   keyed:   toPositive(murmur2(keyBytes)) % numPartitions
//            [org.apache.kafka.common.utils.Utils.murmur2, BuiltInPartitioner]
//   no key:  sticky partitioning [KIP-480]: keep choosing one partition until the batch
//            being filled for it is sealed (sent), then switch to another at random, so
//            unkeyed records form few large batches instead of many small ones.

/** The record as a partitioner sees it. */
export interface PartitionerArgs {
  topic: string;
  /** The key as bytes (strings are UTF-8 encoded first), or null. */
  key: Buffer | null;
  numPartitions: number;
  /** Partitions with a leader right now (sticky choice prefers these). */
  availablePartitions: readonly number[];
}

/** Returns the partition for a record; must be in [0, numPartitions). */
export type Partitioner = (args: PartitionerArgs) => number;

/**
 * Kafka's murmur2 (MurmurHash2, 32-bit, seed 0x9747b28c), returning the signed 32-bit
 * value Java's `Utils.murmur2` returns. Math.imul keeps every product in int32 exactly
 * as Java's int arithmetic wraps; `>>>` is Java's `>>>`.
 */
export function murmur2(data: Uint8Array): number {
  const length = data.length;
  const m = 0x5bd1e995;
  const r = 24;
  let h = 0x9747b28c ^ length;
  const length4 = length >> 2;
  for (let i = 0; i < length4; i++) {
    const i4 = i * 4;
    let k = (data[i4]! & 0xff) | ((data[i4 + 1]! & 0xff) << 8) | ((data[i4 + 2]! & 0xff) << 16) | ((data[i4 + 3]! & 0xff) << 24);
    k = Math.imul(k, m);
    k ^= k >>> r;
    k = Math.imul(k, m);
    h = Math.imul(h, m);
    h ^= k;
  }
  // The tail: Java's switch falls through from case 3 to case 1.
  const tail = length & ~3;
  const rest = length % 4;
  if (rest >= 3) h ^= (data[tail + 2]! & 0xff) << 16;
  if (rest >= 2) h ^= (data[tail + 1]! & 0xff) << 8;
  if (rest >= 1) {
    h ^= data[tail]! & 0xff;
    h = Math.imul(h, m);
  }
  h ^= h >>> 13;
  h = Math.imul(h, m);
  h ^= h >>> 15;
  return h | 0;
}

/** Kafka's Utils.toPositive: clears the sign bit (not Math.abs, which fails on MIN_VALUE). */
export function toPositive(n: number): number {
  return n & 0x7fffffff;
}

/** The partition Kafka's default partitioner gives a non-null key. */
export function partitionForKey(key: Uint8Array, numPartitions: number): number {
  return toPositive(murmur2(key)) % numPartitions;
}

/**
 * Kafka's default partitioner: murmur2 for keys, sticky for null keys. The sticky choice
 * is per topic; the producer calls `onNewBatch(topic, partition)` when the batch it was
 * filling for the sticky partition is sealed, which moves the stickiness [KIP-480].
 * `random` is injected so tests are deterministic.
 */
export class DefaultPartitioner {
  private readonly sticky = new Map<string, number>();

  constructor(private readonly random: () => number = Math.random) {}

  readonly partition: Partitioner = ({ topic, key, numPartitions, availablePartitions }) => {
    if (key !== null) return partitionForKey(key, numPartitions);
    const current = this.sticky.get(topic);
    if (current !== undefined && current < numPartitions) return current;
    return this.choose(topic, numPartitions, availablePartitions, undefined);
  };

  /** The batch for `partition` was sealed: if it was the sticky one, pick another. */
  onNewBatch(topic: string, partition: number, numPartitions: number, availablePartitions: readonly number[]): void {
    if (this.sticky.get(topic) !== partition) return;
    this.choose(topic, numPartitions, availablePartitions, partition);
  }

  private choose(topic: string, numPartitions: number, available: readonly number[], previous: number | undefined): number {
    // Prefer partitions with a leader; never the previous one when there is a choice
    // (Kafka's StickyPartitionCache.nextPartition does the same).
    const all = available.length > 0 ? available : Array.from({ length: numPartitions }, (_, i) => i);
    const pool = all.length > 1 && previous !== undefined ? all.filter((p) => p !== previous) : all;
    const next = pool[Math.min(pool.length - 1, Math.floor(this.random() * pool.length))]!;
    this.sticky.set(topic, next);
    return next;
  }
}
