// Multi-process: a broker restarted while the metadata quorum is unreachable restores an
// image from its own disk that may be far behind. It must not act on it (lead at a leader
// epoch the controller may already have replaced) until its metadata caught up with the
// quorum [Kafka: a broker publishes metadata once it reached the log's high watermark].
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { DEV_OVERRIDES, ProcessCluster, freePorts } from '../../src/node/process-cluster.ts';
import { RawClient } from '../../src/client/raw-client.ts';
import { buildBatch } from '../../src/log/batch.ts';
import { ClusterClient } from '../support/cluster-client.ts';
import { defer, tempDir, waitFor } from '../support/tmp.ts';

const TOPIC = 'stale';

test('a broker restarted without a metadata quorum does not lead from its restored image', { timeout: 180_000 }, async (t) => {
  const root = tempDir(t, 'raftka-stale-');
  const ports = await freePorts(6);
  const cluster = ProcessCluster.prepare({ root, nodeIds: [1, 2, 3], clientPorts: ports.slice(0, 3), controllerPorts: ports.slice(3), overrides: DEV_OVERRIDES });
  defer(t, () => cluster.killAll());
  cluster.startAll();
  await cluster.waitReady(60_000);
  await waitFor('topic creation', async () => {
    const c = new RawClient(cluster.bootstrap.split(',')[0]!, { timeoutMs: 5000 });
    try {
      const r = await c.createTopics({ topics: [{ name: TOPIC, numPartitions: 1, replicationFactor: 3 }] });
      return r.topics[0]?.errorCode === 0;
    } catch {
      return false;
    } finally {
      c.close();
    }
  }, 20_000, 200);
  const client = new ClusterClient([1, 2, 3].map((id) => cluster.clientAddress(id)));
  defer(t, () => client.close());
  await waitFor('a leader', async () => (await client.refresh(TOPIC)) && client.leaderOf(TOPIC, 0) !== undefined, 20_000, 100);
  await waitFor('first write', async () => (await client.produceOnce(TOPIC, 0, 'a')).type === 'ok' || (await client.refresh(TOPIC), false), 20_000, 100);
  const leader = client.leaderOf(TOPIC, 0)!;

  // Every node goes down; only the partition's leader comes back, without a quorum.
  await cluster.killAll();
  cluster.start(leader);
  const alone = new RawClient(cluster.clientAddress(leader), { timeoutMs: 2000 });
  defer(t, () => alone.close());
  await waitFor('the lone broker answers from its restored image, naming itself leader', async () => {
    const md = await alone.metadata({ topics: [TOPIC] }).catch(() => undefined);
    return md?.topics[0]?.partitions[0]?.leaderId === leader;
  }, 30_000, 100);
  // Its image says it leads with ISR = all three; acks=1 needs no follower. It must still
  // refuse: nothing it knows is confirmed current.
  const accepted = await waitFor('an acks=1 write accepted by the lone broker', async () => {
    const r = await alone.produce({ acks: 1, timeoutMs: 1000, topicData: [{ name: TOPIC, partitions: [{ partition: 0, records: buildBatch([{ key: 'zombie', value: 'zombie' }]) }] }] }).catch(() => undefined);
    return r?.responses[0]?.partitions[0]?.errorCode === 0 ? r : undefined;
  }, 3000, 100).catch(() => undefined);
  assert.equal(accepted, undefined, 'a broker without a metadata quorum accepted a write as leader from its restored image');

  // With a quorum back, it catches up and the partition serves again, history intact.
  for (const id of [1, 2, 3]) if (id !== leader) cluster.start(id);
  await cluster.waitReady(60_000);
  await waitFor('second write', async () => (await client.refresh(TOPIC)) && (await client.produceOnce(TOPIC, 0, 'b')).type === 'ok', 30_000, 100);
  const read = await waitFor('read back', () => client.readAll(TOPIC, 0), 20_000, 100);
  const values = read.records.map((r) => r.value);
  assert.ok(values.includes('a') && values.includes('b'), `both acknowledged writes are there: ${JSON.stringify(values)}`);
  assert.ok(!values.includes('zombie'), `nothing the lone broker took is there: ${JSON.stringify(values)}`);
});
