// The SDK against a real three-node cluster (ProcessCluster on free ports): admin, sends
// resolving with offsets, keyed records on their murmur2 partition, every compression
// type round-tripping through the brokers, and an idempotent producer delivering every
// record exactly once, in order, across a kill -9 of a partition leader.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { DEV_OVERRIDES, ProcessCluster, freePorts } from '../../src/node/process-cluster.ts';
import { Raftka, decodeBatch, partitionForKey, type Admin } from '../../src/client/index.ts';
import { RawClient } from '../../src/client/raw-client.ts';
import { iterateBatches, type LogRecord } from '../../src/log/batch.ts';
import { defer, tempDir, waitFor } from '../support/tmp.ts';

async function startCluster(t: { after(fn: () => unknown): void }): Promise<ProcessCluster> {
  const root = tempDir(t, 'raftka-sdk-');
  const ports = await freePorts(6);
  const cluster = ProcessCluster.prepare({ root, nodeIds: [1, 2, 3], clientPorts: ports.slice(0, 3), controllerPorts: ports.slice(3), overrides: DEV_OVERRIDES });
  defer(t, () => cluster.killAll());
  cluster.startAll();
  await cluster.waitReady(60_000);
  return cluster;
}

/** Reads a whole partition from its current leader with RawClient.fetch, decoding with the SDK's codecs. */
async function readPartition(cluster: ProcessCluster, admin: Admin, topic: string, partition: number): Promise<LogRecord[]> {
  const md = await admin.fetchTopicMetadata({ topics: [topic] });
  const leader = md.topics[0]!.partitions[partition]!.leader;
  const c = new RawClient(cluster.clientAddress(leader), { timeoutMs: 5000 });
  try {
    const out: LogRecord[] = [];
    let offset = 0;
    for (;;) {
      const r = await c.fetch({ maxWaitMs: 0, minBytes: 0, maxBytes: 16 << 20, topics: [{ name: topic, partitions: [{ partition, fetchOffset: offset, partitionMaxBytes: 8 << 20 }] }] });
      const p = r.responses[0]!.partitions[0]!;
      assert.equal(p.errorCode, 0, p.errorMessage);
      let progressed = false;
      for (const { header, bytes } of iterateBatches(p.records)) {
        for (const rec of await decodeBatch(bytes)) if (rec.offset >= offset) out.push(rec);
        offset = header.lastOffset + 1;
        progressed = true;
      }
      if (!progressed || offset >= p.highWatermark) return out;
    }
  } finally {
    c.close();
  }
}

test('SDK producer and admin against a three-node cluster', { timeout: 240_000 }, async (t) => {
  const cluster = await startCluster(t);
  const raftka = new Raftka({ brokers: cluster.spec.nodeIds.map((id) => cluster.clientAddress(id)), clientId: 'sdk-test', requestTimeout: 10_000 });
  const admin = raftka.admin();
  await admin.connect();
  defer(t, () => admin.disconnect());

  await t.test('admin: create, list, describe, offsets, partitions, cluster, configs', async () => {
    assert.equal(await admin.createTopics({ topics: [{ topic: 'events', numPartitions: 6, replicationFactor: 3 }, { topic: 'codecs', numPartitions: 1, replicationFactor: 3 }] }), true);
    assert.equal(await admin.createTopics({ topics: [{ topic: 'events', numPartitions: 6 }] }), false, 'already exists');
    const topics = await admin.listTopics();
    assert.ok(topics.includes('events') && topics.includes('codecs'));
    const d = await admin.describeTopics({ topics: ['events'] });
    const ev = d.topics[0]!;
    assert.equal(ev.partitions.length, 6);
    for (const p of ev.partitions) {
      assert.equal(p.replicas.length, 3);
      assert.ok(p.leader >= 1 && p.replicas.includes(p.leader));
      assert.ok(p.leaderEpoch >= 0);
    }
    assert.ok(ev.configs.some((c) => c.name === 'min.insync.replicas'));
    const offsets = await admin.fetchTopicOffsets('events');
    assert.deepEqual(offsets.map((o) => [o.partition, o.high, o.low]), [0, 1, 2, 3, 4, 5].map((p) => [p, 0, 0]));
    const cl = await admin.describeCluster();
    assert.deepEqual(cl.brokers.map((b) => b.nodeId).sort(), [1, 2, 3]);
    assert.ok(cl.controller >= 1);
    const cfg = await admin.describeConfigs({ resources: [{ type: 2, name: 'events', configNames: ['min.insync.replicas'] }] });
    assert.equal(cfg.resources[0]!.configEntries[0]!.configValue, '2');
    await admin.createTopics({ topics: [{ topic: 'grow', numPartitions: 1 }] });
    await admin.createPartitions({ topicPartitions: [{ topic: 'grow', count: 3 }] });
    await waitFor('3 partitions', async () => (await admin.fetchTopicMetadata({ topics: ['grow'] })).topics[0]!.partitions.length === 3, 10_000, 100);
    await admin.deleteTopics({ topics: ['grow'] });
    await waitFor('grow deleted', async () => !(await admin.listTopics()).includes('grow'), 10_000, 100);
  });

  await t.test('sends resolve with offsets; keyed records land on the murmur2 partition', async () => {
    const producer = raftka.producer();
    await producer.connect();
    defer(t, () => producer.disconnect());
    assert.ok(producer.idempotent, 'the cluster hands out producer ids');
    const messages = Array.from({ length: 500 }, (_, i) => ({ key: `user-${i % 37}`, value: `event-${i}`, headers: { n: String(i) } }));
    const r = await producer.send({ topic: 'events', messages });
    assert.equal(r.length, 500);
    for (let i = 0; i < 500; i++) assert.equal(r[i]!.partition, partitionForKey(Buffer.from(`user-${i % 37}`), 6));
    // Offsets per partition are 0..n-1 in send order.
    const perPartition = new Map<number, number[]>();
    for (const m of r) perPartition.set(m.partition, [...(perPartition.get(m.partition) ?? []), m.offset]);
    for (const offs of perPartition.values()) assert.deepEqual(offs, offs.map((_, i) => i));
    for (const [p, offs] of perPartition) {
      const recs = await readPartition(cluster, admin, 'events', p);
      assert.equal(recs.length, offs.length);
      for (const rec of recs) {
        const i = Number(rec.headers[0]!.value!.toString());
        assert.equal(rec.value!.toString(), `event-${i}`);
        assert.equal(rec.key!.toString(), `user-${i % 37}`);
        assert.equal(r[i]!.offset, rec.offset);
      }
    }
    // Null keys stick: one small send goes to a single partition.
    const unkeyed = await producer.send({ topic: 'events', messages: [{ value: 'a' }, { value: 'b' }, { value: 'c' }] });
    assert.equal(new Set(unkeyed.map((m) => m.partition)).size, 1);
  });

  await t.test('every compression type round-trips through the brokers', async () => {
    const producer = raftka.producer();
    await producer.connect();
    defer(t, () => producer.disconnect());
    const sent: string[] = [];
    for (const compression of ['none', 'gzip', 'snappy', 'lz4', 'zstd'] as const) {
      const messages = Array.from({ length: 50 }, (_, i) => ({ value: JSON.stringify({ compression, i, text: 'lorem ipsum '.repeat(10) }) }));
      sent.push(...messages.map((m) => m.value));
      const r = await producer.send({ topic: 'codecs', compression, messages });
      assert.equal(r.length, 50);
    }
    const recs = await readPartition(cluster, admin, 'codecs', 0);
    assert.deepEqual(recs.map((r) => r.value!.toString()), sent);
  });

  await t.test('kill -9 of a partition leader mid-stream: every record exactly once, in order', async () => {
    await admin.createTopics({ topics: [{ topic: 'failover', numPartitions: 2, replicationFactor: 3 }] });
    const producer = raftka.producer({ lingerMs: 2, retry: { initialRetryTime: 50, maxRetryTime: 500 } });
    await producer.connect();
    defer(t, () => producer.disconnect());
    assert.ok(producer.idempotent);
    const leaderOf0 = (await admin.fetchTopicMetadata({ topics: ['failover'] })).topics[0]!.partitions[0]!.leader;
    const N = 3000;
    const sends: Array<Promise<unknown>> = [];
    let killed = false;
    for (let i = 0; i < N; i++) {
      sends.push(producer.send({ topic: 'failover', messages: [{ value: `m${i}`, partition: i % 2 }] }));
      if (i % 100 === 99) await Promise.race([sends[sends.length - 100], new Promise((r) => setImmediate(r))]);
      if (i === N / 3) {
        await cluster.kill9(leaderOf0);
        killed = true;
      }
    }
    assert.ok(killed);
    await Promise.all(sends);
    cluster.start(leaderOf0);
    await cluster.waitReady(60_000);
    for (const p of [0, 1]) {
      const recs = await readPartition(cluster, admin, 'failover', p);
      const values = recs.map((r) => r.value!.toString());
      const want = Array.from({ length: N / 2 }, (_, k) => `m${2 * k + p}`);
      assert.equal(values.length, want.length, `partition ${p}: ${values.length} records, ${new Set(values).size} distinct`);
      assert.deepEqual(values, want, `partition ${p} in send order, no duplicates`);
    }
  });
});
