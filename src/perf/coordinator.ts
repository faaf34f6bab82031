// Runs a set of agents together: waits until all are connected, starts them at one
// wall-clock instant, sums their reports into a progress line every `progressMs`, and
// merges their finals (latency histograms included) into one outcome. MB = 10^6 bytes.
import { mergeWindows, summarizeEncoded, type LatencySummary, type LatencyWindow } from './latency.ts';
import type { Agent } from './agents.ts';
import type { LoadReport } from './load.ts';
import { nowEpochMs } from './payload.ts';

export interface Progress {
  records: number;
  recordsPerSec: number;
  mbPerSec: number;
  avgMs: number;
  maxMs: number;
  errors: number;
}

export interface Outcome {
  records: number;
  bytes: number;
  errors: number;
  firstError?: string;
  seconds: number;
  recordsPerSec: number;
  mbPerSec: number;
  latency: LatencySummary;
  /** Epoch ms of the first record any consumer saw. */
  firstRecordAtMs?: number;
  startedAtMs: number;
}

export interface RunOptions {
  progressMs?: number;
  onProgress?(p: Progress): void;
  /** Asked after every report with the total so far; true stops every agent. */
  shouldStop?(records: number): boolean;
  /** Delay between "all ready" and the common start (ms). */
  startDelayMs?: number;
}

export async function runAgents(agents: Agent[], opts: RunOptions = {}): Promise<Outcome> {
  try {
    await Promise.all(agents.map((a) => a.ready));
    const atMs = nowEpochMs() + (opts.startDelayMs ?? 100);
    let records = 0;
    let bytes = 0;
    let errors = 0;
    let winRecords = 0;
    let winBytes = 0;
    let winErrors = 0;
    let windows: LatencyWindow[] = [];
    let winStart = atMs;
    let stopped = false;
    const onReport = (r: LoadReport) => {
      records += r.records;
      bytes += r.bytes;
      errors += r.errors;
      winRecords += r.records;
      winBytes += r.bytes;
      winErrors += r.errors;
      windows.push(r.window);
      if (!stopped && opts.shouldStop?.(records)) {
        stopped = true;
        for (const a of agents) a.stop();
      }
    };
    const progress = setInterval(() => {
      const now = nowEpochMs();
      const secs = Math.max(1e-3, (now - winStart) / 1000);
      const w = mergeWindows(windows);
      opts.onProgress?.({
        records: winRecords,
        recordsPerSec: winRecords / secs,
        mbPerSec: winBytes / 1e6 / secs,
        avgMs: w.count > 0 ? w.sumMs / w.count : NaN,
        maxMs: w.count > 0 ? w.maxMs : NaN,
        errors: winErrors,
      });
      winRecords = winBytes = winErrors = 0;
      windows = [];
      winStart = now;
    }, opts.progressMs ?? 2000);
    let finals;
    try {
      finals = await Promise.all(agents.map((a) => a.go(atMs, onReport)));
    } finally {
      clearInterval(progress);
    }
    const startedAtMs = Math.min(...finals.map((f) => f.startedAtMs));
    const endedAtMs = Math.max(...finals.map((f) => f.endedAtMs));
    const seconds = Math.max(1e-3, (endedAtMs - startedAtMs) / 1000);
    const firsts = finals.map((f) => f.firstRecordAtMs).filter((x): x is number => x !== undefined);
    const firstError = finals.find((f) => f.firstError !== undefined)?.firstError;
    return {
      records,
      bytes,
      errors,
      ...(firstError !== undefined ? { firstError } : {}),
      seconds,
      recordsPerSec: records / seconds,
      mbPerSec: bytes / 1e6 / seconds,
      latency: summarizeEncoded(finals.map((f) => f.histogram)),
      ...(firsts.length > 0 ? { firstRecordAtMs: Math.min(...firsts) } : {}),
      startedAtMs,
    };
  } finally {
    await Promise.all(agents.map((a) => a.close().catch(() => undefined)));
  }
}

/** Kafka's progress line shape. */
export function progressLine(p: Progress, verb: string): string {
  const lat = Number.isNaN(p.avgMs) ? '' : `, ${p.avgMs.toFixed(1)} ms avg latency, ${p.maxMs.toFixed(1)} ms max latency`;
  const err = p.errors > 0 ? `, ${p.errors} errors` : '';
  return `${p.records} records ${verb}, ${p.recordsPerSec.toFixed(1)} records/sec (${p.mbPerSec.toFixed(2)} MB/sec)${lat}${err}.`;
}
