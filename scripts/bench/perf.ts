// `npm run bench -- perf [--json] [--scale F] [--repeat N] [--producers N] [--cpu-prof DIR] [--only a,b]`:
// the benchmark matrix of issue 8. A three-node cluster of real processes (RF 3,
// acks=all, durable default: flush.before.ack), driven by the `raftka perf` load
// generators (src/perf), and in the same run the baselines the machine allows: raw disk
// write into fresh pages, raw fdatasync rate, raw Node TCP and a raw grpc-js stream with
// the same 64 KiB payloads between two processes.
//
// Runs: produce 100 B and 1 KiB records as fast as they go; produce 1 KiB at a fixed
// 5,000 records/s (send-to-ack percentiles); consume the 1 KiB topic with one member and
// with three; end-to-end latency at 5,000 records/s; produce with lz4 on compressible
// JSON values (MB/s of uncompressed values); produce 1 KiB with smaller batches (the
// batch-size sweep); and, not among the targets, the fixed-rate produce on a topic with
// flush.before.ack=false, which shows what the durable default's sync before each
// acknowledgement costs in latency. Peak RSS (VmHWM) of every broker process.
//
// Writes bench/results/<timestamp>.json (every figure and the settings), bench/report.md
// and bench/charts/*.svg. MB = 10^6 bytes. --scale shrinks or grows every record count
// (default 1: a full run takes about 3 minutes here). --cpu-prof DIR runs the brokers
// under `node --cpu-prof` (profiles written at their controlled shutdown).
import { mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { connect } from 'node:net';
import { cpus, tmpdir, totalmem } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import type { BenchContext, BenchResult } from '../bench.ts';
import { DEV_OVERRIDES, ProcessCluster, freePorts } from '../../src/node/process-cluster.ts';
import { RawClient } from '../../src/client/raw-client.ts';
import { buildBatch } from '../../src/log/batch.ts';
import { producePerf, type ProduceSummary } from '../../src/perf/produce.ts';
import { consumePerf, type ConsumeSummary } from '../../src/perf/consume.ts';
import { e2ePerf, type E2eSummary } from '../../src/perf/e2e.ts';
import { progressLine } from '../../src/perf/coordinator.ts';
import { barChart, latencyChart } from '../bench-support/charts.ts';
import { rawGrpcStream, spawnSink } from '../bench-support/sinks.ts';
import { syncFileSystemOf } from '../bench-support/writeback.ts';
import { rawDiskWrite, rawFdatasync } from '../bench-support/disk.ts';

const PARTITIONS = 6;
/**
 * The producers' settings in every run: the OpenMessaging Benchmark's Kafka throughput
 * profile (driver-kafka/kafka-throughput.yaml: acks=all, linger.ms=1, batch.size=1 MiB).
 * A cluster's CPU here goes mostly to work per batch, not per byte: fitted over 16 KiB to
 * 256 KiB batches of 1 KiB records, the three brokers together spent about 0.65 ms per
 * batch and 20 ms per MB. 64 KiB batches (this matrix's setting until 2026-12-03) made
 * 37-48 MB/s, 1 MiB batches 76-85 MB/s. The sweep run (BATCH_SWEEP_BYTES) keeps the
 * smaller sizes in the report.
 *
 * Linger: at 5,000 records/s the sender hands over what is due every millisecond;
 * linger 1 ms groups those into fewer requests per partition than linger 0, which
 * measured about the same p50 and a lower p99 here (the producer keeps at most 5
 * idempotent requests in flight per broker). At full speed each send() brings a
 * thousand records at once, so batches fill before linger matters (1 MiB batches
 * measured the same with linger 1 and 5 ms).
 */
const BATCH_BYTES = 1 << 20;
const LINGER_MS = 1;
/** Batch sizes of the 1 KiB sweep, besides BATCH_BYTES: Kafka's default (16 KiB) and two between. */
const BATCH_SWEEP_BYTES = [16 * 1024, 64 * 1024, 256 * 1024] as const;
/** The JSON field of the sweep's run at `batchBytes`. */
const sweepField = (batchBytes: number) => `produceMBs1KiBBatch${batchBytes / 1024}KiB`;
/**
 * The fixed-rate producers run in a worker thread of their own and first send this many
 * records at the same rate, unmeasured (20 s at 5,000/s). Run cold in the main thread,
 * the producer spent the measured run interpreted and JIT-compiling, and inherited
 * allocation sites the baselines had taught V8 to pretenure: a major GC every ~300 ms
 * (20-30 of them in a 10 s run, --trace-gc). The brokers need the time too: after the
 * full-speed warm-up they still optimized ~280 functions each in the first 8 s at
 * 5,000/s (--trace-opt; a quarter of their CPU went to TurboFan's threads in `perf
 * record`) and p50 went 11.3, 4.5, 3.4, 3.4, 3.2 ms over five 8 s runs in a row, with
 * 73, 32, 34, 14 optimizations in the later ones. A broker serves for days; the figure
 * wanted is its steady state, not its first half-minute.
 */
const LATENCY_WARMUP_RECORDS = 100_000;
/**
 * The topic of the fixed-rate run without the durable default: the log syncs only on
 * flush.messages / flush.ms (Kafka's behaviour) instead of before each acknowledgement.
 * It runs before the durable fixed-rate run, so that one gets the warmer cluster.
 */
const NO_FLUSH_TOPIC = 'latnoflush';
/**
 * The full-speed runs' producers (fresh worker threads each run) first send a tenth of
 * their count unmeasured: run cold, TurboFan's threads took 30% of the load generator's
 * CPU (`perf record` of a 1 KiB run), on the cores the brokers share.
 */
const THROUGHPUT_WARMUP_SHARE = 0.1;
/**
 * Bytes per partition per consumer fetch: Kafka's max.partition.fetch.bytes default.
 * 8 MiB measured no faster here and cost the brokers ~100 MB more peak RSS (six 8 MiB
 * reads and their encoded responses in flight).
 */
const FETCH_PARTITION_BYTES = 1 << 20;
const REPO = fileURLToPath(new URL('../../', import.meta.url));

function arg(args: string[], name: string): string | undefined {
  const i = args.indexOf(name);
  return i >= 0 ? args[i + 1] : undefined;
}

// ─── baselines ───

/** One TCP connection to another process, 64 KiB writes for `seconds`, counted by the receiver. */
async function rawTcp(payload: Buffer, seconds: number): Promise<number> {
  const sink = spawnSink('tcp-sink.ts');
  try {
    const port = await sink.port;
    const sock = connect(port, '127.0.0.1');
    await new Promise<void>((r, j) => sock.once('connect', r).once('error', j));
    const t0 = performance.now();
    const end = t0 + seconds * 1000;
    while (performance.now() < end) {
      if (!sock.write(payload)) await new Promise((r) => sock.once('drain', r));
    }
    const answer = new Promise<string>((resolve) => {
      let s = '';
      sock.on('data', (d: Buffer) => (s += d.toString()));
      sock.on('end', () => resolve(s));
    });
    sock.end();
    const bytes = Number((await answer).trim());
    return bytes / 1e6 / ((performance.now() - t0) / 1000);
  } finally {
    sink.kill();
  }
}

/** Peak resident set (VmHWM) of a process, MB (10^6 bytes). */
function peakRssMB(pid: number | undefined): number {
  if (pid === undefined) return NaN;
  try {
    const m = /VmHWM:\s+(\d+) kB/.exec(readFileSync(`/proc/${pid}/status`, 'utf8'));
    return m ? (Number(m[1]) * 1024) / 1e6 : NaN;
  } catch {
    return NaN;
  }
}

/** Starts a new peak-RSS window: writing 5 to clear_refs resets VmHWM to the current RSS (Linux). */
function resetPeakRss(pid: number | undefined): void {
  if (pid === undefined) return;
  try {
    writeFileSync(`/proc/${pid}/clear_refs`, '5');
  } catch {
    // Not Linux, or the process is gone: the peak then spans the whole run.
  }
}

/**
 * CPU time (user + system) a process has used so far, seconds; Linux only. On this
 * shared host the brokers' CPU per run is steadier than its latency or throughput, so
 * it is what an A/B of a broker change compares.
 */
function cpuSeconds(pid: number | undefined): number {
  if (pid === undefined) return NaN;
  try {
    // Fields after the parenthesised command name: utime and stime are the 12th and 13th.
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
    const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
    return (Number(fields[11]) + Number(fields[12])) / CLOCK_TICKS_PER_SEC;
  } catch {
    return NaN;
  }
}
/** USER_HZ: 100 on every Linux this runs on (sysconf(_SC_CLK_TCK)). */
const CLOCK_TICKS_PER_SEC = 100;

/**
 * Cumulative CPU time of the whole machine from /proc/stat (ticks): all states, and
 * "steal" (time the hypervisor gave our vCPUs to someone else). Linux only.
 */
function machineTicks(): { total: number; steal: number } {
  try {
    const cpu = readFileSync('/proc/stat', 'utf8').split('\n')[0]!.trim().split(/\s+/).slice(1).map(Number);
    // user nice system idle iowait irq softirq steal guest guest_nice: guests are in user already.
    return { total: cpu.slice(0, 8).reduce((a, b) => a + b, 0), steal: cpu[7] ?? 0 };
  } catch {
    return { total: NaN, steal: NaN };
  }
}

/** Share of the machine's CPU time since `from` that was stolen, percent. */
function stealPercentSince(from: { total: number; steal: number }): number {
  const now = machineTicks();
  return (100 * (now.steal - from.steal)) / (now.total - from.total);
}

// ─── the matrix ───

interface Runs {
  produce100?: ProduceSummary;
  produce1k?: ProduceSummary;
  produceLat?: ProduceSummary;
  /** The fixed-rate run on NO_FLUSH_TOPIC. */
  produceLatNoFlush?: ProduceSummary;
  consume1?: ConsumeSummary;
  consume3?: ConsumeSummary;
  e2e?: E2eSummary;
  lz4?: ProduceSummary;
  /** 1 KiB produce at each of BATCH_SWEEP_BYTES, keyed by batch bytes. */
  batchSweep?: Record<number, ProduceSummary>;
}

type Fields = Record<string, number>;

/** What the report reads of a matrix's record (the record holds more). */
interface ReportedRecord {
  startedAt: string;
  seconds: number;
  machine: { cpus: number; cpuModel: string; loadAvgAtEnd: number[]; stealPercent: number };
  settings: { producers: number; latencyWarmupRecords?: number };
  brokerPeakRssByRunMB: Record<string, Record<string, number>>;
}

interface MatrixResult {
  record: Record<string, unknown> & ReportedRecord;
  fields: Fields;
  runs: Runs;
  sync: { perSec: number; p50Ms: number; p99Ms: number };
  rss: Record<string, number>;
  started: Date;
}

/** The median of each field over repeated matrices (NaN where a run did not measure it). */
export function medianFields(all: readonly Fields[]): Fields {
  const out: Fields = {};
  for (const key of Object.keys(all[0] ?? {})) {
    const xs = all.map((f) => f[key]!).filter((x) => Number.isFinite(x)).sort((a, b) => a - b);
    out[key] = xs.length === 0 ? NaN : xs.length % 2 === 1 ? xs[(xs.length - 1) / 2]! : (xs[xs.length / 2 - 1]! + xs[xs.length / 2]!) / 2;
  }
  return out;
}

/**
 * `--repeat N` runs the whole matrix N times (a fresh cluster each time) and reports the
 * median of every figure, with each run's figures in the record and the report: this
 * machine's speed drifts by a factor of two within minutes, more than most changes move
 * a figure.
 */
export async function run(ctx: BenchContext): Promise<BenchResult> {
  const repeat = Math.max(1, Math.floor(Number(arg(ctx.args, '--repeat') ?? 1)));
  const results: MatrixResult[] = [];
  for (let i = 0; i < repeat; i++) {
    if (repeat > 1) ctx.progress(`=== matrix ${i + 1} of ${repeat} ===`);
    results.push(await runMatrix(ctx));
  }
  const last = results[results.length - 1]!;
  const fields = repeat > 1 ? medianFields(results.map((r) => r.fields)) : last.fields;
  const record = { ...last.record, fields, ...(repeat > 1 ? { repeats: results.map((r) => ({ startedAt: r.record.startedAt, fields: r.fields })) } : {}) };
  writeReport(record, fields, last.runs, last.sync, last.rss, repeat > 1 ? results.map((r) => r.fields) : undefined);
  await writeCharts(fields, last.runs);
  mkdirSync(join(REPO, 'bench/results'), { recursive: true });
  writeFileSync(join(REPO, 'bench/results', `${stamp(last.started)}.json`), JSON.stringify(record, null, 2) + '\n');
  ctx.progress(`wrote bench/report.md, bench/charts/*.svg and bench/results/${stamp(last.started)}.json`);

  const f = (x: number | undefined, d = 1) => (x !== undefined && Number.isFinite(x) ? Number(x.toFixed(d)) : NaN);
  const of = repeat > 1 ? ` (median of ${repeat})` : '';
  return {
    rows: [
      [`produce 100 B, records/s (target >= 250,000)${of}`, f(fields['produceRecordsPerSec100B'], 0)],
      ['produce 1 KiB, MB/s (target >= 50)', f(fields['produceMBs1KiB'])],
      ['produce 1 KiB at 5,000/s: p50 ms (target <= 3)', f(fields['produceP50Ms'], 2)],
      ['produce 1 KiB at 5,000/s: p99 ms (target <= 15)', f(fields['produceP99Ms'], 2)],
      ['produce 1 KiB at 5,000/s, flush.before.ack=false: p50 ms', f(fields['produceP50MsNoFlushBeforeAck'], 2)],
      ['produce 1 KiB at 5,000/s, flush.before.ack=false: p99 ms', f(fields['produceP99MsNoFlushBeforeAck'], 2)],
      ['consume 1 KiB, one member, MB/s (target >= 200)', f(fields['consumeMBs1KiB'])],
      ['consume 1 KiB, three members, MB/s', f(fields['consumeMBs1KiB3'])],
      ['end-to-end p99 at 5,000/s, ms (target <= 20)', f(fields['e2eP99Ms'], 2)],
      ['produce lz4 JSON, MB/s of values', f(fields['produceMBsLz4'])],
      ...BATCH_SWEEP_BYTES.map((b) => [`produce 1 KiB with ${b / 1024} KiB batches, MB/s`, f(fields[sweepField(b)])] as [string, number]),
      ['broker peak RSS, max MB (target <= 150)', f(fields['brokerRssMaxMB'])],
      ['raw disk write, fresh pages, MB/s', f(fields['rawDiskWriteMBs'])],
      ['raw 4 KiB write+fdatasync, per s (last matrix)', f(last.sync.perSec, 0)],
      ['raw Node TCP, MB/s', f(fields['rawTcpMBs'])],
      ['raw grpc-js stream, 64 KiB messages, MB/s', f(fields['rawGrpcMBs'])],
    ],
    json: fields,
  };
}

async function runMatrix(ctx: BenchContext): Promise<MatrixResult> {
  const scale = Number(arg(ctx.args, '--scale') ?? 1);
  // Two producer instances (each its own worker thread and connections) for the
  // throughput runs: one tops out first at 100 B records (measured 187-215k records/s
  // against 223-237k for two, with or without worker threads: the 2 cores are shared).
  const producers = Number(arg(ctx.args, '--producers') ?? 2);
  const profDir = arg(ctx.args, '--cpu-prof');
  const only = arg(ctx.args, '--only')?.split(',');
  const want = (name: string) => only === undefined || only.includes(name);
  const n = (x: number) => Math.max(1000, Math.round(x * scale));
  /** Unmeasured records before a full-speed run of `count`. */
  const warmup = (count: number) => n(count * THROUGHPUT_WARMUP_SHARE);
  const root = mkdtempSync(join(tmpdir(), 'raftka-bench-perf-'));
  const ports = await freePorts(6);
  const cluster = ProcessCluster.prepare({
    root,
    nodeIds: [1, 2, 3],
    clientPorts: ports.slice(0, 3),
    controllerPorts: ports.slice(3),
    overrides: DEV_OVERRIDES,
    ...(profDir ? { nodeArgs: ['--cpu-prof', `--cpu-prof-dir=${profDir}`] } : {}),
  });
  const bootstrap = cluster.spec.nodeIds.map((id) => cluster.clientAddress(id));
  const runs: Runs = {};
  const started = new Date();
  const rss: Record<string, number> = {};
  const t0 = performance.now();
  // Steal over the matrix: on a shared host it says how much of the run's CPU it never had.
  const ticksAtStart = machineTicks();
  const step = (msg: string) => ctx.progress(`[${((performance.now() - t0) / 1000).toFixed(0)} s] ${msg}`);
  const onProgress = (verb: string) => (p: Parameters<typeof progressLine>[0]) => ctx.progress(`    ${progressLine(p, verb)}`);
  // Dirty pages from the run before are written back first (sync), so each run starts
  // from a quiet disk: otherwise the kernel's writeback of a throughput run's gigabyte
  // lands in the next run's fdatasyncs.
  // Peak RSS per run: VmHWM is read when a run ends and then reset (clear_refs), so the
  // record shows which run drives each broker's peak; `rss` keeps the overall maximum.
  // Broker CPU seconds per run (all three summed) come from the same windows.
  const rssByRun: Record<string, Record<string, number>> = {};
  const cpuByRun: Record<string, number> = {};
  let cpuAtWindowStart = 0;
  const closeRssWindow = (run: string) => {
    const peaks: Record<string, number> = {};
    let cpu = 0;
    for (const id of cluster.spec.nodeIds) {
      const key = `node${id}`;
      peaks[key] = peakRssMB(cluster.pid(id));
      resetPeakRss(cluster.pid(id));
      rss[key] = Math.max(rss[key] ?? 0, peaks[key]);
      cpu += cpuSeconds(cluster.pid(id));
    }
    rssByRun[run] = peaks;
    cpuByRun[run] = cpu - cpuAtWindowStart;
    cpuAtWindowStart = cpu;
  };
  const settle = async (run: string) => {
    closeRssWindow(run);
    step(`  brokers used ${cpuByRun[run]!.toFixed(1)} CPU seconds in ${run}`);
    const t = performance.now();
    syncFileSystemOf(root);
    const ms = performance.now() - t;
    if (ms > 200) step(`  (sync: ${ms.toFixed(0)} ms of writeback before the next run)`);
    await new Promise((r) => setTimeout(r, 200));
  };
  const common = { bootstrap, acks: -1, compression: 'none' as const, batchSize: BATCH_BYTES, lingerMs: LINGER_MS, producers, payloadJson: false, stamp: false };
  try {
    step('baselines: disk, fdatasync, TCP, grpc-js stream');
    const rawDiskWriteMBs = rawDiskWrite(root, 512);
    const sync = rawFdatasync(root, 2);
    const payload = buildBatch(Array.from({ length: 62 }, (_, i) => ({ value: Buffer.alloc(1024, 97 + (i % 26)) })));
    const rawTcpMBs = await rawTcp(payload, 2);
    const rawGrpcMBs = (await rawGrpcStream(payload, 3)).mbs;
    step(`  disk ${rawDiskWriteMBs.toFixed(0)} MB/s, fdatasync ${sync.perSec.toFixed(0)}/s, TCP ${rawTcpMBs.toFixed(0)} MB/s, grpc-js stream ${rawGrpcMBs.toFixed(0)} MB/s`);

    step('starting three nodes');
    cluster.startAll();
    await cluster.waitReady(60_000, 50);
    const admin = new RawClient(bootstrap[0]!);
    const topics = ['warm', 'p100', 'p1k', NO_FLUSH_TOPIC, 'lat', 'e2e', 'lz4', 'sweep'];
    const created = await admin.createTopics({
      topics: topics.map((name) => ({ name, numPartitions: PARTITIONS, replicationFactor: 3, ...(name === NO_FLUSH_TOPIC ? { configs: { 'flush.before.ack': 'false' } } : {}) })),
      timeoutMs: 30_000,
    });
    admin.close();
    for (const t of created.topics) if (t.errorCode !== 0) throw new Error(`create topic ${t.name}: error ${t.errorCode} ${t.errorMessage}`);

    // Warm up (JIT, connections, segment files) so the first measured run, the latency
    // run, does not pay for it.
    step('warm-up: 50,000 records of 1 KiB, not measured');
    await producePerf({ ...common, topic: 'warm', numRecords: n(50_000), recordSize: 1024, throughput: -1 });
    await settle('start-up and warm-up');
    /** The fixed-rate produce run on `topic`: one producer in a worker thread, 5,000 records/s of 1 KiB after a warm-up. */
    const fixedRate = (topic: string, what: string) => {
      step(`produce 1 KiB records at 5,000 records/s, linger ${LINGER_MS} ms${what} (${n(50_000)} records after ${n(LATENCY_WARMUP_RECORDS)} unmeasured)`);
      return producePerf({ ...common, producers: 1, workerThreads: true, warmupRecords: n(LATENCY_WARMUP_RECORDS), topic, numRecords: n(50_000), recordSize: 1024, throughput: 5000, onProgress: onProgress('sent') });
    };
    if (want('noflush')) runs.produceLatNoFlush = await fixedRate(NO_FLUSH_TOPIC, ', flush.before.ack=false');
    await settle('noflush');
    if (want('latency')) runs.produceLat = await fixedRate('lat', '');
    await settle('latency');
    if (want('e2e')) {
      step(`end-to-end latency at 5,000 records/s of 1 KiB, linger 1 ms (${n(50_000)} records after ${n(LATENCY_WARMUP_RECORDS)} unmeasured)`);
      runs.e2e = await e2ePerf({ bootstrap, topic: 'e2e', numRecords: n(50_000), throughput: 5000, recordSize: 1024, acks: -1, compression: 'none', batchSize: BATCH_BYTES, lingerMs: LINGER_MS, timeoutMs: 10_000, warmupRecords: n(LATENCY_WARMUP_RECORDS), onProgress: onProgress('read') });
    }
    await settle('e2e');
    if (want('produce100')) {
      step(`produce 100 B records, as fast as they go (${n(2_000_000)} records after ${warmup(2_000_000)} unmeasured)`);
      runs.produce100 = await producePerf({ ...common, topic: 'p100', numRecords: n(2_000_000), warmupRecords: warmup(2_000_000), recordSize: 100, throughput: -1, onProgress: onProgress('sent') });
    }
    await settle('produce100');
    if (want('produce1k')) {
      step(`produce 1 KiB records, as fast as they go (${n(400_000)} records after ${warmup(400_000)} unmeasured)`);
      runs.produce1k = await producePerf({ ...common, topic: 'p1k', numRecords: n(400_000), warmupRecords: warmup(400_000), recordSize: 1024, throughput: -1, onProgress: onProgress('sent') });
    }
    await settle('produce1k');
    if (want('consume') && runs.produce1k) {
      step('consume the 1 KiB topic, one member');
      runs.consume1 = await consumePerf({ bootstrap, topic: 'p1k', members: 1, fetchMaxBytes: FETCH_PARTITION_BYTES, timeoutMs: 10_000, onProgress: onProgress('read') });
      step('consume the 1 KiB topic, three members (worker threads)');
      runs.consume3 = await consumePerf({ bootstrap, topic: 'p1k', members: 3, fetchMaxBytes: FETCH_PARTITION_BYTES, timeoutMs: 10_000, onProgress: onProgress('read') });
    }
    await settle('consume');
    if (want('lz4')) {
      step(`produce lz4 on compressible 1 KiB JSON values (${n(400_000)} records after ${warmup(400_000)} unmeasured)`);
      runs.lz4 = await producePerf({ ...common, compression: 'lz4', payloadJson: true, topic: 'lz4', numRecords: n(400_000), warmupRecords: warmup(400_000), recordSize: 1024, throughput: -1, onProgress: onProgress('sent') });
    }
    await settle('lz4');
    if (want('sweep')) {
      // Its own topic, so the consume runs read only the 1 MiB batches of p1k.
      runs.batchSweep = {};
      for (const batchSize of BATCH_SWEEP_BYTES) {
        step(`produce 1 KiB records with ${batchSize / 1024} KiB batches (${n(150_000)} records after ${warmup(150_000)} unmeasured)`);
        runs.batchSweep[batchSize] = await producePerf({ ...common, batchSize, topic: 'sweep', numRecords: n(150_000), warmupRecords: warmup(150_000), recordSize: 1024, throughput: -1, onProgress: onProgress('sent') });
      }
    }
    closeRssWindow('sweep');
    step(`peak RSS of the brokers: ${Object.entries(rss).map(([k, v]) => `${k} ${v.toFixed(0)} MB`).join(', ')}`);

    const fields = {
      produceRecordsPerSec100B: runs.produce100?.recordsPerSec ?? NaN,
      produceMBs1KiB: runs.produce1k?.mbPerSec ?? NaN,
      produceP50Ms: runs.produceLat?.p50Ms ?? NaN,
      produceP99Ms: runs.produceLat?.p99Ms ?? NaN,
      produceP50MsNoFlushBeforeAck: runs.produceLatNoFlush?.p50Ms ?? NaN,
      produceP99MsNoFlushBeforeAck: runs.produceLatNoFlush?.p99Ms ?? NaN,
      consumeMBs1KiB: runs.consume1?.mbPerSec ?? NaN,
      consumeMBs1KiB3: runs.consume3?.mbPerSec ?? NaN,
      e2eP99Ms: runs.e2e?.p99Ms ?? NaN,
      produceMBsLz4: runs.lz4?.mbPerSec ?? NaN,
      ...Object.fromEntries(BATCH_SWEEP_BYTES.map((b) => [sweepField(b), runs.batchSweep?.[b]?.mbPerSec ?? NaN])),
      brokerRssMaxMB: Math.max(...Object.values(rss)),
      rawDiskWriteMBs,
      rawTcpMBs,
      rawGrpcMBs,
    };
    const record = {
      startedAt: started.toISOString(),
      seconds: (performance.now() - t0) / 1000,
      machine: { cpus: cpus().length, cpuModel: cpus()[0]?.model ?? '', memGB: totalmem() / 1e9, node: process.version, loadAvgAtEnd: (await import('node:os')).loadavg(), stealPercent: stealPercentSince(ticksAtStart) },
      settings: { scale, producers, partitions: PARTITIONS, replicationFactor: 3, acks: 'all', batchSize: BATCH_BYTES, lingerMs: LINGER_MS, batchSweepBytes: BATCH_SWEEP_BYTES, latencyWarmupRecords: n(LATENCY_WARMUP_RECORDS), throughputWarmupShare: THROUGHPUT_WARMUP_SHARE, durable: 'flush.before.ack=true (default)', overrides: DEV_OVERRIDES, cpuProfiles: profDir ?? null },
      fields,
      rawFdatasync: sync,
      runs,
      brokerPeakRssMB: rss,
      brokerPeakRssByRunMB: rssByRun,
      brokerCpuSecondsByRun: cpuByRun,
    };
    return { record, fields, runs, sync, rss, started };
  } finally {
    // A controlled shutdown when profiling, so each broker writes its profile.
    if (profDir) await cluster.stopAll(30_000);
    await cluster.killAll();
    rmSync(root, { recursive: true, force: true });
  }
}

function stamp(d: Date): string {
  return d.toISOString().replace(/[:.]/g, '-').replace(/-\d\d\dZ$/, 'Z');
}

async function writeCharts(fields: Record<string, number>, runs: Runs): Promise<void> {
  const dir = join(REPO, 'bench/charts');
  mkdirSync(dir, { recursive: true });
  const tp = await barChart('Throughput (MB/s, log scale): Raftka, RF 3, acks=all, against the machine', 'MB/s', [
    { label: 'produce 100 B records', value: (runs.produce100?.mbPerSec ?? NaN), kind: 'raftka' },
    { label: 'produce 1 KiB records', value: fields.produceMBs1KiB!, kind: 'raftka' },
    { label: 'produce 1 KiB lz4 JSON (values)', value: fields.produceMBsLz4!, kind: 'raftka' },
    { label: 'consume 1 KiB, 1 member', value: fields.consumeMBs1KiB!, kind: 'raftka' },
    { label: 'consume 1 KiB, 3 members', value: fields.consumeMBs1KiB3!, kind: 'raftka' },
    { label: 'raw disk write (fresh pages)', value: fields.rawDiskWriteMBs!, kind: 'baseline' },
    { label: 'raw Node TCP', value: fields.rawTcpMBs!, kind: 'baseline' },
    { label: 'raw grpc-js stream', value: fields.rawGrpcMBs!, kind: 'baseline' },
  ]);
  writeFileSync(join(dir, 'throughput.svg'), tp);
  const sweep = await barChart('Produce 1 KiB records (MB/s, log scale) by producer batch.size, RF 3, acks=all', 'MB/s', [
    ...BATCH_SWEEP_BYTES.map((b) => ({ label: `batch.size ${b / 1024} KiB`, value: fields[sweepField(b)]!, kind: 'raftka' })),
    { label: `batch.size ${BATCH_BYTES / 1024} KiB (the matrix's)`, value: fields.produceMBs1KiB!, kind: 'raftka' },
    { label: 'raw disk write (fresh pages) / 3 replicas', value: fields.rawDiskWriteMBs! / 3, kind: 'baseline' },
  ]);
  writeFileSync(join(dir, 'batch-size.svg'), sweep);
  const pts = (s: { p50Ms: number; p95Ms: number; p99Ms: number; p999Ms: number; maxMs: number } | undefined) =>
    s ? [
      { percentile: 'p50', ms: s.p50Ms },
      { percentile: 'p95', ms: s.p95Ms },
      { percentile: 'p99', ms: s.p99Ms },
      { percentile: 'p99.9', ms: s.p999Ms },
      { percentile: 'max', ms: s.maxMs },
    ] : [];
  const lat = await latencyChart('Latency at 5,000 records/s of 1 KiB (ms, log scale)', [
    { series: 'produce send-to-ack (acks=all)', points: pts(runs.produceLat) },
    { series: 'produce send-to-ack, flush.before.ack=false', points: pts(runs.produceLatNoFlush) },
    { series: 'end to end (send to consumer)', points: pts(runs.e2e) },
  ]);
  writeFileSync(join(dir, 'latency.svg'), lat);
}

function writeReport(
  record: ReportedRecord,
  fields: Fields,
  runs: Runs,
  sync: { perSec: number; p50Ms: number; p99Ms: number },
  rss: Record<string, number>,
  repeats?: readonly Fields[],
): void {
  const v = (x: number | undefined, d = 1) => (x === undefined || !Number.isFinite(x) ? 'n/a' : x.toLocaleString('en-US', { maximumFractionDigits: d, minimumFractionDigits: d }));
  const ok = (x: number, target: number, dir: 'min' | 'max') => (!Number.isFinite(x) ? '' : (dir === 'min' ? x >= target : x <= target) ? 'met' : 'not yet');
  const lines = [
    '# Raftka benchmark report',
    '',
    `Run ${record.startedAt} (${record.seconds.toFixed(0)} s) on ${record.machine.cpus} × ${record.machine.cpuModel}, ${process.version}; load average at the end ${record.machine.loadAvgAtEnd.map((x) => x.toFixed(1)).join(' ')}; CPU time stolen by the hypervisor during the run ${record.machine.stealPercent.toFixed(1)}%.`,
    'Three Raftka nodes as separate processes, topics of 6 partitions, replication factor 3, acks=all, durable default (`flush.before.ack=true`: an acknowledged batch is fdatasync-ed on every in-sync replica), and the load generator, all on the same machine.',
    'Reproduce with `npm run bench -- perf` (add `--json` for one JSON line). MB = 10^6 bytes.',
    '',
    ...(repeats
      ? [
          `The figures below are the medians of ${repeats.length} runs of the whole matrix (each with a fresh cluster); each run's figures are at the end. The per-run details (runs, peak RSS) are those of the last matrix.`,
          '',
        ]
      : []),
    '| figure | Raftka | target | | baseline on this machine |',
    '|---|---:|---:|---|---|',
    `| produce 100 B records (records/s) | ${v(fields.produceRecordsPerSec100B, 0)} | ≥ 250,000 | ${ok(fields.produceRecordsPerSec100B!, 250_000, 'min')} | |`,
    `| produce 1 KiB records (MB/s) | ${v(fields.produceMBs1KiB)} | ≥ 50 | ${ok(fields.produceMBs1KiB!, 50, 'min')} | raw write into fresh page-cache pages (no sync) ${v(fields.rawDiskWriteMBs, 0)} MB/s |`,
    `| produce 1 KiB at 5,000/s, p50 (ms) | ${v(fields.produceP50Ms, 2)} | ≤ 3 | ${ok(fields.produceP50Ms!, 3, 'max')} | 4 KiB write+fdatasync p50 ${v(sync.p50Ms, 2)} ms |`,
    `| produce 1 KiB at 5,000/s, p99 (ms) | ${v(fields.produceP99Ms, 2)} | ≤ 15 | ${ok(fields.produceP99Ms!, 15, 'max')} | fdatasync p99 ${v(sync.p99Ms, 2)} ms, ${v(sync.perSec, 0)}/s |`,
    `| the same on a flush.before.ack=false topic, p50 / p99 (ms) | ${v(fields.produceP50MsNoFlushBeforeAck, 2)} / ${v(fields.produceP99MsNoFlushBeforeAck, 2)} | | | |`,
    `| consume 1 KiB, one member (MB/s) | ${v(fields.consumeMBs1KiB)} | ≥ 200 | ${ok(fields.consumeMBs1KiB!, 200, 'min')} | raw grpc-js stream ${v(fields.rawGrpcMBs, 0)} MB/s |`,
    `| consume 1 KiB, three members (MB/s) | ${v(fields.consumeMBs1KiB3)} | | | raw Node TCP ${v(fields.rawTcpMBs, 0)} MB/s |`,
    `| end to end at 5,000/s, p99 (ms) | ${v(fields.e2eP99Ms, 2)} | ≤ 20 | ${ok(fields.e2eP99Ms!, 20, 'max')} | |`,
    `| produce lz4 JSON 1 KiB (MB/s of values) | ${v(fields.produceMBsLz4)} | | | |`,
    ...BATCH_SWEEP_BYTES.map((b) => `| produce 1 KiB records, ${b / 1024} KiB batches (MB/s) | ${v(fields[sweepField(b)])} | | | |`),
    `| broker peak RSS, max (MB) | ${v(fields.brokerRssMaxMB, 0)} | ≤ 150 | ${ok(fields.brokerRssMaxMB!, 150, 'max')} | ${Object.entries(rss).map(([k, x]) => `${k} ${v(x, 0)}`).join(', ')} |`,
    '',
    '![throughput](charts/throughput.svg)',
    '',
    '![latency](charts/latency.svg)',
    '',
    '![batch size](charts/batch-size.svg)',
    '',
    '## Runs',
    '',
    '| run | records | records/s | MB/s | avg | p50 | p95 | p99 | p99.9 | max (ms) |',
    '|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|',
    ...(
      [
        ['produce 100 B, as fast as possible', runs.produce100],
        ['produce 1 KiB, as fast as possible', runs.produce1k],
        ['produce 1 KiB at 5,000/s, linger 1 ms', runs.produceLat],
        ['produce 1 KiB at 5,000/s, linger 1 ms, flush.before.ack=false', runs.produceLatNoFlush],
        ['produce lz4 JSON 1 KiB', runs.lz4],
        ...BATCH_SWEEP_BYTES.map((b) => [`produce 1 KiB, ${b / 1024} KiB batches`, runs.batchSweep?.[b]] as const),
      ] as const
    ).map(([name, s]) => (s ? `| ${name} | ${s.records} | ${v(s.recordsPerSec, 0)} | ${v(s.mbPerSec)} | ${v(s.avgMs, 2)} | ${v(s.p50Ms, 2)} | ${v(s.p95Ms, 2)} | ${v(s.p99Ms, 2)} | ${v(s.p999Ms, 2)} | ${v(s.maxMs, 2)} |` : `| ${name} | not run |||||||||`)),
    runs.e2e
      ? `| end to end at 5,000/s, linger 1 ms | ${runs.e2e.records} | ${v(runs.e2e.ratePerSec, 0)} | | ${v(runs.e2e.avgMs, 2)} | ${v(runs.e2e.p50Ms, 2)} | ${v(runs.e2e.p95Ms, 2)} | ${v(runs.e2e.p99Ms, 2)} | ${v(runs.e2e.p999Ms, 2)} | ${v(runs.e2e.maxMs, 2)} |`
      : '| end to end | not run |||||||||',
    '',
    '| consume | records | records/s | MB/s | time to first record (ms) |',
    '|---|---:|---:|---:|---:|',
    ...(
      [
        ['1 KiB topic, one member', runs.consume1],
        ['1 KiB topic, three members', runs.consume3],
      ] as const
    ).map(([name, s]) => (s ? `| ${name} | ${s.records} | ${v(s.recordsPerSec, 0)} | ${v(s.mbPerSec)} | ${v(s.timeToFirstRecordMs, 1)} |` : `| ${name} | not run ||||`)),
    '',
    '| broker peak RSS (MB) during | ' + Object.keys(rss).join(' | ') + ' |',
    '|---|' + Object.keys(rss).map(() => '---:').join('|') + '|',
    ...Object.entries(record.brokerPeakRssByRunMB).map(([run, peaks]) => `| ${run} | ${Object.keys(rss).map((k) => v(peaks[k], 0)).join(' | ')} |`),
    '',
    ...(repeats
      ? [
          '## Every matrix',
          '',
          `| figure | median | ${repeats.map((_, i) => `run ${i + 1}`).join(' | ')} |`,
          `|---|---:|${repeats.map(() => '---:').join('|')}|`,
          ...Object.keys(fields).map((k) => `| ${k} | ${v(fields[k], 2)} | ${repeats.map((r) => v(r[k], 2)).join(' | ')} |`),
          '',
        ]
      : []),
    `Throughput runs use ${record.settings.producers} SDK producer instances (each in its own worker thread) sending as fast as the producers take records (${BATCH_BYTES / 1024} KiB batches, linger ${LINGER_MS} ms, idempotent: the OpenMessaging Benchmark's Kafka throughput profile; the sweep rows use smaller batches), so their latencies include time queued in the producers' 32 MiB buffers; the fixed-rate runs (one producer in a worker thread of its own, same settings, after ${(record.settings.latencyWarmupRecords ?? 0).toLocaleString('en-US')} unmeasured records) measure latency. Consume MB/s counts record batches as stored (1 KiB values plus about 1.5% framing).`,
    '',
  ];
  mkdirSync(join(REPO, 'bench'), { recursive: true });
  writeFileSync(join(REPO, 'bench/report.md'), lines.join('\n'));
}
