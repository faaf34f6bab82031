// Config changes and leader elections against a real three-node cluster: CreateTopics
// answers the effective configs; admin.alterConfigs sets and deletes overrides (checked
// as CreateTopics checks them) and the brokers' partition logs enforce the new values
// (max.message.bytes); the idempotent producer keeps going on the same partition after
// a batch is refused; the cluster-wide default; electLeaders moves leadership back to
// the preferred replica and answers ELECTION_NOT_NEEDED when it already leads.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { DEV_OVERRIDES, ProcessCluster, freePorts } from '../../src/node/process-cluster.ts';
import { ConfigResourceTypes, Raftka, RaftkaProtocolError, type Admin } from '../../src/client/index.ts';
import { RawClient } from '../../src/client/raw-client.ts';
import { defer, tempDir, waitFor } from '../support/tmp.ts';

const TOPIC = ConfigResourceTypes.TOPIC;

async function configOf(admin: Admin, topic: string, name: string): Promise<{ value: string; source: string }> {
  const d = await admin.describeConfigs({ resources: [{ type: TOPIC, name: topic, configNames: [name] }] });
  const e = d.resources[0]!.configEntries[0]!;
  return { value: e.configValue, source: e.configSource };
}

/**
 * alterConfigs resolves once the change is committed; the broker that answers a
 * describe may not have replayed it yet, so wait until it shows.
 */
async function expectConfig(admin: Admin, topic: string, name: string, want: { value?: string; source: string }): Promise<void> {
  let last: unknown;
  await waitFor(
    `${topic} ${name} = ${JSON.stringify(want)}`,
    async () => {
      const c = await configOf(admin, topic, name);
      last = c;
      return c.source === want.source && (want.value === undefined || c.value === want.value);
    },
    10_000,
    50,
  ).catch((e: Error) => {
    throw new Error(`${e.message}; last seen ${JSON.stringify(last)}`);
  });
}

test('alterConfigs and electLeaders against a three-node cluster', { timeout: 180_000 }, async (t) => {
  const root = tempDir(t, 'raftka-admin-');
  const ports = await freePorts(6);
  const cluster = ProcessCluster.prepare({ root, nodeIds: [1, 2, 3], clientPorts: ports.slice(0, 3), controllerPorts: ports.slice(3), overrides: DEV_OVERRIDES });
  defer(t, () => cluster.killAll());
  cluster.startAll();
  await cluster.waitReady(60_000);
  const raftka = new Raftka({ brokers: cluster.spec.nodeIds.map((id) => cluster.clientAddress(id)), clientId: 'admin-test', requestTimeout: 10_000 });
  const admin = raftka.admin();
  await admin.connect();
  defer(t, () => admin.disconnect());

  await t.test('CreateTopics answers the effective configs, overrides marked as the topic’s own', async () => {
    const raw = new RawClient(cluster.clientAddress(2), { timeoutMs: 10_000 });
    defer(t, () => raw.close());
    for (const validateOnly of [true, false]) {
      const r = await raw.createTopics({ topics: [{ name: 'sized', numPartitions: 2, replicationFactor: 3, configs: { 'max.message.bytes': '4000' } }], validateOnly, timeoutMs: 10_000 });
      const c = r.topics[0]!;
      assert.equal(c.errorCode, 0, c.errorMessage);
      const by = new Map(c.configs.map((x) => [x.name, x]));
      assert.deepEqual(by.get('max.message.bytes'), { name: 'max.message.bytes', value: '4000', source: 'topic' }, `validateOnly=${validateOnly}`);
      assert.deepEqual(by.get('min.insync.replicas'), { name: 'min.insync.replicas', value: '2', source: 'broker' }, 'the cluster default the dev cluster sets');
      assert.equal(by.get('cleanup.policy')?.source, 'default');
      // The same list DescribeTopics gives once the topic exists.
      if (!validateOnly) {
        await waitFor('sized described', async () => (await raw.describeTopics({ names: ['sized'] })).topics[0]!.errorCode === 0, 10_000, 50);
        const d = (await raw.describeTopics({ names: ['sized'] })).topics[0]!;
        assert.deepEqual(d.configs, c.configs);
      }
    }
    const bad = await raw.createTopics({ topics: [{ name: 'bad-config', configs: { 'retention.ms': 'soon' } }] });
    assert.equal(bad.topics[0]!.errorCode, 40);
    assert.deepEqual(bad.topics[0]!.configs, []);
  });

  await t.test('alterConfigs: a changed max.message.bytes is enforced by the leader; the producer goes on after the refusal', async () => {
    await admin.createTopics({ topics: [{ topic: 'limits', numPartitions: 1, replicationFactor: 3 }] });
    const producer = raftka.producer({ lingerMs: 0, batchSize: 1 });
    await producer.connect();
    defer(t, () => producer.disconnect());
    const big = 'x'.repeat(3000);
    assert.equal((await producer.send({ topic: 'limits', messages: [{ value: big, partition: 0 }] }))[0]!.offset, 0, 'fits under the default 1 MiB');

    // validateOnly changes nothing; a bad value or an unknown key is INVALID_CONFIG.
    await admin.alterConfigs({ validateOnly: true, resources: [{ type: TOPIC, name: 'limits', configEntries: [{ name: 'max.message.bytes', value: '2000' }] }] });
    assert.equal((await configOf(admin, 'limits', 'max.message.bytes')).source, 'default');
    for (const entry of [{ name: 'max.message.bytes', value: '-5' }, { name: 'retention.mss', value: '1' }]) {
      await assert.rejects(
        admin.alterConfigs({ resources: [{ type: TOPIC, name: 'limits', configEntries: [entry] }] }),
        (e) => e instanceof RaftkaProtocolError && e.errorName === 'INVALID_CONFIG' && e.topic === 'limits',
        entry.name,
      );
    }
    await assert.rejects(admin.alterConfigs({ resources: [{ type: TOPIC, name: 'no-such-topic', configEntries: [{ name: 'retention.ms', value: '1000' }] }] }), (e) => e instanceof RaftkaProtocolError && e.errorName === 'UNKNOWN_TOPIC_OR_PARTITION');

    const r = await admin.alterConfigs({ resources: [{ type: TOPIC, name: 'limits', configEntries: [{ name: 'max.message.bytes', value: '2000' }, { name: 'retention.ms', value: '3600000' }] }] });
    assert.deepEqual(r.resources, [{ errorCode: 0, errorMessage: '', resourceType: TOPIC, resourceName: 'limits' }]);
    await expectConfig(admin, 'limits', 'max.message.bytes', { value: '2000', source: 'topic' });
    await expectConfig(admin, 'limits', 'retention.ms', { value: '3600000', source: 'topic' });

    // Once the leader has replayed the change, a 3000-byte record is refused. Sends
    // behind it on the same partition (in flight at the same time) and after it succeed.
    // (A probe sent before the leader replayed the change is written: counted below.)
    let acceptedProbes = 0;
    await waitFor('the leader enforces max.message.bytes=2000', async () => {
      try {
        await producer.send({ topic: 'limits', messages: [{ value: big, partition: 0 }] });
        acceptedProbes++;
        return false;
      } catch (e) {
        if (e instanceof RaftkaProtocolError && e.errorName === 'MESSAGE_TOO_LARGE') return true;
        throw e;
      }
    }, 10_000, 50);
    const refused = producer.send({ topic: 'limits', messages: [{ value: big, partition: 0 }] });
    const behind = Array.from({ length: 5 }, (_, i) => producer.send({ topic: 'limits', messages: [{ value: `small-${i}`, partition: 0 }] }));
    await assert.rejects(refused, (e) => e instanceof RaftkaProtocolError && e.errorName === 'MESSAGE_TOO_LARGE');
    const offsets = (await Promise.all(behind)).map((x) => x[0]!.offset);
    assert.deepEqual(offsets, offsets.map((_, i) => offsets[0]! + i), 'in send order, consecutive');
    const later = await producer.send({ topic: 'limits', messages: [{ value: 'later', partition: 0 }] });
    assert.equal(later[0]!.offset, offsets[4]! + 1);
    assert.ok(producer.producerIdentity.producerEpoch >= 1, 'the epoch was bumped');

    // DELETE puts the default back, and the big record fits again.
    await admin.alterConfigs({ resources: [{ type: TOPIC, name: 'limits', configEntries: [{ name: 'max.message.bytes', op: 'delete' }] }] });
    await expectConfig(admin, 'limits', 'max.message.bytes', { value: '1048588', source: 'default' });
    assert.deepEqual(await configOf(admin, 'limits', 'retention.ms'), { value: '3600000', source: 'topic' }, 'keys not named keep their values');
    await waitFor('the leader accepts 3000 bytes again', async () => {
      try {
        await producer.send({ topic: 'limits', messages: [{ value: big, partition: 0 }] });
        return true;
      } catch (e) {
        if (e instanceof RaftkaProtocolError && e.errorName === 'MESSAGE_TOO_LARGE') return false;
        throw e;
      }
    }, 10_000, 50);
    const end = await admin.fetchTopicOffsets('limits');
    // 1 big + probes accepted before the change + 5 small + 'later' + the big one that fit
    // again (refused ones wrote nothing).
    assert.equal(end[0]!.high, 8 + acceptedProbes);
  });

  await t.test('alterConfigs on the cluster-wide default (BROKER resource "")', async () => {
    await admin.alterConfigs({ resources: [{ type: ConfigResourceTypes.BROKER, name: '', configEntries: [{ name: 'retention.bytes', value: '123456789' }] }] });
    await expectConfig(admin, 'limits', 'retention.bytes', { value: '123456789', source: 'broker' });
    await assert.rejects(admin.alterConfigs({ resources: [{ type: ConfigResourceTypes.BROKER, name: '2', configEntries: [{ name: 'retention.bytes', value: '1' }] }] }), (e) => e instanceof RaftkaProtocolError && e.errorName === 'INVALID_REQUEST');
    await admin.alterConfigs({ resources: [{ type: ConfigResourceTypes.BROKER, name: '', configEntries: [{ name: 'retention.bytes', op: 'delete' }] }] });
    await expectConfig(admin, 'limits', 'retention.bytes', { value: '-1', source: 'default' });
  });

  await t.test('electLeaders: preferred election moves leadership back; ELECTION_NOT_NEEDED when it already leads', async () => {
    await admin.createTopics({ topics: [{ topic: 'pref', replicaAssignment: [{ partition: 0, replicas: [1, 2, 3] }] }] });
    const leader = async () => (await admin.fetchTopicMetadata({ topics: ['pref'] })).topics[0]!.partitions[0]!;
    await waitFor('broker 1 leads pref-0', async () => (await leader()).leader === 1, 10_000, 50);
    const first = await admin.electLeaders({ topicPartitions: [{ topic: 'pref', partitions: [0] }] });
    assert.deepEqual(first.map((r) => [r.topic, r.partition, r.error, r.leader]), [['pref', 0, 'ELECTION_NOT_NEEDED', 1]]);

    // Broker 1 stops (controlled shutdown moves its leadership away) and comes back.
    await cluster.stop(1);
    await waitFor('leadership moved off broker 1', async () => ![-1, 1].includes((await leader()).leader), 15_000, 50);
    cluster.start(1);
    await cluster.waitReady(60_000);
    await waitFor('broker 1 back in the ISR', async () => (await leader()).isr.includes(1), 30_000, 100);
    assert.notEqual((await leader()).leader, 1, 'nothing moved it back yet');

    const r = await admin.electLeaders({ topicPartitions: [{ topic: 'pref' }, { topic: 'nope', partitions: [0] }] });
    assert.deepEqual(r.map((x) => [x.topic, x.partition, x.error, x.leader]), [
      ['pref', 0, undefined, 1],
      ['nope', 0, 'UNKNOWN_TOPIC_OR_PARTITION', -1],
    ]);
    // The answer comes once the controller committed the change; the broker asked for
    // metadata replays it a moment later (metadata propagation is asynchronous, as in Kafka).
    await waitFor('metadata shows broker 1 leading pref-0 again', async () => (await leader()).leader === 1, 10_000, 50);
    // Every partition of every topic: pref-0 needs nothing now.
    const all = await admin.electLeaders();
    assert.deepEqual(all.find((x) => x.topic === 'pref'), { topic: 'pref', partition: 0, leader: 1, errorCode: 84, error: 'ELECTION_NOT_NEEDED', errorMessage: all.find((x) => x.topic === 'pref')!.errorMessage });
    assert.ok(all.every((x) => x.error === undefined || x.error === 'ELECTION_NOT_NEEDED' || x.error === 'PREFERRED_LEADER_NOT_AVAILABLE'), JSON.stringify(all));
  });
});
