// `npm run bench -- producer [--json] [--seconds S]`: the SDK producer against a
// three-node cluster of real processes (DEV_OVERRIDES, durable default), topic of 6
// partitions, RF 3, acks=all, default batching (64 KiB batches, linger 5 ms, idempotent).
//
// Fields (MB = 10^6 bytes of record values):
//   recordsPerSec100B  100-byte values, null keys (sticky partitioning), sends of 100 records
//   mbPerSec1KiB       1 KiB values, same shape
//   p99Ms100B          send-to-ack p99 (HDR histogram) of single-record sends paced at 5,000 records/s
//   mbPerSecLz4        lz4 on compressible ~1 KiB JSON values, counted uncompressed
//   raw*               the same cluster fed prebuilt 64 KiB batches straight through RawClient
//                      (2 requests in flight per partition, unary and ProduceStream): the
//                      ceiling the SDK's encoding, batching and bookkeeping are measured
//                      against (ratio* = SDK / the better raw)
//   unary / stream     100 B throughput with each produce transport; the faster is the default
//                      (unary also without idempotence: separate HTTP/2 streams reach the
//                      leader out of order, which costs an idempotent producer retries)
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import * as hdr from 'hdr-histogram-js';
import type { BenchContext, BenchResult } from '../bench.ts';
import { numberArg } from '../bench-support/args.ts';
import { DEV_OVERRIDES, ProcessCluster, freePorts } from '../../src/node/process-cluster.ts';
import { Raftka, type Admin, type Message, type Producer, type ProducerOptions } from '../../src/client/index.ts';
import { RawClient, type ProduceStream } from '../../src/client/raw-client.ts';
import { buildBatch } from '../../src/log/batch.ts';

const PARTITIONS = 6;
const SEND_RECORDS = 100;
const OUTSTANDING_SENDS = 256;

function values(bytes: number, n: number, json: boolean): Buffer[] {
  return Array.from({ length: n }, (_, i) => {
    if (!json) return Buffer.alloc(bytes, 97 + (i % 26));
    const doc = { id: i, user: `user-${i % 1000}`, event: 'page_view', path: `/products/${i % 50}`, ua: 'Mozilla/5.0 (X11; Linux x86_64)', tags: ['a', 'b', 'c'] };
    let s = JSON.stringify(doc);
    while (s.length < bytes) s += JSON.stringify(doc).slice(0, bytes - s.length);
    return Buffer.from(s.slice(0, bytes));
  });
}

/** Throughput of `producer` over `seconds`: sends of SEND_RECORDS records, up to OUTSTANDING_SENDS awaiting acks. */
async function throughput(ctx: BenchContext, producer: Producer, topic: string, vals: Buffer[], seconds: number, label: string): Promise<{ recordsPerSec: number; mbPerSec: number }> {
  const chunks: Message[][] = [];
  for (let i = 0; i + SEND_RECORDS <= vals.length; i += SEND_RECORDS) chunks.push(vals.slice(i, i + SEND_RECORDS).map((value) => ({ value })));
  const bytesPerChunk = chunks[0]!.reduce((s, m) => s + (m.value as Buffer).length, 0);
  let acked = 0;
  let errors = 0;
  let firstError = '';
  const t0 = performance.now();
  const end = t0 + seconds * 1000;
  let lastReport = t0;
  const inflight = new Set<Promise<void>>();
  let c = 0;
  while (performance.now() < end) {
    const p: Promise<void> = producer.send({ topic, messages: chunks[c++ % chunks.length]! }).then(
      () => {
        acked++;
        inflight.delete(p);
      },
      (e: unknown) => {
        if (errors++ === 0) firstError = (e as Error).message;
        inflight.delete(p);
      },
    );
    inflight.add(p);
    if (inflight.size >= OUTSTANDING_SENDS) await Promise.race(inflight);
    const now = performance.now();
    if (now - lastReport > 2000) {
      lastReport = now;
      ctx.progress(`  ${label}: ${((acked * SEND_RECORDS) / ((now - t0) / 1000)).toFixed(0)} records/s acknowledged`);
    }
  }
  await Promise.all(inflight);
  const secs = (performance.now() - t0) / 1000;
  if (errors > 0) ctx.progress(`  ${label}: ${errors} sends failed; the first: ${firstError}`);
  return { recordsPerSec: (acked * SEND_RECORDS) / secs, mbPerSec: (acked * bytesPerChunk) / 1e6 / secs };
}

/** Send-to-ack latency of single-record sends paced at `rate` records/s. */
async function latency(producer: Producer, topic: string, rate: number, seconds: number): Promise<{ p50: number; p99: number; max: number }> {
  const h = hdr.build({ lowestDiscernibleValue: 1, highestTrackableValue: 120_000_000, numberOfSignificantValueDigits: 3 });
  const value = Buffer.alloc(100, 0x62);
  const t0 = performance.now();
  const total = Math.round(rate * seconds);
  const pending: Array<Promise<void>> = [];
  let sent = 0;
  // A 1 ms tick sends what the schedule owes, so the rate holds without a timer per record.
  await new Promise<void>((resolve) => {
    const tick = setInterval(() => {
      const due = Math.min(total, Math.floor(((performance.now() - t0) / 1000) * rate));
      for (; sent < due; sent++) {
        const start = performance.now();
        pending.push(producer.send({ topic, messages: [{ value }] }).then(() => h.recordValue(Math.round((performance.now() - start) * 1000))));
      }
      if (sent >= total) {
        clearInterval(tick);
        resolve();
      }
    }, 1);
  });
  await Promise.all(pending);
  const out = { p50: h.getValueAtPercentile(50) / 1000, p99: h.getValueAtPercentile(99) / 1000, max: h.maxValue / 1000 };
  h.destroy();
  return out;
}

/**
 * RawClient produce of prebuilt batches to the partition leaders, 2 requests in flight
 * per partition, over unary calls or one ProduceStream per leader: the baseline.
 */
async function rawBaseline(admin: Admin, cluster: ProcessCluster, topic: string, vals: Buffer[], seconds: number, transport: 'unary' | 'stream'): Promise<{ recordsPerSec: number; mbPerSec: number }> {
  const md = await admin.fetchTopicMetadata({ topics: [topic] });
  const perBatch = Math.max(1, Math.floor((64 * 1024) / (vals[0]!.length + 10)));
  const batch = buildBatch(vals.slice(0, perBatch).map((value) => ({ value })));
  const valueBytes = vals.slice(0, perBatch).reduce((s, v) => s + v.length, 0);
  const clients = new Map<number, RawClient>();
  const streams = new Map<number, ProduceStream>();
  let batches = 0;
  const t0 = performance.now();
  const end = t0 + seconds * 1000;
  try {
    await Promise.all(
      Array.from({ length: PARTITIONS * 2 }, async (_, i) => {
        const partition = i % PARTITIONS;
        const leader = md.topics[0]!.partitions[partition]!.leader;
        let c = clients.get(leader);
        if (!c) clients.set(leader, (c = new RawClient(cluster.clientAddress(leader), { timeoutMs: 30_000 })));
        let s = streams.get(leader);
        if (!s && transport === 'stream') streams.set(leader, (s = c.produceStream()));
        while (performance.now() < end) {
          const req = { acks: -1, timeoutMs: 30_000, topicData: [{ name: topic, partitions: [{ partition, records: batch }] }] };
          const r = await (s ? s.send(req) : c.produce(req));
          if (r.responses[0]?.partitions[0]?.errorCode === 0) batches++;
        }
      }),
    );
  } finally {
    await Promise.all([...streams.values()].map((s) => s.close()));
    for (const c of clients.values()) c.close();
  }
  const secs = (performance.now() - t0) / 1000;
  return { recordsPerSec: (batches * perBatch) / secs, mbPerSec: (batches * valueBytes) / 1e6 / secs };
}

export async function run(ctx: BenchContext): Promise<BenchResult> {
  const seconds = numberArg(ctx.args, '--seconds', 8);
  const root = mkdtempSync(join(tmpdir(), 'raftka-bench-producer-'));
  const ports = await freePorts(6);
  const cluster = ProcessCluster.prepare({ root, nodeIds: [1, 2, 3], clientPorts: ports.slice(0, 3), controllerPorts: ports.slice(3), overrides: DEV_OVERRIDES });
  const producers: Producer[] = [];
  try {
    ctx.progress('starting three nodes');
    cluster.startAll();
    await cluster.waitReady(60_000, 25);
    const raftka = new Raftka({ brokers: cluster.spec.nodeIds.map((id) => cluster.clientAddress(id)), clientId: 'bench' });
    const admin = raftka.admin();
    await admin.connect();
    const topics = ['raw100', 'raw1k', 'unary100', 'stream100', 'sdk1k', 'lat', 'lz4'];
    await admin.createTopics({ topics: topics.map((topic) => ({ topic, numPartitions: PARTITIONS, replicationFactor: 3 })), timeout: 30_000 });
    const producer = async (opts: ProducerOptions = {}): Promise<Producer> => {
      const p = raftka.producer(opts);
      await p.connect();
      producers.push(p);
      return p;
    };
    const v100 = values(100, 10_000, false);
    const v1k = values(1024, 2_000, false);
    const json1k = values(1024, 2_000, true);

    ctx.progress(`raw baseline: prebuilt 64 KiB batches through RawClient (unary and ProduceStream), ${seconds} s each`);
    const raw100 = await rawBaseline(admin, cluster, 'raw100', v100, seconds, 'unary');
    const rawStream100 = await rawBaseline(admin, cluster, 'raw100', v100, seconds, 'stream');
    const raw1k = await rawBaseline(admin, cluster, 'raw1k', v1k, seconds, 'unary');
    const rawStream1k = await rawBaseline(admin, cluster, 'raw1k', v1k, seconds, 'stream');

    ctx.progress('SDK, 100 B records, unary Produce calls');
    const unary = await throughput(ctx, await producer({ transport: 'unary' }), 'unary100', v100, seconds, 'unary');
    ctx.progress('SDK, 100 B records, unary Produce calls, idempotent: false (the transport alone)');
    const unaryPlain = await throughput(ctx, await producer({ transport: 'unary', idempotent: false }), 'unary100', v100, seconds, 'unary, not idempotent');
    ctx.progress('SDK, 100 B records, ProduceStream');
    const stream = await throughput(ctx, await producer({ transport: 'stream' }), 'stream100', v100, seconds, 'stream');
    const best = stream.recordsPerSec >= unary.recordsPerSec ? 'stream' : 'unary';

    ctx.progress('SDK, 1 KiB records (default options)');
    const sdk1k = await throughput(ctx, await producer(), 'sdk1k', v1k, seconds, '1 KiB');

    ctx.progress('SDK, send-to-ack latency at 5,000 records/s');
    const lat = await latency(await producer(), 'lat', 5000, Math.max(3, seconds / 2));

    ctx.progress('SDK, lz4 on compressible JSON, ~1 KiB values');
    const lz4 = await throughput(ctx, await producer({ compression: 'lz4' }), 'lz4', json1k, seconds, 'lz4');

    const defaultTransport = new Raftka({ brokers: ['127.0.0.1:1'] }).producer().transport;
    const recordsPerSec100B = defaultTransport === 'stream' ? stream.recordsPerSec : unary.recordsPerSec;
    const json = {
      recordsPerSec100B,
      mbPerSec1KiB: sdk1k.mbPerSec,
      p99Ms100B: lat.p99,
      p50Ms100B: lat.p50,
      mbPerSecLz4: lz4.mbPerSec,
      rawRecordsPerSec100B: raw100.recordsPerSec,
      rawStreamRecordsPerSec100B: rawStream100.recordsPerSec,
      rawMbPerSec1KiB: raw1k.mbPerSec,
      rawStreamMbPerSec1KiB: rawStream1k.mbPerSec,
      /** SDK against the better raw baseline. */
      ratio100B: recordsPerSec100B / Math.max(raw100.recordsPerSec, rawStream100.recordsPerSec),
      ratio1KiB: sdk1k.mbPerSec / Math.max(raw1k.mbPerSec, rawStream1k.mbPerSec),
      unaryRecordsPerSec100B: unary.recordsPerSec,
      unaryNotIdempotentRecordsPerSec100B: unaryPlain.recordsPerSec,
      streamRecordsPerSec100B: stream.recordsPerSec,
      fasterTransport: best,
      defaultTransport,
    };
    return {
      rows: [
        ['SDK 100 B records (records/s)', json.recordsPerSec100B],
        ['  raw RawClient unary, prebuilt batches (records/s)', json.rawRecordsPerSec100B],
        ['  raw RawClient stream, prebuilt batches (records/s)', json.rawStreamRecordsPerSec100B],
        ['  ratio to the better raw', json.ratio100B],
        ['  unary transport (records/s)', json.unaryRecordsPerSec100B],
        ['  unary transport, idempotent: false (records/s)', json.unaryNotIdempotentRecordsPerSec100B],
        ['  stream transport (records/s)', json.streamRecordsPerSec100B],
        ['SDK 1 KiB records (MB/s)', json.mbPerSec1KiB],
        ['  raw RawClient unary, prebuilt batches (MB/s)', json.rawMbPerSec1KiB],
        ['  raw RawClient stream, prebuilt batches (MB/s)', json.rawStreamMbPerSec1KiB],
        ['  ratio to the better raw', json.ratio1KiB],
        ['send-to-ack at 5,000 records/s: p50 (ms)', json.p50Ms100B],
        ['send-to-ack at 5,000 records/s: p99 (ms)', json.p99Ms100B],
        ['lz4, compressible JSON, uncompressed (MB/s)', json.mbPerSecLz4],
        ['default transport (faster measured)', `${defaultTransport} (${best})`],
      ],
      json,
    };
  } finally {
    await Promise.all(producers.map((p) => p.disconnect().catch(() => undefined)));
    await cluster.killAll();
    rmSync(root, { recursive: true, force: true });
  }
}
