// One consumer member of `raftka perf consume` / `perf e2e` in assign mode: it reads its
// partitions with raw Fetch calls straight from their leaders, either one fetch loop per
// partition (requests to every partition and broker in flight together: throughput) or
// one per leader broker (fewer, fuller requests: latency), and counts records from the batch headers without decoding them. Only the e2e member
// decodes, to read each value's send stamp. A partition whose leader moved refreshes
// metadata and carries on at the same offset.
import { decodeBatch, registerCodecs } from '../client/codecs.ts';
import { DEADLINE_SLACK_MS, fetchStreams, RawClientPool } from '../client/raw-client.ts';
import { errorByCode } from '../common/errors.ts';
import { Attr, BATCH_OVERHEAD, LOG_OVERHEAD, Off } from '../log/batch.ts';
import { CompressionType } from '../log/compression.ts';
import { Reader } from '../log/varint.ts';
import type { MetadataResponse } from '../proto/raftka.ts';
import { LatencyRecorder } from './latency.ts';
import { REPORT_MS, sleep, until, type Load, type LoadFinal, type LoadReport } from './load.ts';
import { nowEpochMs, readStamp, STAMP_BYTES } from './payload.ts';

export interface ConsumerLoadOptions {
  bootstrap: string[];
  topic: string;
  partitions: number[];
  /** Where each partition starts (same order as `partitions`). */
  startOffsets: number[];
  /** Stop a partition once it reaches this offset (same order); -1 = never. */
  endOffsets: number[];
  /** Long-poll wait of a fetch that finds nothing (ms). */
  maxWaitMs: number;
  /** Bytes per partition per fetch. */
  partitionMaxBytes: number;
  /** Decode records and record now − the value's stamp as latency (e2e). */
  e2e: boolean;
  /**
   * `partition`: one fetch loop per partition (requests to every partition in flight at
   * once: throughput). `broker`: one loop per leader fetching all its partitions in one
   * request, as Kafka's consumer does (fewer, fuller requests: latency at a low rate).
   */
  fetchPer: 'partition' | 'broker';
}

const RETRY_BACKOFF_MS = 100;

interface PartState {
  readonly partition: number;
  offset: number;
  /** -1: no end. */
  readonly end: number;
}

interface Counters {
  records: number;
  bytes: number;
  errors: number;
}

/** Records and batch bytes in a fetch response's records, from the headers alone. */
export function countBatches(buf: Buffer): { records: number; bytes: number; nextOffset: number } {
  let pos = 0;
  let records = 0;
  let nextOffset = -1;
  while (pos + BATCH_OVERHEAD <= buf.length) {
    const size = LOG_OVERHEAD + buf.readInt32BE(pos + Off.batchLength);
    if (pos + size > buf.length) break;
    records += buf.readInt32BE(pos + Off.recordCount);
    nextOffset = Number(buf.readBigInt64BE(pos + Off.baseOffset)) + buf.readInt32BE(pos + Off.lastOffsetDelta) + 1;
    pos += size;
  }
  return { records, bytes: pos, nextOffset };
}

export async function prepareConsumerLoad(o: ConsumerLoadOptions): Promise<Load> {
  registerCodecs();
  const pool = new RawClientPool({ timeoutMs: 30_000 });
  // As the SDK consumer: fetches ride one FetchStream per broker.
  const fetches = fetchStreams((address) => pool.get(address));
  const bootstrap = o.bootstrap;
  let leaders = new Map<number, string>();
  const refresh = async (): Promise<void> => {
    let md: MetadataResponse | undefined;
    for (const a of bootstrap) {
      md = await pool
        .get(a)
        .metadata({ topics: [o.topic] }, { timeoutMs: 3000 })
        .catch(() => undefined);
      if (md && md.errorCode === 0) break;
    }
    const t = md?.topics.find((x) => x.name === o.topic);
    if (!md || !t) return;
    const addr = new Map(md.brokers.map((b) => [b.id, `${b.host}:${b.port}`]));
    leaders = new Map(t.partitions.filter((p) => p.leaderId >= 0 && addr.has(p.leaderId)).map((p) => [p.partition, addr.get(p.leaderId)!]));
  };
  await refresh();
  let stopped = false;
  return {
    stop: () => {
      stopped = true;
    },
    close: async () => {
      await fetches.close(false);
      pool.close();
    },
    async run(startAtMs, report) {
      const latency = new LatencyRecorder();
      const c: Counters = { records: 0, bytes: 0, errors: 0 };
      let firstError: string | undefined;
      let firstRecordAtMs: number | undefined;
      const flushReport = () => {
        const r: LoadReport = { ...c, window: latency.takeWindow() };
        c.records = c.bytes = c.errors = 0;
        report(r);
      };
      const states: PartState[] = o.partitions.map((partition, i) => ({ partition, offset: o.startOffsets[i]!, end: o.endOffsets[i]! }));
      const unfinished = (p: PartState) => p.end < 0 || p.offset < p.end;
      /** One Fetch of `parts` from `addr`; false when anything failed (the caller backs off and refreshes). */
      const fetchOnce = async (addr: string, parts: PartState[]): Promise<boolean> => {
        let ok = true;
        try {
          const r = await fetches.send(
            addr,
            {
              maxWaitMs: o.maxWaitMs,
              minBytes: 1,
              maxBytes: o.partitionMaxBytes * parts.length,
              topics: [{ name: o.topic, partitions: parts.map((p) => ({ partition: p.partition, fetchOffset: p.offset, partitionMaxBytes: o.partitionMaxBytes })) }],
            },
            o.maxWaitMs + DEADLINE_SLACK_MS,
          );
          for (const ps of parts) {
            const p = r.responses[0]?.partitions.find((x) => x.partition === ps.partition);
            const code = r.errorCode || (p?.errorCode ?? 3);
            if (code !== 0 || !p) {
              ok = false;
              firstError ??= `fetch ${o.topic}-${ps.partition}: ${errorByCode(code)} ${r.errorMessage || p?.errorMessage || ''}`.trim();
              continue;
            }
            if (p.records.length === 0) continue;
            const n = countBatches(p.records);
            if (n.records === 0) continue;
            firstRecordAtMs ??= nowEpochMs();
            if (o.e2e) await recordE2e(p.records, n.bytes, latency);
            // A batch reaching past the end counts only up to it (offsets in a batch are
            // consecutive unless compacted, which perf topics are not).
            const counted = ps.end >= 0 && n.nextOffset > ps.end ? Math.max(0, n.records - (n.nextOffset - ps.end)) : n.records;
            c.records += counted;
            c.bytes += Math.round((n.bytes * counted) / n.records);
            ps.offset = n.nextOffset;
          }
        } catch (e) {
          ok = false;
          firstError ??= `fetch from ${addr}: ${(e as Error).message}`;
        }
        return ok;
      };
      const recover = async () => {
        c.errors++;
        await sleep(RETRY_BACKOFF_MS);
        await refresh();
      };
      const partitionLoop = async (ps: PartState): Promise<void> => {
        while (!stopped && unfinished(ps)) {
          const addr = leaders.get(ps.partition);
          if (addr === undefined || !(await fetchOnce(addr, [ps]))) await recover();
        }
      };
      const brokerLoop = async (addr: string): Promise<void> => {
        while (!stopped && states.some(unfinished)) {
          const mine = states.filter((ps) => unfinished(ps) && leaders.get(ps.partition) === addr);
          // None led here now; a leader change may bring some back.
          if (mine.length === 0) await sleep(RETRY_BACKOFF_MS);
          else if (!(await fetchOnce(addr, mine))) await recover();
        }
      };
      await until(startAtMs);
      const timer = setInterval(flushReport, REPORT_MS);
      const startedAtMs = nowEpochMs();
      try {
        if (o.fetchPer === 'broker') await Promise.all([...new Set(leaders.values())].map(brokerLoop));
        else await Promise.all(states.map(partitionLoop));
      } finally {
        clearInterval(timer);
      }
      const endedAtMs = nowEpochMs();
      flushReport();
      const final: LoadFinal = {
        histogram: latency.encode(),
        startedAtMs,
        endedAtMs,
        ...(firstError !== undefined ? { firstError } : {}),
        ...(firstRecordAtMs !== undefined ? { firstRecordAtMs } : {}),
      };
      latency.destroy();
      return final;
    },
  };
}

/**
 * Records now − stamp for every record of the batches in `records[0, size)`. Plain
 * batches are walked in place (no per-record objects: at 5,000 records/s the consumer
 * must not be what falls behind); compressed ones are decoded.
 */
async function recordE2e(records: Buffer, size: number, latency: LatencyRecorder): Promise<void> {
  let pos = 0;
  while (pos < size) {
    const len = LOG_OVERHEAD + records.readInt32BE(pos + Off.batchLength);
    const batch = records.subarray(pos, pos + len);
    pos += len;
    const now = nowEpochMs();
    if ((batch.readInt16BE(Off.attributes) & Attr.compressionMask) !== CompressionType.none) {
      for (const r of await decodeBatch(batch)) {
        const at = readStamp(r.value);
        if (at !== undefined) latency.record(now - at);
      }
      continue;
    }
    forEachStamp(batch, (at) => latency.record(now - at));
  }
}

/** Calls `fn` with the send stamp of every record of an uncompressed batch, in place. */
export function forEachStamp(batch: Buffer, fn: (stampMs: number) => void): void {
  const count = batch.readInt32BE(Off.recordCount);
  const r = new Reader(batch, BATCH_OVERHEAD, batch.length);
  for (let i = 0; i < count; i++) {
    const recordLen = r.varint();
    const end = r.pos + recordLen;
    r.int8(); // attributes
    r.varlong(); // timestamp delta
    r.varint(); // offset delta
    const keyLen = r.varint();
    if (keyLen > 0) r.pos += keyLen;
    const valueLen = r.varint();
    if (valueLen >= STAMP_BYTES && r.pos + STAMP_BYTES <= end) fn(batch.readDoubleLE(r.pos));
    r.pos = end;
  }
}
