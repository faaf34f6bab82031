// A broker-only node (process.roles=broker) joins a three-voter quorum as a Raft
// observer: it registers, receives the metadata log, is unfenced, hosts replicas and
// serves clients, but never votes.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { DEV_OVERRIDES, ProcessCluster, freePorts } from '../../src/node/process-cluster.ts';
import { RawClient } from '../../src/client/raw-client.ts';
import { ClusterClient } from '../support/cluster-client.ts';
import { defer, tempDir, waitFor } from '../support/tmp.ts';

test('a broker-only node joins as an observer, hosts replicas and serves clients', { timeout: 180_000 }, async (t) => {
  const root = tempDir(t, 'raftka-observer-');
  const ports = await freePorts(8);
  const cluster = ProcessCluster.prepare({
    root,
    nodeIds: [1, 2, 3, 4],
    brokerOnly: [4],
    clientPorts: ports.slice(0, 4),
    controllerPorts: ports.slice(4),
    overrides: DEV_OVERRIDES,
  });
  defer(t, () => cluster.killAll());
  cluster.startAll();
  const view = await cluster.waitReady(60_000);
  assert.deepEqual(view.brokers.map((b) => b.id), [1, 2, 3, 4]);
  assert.deepEqual(view.voters.map((v) => v.id), [1, 2, 3], 'the broker-only node is not a voter');
  assert.ok(view.controllerId !== 4);

  // Replicas on the observer: it must follow the metadata log to host them.
  const admin = new RawClient(cluster.clientAddress(4));
  defer(t, () => admin.close());
  const created = await waitFor('create through the observer (forwarded to the controller)', async () => {
    const r = await admin.createTopics({ topics: [{ name: 'obs', assignments: [{ partition: 0, brokerIds: [4, 1, 2] }] }] }).catch(() => undefined);
    return r?.topics[0]?.errorCode === 0 ? r : undefined;
  }, 20_000, 200);
  assert.ok(created.topics[0]!.topicId !== '');
  const client = new ClusterClient([cluster.clientAddress(4)]);
  defer(t, () => client.close());
  await waitFor('node 4 leads obs-0', async () => (await client.refresh('obs')) && client.leaderOf('obs', 0) === 4, 20_000, 100);
  const w = await waitFor('write', async () => {
    const r = await client.produceOnce('obs', 0, 'through-the-observer');
    return r.type === 'ok' ? r : undefined;
  }, 20_000, 100);
  assert.equal(w.offset, 0);
  const read = await waitFor('read', () => client.readAll('obs', 0), 20_000, 100);
  assert.deepEqual(read.records.map((r) => r.value), ['through-the-observer']);

  // Restarted, it finds its place again (it is already an observer in the log's config).
  await cluster.kill9(4);
  cluster.start(4);
  await cluster.waitReady(60_000);
});
