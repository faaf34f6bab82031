import { test } from 'node:test';
import assert from 'node:assert/strict';
import { isRaftkaError } from '../../src/common/errors.ts';
import { isUuid } from '../../src/common/ids.ts';
import { SeededRandom } from '../../src/common/random.ts';
import { QuorumController } from '../../src/controller/controller.ts';
import { controllerConfig } from '../../src/controller/types.ts';
import { NO_LEADER, PRODUCER_ID_BLOCK_SIZE, encodeRecords } from '../../src/metadata/index.ts';
import { Harness, incarnation } from './harness.ts';

const SESSION_MS = 1000;
const cluster = (n = 3, config: Record<string, unknown> = {}): Harness => {
  const h = new Harness({ 'broker.session.timeout.ms': SESSION_MS, ...config });
  h.startBrokers(Array.from({ length: n }, (_, i) => i + 1));
  return h;
};

// ─── Broker registration and heartbeats ───────────────────────────────────────────

test('a new broker registers fenced and is unfenced once it reports caught up', () => {
  const h = new Harness();
  const r = h.register(1);
  assert.equal(r.error, 'NONE');
  assert.equal(r.brokerEpoch, 1);
  assert.equal(h.image.broker(1)!.fenced, true);
  let hb = h.heartbeat(1, { caughtUp: false });
  assert.equal(hb.isFenced, true);
  assert.equal(h.image.broker(1)!.fenced, true);
  hb = h.heartbeat(1, { caughtUp: true, wantFence: true });
  assert.equal(hb.isFenced, true, 'wantFence keeps it fenced');
  hb = h.heartbeat(1);
  assert.equal(hb.isFenced, false);
  assert.equal(hb.error, 'NONE');
  assert.equal(h.image.broker(1)!.fenced, false);
  // wantFence on an unfenced broker fences it.
  assert.equal(h.heartbeat(1, { wantFence: true }).isFenced, true);
  assert.equal(h.image.broker(1)!.fenced, true);
  assert.equal(h.register(2).brokerEpoch, 2, 'broker epochs grow across the cluster');
});

test('registration: a retry is idempotent; a second live incarnation is a duplicate; an expired one is replaced', () => {
  const h = cluster(3);
  h.createTopic('t', 3, 3);
  const epoch1 = h.epochs.get(1)!;
  const retry = h.register(1);
  assert.equal(retry.error, 'NONE');
  assert.equal(retry.brokerEpoch, epoch1, 'same incarnation: same epoch');
  assert.equal(h.image.broker(1)!.fenced, false, 'a retry does not fence');

  const dup = h.register(1, { newIncarnation: true });
  assert.equal(dup.error, 'DUPLICATE_BROKER_REGISTRATION');
  assert.equal(dup.brokerEpoch, -1);
  assert.match(dup.errorMessage!, /session has not expired/);

  // Broker 1 dies (no more heartbeats); the others keep going.
  h.advance(SESSION_MS + 1);
  h.heartbeat(2);
  h.heartbeat(3);
  const again = h.register(1);
  assert.equal(again.error, 'NONE');
  assert.ok(again.brokerEpoch > epoch1);
  assert.equal(h.image.broker(1)!.fenced, true, 'the new incarnation starts fenced');
  for (const p of h.image.topic('t')!.partitions) {
    assert.notEqual(p.leader, 1, 'the old incarnation leads nothing');
    assert.ok(!p.isr.includes(1), 'nor is it in any ISR');
  }
  // A late registration retry from the old incarnation is refused while the new one lives.
  const late = h.commit(
    h.controller.registerBroker({ brokerId: 1, incarnationId: incarnation(1, 0), endpoints: [{ name: 'CLIENT', host: 'h', port: 1 }] }, h.nowMs),
  );
  assert.equal(late.error, 'DUPLICATE_BROKER_REGISTRATION');
  // Heartbeats from the old incarnation are refused.
  const stale = h.heartbeat(1, { brokerEpoch: epoch1 });
  assert.equal(stale.error, 'STALE_BROKER_EPOCH');
  assert.match(stale.errorMessage!, /stale/);
  assert.equal(h.heartbeat(1).isFenced, false);
});

test('registration: a clean restart (previous broker epoch) is accepted before the session expires', () => {
  const h = cluster(2);
  const epoch = h.epochs.get(2)!;
  assert.equal(h.register(2, { newIncarnation: true }).error, 'DUPLICATE_BROKER_REGISTRATION');
  const r = h.register(2, { newIncarnation: true, previousBrokerEpoch: epoch });
  assert.equal(r.error, 'NONE');
  assert.ok(r.brokerEpoch > epoch);
});

test('registration and heartbeat input is validated', () => {
  const h = new Harness();
  const c = h.controller;
  const base = { brokerId: 1, incarnationId: incarnation(1), endpoints: [{ name: 'CLIENT', host: 'h', port: 9092 }] };
  const bad = (patch: Record<string, unknown>, re: RegExp): void => {
    const r = h.commit(c.registerBroker({ ...base, ...patch } as never, h.nowMs));
    assert.equal(r.error, 'INVALID_REQUEST', JSON.stringify(patch));
    assert.equal(r.errorCode, 42);
    assert.match(r.errorMessage!, re);
  };
  bad({ brokerId: -1 }, /Broker id -1/);
  bad({ incarnationId: 'x' }, /not a uuid/);
  bad({ endpoints: [] }, /between 1 and 64 endpoints/);
  bad({ endpoints: [{ name: 'A', host: 'h', port: 0 }] }, /port 0/);
  bad({ endpoints: [{ name: 'A', host: '', port: 1 }] }, /no host/);
  bad({ endpoints: [{ name: 'A', host: 'h', port: 1 }, { name: 'A', host: 'h', port: 2 }] }, /listed twice/);
  bad({ rack: '' }, /Rack/);
  // Structurally malformed requests are refused whole, before anything is touched.
  const malformed = (patch: Record<string, unknown>, re: RegExp): void =>
    assert.throws(
      () => c.registerBroker({ ...base, ...patch } as never, h.nowMs),
      (e: unknown) => isRaftkaError(e, 'INVALID_REQUEST') && re.test(e.message),
    );
  malformed({ brokerId: 1.5 }, /request.brokerId is not an integer/);
  malformed({ endpoints: [null] }, /request.endpoints\[0\] is not an object/);
  malformed({ endpoints: 'x' }, /request.endpoints is not a list/);
  malformed({ endpoints: Array.from({ length: 65 }, (_, i) => ({ name: `L${i}`, host: 'h', port: 1 })) }, /at most 64/);
  assert.equal(h.image.brokers.size, 0);
  const hb = h.commit(
    c.brokerHeartbeat({ brokerId: 9, brokerEpoch: 1, currentMetadataOffset: 0, caughtUp: true, wantFence: false, wantShutDown: false }, 0),
  );
  assert.equal(hb.error, 'BROKER_ID_NOT_REGISTERED');
});

test('an inactive controller refuses requests with NOT_CONTROLLER', () => {
  const c = new QuorumController(new SeededRandom(1), controllerConfig());
  assert.throws(
    () => c.createTopics({ topics: [{ name: 'a' }] }, 0),
    (e: unknown) => isRaftkaError(e, 'NOT_CONTROLLER'),
  );
  c.activate(new Harness().image, 3, 0);
  assert.equal(c.controllerEpoch, 3);
  c.deactivate();
  assert.equal(c.isActive, false);
  assert.throws(() => c.tick(0), (e: unknown) => isRaftkaError(e, 'NOT_CONTROLLER'));
});

// ─── Liveness ─────────────────────────────────────────────────────────────────────

test('tick fences a broker that missed heartbeats for broker.session.timeout.ms and moves its leaderships', () => {
  const h = cluster(3);
  h.createTopic('t', 6, 3);
  const led = h.image.partitionsLedBy(3).map((p) => ({ partition: p.partition, leaderEpoch: p.leaderEpoch }));
  assert.ok(led.length > 0);
  h.advance(SESSION_MS);
  h.heartbeat(1);
  h.heartbeat(2);
  assert.deepEqual(h.commit(h.controller.tick(h.nowMs)).fencedBrokers, [], 'exactly at the timeout: still alive');
  h.advance(1);
  const r = h.commit(h.controller.tick(h.nowMs));
  assert.deepEqual(r.fencedBrokers, [3]);
  assert.equal(h.image.broker(3)!.fenced, true);
  for (const p of h.image.topic('t')!.partitions) {
    assert.ok(!p.isr.includes(3));
    assert.notEqual(p.leader, 3);
    assert.ok(p.isr.includes(p.leader));
  }
  for (const { partition, leaderEpoch } of led) {
    assert.equal(h.partition('t', partition).leaderEpoch, leaderEpoch + 1, 'a new leader, a new epoch');
  }
  assert.deepEqual(h.commit(h.controller.tick(h.nowMs)).fencedBrokers, [], 'fenced once');
});

test('a new controller gives brokers a fresh session, shortened when asked (fast failover)', () => {
  const h = cluster(3);
  h.createTopic('t', 3, 3);
  h.advance(SESSION_MS - 1);
  // The controller fails over; brokers 1 and 2 find the new one, broker 3 died with the old.
  h.controller.deactivate();
  h.commit(h.controller.activate(h.image, 2, h.nowMs, { initialSessionMs: 200 }));
  h.advance(150);
  h.heartbeat(1);
  h.heartbeat(2);
  assert.deepEqual(h.commit(h.controller.tick(h.nowMs)).fencedBrokers, []);
  h.advance(51);
  assert.deepEqual(h.commit(h.controller.tick(h.nowMs)).fencedBrokers, [3]);
  assert.equal(h.image.partitionsLedBy(3).length, 0);
  // Without the option: a full session.
  h.controller.deactivate();
  h.commit(h.controller.activate(h.image, 3, h.nowMs));
  h.advance(SESSION_MS);
  assert.deepEqual(h.commit(h.controller.tick(h.nowMs)).fencedBrokers, []);
  h.advance(1);
  assert.deepEqual(h.commit(h.controller.tick(h.nowMs)).fencedBrokers, [1, 2]);
});

test('brokerDisconnected fences at once (fast failover); a stale epoch is ignored; the broker can come back', () => {
  const h = cluster(3);
  h.createTopic('t', 3, 3);
  const epoch = h.epochs.get(2)!;
  assert.deepEqual(h.commit(h.controller.brokerDisconnected(2, epoch - 1, h.nowMs)), { fenced: false });
  assert.equal(h.image.broker(2)!.fenced, false);
  assert.deepEqual(h.commit(h.controller.brokerDisconnected(2, epoch, h.nowMs)), { fenced: true });
  assert.equal(h.image.broker(2)!.fenced, true);
  assert.equal(h.image.partitionsLedBy(2).length, 0);
  // The disconnected session no longer blocks a new incarnation.
  assert.equal(h.register(2, { newIncarnation: true }).error, 'NONE');
  assert.equal(h.heartbeat(2).isFenced, false);
});

test('controlled shutdown moves leaderships, leaves ISRs, fences the broker, and says it may exit', () => {
  const h = cluster(3);
  h.createTopic('t', 6, 3);
  assert.ok(h.image.partitionsLedBy(1).length > 0);
  const r = h.commit(h.controller.controlledShutdown({ brokerId: 1, brokerEpoch: h.epochs.get(1)! }, h.nowMs));
  assert.equal(r.error, 'NONE');
  assert.equal(r.remainingLeaderships, 0);
  assert.equal(h.image.partitionsLedBy(1).length, 0);
  assert.equal(h.image.broker(1)!.fenced, true);
  for (const p of h.image.topic('t')!.partitions) assert.deepEqual(p.isr, p.replicas.filter((b) => b !== 1));
  const stale = h.commit(h.controller.controlledShutdown({ brokerId: 1, brokerEpoch: 99 }, h.nowMs));
  assert.equal(stale.error, 'STALE_BROKER_EPOCH');
  // The same through a heartbeat with wantShutDown.
  const hb = h.heartbeat(2, { wantShutDown: true });
  assert.deepEqual([hb.shouldShutDown, hb.isFenced], [true, true]);
  assert.equal(h.image.partitionsLedBy(2).length, 0);
  // A broker that shut down may come back at once with a new incarnation.
  assert.equal(h.register(1, { newIncarnation: true }).error, 'NONE');
  assert.equal(h.heartbeat(1).isFenced, false);
});

// ─── CreateTopics ─────────────────────────────────────────────────────────────────

test('CreateTopics creates partitions, ISR and configs; ids are uuids', () => {
  const h = cluster(3);
  const r = h.commit(
    h.controller.createTopics({ topics: [{ name: 'orders', numPartitions: 3, replicationFactor: 2, configs: { 'retention.ms': '60000' } }] }, h.nowMs),
  );
  const t = r.topics[0]!;
  assert.equal(t.error, 'NONE');
  assert.ok(isUuid(t.topicId));
  assert.deepEqual([t.numPartitions, t.replicationFactor], [3, 2]);
  const topic = h.image.topic('orders')!;
  assert.equal(topic.topicId, t.topicId);
  for (const p of topic.partitions) {
    assert.equal(p.replicas.length, 2);
    assert.deepEqual(p.isr, p.replicas);
    assert.equal(p.leader, p.replicas[0]);
    assert.deepEqual([p.leaderEpoch, p.partitionEpoch], [0, 0]);
  }
  assert.equal(h.image.topicConfig('orders')['retention.ms'], 60000);
  // Defaults come from num.partitions / default.replication.factor.
  const d = h.commit(h.controller.createTopics({ topics: [{ name: 'defaults' }] }, h.nowMs)).topics[0]!;
  assert.deepEqual([d.error, d.numPartitions, d.replicationFactor], ['NONE', 1, 1]);
  // validateOnly writes nothing.
  const v = h.controller.createTopics({ topics: [{ name: 'dry', numPartitions: 2, replicationFactor: 3 }], validateOnly: true }, h.nowMs);
  assert.equal(v.records.length, 0);
  assert.equal(v.response.topics[0]!.error, 'NONE');
  assert.equal(h.commit(v).topics.length, 1);
  assert.equal(h.image.topic('dry'), undefined);
  // A validation run sees the request's earlier topics, as the real run would.
  const v2 = h.commit(h.controller.createTopics({ topics: [{ name: 'x.y' }, { name: 'x_y' }], validateOnly: true }, h.nowMs));
  assert.deepEqual(v2.topics.map((t) => t.error), ['NONE', 'INVALID_TOPIC_EXCEPTION']);
  assert.equal(h.image.topic('x.y'), undefined);
  // Manual assignment: ISR holds only unfenced replicas.
  h.heartbeat(3, { wantFence: true });
  const m = h.commit(h.controller.createTopics({ topics: [{ name: 'manual', assignments: [[3, 1], [1, 2]] }] }, h.nowMs)).topics[0]!;
  assert.equal(m.error, 'NONE');
  assert.deepEqual(h.partition('manual', 0).isr, [1]);
  assert.equal(h.partition('manual', 0).leader, 1);
  assert.deepEqual(h.partition('manual', 1).replicas, [1, 2]);
});

test('CreateTopics refuses bad input with the Kafka error for each topic', () => {
  const h = cluster(3);
  h.createTopic('existing', 1, 1);
  h.createTopic('with.dot', 1, 1);
  const cases: [Record<string, unknown>, string, RegExp][] = [
    [{ name: '' }, 'INVALID_TOPIC_EXCEPTION', /empty/],
    [{ name: '.' }, 'INVALID_TOPIC_EXCEPTION', /"\." or "\.\."/],
    [{ name: '..' }, 'INVALID_TOPIC_EXCEPTION', /"\." or "\.\."/],
    [{ name: 'x'.repeat(250) }, 'INVALID_TOPIC_EXCEPTION', /longer than 249/],
    [{ name: 'a b' }, 'INVALID_TOPIC_EXCEPTION', /illegal/],
    [{ name: 'é' }, 'INVALID_TOPIC_EXCEPTION', /illegal/],
    [{ name: 'existing' }, 'TOPIC_ALREADY_EXISTS', /already exists/],
    [{ name: 'with_dot' }, 'INVALID_TOPIC_EXCEPTION', /collides with existing topic: with\.dot/],
    [{ name: 'p0', numPartitions: 0 }, 'INVALID_PARTITIONS', /between 1 and/],
    [{ name: 'p-big', numPartitions: 10_001 }, 'INVALID_PARTITIONS', /between 1 and 10000/],
    [{ name: 'rf0', replicationFactor: 0 }, 'INVALID_REPLICATION_FACTOR', /between 1 and/],
    [{ name: 'rf4', replicationFactor: 4 }, 'INVALID_REPLICATION_FACTOR', /only 3 broker\(s\)/],
    [{ name: 'cfg-key', configs: { 'retention.mss': '1' } }, 'INVALID_CONFIG', /Unknown topic configuration "retention.mss"/],
    [{ name: 'cfg-val', configs: { 'retention.ms': 'soon' } }, 'INVALID_CONFIG', /retention.ms/],
    [{ name: 'cfg-min', configs: { 'min.insync.replicas': '0' } }, 'INVALID_CONFIG', /at least 1/],
    [{ name: 'both', numPartitions: 1, assignments: [[1]] }, 'INVALID_REQUEST', /give one/],
    [{ name: 'a-none', assignments: [] }, 'INVALID_REPLICA_ASSIGNMENT', /No partitions/],
    [{ name: 'a-unknown', assignments: [[1, 9]] }, 'INVALID_REPLICA_ASSIGNMENT', /broker 9, which is not registered/],
    [{ name: 'a-dup', assignments: [[1, 1]] }, 'INVALID_REPLICA_ASSIGNMENT', /twice/],
    [{ name: 'a-ragged', assignments: [[1, 2], [1]] }, 'INVALID_REPLICA_ASSIGNMENT', /same number of replicas/],
  ];
  const r = h.commit(h.controller.createTopics({ topics: cases.map(([t]) => t as never) }, h.nowMs));
  cases.forEach(([t, error, re], i) => {
    const got = r.topics[i]!;
    assert.equal(got.error, error, `${String(t['name']).slice(0, 20)}: ${got.errorMessage}`);
    assert.match(got.errorMessage!, re);
    assert.equal(got.topicId, '');
  });
  assert.equal(h.image.topicsById.size, 2, 'nothing was created');
  // Two of the same name in one request: both refused.
  const dup = h.commit(h.controller.createTopics({ topics: [{ name: 'twice' }, { name: 'twice' }] }, h.nowMs));
  assert.deepEqual(dup.topics.map((t) => t.error), ['INVALID_REQUEST', 'INVALID_REQUEST']);
  // One bad topic does not stop the good one next to it.
  const mixed = h.commit(h.controller.createTopics({ topics: [{ name: 'good' }, { name: 'bad!' }] }, h.nowMs));
  assert.deepEqual(mixed.topics.map((t) => t.error), ['NONE', 'INVALID_TOPIC_EXCEPTION']);
  // All replicas fenced.
  h.heartbeat(3, { wantFence: true });
  const fenced = h.commit(h.controller.createTopics({ topics: [{ name: 'f', assignments: [[3]] }] }, h.nowMs));
  assert.equal(fenced.topics[0]!.error, 'INVALID_REPLICA_ASSIGNMENT');
});

test('one request creates at most create.topic.partitions.max partitions, in a Raft-sized entry', () => {
  const h = cluster(3);
  const r = h.controller.createTopics(
    {
      topics: [
        { name: 'big', numPartitions: 6000, replicationFactor: 3 },
        { name: 'more', numPartitions: 4000, replicationFactor: 3 },
        { name: 'over', numPartitions: 1 },
        { name: 'over-manual', assignments: [[1]] },
      ],
    },
    h.nowMs,
  );
  assert.deepEqual(r.response.topics.map((t) => t.error), ['NONE', 'NONE', 'INVALID_PARTITIONS', 'INVALID_PARTITIONS']);
  assert.match(r.response.topics[2]!.errorMessage!, /at most 10000 partitions in all; 0 are left/);
  const bytes = encodeRecords(r.records).byteLength;
  assert.ok(bytes < 4 * 1024 * 1024, `a full request encodes to ${bytes} bytes, well below Raft's 8 MiB entry limit`);
  h.commit(r);
  const more = h.commit(h.controller.createPartitions({ topics: [{ name: 'more', count: 14_001 }] }, h.nowMs));
  assert.equal(more.topics[0]!.error, 'INVALID_PARTITIONS');
});

test('DeleteTopics removes topics by name and id, with their configs; names can be reused', () => {
  const h = cluster(3);
  const a = h.createTopic('a', 2, 2, { 'retention.ms': '5' });
  const b = h.createTopic('b', 1, 1);
  const r = h.commit(h.controller.deleteTopics({ topicNames: ['a', 'a', 'zzz'], topicIds: [b, 'AAAAAAAAAAAAAAAAAAAAAA'] }, h.nowMs));
  assert.deepEqual(
    r.topics.map((t) => [t.name, t.topicId, t.error]),
    [
      ['a', a, 'NONE'],
      ['a', a, 'NONE'],
      ['zzz', '', 'UNKNOWN_TOPIC_OR_PARTITION'],
      ['b', b, 'NONE'],
      ['', 'AAAAAAAAAAAAAAAAAAAAAA', 'UNKNOWN_TOPIC_ID'],
    ],
  );
  assert.equal(h.image.topicsById.size, 0);
  assert.equal(h.image.configsOf('topic', 'a').size, 0);
  const again = h.createTopic('a', 1, 1);
  assert.notEqual(again, a, 'a new topic id');
  assert.equal(h.image.topicConfig('a')['retention.ms'], 7 * 24 * 3600 * 1000, 'old overrides are gone');
});

test('CreatePartitions adds partitions with the topic\'s replication factor', () => {
  const h = cluster(3);
  h.createTopic('t', 2, 2);
  const c = h.controller;
  const r = h.commit(
    c.createPartitions(
      {
        topics: [
          { name: 't', count: 5 },
          { name: 'nope', count: 3 },
        ],
      },
      h.nowMs,
    ),
  );
  assert.deepEqual(r.topics.map((t) => t.error), ['NONE', 'UNKNOWN_TOPIC_OR_PARTITION']);
  const t = h.image.topic('t')!;
  assert.equal(t.partitions.length, 5);
  for (const p of t.partitions) assert.equal(p.replicas.length, 2);
  const bad = h.commit(
    c.createPartitions(
      {
        topics: [{ name: 't', count: 5 }],
      },
      h.nowMs,
    ),
  );
  assert.equal(bad.topics[0]!.error, 'INVALID_PARTITIONS');
  assert.match(bad.topics[0]!.errorMessage!, /currently has 5 partitions/);
  const wrongCount = h.commit(c.createPartitions({ topics: [{ name: 't', count: 7, assignments: [[1, 2]] }] }, h.nowMs));
  assert.equal(wrongCount.topics[0]!.error, 'INVALID_REPLICA_ASSIGNMENT');
  const wrongRf = h.commit(c.createPartitions({ topics: [{ name: 't', count: 6, assignments: [[1]] }] }, h.nowMs));
  assert.equal(wrongRf.topics[0]!.error, 'INVALID_REPLICA_ASSIGNMENT');
  const ok = h.commit(c.createPartitions({ topics: [{ name: 't', count: 6, assignments: [[3, 1]] }] }, h.nowMs));
  assert.equal(ok.topics[0]!.error, 'NONE');
  assert.deepEqual(h.partition('t', 5).replicas, [3, 1]);
  const dry = c.createPartitions({ topics: [{ name: 't', count: 8 }], validateOnly: true }, h.nowMs);
  assert.equal(dry.records.length, 0);
  h.commit(dry);
  assert.equal(h.image.topic('t')!.partitions.length, 6);
});

// ─── AlterPartition ───────────────────────────────────────────────────────────────

test('AlterPartition shrinks and expands the ISR and bumps the partition epoch only', () => {
  const h = cluster(3);
  h.createTopic('t', 1, 3);
  const p0 = h.partition('t');
  const leader = p0.leader;
  const follower = p0.replicas.find((b) => b !== leader)!;
  const shrunk = h.alterIsr('t', 0, p0.isr.filter((b) => b !== follower));
  assert.equal(shrunk.error, 'NONE');
  assert.equal(shrunk.partitionEpoch, p0.partitionEpoch + 1);
  assert.equal(shrunk.leaderEpoch, p0.leaderEpoch);
  assert.deepEqual(shrunk.isr, h.partition('t').isr);
  assert.ok(!h.partition('t').isr.includes(follower));
  const expanded = h.alterIsr('t', 0, [...p0.replicas]);
  assert.equal(expanded.error, 'NONE');
  assert.deepEqual(h.partition('t').isr, p0.replicas);
  const same = h.controller.alterPartition(
    { brokerId: leader, topicId: p0.topicId, partition: 0, leaderEpoch: p0.leaderEpoch, partitionEpoch: expanded.partitionEpoch, newIsr: [...p0.replicas] },
    h.nowMs,
  );
  assert.equal(same.records.length, 0, 'no change, no record');
  assert.equal(h.commit(same).error, 'NONE');
});

test('AlterPartition is fenced by leader epoch, partition epoch, leadership and replica eligibility', () => {
  const h = cluster(4);
  const topicId = h.createTopic('t', 1, 3);
  const p = h.partition('t');
  const leader = p.leader;
  const [f1, f2] = p.replicas.filter((b) => b !== leader) as [number, number];
  const outsider = [1, 2, 3, 4].find((b) => !p.replicas.includes(b))!;
  const req = {
    brokerId: leader,
    brokerEpoch: h.epochs.get(leader)!,
    topicId,
    partition: 0,
    leaderEpoch: p.leaderEpoch,
    partitionEpoch: p.partitionEpoch,
    newIsr: [leader, f1],
  };
  const call = (patch: Record<string, unknown>) => h.commit(h.controller.alterPartition({ ...req, ...patch } as never, h.nowMs));
  const expectError = (patch: Record<string, unknown>, error: string, re: RegExp): void => {
    const r = call(patch);
    assert.equal(r.error, error, `${JSON.stringify(patch)}: ${r.errorMessage}`);
    assert.match(r.errorMessage!, re);
    if (r.error !== 'UNKNOWN_TOPIC_ID' && r.error !== 'UNKNOWN_TOPIC_OR_PARTITION') {
      assert.equal(r.partitionEpoch, h.partition('t').partitionEpoch, 'the response carries the current state');
    }
  };
  expectError({ topicId: 'AAAAAAAAAAAAAAAAAAAAAA' }, 'UNKNOWN_TOPIC_ID', /does not exist/);
  expectError({ partition: 3 }, 'UNKNOWN_TOPIC_OR_PARTITION', /t-3/);
  expectError({ leaderEpoch: p.leaderEpoch + 1 }, 'UNKNOWN_LEADER_EPOCH', /newer/);
  expectError({ brokerId: f1, brokerEpoch: h.epochs.get(f1)! }, 'NOT_LEADER_OR_FOLLOWER', /not the leader/);
  expectError({ partitionEpoch: p.partitionEpoch + 5 }, 'INVALID_UPDATE_VERSION', /Partition epoch/);
  expectError({ brokerEpoch: 999 }, 'STALE_BROKER_EPOCH', /stale/);
  expectError({ newIsr: [leader, leader] }, 'INVALID_REQUEST', /repeats/);
  expectError({ newIsr: [f1, f2] }, 'INVALID_REQUEST', /must hold the leader/);
  expectError({ newIsr: [leader, outsider] }, 'INVALID_REQUEST', /not replicas/);
  assert.equal(call({}).error, 'NONE');
  // The leader's old view (partition epoch before its own change) is stale now.
  expectError({ newIsr: [leader] }, 'INVALID_UPDATE_VERSION', /Partition epoch 0 is not the current 1/);
  // A fenced broker may not join the ISR [KIP-903]; nor may one at another epoch.
  h.heartbeat(f2, { wantFence: true });
  const cur = h.partition('t');
  const fresh = { partitionEpoch: cur.partitionEpoch, leaderEpoch: cur.leaderEpoch };
  expectError({ ...fresh, newIsr: [leader, f1, f2] }, 'INELIGIBLE_REPLICA', /fenced/);
  h.heartbeat(f2);
  expectError({ ...fresh, newIsr: [leader, f1, f2], newIsrBrokerEpochs: [{ brokerId: f2, brokerEpoch: 1 }] }, 'INELIGIBLE_REPLICA', /epoch 1/);
  assert.equal(call({ ...fresh, newIsr: [leader, f1, f2], newIsrBrokerEpochs: [{ brokerId: f2, brokerEpoch: h.epochs.get(f2)! }] }).error, 'NONE');
  // After a leader change the old leader is fenced by its leader epoch.
  h.heartbeat(leader, { wantFence: true });
  const after = h.partition('t');
  assert.notEqual(after.leader, leader);
  expectError({ partitionEpoch: after.partitionEpoch, newIsr: [leader] }, 'FENCED_LEADER_EPOCH', /older than the current/);
});

// ─── Elections ────────────────────────────────────────────────────────────────────

test('clean election: the next ISR member in preference order leads when the leader is fenced', () => {
  const h = cluster(3);
  h.commit(h.controller.createTopics({ topics: [{ name: 't', assignments: [[1, 2, 3]] }] }, h.nowMs));
  h.heartbeat(1, { wantFence: true });
  assert.deepEqual([h.partition('t').leader, h.partition('t').leaderEpoch], [2, 1]);
  assert.deepEqual(h.partition('t').isr, [2, 3]);
  assert.deepEqual(h.partition('t').elr, [], 'ISR still >= min.insync.replicas (1): no ELR');
});

test('ELR election [KIP-966]: replicas leaving an ISR below min.insync.replicas stay electable', () => {
  const h = cluster(3);
  h.commit(
    h.controller.createTopics({ topics: [{ name: 't', assignments: [[1, 2, 3]], configs: { 'min.insync.replicas': '2' } }] }, h.nowMs),
  );
  h.heartbeat(3, { wantFence: true });
  assert.deepEqual([h.partition('t').isr, h.partition('t').elr], [[1, 2], []], 'ISR at min: 3 may be behind the HW');
  h.heartbeat(2, { wantFence: true });
  assert.deepEqual([h.partition('t').isr, h.partition('t').elr], [[1], [2]], 'ISR below min: 2 holds the frozen HW');
  h.heartbeat(1, { wantFence: true });
  let p = h.partition('t');
  assert.deepEqual([p.isr, p.elr, p.leader], [[], [1, 2], NO_LEADER]);
  // 3 comes back: not eligible (it left the ISR while the HW could still move).
  h.heartbeat(3);
  assert.equal(h.partition('t').leader, NO_LEADER);
  // 2 comes back: elected from the ELR, joins the ISR.
  h.heartbeat(2);
  p = h.partition('t');
  assert.deepEqual([p.leader, p.isr, p.elr], [2, [2], [1]]);
  // The leader expands the ISR back to min: the ELR is cleared (the HW moves again).
  assert.equal(h.alterIsr('t', 0, [2, 3]).error, 'NONE');
  p = h.partition('t');
  assert.deepEqual([p.isr, p.elr], [[2, 3], []]);
});

test('ELR: lowering min.insync.replicas clears the ELR; an unclean restart drops a replica from the ELR of non-durable topics', () => {
  const h = cluster(3);
  h.commit(
    h.controller.createTopics(
      {
        topics: [
          { name: 'durable', assignments: [[1, 2, 3]], configs: { 'min.insync.replicas': '3' } },
          { name: 'fast', assignments: [[1, 2, 3]], configs: { 'min.insync.replicas': '3', 'flush.before.ack': 'false' } },
        ],
      },
      h.nowMs,
    ),
  );
  h.heartbeat(3, { wantFence: true });
  assert.deepEqual(h.partition('durable').elr, [3]);
  assert.deepEqual(h.partition('fast').elr, [3]);
  // Broker 3 restarts without a clean shutdown.
  h.advance(SESSION_MS + 1);
  h.heartbeat(1);
  h.heartbeat(2);
  assert.equal(h.register(3, { newIncarnation: true }).error, 'NONE');
  assert.deepEqual(h.partition('durable').elr, [3], 'fsynced before ack: nothing was lost');
  assert.deepEqual(h.partition('fast').elr, [], 'acknowledged from the page cache: may have lost records');
  const r = h.commit(
    h.controller.incrementalAlterConfigs(
      { resources: [{ resourceType: 'topic', resourceName: 'durable', configs: [{ name: 'min.insync.replicas', op: 'set', value: '2' }] }] },
      h.nowMs,
    ),
  );
  assert.equal(r.resources[0]!.error, 'NONE');
  assert.deepEqual(h.partition('durable').elr, [], 'ISR [1,2] is at the new min: the HW moves, the ELR goes');
});

test('unclean election: only when enabled (per topic or by an admin), never while a clean candidate exists', () => {
  const h = cluster(3);
  h.commit(h.controller.createTopics({ topics: [{ name: 't', assignments: [[1, 2, 3]] }] }, h.nowMs));
  // Followers fall out of the ISR (lagging), then the leader dies.
  assert.equal(h.alterIsr('t', 0, [1]).error, 'NONE');
  h.heartbeat(1, { wantFence: true });
  let p = h.partition('t');
  assert.deepEqual([p.leader, p.isr, p.elr], [NO_LEADER, [], [1]]);
  // Admin preferred election cannot help; unclean can.
  const pref = h.commit(h.controller.electLeaders({ electionType: 'preferred', partitions: [{ topic: 't', partition: 0 }] }, h.nowMs));
  assert.equal(pref.results[0]!.error, 'PREFERRED_LEADER_NOT_AVAILABLE');
  // Enabling unclean election on the topic elects at once.
  const r = h.commit(
    h.controller.incrementalAlterConfigs(
      { resources: [{ resourceType: 'topic', resourceName: 't', configs: [{ name: 'unclean.leader.election.enable', op: 'set', value: 'true' }] }] },
      h.nowMs,
    ),
  );
  assert.equal(r.resources[0]!.error, 'NONE');
  p = h.partition('t');
  assert.deepEqual([p.leader, p.isr, p.elr], [2, [2], []]);
  assert.equal(p.leaderEpoch, 2);

  // The admin path: a second topic, unclean disabled.
  h.heartbeat(1);
  h.commit(h.controller.createTopics({ topics: [{ name: 'u', assignments: [[1, 2, 3]] }] }, h.nowMs));
  assert.equal(h.alterIsr('u', 0, [1]).error, 'NONE');
  h.heartbeat(1, { wantFence: true });
  assert.equal(h.partition('u').leader, NO_LEADER);
  const electU = () => h.commit(h.controller.electLeaders({ electionType: 'unclean', partitions: [{ topic: 'u', partition: 0 }, { topic: 'zz', partition: 0 }] }, h.nowMs));
  // It waits until every usable replica has reported where its log ends (its heartbeats do).
  const waiting = electU().results[0]!;
  assert.deepEqual([waiting.error, waiting.leader], ['ELIGIBLE_LEADERS_NOT_AVAILABLE', NO_LEADER]);
  assert.match(waiting.errorMessage ?? '', /broker\(s\) 2, 3 to report/);
  const { topicId, leaderEpoch } = h.partition('u');
  for (const b of [2, 3]) h.heartbeat(b, { leaderlessReplicas: [{ topicId, partition: 0, leaderEpoch, lastWrittenEpoch: 1, logEndOffset: 10 }] });
  const no = electU();
  assert.deepEqual(no.results.map((x) => [x.error, x.leader]), [['NONE', 2], ['UNKNOWN_TOPIC_OR_PARTITION', NO_LEADER]]);
  assert.deepEqual(h.partition('u').isr, [2]);
});

test('unclean election takes the replica whose heartbeats report the most complete log; stale reports count for nothing [KIP-966]', () => {
  const h = cluster(3);
  const configs = { 'min.insync.replicas': '3', 'flush.before.ack': 'false' };
  h.commit(h.controller.createTopics({ topics: [{ name: 'fast', assignments: [[1, 2, 3], [1, 2, 3]], configs }] }, h.nowMs));
  for (const b of [3, 2, 1]) h.heartbeat(b, { wantFence: true });
  // All three restart uncleanly: each may have lost unflushed records, so none is eligible.
  h.advance(SESSION_MS + 1);
  for (const b of [1, 2, 3]) assert.equal(h.register(b, { newIncarnation: true }).error, 'NONE');
  for (const i of [0, 1]) {
    const p = h.partition('fast', i);
    assert.deepEqual([p.leader, p.isr, p.elr, p.lastKnownElr], [NO_LEADER, [], [], [1, 2, 3]]);
  }
  const elect = () =>
    h
      .commit(h.controller.electLeaders({ electionType: 'unclean', partitions: [{ topic: 'fast', partition: 0 }, { topic: 'fast', partition: 1 }] }, h.nowMs))
      .results.map((x) => [x.partition, x.error, x.leader, x.errorMessage]);
  const waitingFor = (brokers: string, partition: number) =>
    [partition, 'ELIGIBLE_LEADERS_NOT_AVAILABLE', NO_LEADER, `Waiting for broker(s) ${brokers} to report where their logs of fast-${partition} end (every heartbeat does); try again`];
  // Registered and heartbeating but still fenced (catching up): an admin's election waits for them.
  assert.deepEqual(elect(), [waitingFor('1, 2, 3', 0), waitingFor('1, 2, 3', 1)]);
  const { topicId } = h.partition('fast');
  const report = (partition: number, logEndOffset: number, epochsBack = 0) => ({
    topicId,
    partition,
    leaderEpoch: h.partition('fast', partition).leaderEpoch - epochsBack,
    lastWrittenEpoch: 3,
    logEndOffset,
  });
  h.heartbeat(1, { leaderlessReplicas: [report(0, 100), report(1, 100)] });
  h.heartbeat(2, { leaderlessReplicas: [report(0, 180), report(1, 300)] });
  // Each heartbeat replaces what the broker reported before.
  h.heartbeat(2, { leaderlessReplicas: [report(0, 180)] });
  // Broker 3's longest log was reported at an earlier leader epoch of the partition.
  h.heartbeat(3, { leaderlessReplicas: [report(0, 500, 1), report(1, 50)] });
  assert.equal(h.partition('fast').leader, NO_LEADER, 'unclean election is off for the topic');
  // Then until every usable replica has a current report.
  assert.deepEqual(elect(), [waitingFor('3', 0), waitingFor('2', 1)]);
  h.heartbeat(3, { leaderlessReplicas: [report(0, 120), report(1, 50)] });
  h.heartbeat(2, { leaderlessReplicas: [report(0, 180), report(1, 90)] });
  assert.deepEqual(elect(), [
    [0, 'NONE', 2, null],
    [1, 'NONE', 1, null],
  ]);
  const p = h.partition('fast');
  assert.deepEqual([p.isr, p.elr, p.lastKnownElr], [[2], [], []]);
});

test('preferred-leader rebalancing after a broker comes back and rejoins the ISR', () => {
  const h = cluster(3, { 'leader.imbalance.check.interval.ms': 5000 });
  h.commit(h.controller.createTopics({ topics: [{ name: 't', assignments: [[1, 2, 3]] }] }, h.nowMs));
  h.heartbeat(1, { wantFence: true });
  assert.equal(h.partition('t').leader, 2);
  h.heartbeat(1);
  assert.equal(h.partition('t').leader, 2, 'back, but not in the ISR yet');
  h.advance(5000);
  h.heartbeatAll();
  assert.equal(h.commit(h.controller.tick(h.nowMs)).preferredElections, 0);
  assert.equal(h.alterIsr('t', 0, [1, 2, 3]).error, 'NONE');
  h.advance(1000);
  h.heartbeatAll();
  assert.equal(h.commit(h.controller.tick(h.nowMs)).preferredElections, 0, 'not before the interval');
  h.advance(4000);
  h.heartbeatAll();
  const r = h.commit(h.controller.tick(h.nowMs));
  assert.equal(r.preferredElections, 1);
  assert.equal(h.partition('t').leader, 1);
  // An explicit preferred election when already preferred: nothing to do.
  const again = h.controller.electLeaders({ electionType: 'preferred' }, h.nowMs);
  assert.equal(again.records.length, 0);
  assert.deepEqual(h.commit(again).results.map((x) => [x.error, x.leader]), [['ELECTION_NOT_NEEDED', 1]]);
  // A partition named twice is elected once.
  h.heartbeat(1, { wantFence: true });
  h.heartbeat(1);
  assert.equal(h.alterIsr('t', 0, [1, 2, 3]).error, 'NONE');
  const both = h.controller.electLeaders({ electionType: 'preferred', partitions: [{ topic: 't', partition: 0 }, { topic: 't', partition: 0 }] }, h.nowMs);
  assert.equal(both.records.length, 1);
  assert.deepEqual(h.commit(both).results.map((x) => [x.error, x.leader]), [['NONE', 1], ['NONE', 1]]);
});

// ─── Configs ──────────────────────────────────────────────────────────────────────

test('IncrementalAlterConfigs sets and deletes validated keys on topics and the cluster', () => {
  const h = cluster(1);
  h.createTopic('t', 1, 1);
  const alter = (resources: unknown[], validateOnly = false) =>
    h.commit(h.controller.incrementalAlterConfigs({ resources: resources as never, validateOnly }, h.nowMs)).resources;
  let r = alter([
    { resourceType: 'topic', resourceName: 't', configs: [{ name: 'retention.ms', op: 'set', value: '100' }] },
    { resourceType: 'cluster', resourceName: '', configs: [{ name: 'min.insync.replicas', op: 'set', value: '2' }] },
  ]);
  assert.deepEqual(r.map((x) => x.error), ['NONE', 'NONE']);
  assert.equal(h.image.topicConfig('t')['retention.ms'], 100);
  assert.equal(h.image.topicConfig('t')['min.insync.replicas'], 2);
  r = alter([{ resourceType: 'topic', resourceName: 't', configs: [{ name: 'retention.ms', op: 'delete' }] }]);
  assert.equal(r[0]!.error, 'NONE');
  assert.equal(h.image.configsOf('topic', 't').size, 0);
  r = alter([
    { resourceType: 'topic', resourceName: 'nope', configs: [] },
    { resourceType: 'topic', resourceName: 't', configs: [{ name: 'bogus', op: 'set', value: '1' }] },
    { resourceType: 'topic', resourceName: 't', configs: [{ name: 'retention.ms', op: 'set', value: 'x' }] },
    { resourceType: 'topic', resourceName: 't', configs: [{ name: 'retention.ms', op: 'set' }] },
    { resourceType: 'topic', resourceName: 't', configs: [{ name: 'bogus', op: 'delete' }] },
    { resourceType: 'cluster', resourceName: 'x', configs: [] },
    { resourceType: 'broker', resourceName: 'one', configs: [] },
  ]);
  assert.deepEqual(
    r.map((x) => x.error),
    ['UNKNOWN_TOPIC_OR_PARTITION', 'INVALID_CONFIG', 'INVALID_CONFIG', 'INVALID_CONFIG', 'INVALID_CONFIG', 'INVALID_REQUEST', 'INVALID_REQUEST'],
  );
  assert.throws(
    () => alter([{ resourceType: 'topic', resourceName: 't', configs: [{ name: 'retention.ms', op: 'append', value: '1' }] }]),
    (e: unknown) => isRaftkaError(e, 'INVALID_REQUEST') && /op is not one of set, delete/.test(e.message),
  );
  const before = h.image.offset;
  r = alter([{ resourceType: 'topic', resourceName: 't', configs: [{ name: 'retention.ms', op: 'set', value: '7' }] }], true);
  assert.equal(r[0]!.error, 'NONE');
  assert.equal(h.image.offset, before, 'validateOnly wrote nothing');
});

test('activate writes missing cluster config defaults once; a bad default stops start-up', () => {
  const h = new Harness({}, 1, { clusterConfigDefaults: { 'min.insync.replicas': '2' } });
  assert.equal(h.image.configsOf('cluster', '').get('min.insync.replicas'), '2');
  const c = new QuorumController(new SeededRandom(2), controllerConfig());
  assert.equal(c.activate(h.image, 2, 0, { clusterConfigDefaults: { 'min.insync.replicas': '3' } }).records.length, 0, 'present: kept');
  assert.throws(
    () => new QuorumController(new SeededRandom(2), controllerConfig()).activate(h.image, 2, 0, { clusterConfigDefaults: { 'retention.ms': 'x' } }),
    (e: unknown) => isRaftkaError(e, 'INVALID_CONFIG'),
  );
});

// ─── Producer ids ─────────────────────────────────────────────────────────────────

test('producer-id blocks are consecutive and never overlap, across controller failover', () => {
  const h = cluster(2);
  const blocks: [number, number][] = [];
  const take = (c: QuorumController, brokerId: number): void => {
    const r = h.commit(c.allocateProducerIds({ brokerId, brokerEpoch: h.epochs.get(brokerId)! }, h.nowMs));
    assert.equal(r.error, 'NONE');
    assert.equal(r.producerIdLen, PRODUCER_ID_BLOCK_SIZE);
    blocks.push([r.producerIdStart, r.producerIdStart + r.producerIdLen]);
  };
  take(h.controller, 1);
  take(h.controller, 2);
  take(h.controller, 1);
  // A proposal the old controller handed out but that never committed is forgotten.
  h.controller.allocateProducerIds({ brokerId: 1, brokerEpoch: h.epochs.get(1)! }, h.nowMs);
  h.controller.deactivate();
  h.controller.activate(h.image, 2, h.nowMs);
  take(h.controller, 2);
  assert.deepEqual(blocks, [
    [0, 1000],
    [1000, 2000],
    [2000, 3000],
    [3000, 4000],
  ]);
  const stale = h.commit(h.controller.allocateProducerIds({ brokerId: 1, brokerEpoch: 77 }, h.nowMs));
  assert.equal(stale.error, 'STALE_BROKER_EPOCH');
  assert.equal(stale.producerIdStart, -1);
});

test('unregistering a broker takes it out of ISRs and leaderships', () => {
  const h = cluster(3);
  h.createTopic('t', 3, 3);
  const r = h.commit(h.controller.unregisterBroker({ brokerId: 2 }, h.nowMs));
  assert.equal(r.error, 'NONE');
  assert.equal(h.image.broker(2), undefined);
  for (const p of h.image.topic('t')!.partitions) {
    assert.ok(!p.isr.includes(2));
    assert.notEqual(p.leader, 2);
  }
  assert.equal(h.commit(h.controller.unregisterBroker({ brokerId: 2 }, h.nowMs)).error, 'BROKER_ID_NOT_REGISTERED');
});
