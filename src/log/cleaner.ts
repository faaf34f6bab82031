// Log compaction [Kafka's LogCleaner, simplified]: an offset map of the latest offset per
// key over the cleanable segments, then each segment rewritten keeping only records that
// are the latest for their key. Batches whose records all survive are copied as they
// are; others are re-encoded with the original offsets, producer fields and codec.
import { open } from 'node:fs/promises';
import { BatchBuilder, decodeRecords, readBatchHeader, type LogRecord } from './batch.ts';
import type { LogSegment } from './segment.ts';

export type OffsetMap = Map<string, number>;

function keyOf(r: LogRecord): string | undefined {
  return r.key === null ? undefined : r.key.toString('latin1');
}

export async function buildOffsetMap(segments: LogSegment[]): Promise<OffsetMap> {
  const map: OffsetMap = new Map();
  for (const seg of segments) {
    for await (const batch of seg.batches()) {
      if (readBatchHeader(batch).isControl) continue;
      for (const r of decodeRecords(batch)) {
        const k = keyOf(r);
        if (k !== undefined) map.set(k, r.offset);
      }
    }
  }
  return map;
}

/** Which records of a batch survive: the latest per key, minus tombstones past the horizon. */
export function retainedRecords(records: LogRecord[], map: OffsetMap, tombstonesExpired: boolean): LogRecord[] {
  return records.filter((r) => {
    const k = keyOf(r);
    if (k === undefined) return true; // keyless records are never produced to compacted logs; keep any that exist
    const latest = map.get(k);
    if (latest !== undefined && latest > r.offset) return false;
    return !(r.value === null && tombstonesExpired);
  });
}

export function rebuildBatch(original: Buffer, kept: LogRecord[]): Buffer {
  const h = readBatchHeader(original);
  const base = kept[0]!.offset;
  const b = new BatchBuilder({
    compression: h.compression,
    producerId: h.producerId,
    producerEpoch: h.producerEpoch,
    baseSequence: h.baseSequence < 0 ? h.baseSequence : h.baseSequence + (base - h.baseOffset),
    baseOffset: base,
    partitionLeaderEpoch: h.partitionLeaderEpoch,
    isTransactional: h.isTransactional,
    isControl: h.isControl,
    logAppendTime: (h.attributes & 0x08) !== 0,
    initialCapacity: original.length,
  });
  for (const r of kept) b.append({ offsetDelta: r.offset - base, key: r.key, value: r.value, headers: r.headers, timestamp: r.timestamp });
  return b.build();
}

export async function cleanSegment(
  seg: LogSegment,
  map: OffsetMap,
  tombstoneHorizonMs: number,
  outPath: string,
): Promise<{ changed: boolean; bytesBefore: number; bytesAfter: number }> {
  const out = await open(outPath, 'w');
  let changed = false;
  let bytesAfter = 0;
  try {
    for await (const batch of seg.batches()) {
      const h = readBatchHeader(batch);
      const records = decodeRecords(batch);
      const kept = h.isControl ? records : retainedRecords(records, map, h.maxTimestamp < tombstoneHorizonMs);
      let outBatch: Buffer | undefined = batch;
      if (kept.length !== records.length) {
        changed = true;
        outBatch = kept.length === 0 ? undefined : rebuildBatch(batch, kept);
      }
      if (outBatch) {
        await out.write(outBatch);
        bytesAfter += outBatch.length;
      }
    }
    await out.datasync();
  } finally {
    await out.close();
  }
  return { changed, bytesBefore: seg.size, bytesAfter };
}
