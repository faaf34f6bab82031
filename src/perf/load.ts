// What every load (a producer instance, a consumer member) looks like to the coordinator
// that runs several of them, in this thread or in worker threads: it is prepared
// (connected), started at an agreed wall-clock time, reports deltas every REPORT_MS, can
// be told to stop, and ends with a Final. Reports and finals are plain data so they cross
// a worker boundary as they are.
import type { LatencyWindow } from './latency.ts';

export const REPORT_MS = 500;

/** Counters since the previous report. */
export interface LoadReport {
  records: number;
  bytes: number;
  errors: number;
  window: LatencyWindow;
}

export interface LoadFinal {
  /** HdrHistogram compressed base64 of the latencies this load recorded (µs). */
  histogram: string;
  firstError?: string;
  startedAtMs: number;
  endedAtMs: number;
  /** Consumers: when the first record arrived (epoch ms). */
  firstRecordAtMs?: number;
}

export interface Load {
  /** Runs until done or stopped; `report` gets deltas every REPORT_MS and once at the end. */
  run(startAtMs: number, report: (r: LoadReport) => void): Promise<LoadFinal>;
  stop(): void;
  close(): Promise<void>;
}

/** Resolves at wall-clock `atMs` (epoch ms), so loads in several threads start together. */
export function until(atMs: number): Promise<void> {
  const wait = atMs - (performance.timeOrigin + performance.now());
  return wait > 0 ? new Promise((r) => setTimeout(r, wait)) : Promise.resolve();
}

export const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));
