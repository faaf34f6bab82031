// Raw disk baselines the benchmarks share: what the file system does with no broker code
// in the way, measured in the same run as the thing compared with it.
import { closeSync, fdatasyncSync, openSync, rmSync, writeSync } from 'node:fs';
import { join } from 'node:path';
import { LatencyRecorder, summarize } from '../../src/perf/latency.ts';

/** Sequential 1 MiB writes into a new file (fresh page-cache pages), no sync. */
export function rawDiskWrite(dir: string, mib: number): number {
  const path = join(dir, 'raw-write.bin');
  const buf = Buffer.alloc(1 << 20, 0x61);
  const fd = openSync(path, 'w');
  const t0 = performance.now();
  for (let i = 0; i < mib; i++) writeSync(fd, buf);
  const secs = (performance.now() - t0) / 1000;
  closeSync(fd);
  rmSync(path);
  return (mib * 1.048576) / secs;
}

/** 4 KiB append + fdatasync, one after the other, for `seconds`. */
export function rawFdatasync(dir: string, seconds: number): { perSec: number; p50Ms: number; p99Ms: number } {
  const path = join(dir, 'raw-sync.bin');
  const buf = Buffer.alloc(4096, 0x62);
  const fd = openSync(path, 'w');
  const lat = new LatencyRecorder();
  let n = 0;
  const t0 = performance.now();
  const end = t0 + seconds * 1000;
  while (performance.now() < end) {
    const t = performance.now();
    writeSync(fd, buf);
    fdatasyncSync(fd);
    lat.record(performance.now() - t);
    n++;
  }
  const secs = (performance.now() - t0) / 1000;
  closeSync(fd);
  rmSync(path);
  const s = summarize(lat.histogram);
  lat.destroy();
  return { perSec: n / secs, p50Ms: s.p50Ms, p99Ms: s.p99Ms };
}
