// `npm run bench -- consumer [--json] [--mb M] [--reps N]`: the SDK consumer against a
// three-node cluster of real processes (DEV_OVERRIDES), topic of 6 partitions, RF 3,
// M MB (default 128) of 1 KiB records written before reading.
//
// Fields (MB = 10^6 bytes of record values):
//   consumeMBs             one group member reads everything (eachBatch, every record decoded),
//                          from its first record on (as Kafka's consumer perf tool)
//   consumeMBs3            three members of one group in this process read everything
//   joinMs1 / joinMs3      from connect to the first record (join, sync, offsets)
//   rawFetchMBs            baseline: Fetch over RawClient, one pipelined loop per leader,
//                          batches split but not decoded (what the broker and the wire give)
//   ratio1 / ratio3        consumeMBs / rawFetchMBs, consumeMBs3 / rawFetchMBs
//   rebalanceMs            median of N: a fourth member joins a cooperative-sticky group of
//                          three; from its join to every partition owned by exactly one
//                          member and each member having consumed on every partition it owns
//   coordinatorFailoverMs  median of N: kill -9 of the group coordinator's broker to the
//                          next successful commit of a member (the broker is restarted after)
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { BenchContext, BenchResult } from '../bench.ts';
import { numberArg, median } from '../bench-support/args.ts';
import { DEV_OVERRIDES, ProcessCluster, freePorts } from '../../src/node/process-cluster.ts';
import { Raftka, PartitionAssigners, type Consumer } from '../../src/client/index.ts';
import { RawClient } from '../../src/client/raw-client.ts';
import { Cluster } from '../../src/client/cluster.ts';
import { GroupRpc } from '../../src/client/consumer-group.ts';
import { silentLogger } from '../../src/common/logger.ts';
import { iterateBatches } from '../../src/log/batch.ts';

const PARTITIONS = 6;
const RECORD_BYTES = 1024;

async function until(what: string, cond: () => boolean | Promise<boolean>, timeoutMs: number, pollMs = 5): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!(await cond())) {
    if (Date.now() > deadline) throw new Error(`timed out after ${timeoutMs} ms: ${what}`);
    await new Promise((r) => setTimeout(r, pollMs));
  }
}

export async function run(ctx: BenchContext): Promise<BenchResult> {
  const mb = numberArg(ctx.args, '--mb', 128);
  const reps = Math.max(5, numberArg(ctx.args, '--reps', 5));
  const root = mkdtempSync(join(tmpdir(), 'raftka-bench-consumer-'));
  const ports = await freePorts(6);
  const cluster = ProcessCluster.prepare({ root, nodeIds: [1, 2, 3], clientPorts: ports.slice(0, 3), controllerPorts: ports.slice(3), overrides: { ...DEV_OVERRIDES, 'offsets.topic.num.partitions': '6' } });
  const brokers = [1, 2, 3].map((id) => cluster.clientAddress(id));
  const raftka = new Raftka({ brokers, clientId: 'bench-consumer', requestTimeout: 10_000 });
  const open: Consumer[] = [];
  try {
    cluster.startAll();
    await cluster.waitReady(60_000);
    const admin = raftka.admin();
    await admin.connect();
    await admin.createTopics({ topics: [{ topic: 'data', numPartitions: PARTITIONS, replicationFactor: 3 }, { topic: 'live', numPartitions: PARTITIONS, replicationFactor: 3 }] });
    const total = Math.floor((mb * 1e6) / RECORD_BYTES);
    ctx.progress(`writing ${total} records of ${RECORD_BYTES} B`);
    const producer = raftka.producer();
    await producer.connect();
    const value = Buffer.alloc(RECORD_BYTES, 97);
    const sends: Promise<unknown>[] = [];
    for (let i = 0; i < total; i += 100) {
      sends.push(producer.send({ topic: 'data', messages: Array.from({ length: Math.min(100, total - i) }, () => ({ value })) }));
      if (sends.length >= 64) await Promise.all(sends.splice(0));
    }
    await Promise.all(sends);
    const ends = (await admin.fetchTopicOffsets('data')).map((o) => o.high);
    const records = ends.reduce((a, b) => a + b, 0);
    const bytes = records * RECORD_BYTES;

    // ─── baseline: raw Fetch ───
    const md = await admin.fetchTopicMetadata({ topics: ['data'] });
    const byLeader = new Map<number, number[]>();
    for (const p of md.topics[0]!.partitions) byLeader.set(p.leader, [...(byLeader.get(p.leader) ?? []), p.partitionId]);
    const t0 = performance.now();
    await Promise.all(
      [...byLeader].map(async ([leader, ps]) => {
        const c = new RawClient(cluster.clientAddress(leader));
        const offsets = new Map(ps.map((p) => [p, 0]));
        const fetchNext = () => c.fetch({ maxWaitMs: 100, minBytes: 1, maxBytes: 10 << 20, topics: [{ name: 'data', partitions: ps.filter((p) => offsets.get(p)! < ends[p]!).map((p) => ({ partition: p, fetchOffset: offsets.get(p)!, partitionMaxBytes: 1 << 20 })) }] });
        let pending = fetchNext();
        while (ps.some((p) => offsets.get(p)! < ends[p]!)) {
          const r = await pending;
          for (const a of r.responses[0]?.partitions ?? []) for (const { header } of iterateBatches(a.records)) offsets.set(a.partition, Math.max(offsets.get(a.partition)!, header.lastOffset + 1));
          if (ps.some((p) => offsets.get(p)! < ends[p]!)) pending = fetchNext();
        }
        c.close();
      }),
    );
    const rawFetchMBs = bytes / 1e6 / ((performance.now() - t0) / 1000);
    ctx.progress(`raw fetch: ${rawFetchMBs.toFixed(1)} MB/s`);

    // ─── group consumers reading everything ───
    // As Kafka's consumer perf tool: throughput from the first record on (fetch time), the
    // join before it reported apart (joinMs).
    const readAll = async (members: number, groupId: string): Promise<{ mbs: number; joinMs: number }> => {
      let got = 0;
      let first = 0;
      const cs = Array.from({ length: members }, () => raftka.consumer({ groupId, sessionTimeout: 10_000, heartbeatInterval: 1_000, partitionAssigners: [PartitionAssigners.cooperativeSticky], maxWaitTimeInMs: 100 }));
      open.push(...cs);
      const start = performance.now();
      for (const c of cs) {
        await c.connect();
        await c.subscribe({ topic: 'data', fromBeginning: true });
        await c.run({
          eachBatch: async ({ batch }) => {
            if (first === 0) first = performance.now();
            for (const m of batch.messages) got += m.value!.length;
          },
        });
      }
      await until(`${members} member(s) reading ${bytes} bytes`, () => got >= bytes, 600_000, 20);
      const secs = (performance.now() - first) / 1000;
      await Promise.all(cs.map((c) => c.disconnect()));
      return { mbs: bytes / 1e6 / secs, joinMs: first - start };
    };
    const one = await readAll(1, 'read-1');
    const consumeMBs = one.mbs;
    ctx.progress(`one member: ${consumeMBs.toFixed(1)} MB/s after a ${one.joinMs.toFixed(0)} ms join`);
    const three = await readAll(3, 'read-3');
    const consumeMBs3 = three.mbs;
    ctx.progress(`three members: ${consumeMBs3.toFixed(1)} MB/s after a ${three.joinMs.toFixed(0)} ms join`);

    // ─── rebalance: a fourth member joins three (cooperative-sticky) ───
    let producing = true;
    const liveProducer = (async () => {
      while (producing) {
        await producer.send({ topic: 'live', messages: Array.from({ length: PARTITIONS }, (_, p) => ({ partition: p, value: 'x' })) });
        await new Promise((r) => setTimeout(r, 5));
      }
    })();
    const rebalanceSamples: number[] = [];
    for (let rep = 0; rep < reps; rep++) {
      const groupId = `rb-${rep}`;
      const lastMsg = new Map<Consumer, Map<number, number>>();
      const mk = async () => {
        const c = raftka.consumer({ groupId, sessionTimeout: 6_000, heartbeatInterval: 100, rebalanceTimeout: 10_000, partitionAssigners: [PartitionAssigners.cooperativeSticky], maxWaitTimeInMs: 50, autoOffsetReset: 'latest' });
        open.push(c);
        const seen = new Map<number, number>();
        lastMsg.set(c, seen);
        await c.connect();
        await c.subscribe({ topic: 'live' });
        await c.run({ eachMessage: async ({ partition }) => void seen.set(partition, performance.now()) });
        return c;
      };
      const three = [await mk(), await mk(), await mk()];
      const balanced = (cs: Consumer[], since: number) => {
        const owners = new Map<number, number>();
        for (const c of cs) {
          const mine = c.assignment()[0]?.partitions ?? [];
          if (mine.length === 0) return false;
          for (const p of mine) {
            owners.set(p, (owners.get(p) ?? 0) + 1);
            if ((lastMsg.get(c)!.get(p) ?? 0) < since) return false;
          }
        }
        return owners.size === PARTITIONS && [...owners.values()].every((n) => n === 1);
      };
      await until('three members consuming', () => balanced(three, performance.now() - 200), 60_000);
      const joinAt = performance.now();
      const fourth = await mk();
      const all = [...three, fourth];
      await until('four members consuming', () => balanced(all, joinAt), 60_000, 2);
      rebalanceSamples.push(performance.now() - joinAt);
      ctx.progress(`rebalance ${rep + 1}/${reps}: ${rebalanceSamples[rep]!.toFixed(0)} ms`);
      await Promise.all(all.map((c) => c.disconnect()));
    }
    producing = false;
    await liveProducer;

    // ─── coordinator failover ───
    const failoverSamples: number[] = [];
    const sdkCluster = new Cluster({ brokers, requestTimeoutMs: 5_000, connectionTimeoutMs: 1_000, metadataMaxAgeMs: 60_000, logger: silentLogger() });
    for (let rep = 0; rep < reps; rep++) {
      const groupId = `fo-${rep}`;
      const c = raftka.consumer({ groupId, sessionTimeout: 20_000, heartbeatInterval: 500, partitionAssigners: [PartitionAssigners.cooperativeSticky], maxWaitTimeInMs: 100, autoOffsetReset: 'earliest' });
      open.push(c);
      await c.connect();
      await c.subscribe({ topic: 'data' });
      await c.run({ autoCommit: false, eachBatch: async () => undefined });
      await until('assigned', () => (c.assignment()[0]?.partitions.length ?? 0) === PARTITIONS, 60_000);
      let n = 1;
      await c.commitOffsets([{ topic: 'data', partition: 0, offset: String(n++) }]);
      const rpc = new GroupRpc(sdkCluster, groupId, 5_000, silentLogger());
      await sdkCluster.refresh();
      const address = await rpc.findCoordinator(Date.now() + 10_000);
      rpc.close();
      const victim = [1, 2, 3].find((id) => cluster.clientAddress(id) === address)!;
      const killAt = performance.now();
      cluster.procs.get(victim)!.kill('SIGKILL');
      for (;;) {
        try {
          await c.commitOffsets([{ topic: 'data', partition: 0, offset: String(n++) }]);
          break;
        } catch {
          // the coordinator is moving; try again at once
        }
      }
      failoverSamples.push(performance.now() - killAt);
      ctx.progress(`coordinator failover ${rep + 1}/${reps}: broker ${victim}, ${failoverSamples[rep]!.toFixed(0)} ms`);
      await c.disconnect();
      await until(`broker ${victim} exited`, () => !cluster.isRunning(victim), 10_000);
      cluster.start(victim);
      await cluster.waitReady(60_000);
      // Let the restarted broker rejoin every ISR before the next kill.
      await until('full ISRs', async () => {
        const d = await admin.describeTopics({ topics: ['__consumer_offsets', 'data'] }).catch(() => undefined);
        return d !== undefined && d.topics.every((t) => t.partitions.every((p) => p.isr.length === 3));
      }, 60_000, 100);
    }
    sdkCluster.close();
    await producer.disconnect();
    await admin.disconnect();

    const result = {
      records,
      recordBytes: RECORD_BYTES,
      consumeMBs: round(consumeMBs),
      consumeMBs3: round(consumeMBs3),
      rawFetchMBs: round(rawFetchMBs),
      joinMs1: round(one.joinMs),
      joinMs3: round(three.joinMs),
      ratio1: round(consumeMBs / rawFetchMBs),
      ratio3: round(consumeMBs3 / rawFetchMBs),
      rebalanceMs: round(median(rebalanceSamples)),
      rebalanceMsMax: round(Math.max(...rebalanceSamples)),
      coordinatorFailoverMs: round(median(failoverSamples)),
      coordinatorFailoverMsMax: round(Math.max(...failoverSamples)),
      reps,
    };
    return {
      rows: [
        ['records (1 KiB)', records],
        ['consumeMBs (1 member)', result.consumeMBs],
        ['consumeMBs3 (3 members)', result.consumeMBs3],
        ['rawFetchMBs (baseline)', result.rawFetchMBs],
        ['ratio1 / ratio3', `${result.ratio1} / ${result.ratio3}`],
        ['joinMs (connect to first record; 1 / 3 members)', `${result.joinMs1} / ${result.joinMs3}`],
        [`rebalanceMs (median of ${reps}; max)`, `${result.rebalanceMs}; ${result.rebalanceMsMax}`],
        [`coordinatorFailoverMs (median of ${reps}; max)`, `${result.coordinatorFailoverMs}; ${result.coordinatorFailoverMsMax}`],
      ],
      json: result,
    };
  } finally {
    await Promise.all(open.map((c) => c.abandon().catch(() => undefined)));
    await cluster.killAll();
    rmSync(root, { recursive: true, force: true });
  }
}

function round(x: number): number {
  return Math.round(x * 100) / 100;
}
