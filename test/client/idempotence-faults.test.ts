// The SDK's idempotent producer against a real three-node cluster through a hostile
// network, as a property: an in-process interposer in front of every broker (see
// interposer.ts) plays a fast-check schedule of delayed, lost (before or after the
// append) and duplicated produce requests, and the partition leader of partition 0 is
// killed with kill -9 mid-stream. Invariants 2 and 4 of DESIGN.md from the client side:
// every send resolves, each partition's log holds every record exactly once, in send
// order, and every reported offset is where the record really is.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import fc from 'fast-check';
import { DEV_OVERRIDES, ProcessCluster, freePorts } from '../../src/node/process-cluster.ts';
import { Raftka, decodeBatch, type RecordMetadata } from '../../src/client/index.ts';
import { RawClient } from '../../src/client/raw-client.ts';
import { iterateBatches } from '../../src/log/batch.ts';
import { assertProperty } from '../support/property.ts';
import { defer, tempDir, waitFor } from '../support/tmp.ts';
import { Interposer, type Fault } from './interposer.ts';

const faultArb: fc.Arbitrary<Fault> = fc.oneof(
  { weight: 6, arbitrary: fc.constant({ type: 'ok' as const }) },
  { weight: 3, arbitrary: fc.integer({ min: 1, max: 30 }).map((ms) => ({ type: 'delay' as const, ms })) },
  { weight: 1, arbitrary: fc.constant({ type: 'loseRequest' as const }) },
  { weight: 1, arbitrary: fc.constant({ type: 'loseResponse' as const }) },
  { weight: 1, arbitrary: fc.constant({ type: 'duplicate' as const }) },
);

const SENDS = 600;

/** A partition's record values and offsets, read from its current leader (real addresses). */
async function readPartition(cluster: ProcessCluster, topic: string, partition: number): Promise<Array<{ offset: number; value: string }>> {
  return waitFor(
    `${topic}-${partition} readable`,
    async () => {
      for (const id of cluster.runningIds()) {
        const c = new RawClient(cluster.clientAddress(id), { timeoutMs: 5_000 });
        try {
          const out: Array<{ offset: number; value: string }> = [];
          let offset = 0;
          for (;;) {
            const r = await c.fetch({ maxWaitMs: 0, minBytes: 0, maxBytes: 16 << 20, topics: [{ name: topic, partitions: [{ partition, fetchOffset: offset, partitionMaxBytes: 8 << 20 }] }] });
            const p = r.responses[0]!.partitions[0]!;
            if (p.errorCode !== 0) break; // not the leader: the next node
            let progressed = false;
            for (const { header, bytes } of iterateBatches(p.records)) {
              for (const rec of await decodeBatch(bytes)) if (rec.offset >= offset) out.push({ offset: rec.offset, value: rec.value!.toString() });
              offset = header.lastOffset + 1;
              progressed = true;
            }
            if (!progressed || offset >= p.highWatermark) return out;
          }
        } catch {
          // the next node
        } finally {
          c.close();
        }
      }
      return undefined;
    },
    20_000,
    100,
  );
}

test('SDK idempotent producer through dropped, delayed and duplicated requests and a leader kill -9: exactly once, in order', { timeout: 300_000 }, async (t) => {
  const root = tempDir(t, 'raftka-idem-faults-');
  const ports = await freePorts(6);
  const cluster = ProcessCluster.prepare({ root, nodeIds: [1, 2, 3], clientPorts: ports.slice(0, 3), controllerPorts: ports.slice(3), overrides: DEV_OVERRIDES });
  defer(t, () => cluster.killAll());
  cluster.startAll();
  await cluster.waitReady(60_000);

  let schedule: Fault[] = [];
  let played = 0;
  // The schedule plays twice over, then the network heals (a network that never delivers
  // can only end in deliveryTimeoutMs).
  const nextFault = (): Fault => {
    const i = played++;
    return i < 2 * schedule.length ? schedule[i % schedule.length]! : { type: 'ok' };
  };
  const interposers = new Map<number, Interposer>();
  for (const id of cluster.spec.nodeIds) {
    const ip = new Interposer({ brokerId: id, upstream: cluster.clientAddress(id), portOf: (b) => interposers.get(b)?.port, nextFault });
    await ip.start();
    interposers.set(id, ip);
    defer(t, () => ip.stop());
  }
  const admin = new Raftka({ brokers: cluster.spec.nodeIds.map((id) => cluster.clientAddress(id)), requestTimeout: 10_000 }).admin();
  await admin.connect();
  defer(t, () => admin.disconnect());

  let run = 0;
  await assertProperty(
    'exactly once through faults and a leader kill',
    fc.asyncProperty(
      fc.array(faultArb, { minLength: 20, maxLength: 80 }),
      fc.constantFrom('stream' as const, 'unary' as const),
      fc.integer({ min: 50, max: SENDS - 100 }),
      async (faults, transport, killAt) => {
        const topic = `idem-${run++}`;
        await admin.createTopics({ topics: [{ topic, numPartitions: 2, replicationFactor: 3 }] });
        schedule = faults;
        played = 0;
        const producer = new Raftka({ brokers: [...interposers.values()].map((ip) => ip.address), requestTimeout: 3_000 }).producer({
          transport,
          lingerMs: 1,
          batchSize: 200,
          retry: { initialRetryTime: 20, maxRetryTime: 200 },
          deliveryTimeoutMs: 120_000,
        });
        await producer.connect();
        let victim = -1;
        try {
          assert.ok(producer.idempotent);
          const sends: Array<Promise<RecordMetadata[]>> = [];
          for (let i = 0; i < SENDS; i++) {
            sends.push(producer.send({ topic, messages: [{ value: `m${i}`, partition: i % 2 }], timeout: 5_000 }));
            // Let requests go out as sends arrive, not all at the end.
            if (i % 25 === 24) await new Promise((r) => setImmediate(r));
            if (i === killAt) {
              victim = (await admin.fetchTopicMetadata({ topics: [topic] })).topics[0]!.partitions[0]!.leader;
              await cluster.kill9(victim);
            }
          }
          const results = await Promise.all(sends);
          assert.ok(played > 0);
          for (const p of [0, 1]) {
            const log = await readPartition(cluster, topic, p);
            const want = Array.from({ length: SENDS / 2 }, (_, k) => `m${2 * k + p}`);
            assert.deepEqual(
              log.map((r) => r.value),
              want,
              `partition ${p}: ${log.length} records, ${new Set(log.map((r) => r.value)).size} distinct (transport ${transport}, kill at ${killAt})`,
            );
            const offsetOf = new Map(log.map((r) => [r.value, r.offset]));
            results.forEach((md, i) => {
              if (i % 2 === p) assert.equal(md[0]!.offset, offsetOf.get(`m${i}`), `m${i}: reported offset`);
            });
          }
          return true;
        } finally {
          await producer.disconnect();
          if (victim >= 0 && !cluster.isRunning(victim)) {
            cluster.start(victim);
            await cluster.waitReady(60_000);
          }
        }
      },
    ),
    { numRuns: 4 },
  );
});
