// `npm run bench -- cluster [--json] [--seconds S] [--trials N]`: a three-node cluster of
// real processes (RF 3, acks=all, durable default), a topic with 6 partitions, 1 KiB
// records in 64 KiB batches from a minimal load generator, and in the same run a raw
// grpc-js baseline sending the same payloads to a process that discards them.
// Fields: produceMBs, rawGrpcMBs, produceRatio, fetchMBs, failoverMs (median of N kill -9
// trials: from killing a partition leader to the next acknowledged acks=all produce to
// that partition), devReadyMs (spawn to all brokers unfenced). MB = 10^6 bytes.
import { spawn } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import * as grpc from '@grpc/grpc-js';
import type { BenchContext, BenchResult } from '../bench.ts';
import { median, numberArg } from '../bench-support/args.ts';
import { DEV_OVERRIDES, ProcessCluster, freePorts } from '../../src/node/process-cluster.ts';
import { RawClient } from '../../src/client/raw-client.ts';
import { buildBatch, iterateBatches } from '../../src/log/batch.ts';
import { DATA_CHANNEL_OPTIONS } from '../../src/proto/rpc.ts';

const TOPIC = 'bench';
const PARTITIONS = 6;
const RECORD_BYTES = 1024;
const RECORDS_PER_BATCH = 64;
const IN_FLIGHT_PER_PARTITION = 2;

function makeBatch(seq: number): Buffer {
  const value = Buffer.alloc(RECORD_BYTES - 16, 0x61);
  return buildBatch(Array.from({ length: RECORDS_PER_BATCH }, (_, i) => ({ key: `k${seq}-${i}`, value })));
}

async function rawGrpcBaseline(payload: Buffer, seconds: number): Promise<number> {
  const sinkPath = fileURLToPath(new URL('../bench-support/grpc-sink.ts', import.meta.url));
  const child = spawn(process.execPath, ['--import', 'tsx', sinkPath], { stdio: ['ignore', 'pipe', 'inherit'] });
  try {
    const port = await new Promise<number>((resolve, reject) => {
      child.stdout!.once('data', (d: Buffer) => resolve(Number(d.toString().trim())));
      child.once('exit', (code) => reject(new Error(`sink exited ${code}`)));
    });
    const client = new grpc.Client(`127.0.0.1:${port}`, grpc.credentials.createInsecure(), DATA_CHANNEL_OPTIONS);
    const identity = (b: Buffer) => b;
    const send = () =>
      new Promise<void>((resolve, reject) =>
        client.makeUnaryRequest('/bench.Sink/Send', identity, identity, payload, (err) => (err ? reject(err) : resolve())),
      );
    let bytes = 0;
    const until = performance.now() + seconds * 1000;
    const t0 = performance.now();
    await Promise.all(
      Array.from({ length: PARTITIONS * IN_FLIGHT_PER_PARTITION }, async () => {
        while (performance.now() < until) {
          await send();
          bytes += payload.length;
        }
      }),
    );
    const mbs = bytes / 1e6 / ((performance.now() - t0) / 1000);
    client.close();
    return mbs;
  } finally {
    child.kill('SIGTERM');
  }
}

interface Leaders {
  brokers: Map<number, string>;
  leaders: number[];
}

async function leaders(bootstrap: string): Promise<Leaders | undefined> {
  const c = new RawClient(bootstrap, { timeoutMs: 2000 });
  try {
    const md = await c.metadata({ topics: [TOPIC] });
    const t = md.topics[0];
    if (!t || t.partitions.length !== PARTITIONS || t.partitions.some((p) => p.leaderId < 0)) return undefined;
    return { brokers: new Map(md.brokers.map((b) => [b.id, `${b.host}:${b.port}`])), leaders: t.partitions.map((p) => p.leaderId) };
  } catch {
    return undefined;
  } finally {
    c.close();
  }
}

async function until<T>(what: string, fn: () => Promise<T | undefined>, timeoutMs: number): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const v = await fn();
    if (v !== undefined) return v;
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 50));
  }
}

export async function run(ctx: BenchContext): Promise<BenchResult> {
  const seconds = numberArg(ctx.args, '--seconds', 10);
  const trials = numberArg(ctx.args, '--trials', 5);
  const root = mkdtempSync(join(tmpdir(), 'raftka-bench-cluster-'));
  const ports = await freePorts(6);
  const cluster = ProcessCluster.prepare({ root, nodeIds: [1, 2, 3], clientPorts: ports.slice(0, 3), controllerPorts: ports.slice(3), overrides: DEV_OVERRIDES });
  const clients = new Map<string, RawClient>();
  const client = (addr: string) => {
    let c = clients.get(addr);
    if (!c) clients.set(addr, (c = new RawClient(addr, { timeoutMs: 10_000 })));
    return c;
  };
  try {
    ctx.progress('starting three nodes');
    const t0 = performance.now();
    cluster.startAll();
    await cluster.waitReady(60_000, 25);
    const devReadyMs = performance.now() - t0;

    const boot = cluster.clientAddress(1);
    await until('topic', async () => {
      const r = await client(boot).createTopics({ topics: [{ name: TOPIC, numPartitions: PARTITIONS, replicationFactor: 3 }] }).catch(() => undefined);
      const code = r?.topics[0]?.errorCode;
      return code === 0 || code === 36 ? true : undefined;
    }, 20_000);
    let view = await until('leaders', () => leaders(boot), 20_000);

    ctx.progress(`produce for ${seconds} s: ${PARTITIONS} partitions x ${IN_FLIGHT_PER_PARTITION} requests in flight, 64 KiB batches of 1 KiB records`);
    const batches = Array.from({ length: PARTITIONS * IN_FLIGHT_PER_PARTITION }, (_, i) => makeBatch(i));
    let produced = 0;
    let errors = 0;
    const endAt = performance.now() + seconds * 1000;
    const tp = performance.now();
    let lastReport = tp;
    await Promise.all(
      batches.map(async (batch, i) => {
        const partition = i % PARTITIONS;
        while (performance.now() < endAt) {
          const addr = view.brokers.get(view.leaders[partition]!)!;
          const r = await client(addr).produce({ acks: -1, timeoutMs: 10_000, topicData: [{ name: TOPIC, partitions: [{ partition, records: batch }] }] }).catch(() => undefined);
          const code = r?.responses[0]?.partitions[0]?.errorCode;
          if (code === 0) produced += batch.length;
          else errors++;
          const now = performance.now();
          if (now - lastReport > 2000) {
            lastReport = now;
            ctx.progress(`  ${(produced / 1e6 / ((now - tp) / 1000)).toFixed(1)} MB/s acknowledged`);
          }
        }
      }),
    );
    const produceMBs = produced / 1e6 / ((performance.now() - tp) / 1000);

    ctx.progress('fetch everything back from the leaders');
    let fetched = 0;
    const tf = performance.now();
    await Promise.all(
      Array.from({ length: PARTITIONS }, async (_, partition) => {
        const addr = view.brokers.get(view.leaders[partition]!)!;
        let offset = 0;
        for (;;) {
          const r = await client(addr).fetch({ maxWaitMs: 0, minBytes: 0, maxBytes: 16 << 20, topics: [{ name: TOPIC, partitions: [{ partition, fetchOffset: offset, partitionMaxBytes: 8 << 20 }] }] });
          const p = r.responses[0]!.partitions[0]!;
          if (p.records.length === 0 || offset >= p.highWatermark) break;
          fetched += p.records.length;
          for (const { header } of iterateBatches(p.records)) offset = header.lastOffset + 1;
        }
      }),
    );
    const fetchMBs = fetched / 1e6 / ((performance.now() - tf) / 1000);

    ctx.progress('raw grpc-js baseline with the same payloads');
    const rawGrpcMBs = await rawGrpcBaseline(batches[0]!, Math.min(seconds, 5));

    const failovers: number[] = [];
    for (let trial = 0; trial < trials; trial++) {
      view = await until('leaders', () => leaders(cluster.clientAddress(cluster.runningIds()[0]!)), 30_000);
      const victim = view.leaders[0]!;
      ctx.progress(`failover trial ${trial + 1}/${trials}: kill -9 of node ${victim}, leader of partition 0`);
      const tk = performance.now();
      await cluster.kill9(victim);
      await until('an acknowledged produce to partition 0', async () => {
        const alive = cluster.runningIds();
        const v = await leaders(cluster.clientAddress(alive[0]!));
        const l = v?.leaders[0];
        if (!v || l === undefined || l === victim) return undefined;
        const r = await client(v.brokers.get(l)!).produce({ acks: -1, timeoutMs: 2000, topicData: [{ name: TOPIC, partitions: [{ partition: 0, records: batches[0]! }] }] }).catch(() => undefined);
        return r?.responses[0]?.partitions[0]?.errorCode === 0 ? true : undefined;
      }, 30_000);
      failovers.push(performance.now() - tk);
      cluster.start(victim);
      await cluster.waitReady(60_000);
    }
    const failoverMs = median(failovers);
    const json = { produceMBs, rawGrpcMBs, produceRatio: produceMBs / rawGrpcMBs, fetchMBs, failoverMs, devReadyMs, produceErrors: errors };
    return {
      rows: [
        ['acks=all produce, RF 3, 6 partitions (MB/s)', produceMBs],
        ['raw grpc-js, same payloads (MB/s)', rawGrpcMBs],
        ['  produce ratio', json.produceRatio],
        ['fetch from leaders (MB/s)', fetchMBs],
        [`failover, median of ${failovers.length} (ms)`, failoverMs],
        ['  trials (ms)', failovers.map((x) => x.toFixed(0)).join(', ')],
        ['dev cluster ready (ms)', devReadyMs],
      ],
      json,
    };
  } finally {
    for (const c of clients.values()) c.close();
    await cluster.killAll();
    rmSync(root, { recursive: true, force: true });
  }
}
