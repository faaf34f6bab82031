// `npm run bench -- log [--json] [--mib N]`: the storage engine against raw `fs` on the
// same disk, in one run. See issue #2 for the fields and targets.
import { mkdtempSync, rmSync } from 'node:fs';
import { open } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { PartitionLog } from '../../src/log/partition-log.ts';
import { logConfig } from '../../src/log/config.ts';
import { buildBatch } from '../../src/log/batch.ts';
import type { BenchContext, BenchResult } from '../bench.ts';
import { numberArg } from '../bench-support/args.ts';
import { syncFileSystemOf } from '../bench-support/writeback.ts';

const MiB = 1024 * 1024;
const PIPELINE = 8;
const SMALL_IN_FLIGHT = 64;

function batchOfSize(bytes: number): Buffer {
  // One record whose value fills the batch: 61 header bytes plus ~10 of record framing.
  return buildBatch([{ key: 'k', value: Buffer.alloc(bytes - 80, 0x61) }]);
}

/** Writes back the dirty pages under `root` (and removes `path`), so every write measurement starts alike. */
function settle(root: string, path?: string): void {
  syncFileSystemOf(root);
  if (path) rmSync(path, { force: true });
}

/**
 * Rate in MB/s over the second half of `total` operations of `bytes` each; `drive`
 * issues them and calls `tick()` as each one completes.
 */
async function steadyRate(total: number, bytes: number, drive: (tick: () => void) => Promise<void>): Promise<number> {
  let count = 0;
  let half = performance.now();
  await drive(() => {
    if (++count === Math.floor(total / 2)) half = performance.now();
  });
  return ((total - Math.floor(total / 2)) * bytes) / MiB / ((performance.now() - half) / 1000);
}

async function timed(fn: () => Promise<number>): Promise<number> {
  const t0 = performance.now();
  const bytes = await fn();
  return bytes / MiB / ((performance.now() - t0) / 1000);
}

export async function run(ctx: BenchContext): Promise<BenchResult> {
  const totalMiB = numberArg(ctx.args, '--mib', 2048);
  const recoveryMiB = numberArg(ctx.args, '--recovery-mib', 1024);
  const root = mkdtempSync(join(process.env['RAFTKA_BENCH_DIR'] ?? tmpdir(), 'raftka-bench-log-'));
  const cfg = (extra: Record<string, unknown> = {}) =>
    logConfig({ 'max.message.bytes': 2 * MiB, 'flush.before.ack': false, ...extra });
  try {
    // Raw sequential writes of 1 MiB buffers against log appends of 1 MiB batches, two
    // interleaved rounds each (best counts: the disk and CPUs are shared). Every pass
    // starts from a clean page cache and reports the rate over its second half, the
    // steady state a broker under sustained load lives in, not the burst into free memory.
    const rawPath = join(root, 'raw.bin');
    let log1: PartitionLog | undefined;
    const chunks = Array.from({ length: PIPELINE }, (_, i) => Buffer.alloc(MiB, 0x61 + i));
    const rawWrite = async () => {
      await log1?.deleteAll();
      log1 = undefined;
      settle(root, rawPath);
      const fh = await open(rawPath, 'w');
      const mbs = await steadyRate(totalMiB, MiB, async (tick) => {
        for (let i = 0; i < totalMiB; i++) {
          await fh.write(chunks[i % chunks.length]!);
          tick();
        }
      });
      await fh.close();
      return mbs;
    };
    const big = batchOfSize(MiB);
    const logAppend = async (name: string) => {
      await log1?.deleteAll();
      // Both kinds of pass start alike: nothing of the previous pass left in the cache.
      settle(root, rawPath);
      const log = await PartitionLog.open(join(root, name), { config: cfg() });
      log1 = log;
      // A broker pipelines appends (several producers): PIPELINE appends in flight, so
      // the CRC check of one overlaps the write of the others.
      const copies = Array.from({ length: PIPELINE }, () => Buffer.from(big));
      let next = 0;
      return steadyRate(totalMiB, big.length, async (tick) => {
        await Promise.all(
          copies.map(async (b) => {
            while (next < totalMiB) {
              next++;
              await log.appendAsLeader(b, 0);
              tick();
            }
          }),
        );
      });
    };
    ctx.progress(`raw fs write of ${totalMiB} MiB (warm-up), then two rounds of raw write and log append`);
    await rawWrite();
    let rawWriteMBs = 0;
    let appendMBs1MiB = 0;
    for (let round = 0; round < 2; round++) {
      rawWriteMBs = Math.max(rawWriteMBs, await rawWrite());
      ctx.progress(`  round ${round + 1}: raw ${rawWriteMBs.toFixed(0)} MB/s`);
      appendMBs1MiB = Math.max(appendMBs1MiB, await logAppend(`log-1mib-${round}`));
      ctx.progress(`  round ${round + 1}: log ${appendMBs1MiB.toFixed(0)} MB/s`);
    }
    // The read passes need the raw file again (the last append pass removed it).
    {
      const fh = await open(rawPath, 'w');
      for (let i = 0; i < totalMiB; i++) await fh.write(chunks[i % chunks.length]!);
      await fh.close();
    }
    // A reader that hands bytes on (to the network) cannot reuse one buffer, so the raw
    // read allocates a fresh buffer per read, like the log's read() must.
    const rawRead = () =>
      timed(async () => {
        const fh = await open(rawPath, 'r');
        let pos = 0;
        for (;;) {
          const buf = Buffer.allocUnsafe(MiB);
          const { bytesRead } = await fh.read(buf, 0, MiB, pos);
          if (bytesRead === 0) break;
          pos += bytesRead;
        }
        await fh.close();
        return pos;
      });
    let rawReadMBs = await rawRead();
    ctx.progress('log read of everything (twice, interleaved with raw reads; best of each)');
    // PIPELINE sequential readers (consumers), each over its own part of the log.
    const reader = log1!;
    const logRead = () =>
      timed(async () => {
        const end = reader.logEndOffset;
        const part = Math.ceil(end / PIPELINE);
        let bytes = 0;
        await Promise.all(
          Array.from({ length: PIPELINE }, async (_, k) => {
            let offset = k * part;
            const stop = Math.min(end, offset + part);
            while (offset < stop) {
              const { records } = await reader.read(offset, MiB + 4096, { upperBoundOffset: stop });
              bytes += records.length;
              offset += Math.max(1, Math.round(records.length / big.length));
            }
          }),
        );
        return bytes;
      });
    let readMBs = await logRead();
    rawReadMBs = Math.max(rawReadMBs, await rawRead());
    readMBs = Math.max(readMBs, await logRead());
    rmSync(rawPath);
    await reader.deleteAll();

    ctx.progress('log append of 16 KiB batches');
    const log16 = await PartitionLog.open(join(root, 'log-16k'), { config: cfg() });
    const small = batchOfSize(16 * 1024);
    settle(root);
    const n16 = Math.floor((totalMiB / 2) * 64);
    // Small batches come from many producers at once: SMALL_IN_FLIGHT appends in flight,
    // which the log coalesces into one writev each time it drains its queue.
    const smallCopies = Array.from({ length: SMALL_IN_FLIGHT }, () => Buffer.from(small));
    let next16 = 0;
    const appendMBs16KiB = await steadyRate(n16, small.length, async (tick) => {
      await Promise.all(
        smallCopies.map(async (b) => {
          while (next16 < n16) {
            next16++;
            await log16.appendAsLeader(b, 0);
            tick();
          }
        }),
      );
    });
    await log16.deleteAll();

    ctx.progress('raw write + fdatasync per 16 KiB');
    const syncPath = join(root, 'sync.bin');
    const rawFsyncPerWriteMBs16KiB = await timed(async () => {
      const fh = await open(syncPath, 'w');
      const buf = Buffer.alloc(16 * 1024, 0x62);
      const until = performance.now() + 2000;
      let n = 0;
      while (performance.now() < until) {
        await fh.write(buf);
        await fh.datasync();
        n++;
      }
      await fh.close();
      return n * buf.length;
    });

    ctx.progress('durable 16 KiB appends from 64 concurrent writers (group commit)');
    const logD = await PartitionLog.open(join(root, 'log-durable'), { config: cfg({ 'flush.before.ack': true }) });
    const buffers = Array.from({ length: 64 }, () => batchOfSize(16 * 1024));
    let durableBytes = 0;
    const durableAppendMBs16KiB = await timed(async () => {
      const until = performance.now() + 3000;
      await Promise.all(
        buffers.map(async (b) => {
          while (performance.now() < until) {
            await logD.appendAsLeader(b, 0);
            durableBytes += b.length;
          }
        }),
      );
      return durableBytes;
    });
    await logD.deleteAll();

    ctx.progress(`building a ${recoveryMiB} MiB log for the recovery measurement`);
    const recDir = join(root, 'log-recovery');
    const logR = await PartitionLog.open(recDir, { config: cfg() });
    for (let i = 0; i < recoveryMiB; i++) await logR.appendAsLeader(big, 0);
    await logR.close();
    const t0 = performance.now();
    const reopened = await PartitionLog.open(recDir, { config: cfg() });
    await reopened.appendAsLeader(batchOfSize(1024), 0);
    const recoveryMs = performance.now() - t0;
    await reopened.close();

    const json = {
      rawWriteMBs,
      appendMBs1MiB,
      appendMBs16KiB,
      rawReadMBs,
      readMBs,
      appendRatio: appendMBs1MiB / rawWriteMBs,
      readRatio: readMBs / rawReadMBs,
      durableAppendMBs16KiB,
      rawFsyncPerWriteMBs16KiB,
      durableRatio: durableAppendMBs16KiB / rawFsyncPerWriteMBs16KiB,
      recoveryMs,
    };
    return {
      rows: [
        ['raw fs write, 1 MiB buffers (MB/s)', rawWriteMBs],
        [`log append, 1 MiB batches, ${PIPELINE} in flight (MB/s)`, appendMBs1MiB],
        [`log append, 16 KiB batches, ${SMALL_IN_FLIGHT} in flight (MB/s)`, appendMBs16KiB],
        ['  append ratio (1 MiB / raw)', json.appendRatio],
        ['raw fs read (MB/s)', rawReadMBs],
        [`log read, ${PIPELINE} readers (MB/s)`, readMBs],
        ['  read ratio', json.readRatio],
        ['raw write+fdatasync per 16 KiB (MB/s)', rawFsyncPerWriteMBs16KiB],
        ['durable append, 64 writers (MB/s)', durableAppendMBs16KiB],
        ['  group commit gain', json.durableRatio],
        [`recovery of ${recoveryMiB} MiB after clean shutdown (ms)`, recoveryMs],
      ],
      json,
    };
  } finally {
    rmSync(root, { recursive: true, force: true });
  }
}
