// `npm run bench -- raft [--json] [--trials N] [--entries N] [--samples N]`
//
// Three real Raft processes on 127.0.0.1 (src/io/raft-node-process.ts), LevelDB on disk,
// default timeouts (1 s election timeout). Measures, on the leader:
//   commitsPerSec   1 KiB entries, pipelined with many proposals in flight (median of 3 runs)
//   commitP50Ms/P99 one proposal at a time, proposal to commit
//   electionMs      kill -9 of the leader to the new leader's first commit (its noop),
//                   median of `--trials` (default 7); the killed node restarts and
//                   catches up between trials
// and, in the same run, the raw floors they sit on: a synced 1 KiB LevelDB write, a
// batched synced LevelDB write rate, and a grpc-js unary round trip on loopback. A
// commit needs at least one leader write, one round trip and one follower write, so
// `commitP50OverFloor` is how many of those floors a commit costs.
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import * as grpc from '@grpc/grpc-js';
import { Level } from 'level';
import type { BenchContext, BenchResult } from '../bench.ts';
import { median, numberArg } from '../bench-support/args.ts';
import { RaftProcessCluster } from '../../test/support/raft-cluster.ts';
import { waitFor } from '../../test/support/tmp.ts';
import type { ControlEvent, NodeStatus } from '../../src/io/raft-node-process.ts';

function percentile(sorted: number[], p: number): number {
  if (sorted.length === 0) return NaN;
  return sorted[Math.min(sorted.length - 1, Math.max(0, Math.ceil((p / 100) * sorted.length) - 1))]!;
}

const round = (x: number, d = 2): number => Math.round(x * 10 ** d) / 10 ** d;

async function levelDbBaseline(root: string): Promise<{ syncWriteP50Ms: number; batchedWritesPerSec: number }> {
  const db = new Level<Buffer, Buffer>(join(root, 'baseline-leveldb'), { keyEncoding: 'buffer', valueEncoding: 'buffer' });
  await db.open();
  const value = Buffer.alloc(1024, 0x61);
  const key = (i: number): Buffer => {
    const k = Buffer.alloc(8);
    k.writeBigUInt64BE(BigInt(i));
    return k;
  };
  const samples: number[] = [];
  for (let i = 0; i < 500; i++) {
    const t0 = performance.now();
    await db.batch([{ type: 'put', key: key(i), value }], { sync: true });
    samples.push(performance.now() - t0);
  }
  // Batches of 500 synced entries: what one process can write when it groups commits.
  const batches = 60;
  const t0 = performance.now();
  for (let b = 0; b < batches; b++) {
    const ops = [];
    for (let j = 0; j < 500; j++) ops.push({ type: 'put' as const, key: key(1000 + b * 500 + j), value });
    await db.batch(ops, { sync: true });
  }
  const batchedWritesPerSec = (batches * 500) / ((performance.now() - t0) / 1000);
  await db.close();
  return { syncWriteP50Ms: median(samples), batchedWritesPerSec };
}

async function grpcBaseline(): Promise<{ rttP50Ms: number; rttP99Ms: number }> {
  const def: grpc.ServiceDefinition = {
    Ping: {
      path: '/bench.Ping/Ping',
      requestStream: false,
      responseStream: false,
      requestSerialize: (b: Buffer) => b,
      requestDeserialize: (b: Buffer) => b,
      responseSerialize: (b: Buffer) => b,
      responseDeserialize: (b: Buffer) => b,
    },
  };
  const server = new grpc.Server();
  server.addService(def, { Ping: (call: grpc.ServerUnaryCall<Buffer, Buffer>, cb: grpc.sendUnaryData<Buffer>) => cb(null, call.request) });
  const port = await new Promise<number>((resolve, reject) =>
    server.bindAsync('127.0.0.1:0', grpc.ServerCredentials.createInsecure(), (e, p) => (e ? reject(e) : resolve(p))),
  );
  const client = new grpc.Client(`127.0.0.1:${port}`, grpc.credentials.createInsecure());
  const payload = Buffer.alloc(1024, 0x62);
  const ping = (): Promise<void> =>
    new Promise((resolve, reject) =>
      client.makeUnaryRequest('/bench.Ping/Ping', (b: Buffer) => b, (b: Buffer) => b, payload, (e) => (e ? reject(e) : resolve())),
    );
  for (let i = 0; i < 200; i++) await ping();
  const samples: number[] = [];
  for (let i = 0; i < 2000; i++) {
    const t0 = performance.now();
    await ping();
    samples.push(performance.now() - t0);
  }
  client.close();
  server.forceShutdown();
  samples.sort((a, b) => a - b);
  return { rttP50Ms: percentile(samples, 50), rttP99Ms: percentile(samples, 99) };
}

async function stableLeader(c: RaftProcessCluster): Promise<NodeStatus> {
  return waitFor('a leader all running nodes agree on', () => c.leader(), 30_000, 50);
}

async function allCaughtUp(c: RaftProcessCluster): Promise<void> {
  const l = await stableLeader(c);
  const target = (await c.status(l.nodeId)).commitIndex;
  await waitFor(
    'every node to apply up to the leader commit index',
    async () => {
      const ss = await c.statuses();
      return ss.length === c.nodes.size && ss.every((s) => s.appliedIndex >= target) ? true : undefined;
    },
    60_000,
    50,
  );
}

export async function run(ctx: BenchContext): Promise<BenchResult> {
  const trials = numberArg(ctx.args, '--trials', 7);
  const entries = numberArg(ctx.args, '--entries', 60_000);
  const latencySamples = numberArg(ctx.args, '--samples', 2_000);
  const inflight = numberArg(ctx.args, '--inflight', 4_000);
  const root = mkdtempSync(join(tmpdir(), 'raftka-bench-raft-'));
  let cluster: RaftProcessCluster | undefined;
  try {
    ctx.progress('baseline: raw LevelDB synced writes');
    const lvl = await levelDbBaseline(root);
    ctx.progress('baseline: raw grpc-js unary round trip');
    const rpc = await grpcBaseline();

    ctx.progress('starting 3 raft processes');
    cluster = await RaftProcessCluster.start({ root: join(root, 'cluster'), requestTimeoutMs: 120_000 });
    const c = cluster;
    let leader = await stableLeader(c);
    ctx.progress(`leader is node ${leader.nodeId} (term ${leader.term}); warming up`);
    await c.request(leader.nodeId, { op: 'burst', count: 5_000, sizeBytes: 1024, inflight });

    const rates: number[] = [];
    for (let i = 0; i < 3; i++) {
      const r = await c.request<{ committed: number; failed: number; elapsedMs: number; firstError?: string }>(leader.nodeId, {
        op: 'burst',
        count: entries,
        sizeBytes: 1024,
        inflight,
      });
      if (r.failed > 0) throw new Error(`${r.failed} proposals failed: ${r.firstError}`);
      rates.push(r.committed / (r.elapsedMs / 1000));
      ctx.progress(`throughput run ${i + 1}: ${Math.round(rates[i]!)} commits/s`);
    }
    const commitsPerSec = median(rates);

    ctx.progress(`latency: ${latencySamples} proposals one at a time`);
    await allCaughtUp(c);
    const lat = await c.request<{ samplesMs: number[] }>(leader.nodeId, { op: 'latency', count: latencySamples, sizeBytes: 1024 });
    const sorted = [...lat.samplesMs].sort((a, b) => a - b);
    const commitP50Ms = percentile(sorted, 50);
    const commitP99Ms = percentile(sorted, 99);

    const elections: number[] = [];
    for (let i = 0; i < trials; i++) {
      await allCaughtUp(c);
      leader = await stableLeader(c);
      const killedAt = await c.kill9(leader.nodeId);
      const survivors = c.aliveIds();
      const ev = await waitFor(
        'a new leader to commit its first entry',
        () => {
          for (const id of survivors) {
            const e = c.nodes.get(id)!.events.find(
              (x): x is ControlEvent & { ev: 'leaderCommitted' } => x.ev === 'leaderCommitted' && x.term > leader.term,
            );
            if (e !== undefined) return e;
          }
          return undefined;
        },
        30_000,
        5,
      );
      elections.push(ev.atMs - killedAt);
      ctx.progress(`election ${i + 1}/${trials}: ${ev.atMs - killedAt} ms (node ${leader.nodeId} killed)`);
      await c.restart(leader.nodeId);
    }
    const electionMs = median(elections);

    const floorMs = 2 * lvl.syncWriteP50Ms + rpc.rttP50Ms;
    const json = {
      commitsPerSec: Math.round(commitsPerSec),
      commitP50Ms: round(commitP50Ms, 3),
      commitP99Ms: round(commitP99Ms, 3),
      electionMs: Math.round(electionMs),
      electionMsTrials: elections.join(','),
      electionTimeoutMs: 1000,
      entryBytes: 1024,
      inflight,
      baselineLevelDbSyncWriteP50Ms: round(lvl.syncWriteP50Ms, 3),
      baselineLevelDbBatchedWritesPerSec: Math.round(lvl.batchedWritesPerSec),
      baselineGrpcRttP50Ms: round(rpc.rttP50Ms, 3),
      baselineGrpcRttP99Ms: round(rpc.rttP99Ms, 3),
      commitP50OverFloor: round(commitP50Ms / floorMs),
      commitsPerSecOverLevelDbBatched: round(commitsPerSec / lvl.batchedWritesPerSec),
      targetCommitsPerSec: commitsPerSec >= 20_000,
      targetCommitP99Ms: commitP99Ms <= 10,
      targetElectionMs: electionMs <= 1_500,
    };
    const rows: Array<[string, string | number]> = [
      ['commits/s (1 KiB, pipelined)', json.commitsPerSec],
      ['commit p50 ms (one at a time)', json.commitP50Ms],
      ['commit p99 ms (one at a time)', json.commitP99Ms],
      ['election ms (median)', `${json.electionMs} [${json.electionMsTrials}]`],
      ['baseline: LevelDB synced write p50 ms', json.baselineLevelDbSyncWriteP50Ms],
      ['baseline: LevelDB batched synced writes/s', json.baselineLevelDbBatchedWritesPerSec],
      ['baseline: grpc-js round trip p50 ms', json.baselineGrpcRttP50Ms],
      ['commit p50 / (2 sync writes + 1 RTT)', json.commitP50OverFloor],
      ['commits/s / LevelDB batched writes/s', json.commitsPerSecOverLevelDbBatched],
    ];
    return { rows, json };
  } catch (e) {
    // The data dirs go away below; keep what the nodes said about it.
    for (const id of cluster?.nodes.keys() ?? []) ctx.progress(`node ${id} log tail:\n${cluster!.logTail(id, 20)}`);
    throw e;
  } finally {
    await cluster?.stop();
    rmSync(root, { recursive: true, force: true });
  }
}
