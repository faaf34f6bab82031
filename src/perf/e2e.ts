// `raftka perf e2e`: one producer at a fixed rate stamps every value with its send time;
// one consumer (assign mode, long-polling every partition from the offsets the topic had
// at the start) records now − stamp for every record it reads. The producer runs in a
// worker thread so the consumer's clock readings do not wait behind the producer's work.
// Both clocks are the same wall clock (performance.timeOrigin + now()).
import type { CompressionOption } from '../client/codecs.ts';
import { inThreadAgent, workerAgent } from './agents.ts';
import { runAgents, type Outcome, type Progress } from './coordinator.ts';
import { STAMP_BYTES } from './payload.ts';
import { topicOffsets } from './topic.ts';
import { RaftkaError } from '../common/errors.ts';

export interface E2ePerfOptions {
  bootstrap: string[];
  topic: string;
  numRecords: number;
  /** Records per second (must be > 0: an end-to-end latency is only meaningful at a set rate). */
  throughput: number;
  recordSize: number;
  acks: number;
  compression: CompressionOption;
  batchSize: number;
  lingerMs: number;
  workerThreads?: boolean;
  /** Give up on records that have not arrived this long after the producer finished (ms). */
  timeoutMs: number;
  /** Records the producer sends at the rate before the measured run (not read, not counted). */
  warmupRecords?: number;
  onProgress?(p: Progress): void;
}

export interface E2eSummary {
  records: number;
  missing: number;
  ratePerSec: number;
  avgMs: number;
  p50Ms: number;
  p95Ms: number;
  p99Ms: number;
  p999Ms: number;
  maxMs: number;
  /** Producer send-to-acknowledgement, for comparison. */
  produceP50Ms: number;
  produceP99Ms: number;
  produceErrors: number;
  firstError?: string;
}

export async function e2ePerf(o: E2ePerfOptions): Promise<E2eSummary> {
  if (!(o.throughput > 0)) throw new RaftkaError('INVALID_REQUEST', '--throughput must be a positive rate for an end-to-end latency test');
  if (o.recordSize < STAMP_BYTES) throw new RaftkaError('INVALID_REQUEST', `--record-size must be at least ${STAMP_BYTES} bytes (the send stamp)`);
  const job = {
    kind: 'produce' as const,
    opts: {
      bootstrap: o.bootstrap,
      topic: o.topic,
      records: o.numRecords,
      recordSize: o.recordSize,
      ratePerSec: o.throughput,
      acks: o.acks,
      compression: o.compression,
      batchSize: o.batchSize,
      lingerMs: o.lingerMs,
      payloadJson: false,
      stamp: true,
      ...(o.warmupRecords ? { warmupRecords: o.warmupRecords } : {}),
    },
  };
  const producer = (o.workerThreads ?? true) ? workerAgent(job) : inThreadAgent(job);
  // The consumer starts after the producer's warm-up: those records are not measured.
  let start: Awaited<ReturnType<typeof topicOffsets>>;
  try {
    await producer.ready;
    start = await topicOffsets(o.bootstrap, o.topic, 'latest');
  } catch (e) {
    await producer.close().catch(() => undefined);
    throw e;
  }
  const consumer = inThreadAgent({
    kind: 'consume',
    opts: {
      bootstrap: o.bootstrap,
      topic: o.topic,
      partitions: start.partitions,
      startOffsets: start.offsets,
      endOffsets: start.partitions.map(() => -1),
      maxWaitMs: 500,
      partitionMaxBytes: 1 << 20,
      e2e: true,
      fetchPer: 'broker',
    },
  });
  let produced: Outcome | undefined;
  let watchdog: NodeJS.Timeout | undefined;
  // Lowered to what was acknowledged once the producer is done (failed sends never arrive).
  let target = o.numRecords;
  const consumed = runAgents([consumer], {
    ...(o.onProgress ? { onProgress: o.onProgress } : {}),
    shouldStop: (records) => records >= target,
  });
  try {
    produced = await runAgents([producer]);
    target = produced.records;
    const deadline = performance.now() + o.timeoutMs;
    watchdog = setInterval(() => {
      if (performance.now() > deadline) consumer.stop();
    }, 100);
    const c = await consumed;
    return {
      records: c.records,
      missing: Math.max(0, produced.records - c.records),
      ratePerSec: produced.recordsPerSec,
      avgMs: c.latency.avgMs,
      p50Ms: c.latency.p50Ms,
      p95Ms: c.latency.p95Ms,
      p99Ms: c.latency.p99Ms,
      p999Ms: c.latency.p999Ms,
      maxMs: c.latency.maxMs,
      produceP50Ms: produced.latency.p50Ms,
      produceP99Ms: produced.latency.p99Ms,
      produceErrors: produced.errors,
      ...(produced.firstError !== undefined ? { firstError: produced.firstError } : {}),
    };
  } finally {
    clearInterval(watchdog);
    consumer.stop();
    await consumed.catch(() => undefined);
  }
}
