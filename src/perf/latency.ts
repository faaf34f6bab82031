// Latency bookkeeping for the perf tools: an HDR histogram (microsecond values, 3
// significant digits, up to 10 minutes) for percentiles, plus a window of count / sum /
// max that the progress line reports and then resets. Histograms cross worker threads
// in HdrHistogram's compressed base64 form and are merged with `add`.
import * as hdr from 'hdr-histogram-js';

/** Highest latency the histogram tracks (µs); larger values are clamped to it. */
const HIGHEST_US = 600_000_000;

export interface LatencySummary {
  count: number;
  avgMs: number;
  p50Ms: number;
  p95Ms: number;
  p99Ms: number;
  p999Ms: number;
  maxMs: number;
}

export interface LatencyWindow {
  count: number;
  sumMs: number;
  maxMs: number;
}

export function newHistogram(): hdr.Histogram {
  return hdr.build({ lowestDiscernibleValue: 1, highestTrackableValue: HIGHEST_US, numberOfSignificantValueDigits: 3, bitBucketSize: 32 });
}

export class LatencyRecorder {
  readonly histogram = newHistogram();
  private window: LatencyWindow = { count: 0, sumMs: 0, maxMs: 0 };

  /** Records `count` samples of `ms` (records of one send share one latency). */
  record(ms: number, count = 1): void {
    const us = Math.min(HIGHEST_US, Math.max(1, Math.round(ms * 1000)));
    this.histogram.recordValueWithCount(us, count);
    const w = this.window;
    w.count += count;
    w.sumMs += ms * count;
    if (ms > w.maxMs) w.maxMs = ms;
  }

  /** The window since the last call, and a fresh one started. */
  takeWindow(): LatencyWindow {
    const w = this.window;
    this.window = { count: 0, sumMs: 0, maxMs: 0 };
    return w;
  }

  encode(): string {
    return hdr.encodeIntoCompressedBase64(this.histogram);
  }

  destroy(): void {
    this.histogram.destroy();
  }
}

export function decodeHistogram(encoded: string): hdr.Histogram {
  return hdr.decodeFromCompressedBase64(encoded, 32);
}

export function summarize(h: hdr.Histogram): LatencySummary {
  const ms = (us: number) => us / 1000;
  if (h.totalCount === 0) return { count: 0, avgMs: NaN, p50Ms: NaN, p95Ms: NaN, p99Ms: NaN, p999Ms: NaN, maxMs: NaN };
  return {
    count: h.totalCount,
    avgMs: ms(h.mean),
    p50Ms: ms(h.getValueAtPercentile(50)),
    p95Ms: ms(h.getValueAtPercentile(95)),
    p99Ms: ms(h.getValueAtPercentile(99)),
    p999Ms: ms(h.getValueAtPercentile(99.9)),
    maxMs: ms(h.maxValue),
  };
}

/** Merges encoded histograms (from worker threads) into one summary. */
export function summarizeEncoded(encoded: readonly string[]): LatencySummary {
  const total = newHistogram();
  for (const e of encoded) {
    const h = decodeHistogram(e);
    total.add(h);
    h.destroy();
  }
  const s = summarize(total);
  total.destroy();
  return s;
}

export function mergeWindows(ws: readonly LatencyWindow[]): LatencyWindow {
  const out: LatencyWindow = { count: 0, sumMs: 0, maxMs: 0 };
  for (const w of ws) {
    out.count += w.count;
    out.sumMs += w.sumMs;
    out.maxMs = Math.max(out.maxMs, w.maxMs);
  }
  return out;
}
