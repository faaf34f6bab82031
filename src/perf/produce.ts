// `raftka perf produce`: N producer instances (each in its own worker thread unless told
// otherwise), the records and the rate split evenly between them; the summary has
// Kafka's producer-perf-test figures with percentiles from the merged HDR histograms.
import { inThreadAgent, workerAgent, type Agent } from './agents.ts';
import { runAgents, type Progress } from './coordinator.ts';
import type { ProducerLoadOptions } from './producer-load.ts';

export interface ProducePerfOptions extends Omit<ProducerLoadOptions, 'records' | 'ratePerSec'> {
  numRecords: number;
  /** Records per second over all producers; <= 0 = as fast as possible. */
  throughput: number;
  producers: number;
  /** Each producer in its own worker thread (default true when producers > 1). */
  workerThreads?: boolean;
  onProgress?(p: Progress): void;
}

export interface ProduceSummary {
  records: number;
  errors: number;
  firstError?: string;
  seconds: number;
  recordsPerSec: number;
  mbPerSec: number;
  avgMs: number;
  p50Ms: number;
  p95Ms: number;
  p99Ms: number;
  p999Ms: number;
  maxMs: number;
  producers: number;
  recordSize: number;
}

/** `total` split into `n` near-equal integer shares. */
export function split(total: number, n: number): number[] {
  return Array.from({ length: n }, (_, i) => Math.floor(total / n) + (i < total % n ? 1 : 0));
}

export async function producePerf(o: ProducePerfOptions): Promise<ProduceSummary> {
  const threads = o.workerThreads ?? o.producers > 1;
  const shares = split(o.numRecords, o.producers);
  const warmups = split(o.warmupRecords ?? 0, o.producers);
  const agents: Agent[] = shares.map((records, i) => {
    const { numRecords: _n, throughput: _t, producers: _p, workerThreads: _w, onProgress: _o, ...rest } = o;
    const job = { kind: 'produce' as const, opts: { ...rest, records, warmupRecords: warmups[i]!, ratePerSec: o.throughput > 0 ? o.throughput / o.producers : -1 } };
    return threads ? workerAgent(job) : inThreadAgent(job);
  });
  const out = await runAgents(agents, { ...(o.onProgress ? { onProgress: o.onProgress } : {}) });
  return {
    records: out.records,
    errors: out.errors,
    ...(out.firstError !== undefined ? { firstError: out.firstError } : {}),
    seconds: out.seconds,
    recordsPerSec: out.recordsPerSec,
    mbPerSec: out.mbPerSec,
    avgMs: out.latency.avgMs,
    p50Ms: out.latency.p50Ms,
    p95Ms: out.latency.p95Ms,
    p99Ms: out.latency.p99Ms,
    p999Ms: out.latency.p999Ms,
    maxMs: out.latency.maxMs,
    producers: o.producers,
    recordSize: o.recordSize,
  };
}
