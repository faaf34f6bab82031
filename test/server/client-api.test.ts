// The public client API over real gRPC on 127.0.0.1, backed by a real ReplicaManager and
// a fake metadata view: produce (acks 1 and all), long-poll fetch, list offsets, bad
// input rejected before it touches the log, leader hints, and no hang on a handler bug.
import { test, type TestContext } from 'node:test';
import assert from 'node:assert/strict';
import { buildBatch, decodeRecords, iterateBatches } from '../../src/log/batch.ts';
import { ERRORS, RaftkaError } from '../../src/common/errors.ts';
import type { FetchPartitionData, FetchRequest, ProduceRequest } from '../../src/proto/raftka.ts';
import { waitFor } from '../support/tmp.ts';
import { readBuffers } from '../../src/log/read-buffers.ts';
import { startHarness, TOPIC_ID, OTHER_TOPIC_ID, type Harness } from './support.ts';

const E = ERRORS;

function produceReq(records: Buffer, acks: number | undefined, extra: Partial<ProduceRequest> = {}, partition = 0): ProduceRequest {
  return { ...(acks === undefined ? {} : { acks }), timeoutMs: 5_000, topicData: [{ name: 't', partitions: [{ partition, records }] }], ...extra };
}

async function produceOne(h: Harness, records: Buffer, acks?: number, partition = 0) {
  const res = await h.client.produce(produceReq(records, acks, {}, partition));
  assert.equal(res.errorCode, 0);
  assert.equal(res.responses.length, 1);
  return res.responses[0]!.partitions[0]!;
}

async function fetchOne(h: Harness, fetchOffset: number, maxWaitMs = 0, partition = 0): Promise<FetchPartitionData> {
  const res = await h.client.fetch({ maxWaitMs, minBytes: 1, topics: [{ topicId: TOPIC_ID, partitions: [{ partition, fetchOffset }] }] });
  assert.equal(res.errorCode, 0);
  return res.responses[0]!.partitions[0]!;
}

function values(records: Buffer): string[] {
  const out: string[] = [];
  for (const { bytes } of iterateBatches(records)) for (const r of decodeRecords(bytes)) out.push(r.value!.toString());
  return out;
}

/** A harness whose replica manager counts the fetches that reached it. */
async function harnessCountingFetches(t: TestContext): Promise<{ h: Harness; fetchesStarted: () => number }> {
  let started = 0;
  const h = await startHarness(t, {
    wrap: (rm) => ({
      produce: (...a) => rm.produce(...a),
      listOffset: (...a) => rm.listOffset(...a),
      fetch: (...a) => {
        started++;
        return rm.fetch(...a);
      },
    }),
  });
  return { h, fetchesStarted: () => started };
}

const leo = (h: Harness) => h.rm.partition(TOPIC_ID, 0)!.log.logEndOffset;

test('produce with acks=1 and acks=all, fetch it back, list offsets', async (t) => {
  const h = await startHarness(t);
  const a = await produceOne(h, buildBatch([{ value: 'a0' }, { value: 'a1' }], { nowMs: 1_000 }), 1);
  assert.equal(a.errorCode, 0, a.errorMessage);
  assert.equal(a.baseOffset, 0);
  assert.equal(a.logStartOffset, 0);
  // Unset acks means all; the single replica ISR meets min.insync.replicas=1.
  const b = await produceOne(h, buildBatch([{ value: 'b0' }], { nowMs: 5_000 }));
  assert.equal(b.errorCode, 0, b.errorMessage);
  assert.equal(b.baseOffset, 2);
  const c = await produceOne(h, buildBatch([{ value: 'c0' }], { nowMs: 9_000 }), -1);
  assert.equal(c.baseOffset, 3);

  const f = await fetchOne(h, 0);
  assert.equal(f.errorCode, 0, f.errorMessage);
  assert.equal(f.highWatermark, 4);
  assert.equal(f.logStartOffset, 0);
  assert.deepEqual(values(f.records), ['a0', 'a1', 'b0', 'c0']);
  // By name too, from the middle.
  const byName = await h.client.fetch({ topics: [{ name: 't', partitions: [{ partition: 0, fetchOffset: 2 }] }] });
  assert.deepEqual(values(byName.responses[0]!.partitions[0]!.records), ['b0', 'c0']);

  const lo = await h.client.listOffsets({
    topics: [{ name: 't', partitions: [{ partition: 0, timestamp: -1 }, { partition: 0, timestamp: -2 }] }, { topicId: TOPIC_ID, partitions: [{ partition: 0, timestamp: 4_000 }, { partition: 0, timestamp: 99_000 }] }],
  });
  const offs = lo.topics.flatMap((x) => x.partitions.map((p) => [p.errorCode, p.offset]));
  assert.deepEqual(offs, [[0, 4], [0, 0], [0, 2], [0, -1]]);
});

test('a parked fetch answers when data arrives; max_wait_ms is honoured', async (t) => {
  const { h, fetchesStarted } = await harnessCountingFetches(t);
  await produceOne(h, buildBatch([{ value: 'x' }]), 1);

  // Nothing past offset 1: the fetch parks on the broker until the produce below. Had it
  // answered at once, it would hold no records.
  const started = Date.now();
  const parked = fetchOne(h, 1, 10_000);
  await waitFor('the fetch to reach the replica manager', () => fetchesStarted() === 1, 5_000, 5);
  await produceOne(h, buildBatch([{ value: 'late' }]), -1);
  const got = await parked;
  assert.equal(got.errorCode, 0, got.errorMessage);
  assert.deepEqual(values(got.records), ['late']);
  assert.ok(Date.now() - started < 5_000, 'the parked fetch waited for its max wait instead of the data');

  // No data ever: the answer comes back empty after about max_wait_ms.
  const t0 = Date.now();
  const empty = await fetchOne(h, 2, 300);
  const took = Date.now() - t0;
  assert.equal(empty.errorCode, 0);
  assert.equal(empty.records.length, 0);
  assert.equal(empty.highWatermark, 2);
  assert.ok(took >= 250 && took < 3_000, `an empty long-poll took ${took} ms for max_wait_ms 300`);
});

test('bad input is refused with its code and writes nothing', async (t) => {
  const h = await startHarness(t, { config: { 'max.message.bytes': '2000' }, limits: { partitionProduceBytesMax: 10_000 } });
  const good = buildBatch([{ value: 'ok' }]);

  const corrupt = Buffer.from(buildBatch([{ value: 'corrupt me' }]));
  corrupt[corrupt.length - 3]! ^= 0xff; // inside the CRC-covered records
  const cases: Array<[string, ProduceRequest, number]> = [
    ['corrupt batch', produceReq(corrupt, -1), E.CORRUPT_MESSAGE.code],
    ['good batch followed by garbage', produceReq(Buffer.concat([good, Buffer.from('garbage!')]), 1), E.CORRUPT_MESSAGE.code],
    ['empty records', produceReq(Buffer.alloc(0), 1), E.CORRUPT_MESSAGE.code],
    ['acks 2', produceReq(good, 2), E.INVALID_REQUIRED_ACKS.code],
    ['acks -2', produceReq(good, -2), E.INVALID_REQUIRED_ACKS.code],
    ['unknown topic', { acks: 1, topicData: [{ name: 'nope', partitions: [{ partition: 0, records: good }] }] }, E.UNKNOWN_TOPIC_OR_PARTITION.code],
    ['unknown topic id', { acks: 1, topicData: [{ topicId: OTHER_TOPIC_ID, partitions: [{ partition: 0, records: good }] }] }, E.UNKNOWN_TOPIC_ID.code],
    ['malformed topic id', { acks: 1, topicData: [{ topicId: 'xyz', partitions: [{ partition: 0, records: good }] }] }, E.UNKNOWN_TOPIC_ID.code],
    ['illegal topic name', { acks: 1, topicData: [{ name: 'a/b', partitions: [{ partition: 0, records: good }] }] }, E.INVALID_TOPIC_EXCEPTION.code],
    ['no topic at all', { acks: 1, topicData: [{ partitions: [{ partition: 0, records: good }] }] }, E.INVALID_TOPIC_EXCEPTION.code],
    ['unknown partition', produceReq(good, 1, {}, 7), E.UNKNOWN_TOPIC_OR_PARTITION.code],
    ['negative partition', produceReq(good, 1, {}, -1), E.UNKNOWN_TOPIC_OR_PARTITION.code],
    ['negative timeout', produceReq(good, -1, { timeoutMs: -5 }), E.INVALID_REQUEST.code],
    ['batch over max.message.bytes', produceReq(buildBatch([{ value: Buffer.alloc(3_000, 1) }]), 1), E.MESSAGE_TOO_LARGE.code],
    ['records over the request limit', produceReq(Buffer.concat(Array.from({ length: 20 }, () => buildBatch([{ value: Buffer.alloc(900, 2) }]))), 1), E.RECORD_LIST_TOO_LARGE.code],
  ];
  for (const [what, req, code] of cases) {
    const res = await h.client.produce(req);
    const p = res.responses[0]!.partitions[0]!;
    assert.equal(p.errorCode, code, `${what}: got ${p.errorCode} (${p.errorMessage})`);
    assert.ok(p.errorMessage.length > 0, `${what}: no error message`);
    assert.equal(p.baseOffset, -1, what);
    assert.equal(leo(h), 0, `${what}: something was written`);
  }

  // The same partition twice in one request: the repeat is refused, the first written.
  const dup = await h.client.produce({ acks: 1, topicData: [{ name: 't', partitions: [{ partition: 0, records: good }, { partition: 0, records: good }] }] });
  assert.deepEqual(dup.responses[0]!.partitions.map((p) => p.errorCode), [0, E.INVALID_REQUEST.code]);
  assert.equal(leo(h), 1);

  // Fetch: negative offset, past the end, bad sizes and waits.
  assert.equal((await fetchOne(h, -1)).errorCode, E.OFFSET_OUT_OF_RANGE.code);
  assert.equal((await fetchOne(h, 5)).errorCode, E.OFFSET_OUT_OF_RANGE.code);
  const fetchCode = async (req: Parameters<typeof h.client.fetch>[0]) => (await h.client.fetch(req)).responses[0]!.partitions[0]!.errorCode;
  const part = [{ name: 't', partitions: [{ partition: 0, fetchOffset: 0 }] }];
  assert.equal(await fetchCode({ maxWaitMs: -1, topics: part }), E.INVALID_REQUEST.code);
  assert.equal(await fetchCode({ maxWaitMs: 10 * 60_000, topics: part }), E.INVALID_REQUEST.code);
  assert.equal(await fetchCode({ maxBytes: -1, topics: part }), E.INVALID_FETCH_SIZE.code);
  assert.equal(await fetchCode({ topics: [{ name: 't', partitions: [{ partition: 0, fetchOffset: 0, partitionMaxBytes: -3 }] }] }), E.INVALID_FETCH_SIZE.code);
  assert.equal(await fetchCode({ topics: [{ name: 'nope', partitions: [{ partition: 0, fetchOffset: 0 }] }] }), E.UNKNOWN_TOPIC_OR_PARTITION.code);
  // An error answers at once even with a long max wait.
  const t0 = Date.now();
  const mixed = await h.client.fetch({ maxWaitMs: 10_000, minBytes: 1_000_000, topics: [{ name: 't', partitions: [{ partition: 0, fetchOffset: 1 }, { partition: 9, fetchOffset: 0 }] }] });
  assert.deepEqual(mixed.responses[0]!.partitions.map((p) => p.errorCode), [0, E.UNKNOWN_TOPIC_OR_PARTITION.code]);
  assert.ok(Date.now() - t0 < 5_000);

  // ListOffsets: bad timestamps.
  const lo = await h.client.listOffsets({ topics: [{ name: 't', partitions: [{ partition: 0, timestamp: -3 }, { partition: 4, timestamp: -1 }] }] });
  assert.deepEqual(lo.topics[0]!.partitions.map((p) => p.errorCode), [E.INVALID_REQUEST.code, E.UNKNOWN_TOPIC_OR_PARTITION.code]);
});

test('a partition led elsewhere answers NOT_LEADER_OR_FOLLOWER naming the leader', async (t) => {
  const h = await startHarness(t);
  const p = await produceOne(h, buildBatch([{ value: 'x' }]), -1, 1);
  assert.equal(p.errorCode, E.NOT_LEADER_OR_FOLLOWER.code);
  assert.deepEqual(p.currentLeader, { leaderId: 2, leaderEpoch: 5 });
  assert.match(p.errorMessage, /broker 2/);
  const f = await fetchOne(h, 0, 0, 1);
  assert.equal(f.errorCode, E.NOT_LEADER_OR_FOLLOWER.code);
  assert.deepEqual(f.currentLeader, { leaderId: 2, leaderEpoch: 5 });
  const lo = await h.client.listOffsets({ topics: [{ name: 't', partitions: [{ partition: 1, timestamp: -1 }] }] });
  assert.deepEqual(lo.topics[0]!.partitions[0]!.currentLeader, { leaderId: 2, leaderEpoch: 5 });

  // The image says broker 1 leads, but the replica manager has already stepped down:
  // the error comes from the replica manager and the hint from the (newer) image.
  await h.rm.reconcile([{ topicId: TOPIC_ID, topic: 't', partition: 0, replicas: [1, 2], isr: [1, 2], leader: 2, leaderEpoch: 2, partitionEpoch: 2, config: {} }]);
  const stale = await produceOne(h, buildBatch([{ value: 'y' }]), 1, 0);
  assert.equal(stale.errorCode, E.NOT_LEADER_OR_FOLLOWER.code);
  assert.deepEqual(stale.currentLeader, { leaderId: 1, leaderEpoch: 1 });
  h.meta.topicList[0] = { ...h.meta.topicList[0]!, partitions: [{ partition: 0, leader: -1, leaderEpoch: 3, replicas: [1, 2], isr: [], elr: [], lastKnownElr: [] }] };
  const none = await produceOne(h, buildBatch([{ value: 'z' }]), 1, 0);
  assert.equal(none.errorCode, E.LEADER_NOT_AVAILABLE.code);
});

test('Metadata, DescribeTopics and DescribeCluster come from the metadata view', async (t) => {
  const h = await startHarness(t);
  const md = await h.client.metadata();
  assert.equal(md.clusterId, 'test-cluster');
  assert.equal(md.controllerId, 1);
  assert.deepEqual(md.brokers.map((b) => [b.id, b.port, b.rack, b.fenced]), [[1, 9092, 'r1', false], [2, 9093, '', false], [3, 9094, '', true]]);
  assert.equal(md.topics.length, 1);
  const [p0, p1] = md.topics[0]!.partitions;
  assert.deepEqual({ ...p0 }, { errorCode: 0, errorMessage: '', partition: 0, leaderId: 1, leaderEpoch: 1, replicas: [1], isr: [1], offlineReplicas: [], eligibleLeaderReplicas: [], lastKnownElr: [] });
  assert.deepEqual([p1!.offlineReplicas, p1!.eligibleLeaderReplicas, p1!.lastKnownElr], [[3], [], [3]]);

  const named = await h.client.metadata({ topics: ['t', 'missing', 'bad name'], topicIds: [OTHER_TOPIC_ID] });
  assert.deepEqual(named.topics.map((x) => [x.name || x.topicId, x.errorCode]), [
    ['t', 0],
    ['missing', E.UNKNOWN_TOPIC_OR_PARTITION.code],
    ['bad name', E.INVALID_TOPIC_EXCEPTION.code],
    [OTHER_TOPIC_ID, E.UNKNOWN_TOPIC_ID.code],
  ]);
  assert.equal((await h.client.metadata({ noTopics: true })).topics.length, 0);

  const dt = await h.client.describeTopics({ topicIds: [TOPIC_ID] });
  assert.equal(dt.topics[0]!.name, 't');
  assert.deepEqual(dt.topics[0]!.configs.map((c) => [c.name, c.value, c.source]), [['min.insync.replicas', '1', 'topic'], ['retention.ms', '604800000', 'default']]);

  const dc = await h.client.describeCluster();
  assert.equal(dc.errorCode, 0);
  assert.equal(dc.controllerId, 1);
  assert.deepEqual(dc.voters, [{ id: 1, lag: 0, isLeader: true }, { id: 2, lag: 3, isLeader: false }]);
  assert.deepEqual(dc.brokers.filter((b) => b.fenced).map((b) => b.id), [3]);
});

test('admin requests are validated here and the rest forwarded; controller failures become codes', async (t) => {
  const seen: unknown[] = [];
  const controller: { failure?: Error } = {};
  const h = await startHarness(t, {
    admin: {
      createTopics: async (req) => {
        seen.push(req);
        if (controller.failure) throw controller.failure;
        return { errorCode: 0, errorMessage: '', topics: req.topics.map((x) => ({ name: x.name, topicId: OTHER_TOPIC_ID, errorCode: 0, errorMessage: '', numPartitions: 3, replicationFactor: 1, configs: [] })) };
      },
      deleteTopics: async (req) => ({ errorCode: 0, errorMessage: '', topics: [...(req.names ?? []).map((n) => ({ name: n, topicId: TOPIC_ID, errorCode: 0, errorMessage: '' })), ...(req.topicIds ?? []).map((id) => ({ name: '', topicId: id, errorCode: E.UNKNOWN_TOPIC_ID.code, errorMessage: 'no such id' }))] }),
      createPartitions: async () => ({ errorCode: E.NOT_CONTROLLER.code, errorMessage: 'moved', topics: [] }),
      incrementalAlterConfigs: async (req) => {
        seen.push(req);
        return { errorCode: 0, errorMessage: '', resources: req.resources.map((r) => ({ resourceType: r.resourceType, resourceName: r.resourceName, errorCode: r.resourceName === 'missing' ? E.UNKNOWN_TOPIC_OR_PARTITION.code : 0, errorMessage: '' })) };
      },
      electLeaders: async (req) => {
        seen.push(req);
        if (controller.failure) throw controller.failure;
        return {
          errorCode: 0,
          errorMessage: '',
          topics: (req.topics ?? []).map((t) => ({ name: t.name, partitions: t.partitions.map((p) => ({ partition: p, errorCode: p === 0 ? E.ELECTION_NOT_NEEDED.code : 0, errorMessage: '', leaderId: 1 })) })),
        };
      },
    },
  });
  const res = await h.client.createTopics({
    topics: [
      { name: 'good', numPartitions: 3, configs: { 'retention.ms': '1000' } },
      { name: 'bad/name' },
      { name: 'dup' },
      { name: 'dup' },
      { name: 'huge', numPartitions: 1_000_000 },
      { name: 'manual', assignments: [{ partition: 0, brokerIds: [1, 2] }, { partition: 1, brokerIds: [2] }] },
    ],
  });
  assert.deepEqual(res.topics.map((x) => [x.name, x.errorCode]), [
    ['good', 0],
    ['bad/name', E.INVALID_TOPIC_EXCEPTION.code],
    ['dup', E.INVALID_REQUEST.code],
    ['dup', E.INVALID_REQUEST.code],
    ['huge', E.INVALID_PARTITIONS.code],
    ['manual', E.INVALID_REPLICA_ASSIGNMENT.code],
  ]);
  assert.equal(res.topics[0]!.topicId, OTHER_TOPIC_ID);
  // Only the valid topic reached the controller, with defaults and timeout filled in.
  assert.deepEqual(seen, [{ topics: [{ name: 'good', numPartitions: 3, replicationFactor: -1, assignments: [], configs: { 'retention.ms': '1000' } }], timeoutMs: 30_000, validateOnly: false }]);

  controller.failure = new Error('controller exploded');
  const boom = await h.client.createTopics({ topics: [{ name: 'x' }] });
  assert.equal(boom.topics[0]!.errorCode, E.UNKNOWN_SERVER_ERROR.code);

  const del = await h.client.deleteTopics({ names: ['t', '..'], topicIds: [OTHER_TOPIC_ID, 'short'] });
  assert.deepEqual(del.topics.map((x) => [x.name || x.topicId, x.errorCode]), [
    ['t', 0],
    ['..', E.INVALID_TOPIC_EXCEPTION.code],
    [OTHER_TOPIC_ID, E.UNKNOWN_TOPIC_ID.code],
    ['short', E.UNKNOWN_TOPIC_ID.code],
  ]);

  const cp = await h.client.createPartitions({ topics: [{ name: 't', count: 4 }, { name: 't2', count: 0 }] });
  assert.deepEqual(cp.topics.map((x) => [x.name, x.errorCode]), [['t', E.NOT_CONTROLLER.code], ['t2', E.INVALID_PARTITIONS.code]]);

  // IncrementalAlterConfigs: structure checked here, keys and values left to the controller.
  seen.length = 0;
  const ac = await h.client.incrementalAlterConfigs({
    validateOnly: true,
    resources: [
      { resourceType: 2, resourceName: 't', configs: [{ name: 'retention.ms', operation: 0, value: '60000' }, { name: 'cleanup.policy', operation: 1 }] },
      { resourceType: 4, resourceName: '', configs: [{ name: 'min.insync.replicas', value: '2' }] },
      { resourceType: 2, resourceName: 'missing', configs: [{ name: 'retention.ms', value: '1' }] },
      { resourceType: 4, resourceName: '3', configs: [{ name: 'retention.ms', value: '1' }] },
      { resourceType: 7, resourceName: 'x', configs: [{ name: 'retention.ms', value: '1' }] },
      { resourceType: 2, resourceName: 'bad/name', configs: [{ name: 'retention.ms', value: '1' }] },
      { resourceType: 2, resourceName: 'twice', configs: [{ name: 'retention.ms', value: '1' }, { name: 'retention.ms', operation: 1 }] },
      { resourceType: 2, resourceName: 'append', configs: [{ name: 'cleanup.policy', operation: 2, value: 'compact' }] },
      { resourceType: 2, resourceName: 'empty', configs: [] },
    ],
  });
  assert.deepEqual(ac.resources.map((x) => [x.resourceType, x.resourceName, x.errorCode]), [
    [2, 't', 0],
    [4, '', 0],
    [2, 'missing', E.UNKNOWN_TOPIC_OR_PARTITION.code],
    [4, '3', E.INVALID_REQUEST.code],
    [7, 'x', E.INVALID_REQUEST.code],
    [2, 'bad/name', E.INVALID_TOPIC_EXCEPTION.code],
    [2, 'twice', E.INVALID_REQUEST.code],
    [2, 'append', E.INVALID_REQUEST.code],
    [2, 'empty', E.INVALID_REQUEST.code],
  ]);
  assert.deepEqual(seen, [
    {
      validateOnly: true,
      timeoutMs: 30_000,
      resources: [
        { resourceType: 2, resourceName: 't', configs: [{ name: 'retention.ms', operation: 0, value: '60000' }, { name: 'cleanup.policy', operation: 1, value: '' }] },
        { resourceType: 4, resourceName: '', configs: [{ name: 'min.insync.replicas', operation: 0, value: '2' }] },
        { resourceType: 2, resourceName: 'missing', configs: [{ name: 'retention.ms', operation: 0, value: '1' }] },
      ],
    },
  ]);

  // ElectLeaders: a topic without partitions means all of them (from the local view);
  // per-partition answers come back in request order, bad items answered here.
  seen.length = 0;
  controller.failure = undefined;
  const el = await h.client.electLeaders({ electionType: 0, topics: [{ name: 't', partitions: [] }, { name: 'other', partitions: [3, 3] }, { name: 'no such', partitions: [0] }] });
  assert.equal(el.errorCode, 0);
  assert.deepEqual(
    el.topics.map((t) => [t.name, t.partitions.map((p) => [p.partition, p.errorCode])]),
    [
      ['t', [[0, E.ELECTION_NOT_NEEDED.code], [1, 0]]],
      ['other', [[3, 0], [3, E.INVALID_REQUEST.code]]],
      ['no such', [[0, E.INVALID_TOPIC_EXCEPTION.code]]],
    ],
  );
  assert.deepEqual(seen, [{ electionType: 0, timeoutMs: 30_000, topics: [{ name: 't', partitions: [0, 1] }, { name: 'other', partitions: [3] }] }]);
  const badType = await h.client.electLeaders({ electionType: 5 });
  assert.equal(badType.errorCode, E.INVALID_REQUEST.code, 'no partitions named: a request-wide problem is top-level');
  const badTypeNamed = await h.client.electLeaders({ electionType: 5, topics: [{ name: 't', partitions: [0] }] });
  assert.deepEqual(badTypeNamed.topics[0]!.partitions.map((p) => p.errorCode), [E.INVALID_REQUEST.code]);
  controller.failure = new RaftkaError('NOT_CONTROLLER', 'moving');
  const moved = await h.client.electLeaders({ topics: [{ name: 't', partitions: [1] }] });
  assert.deepEqual(moved.topics[0]!.partitions.map((p) => p.errorCode), [E.NOT_CONTROLLER.code]);
});

test('an unexpected exception is UNKNOWN_SERVER_ERROR, and the server goes on serving', async (t) => {
  const h = await startHarness(t, {
    wrap: (rm) => ({
      produce: () => {
        throw new TypeError('a bug in produce');
      },
      fetch: () => Promise.reject(new RangeError('a bug in fetch')),
      listOffset: (...a) => rm.listOffset(...a),
    }),
  });
  const p = await produceOne(h, buildBatch([{ value: 'x' }]), 1);
  assert.equal(p.errorCode, E.UNKNOWN_SERVER_ERROR.code);
  assert.match(p.errorMessage, /a bug in produce/);
  const f = await fetchOne(h, 0, 1_000);
  assert.equal(f.errorCode, E.UNKNOWN_SERVER_ERROR.code);
  const lo = await h.client.listOffsets({ topics: [{ name: 't', partitions: [{ partition: 0, timestamp: -1 }] }] });
  assert.equal(lo.topics[0]!.partitions[0]!.errorCode, 0);
});

test('ProduceStream answers every request with its correlation id, in order per partition', async (t) => {
  const h = await startHarness(t);
  const stream = h.client.produceStream();
  const results = await Promise.all(Array.from({ length: 50 }, (_, i) => stream.send(produceReq(buildBatch([{ value: `s${i}` }]), i % 2 === 0 ? 1 : -1))));
  await stream.close();
  assert.deepEqual(results.map((r) => r.responses[0]!.partitions[0]!.errorCode), Array(50).fill(0));
  assert.deepEqual(results.map((r) => r.responses[0]!.partitions[0]!.baseOffset), Array.from({ length: 50 }, (_, i) => i));
  assert.deepEqual(values((await fetchOne(h, 0)).records), Array.from({ length: 50 }, (_, i) => `s${i}`));
});

test('FetchStream: long polls on one stream answer on their own, matched by correlation id; a bad request gets its error on the stream', async (t) => {
  const { h, fetchesStarted } = await harnessCountingFetches(t);
  await produceOne(h, buildBatch([{ value: 'first' }]), 1);
  const stream = h.client.fetchStream();
  t.after(() => stream.cancel());
  const req = (fetchOffset: number, maxWaitMs: number, correlationId = 0): FetchRequest => ({ correlationId, maxWaitMs, minBytes: 1, topics: [{ topicId: TOPIC_ID, partitions: [{ partition: 0, fetchOffset }] }] });
  // Parked at the log end; the one after it on the same stream must not wait behind it.
  let parkedDone = false;
  const parked = stream.send(req(1, 10_000, 999)).then((r) => {
    parkedDone = true;
    return r;
  });
  await waitFor('the long poll to reach the replica manager', () => fetchesStarted() === 1, 5_000, 5);
  const now = await stream.send(req(0, 0, 999));
  assert.deepEqual(values(now.responses[0]!.partitions[0]!.records), ['first']);
  assert.equal(parkedDone, false, 'the long poll answered before any data arrived');
  await produceOne(h, buildBatch([{ value: 'second' }]), -1);
  const late = await parked;
  assert.deepEqual(values(late.responses[0]!.partitions[0]!.records), ['second']);
  assert.notEqual(late.correlationId, now.correlationId, 'the stream client numbers its requests itself');
  // Bad input: answered on the stream with its code; the stream keeps working.
  const bad = await stream.send({ maxWaitMs: -5, topics: [{ topicId: TOPIC_ID, partitions: [{ partition: 0, fetchOffset: 0 }] }] });
  assert.equal(bad.responses[0]!.partitions[0]!.errorCode, E.INVALID_REQUEST.code);
  assert.match(bad.responses[0]!.partitions[0]!.errorMessage, /max_wait_ms -5/);
  const again = await stream.send(req(0, 0));
  assert.deepEqual(values(again.responses[0]!.partitions[0]!.records), ['first', 'second']);
  await stream.close();
});

test('a partition left out by the response byte bound gives its lent read buffer back, as an encoded one does', async (t) => {
  // Two partitions each answer 100,000 bytes read into lent buffers; max_bytes 150,000
  // keeps the first only.
  const lentStores: ArrayBufferLike[] = [];
  const h = await startHarness(t, {
    wrap: (rm) => ({
      produce: (...a) => rm.produce(...a),
      listOffset: (...a) => rm.listOffset(...a),
      fetch: (parts) =>
        Promise.resolve(
          parts.map((r) => {
            const lent = readBuffers.acquire(100_000);
            lentStores.push(lent.buffer);
            return { topicId: r.topicId, partition: r.partition, errorCode: 0, highWatermark: 1, logStartOffset: 0, lastStableOffset: 1, records: lent.subarray(0, 100_000) };
          }),
        ),
    }),
  });
  h.meta.topicList.push({ name: 'u', topicId: OTHER_TOPIC_ID, partitions: [{ partition: 0, leader: 1, leaderEpoch: 1, replicas: [1], isr: [1], elr: [], lastKnownElr: [] }] });
  // Nothing idle, so the buffers lent below are fresh and the ones idle afterwards are theirs.
  const drained: Buffer[] = [];
  while (readBuffers.idleCount > 0) drained.push(readBuffers.acquire(100_000));
  const res = await h.client.fetch({ maxWaitMs: 0, maxBytes: 150_000, topics: [{ name: 't', partitions: [{ partition: 0, fetchOffset: 0 }] }, { name: 'u', partitions: [{ partition: 0, fetchOffset: 0 }] }] });
  assert.deepEqual(res.responses.map((x) => x.partitions[0]!.records.length), [100_000, 0]);
  assert.equal(lentStores.length, 2);
  assert.equal(readBuffers.idleCount, 2, 'both buffers came back: the encoded one and the one left out');
  const again = new Set([readBuffers.acquire(100_000).buffer, readBuffers.acquire(100_000).buffer]);
  assert.deepEqual(again, new Set(lentStores));
  for (const b of drained) readBuffers.release(b);
});

test('a unary Fetch echoes its correlation id', async (t) => {
  const h = await startHarness(t);
  const res = await h.client.fetch({ correlationId: 41, maxWaitMs: 0, topics: [{ topicId: TOPIC_ID, partitions: [{ partition: 0, fetchOffset: 0 }] }] });
  assert.equal(res.errorCode, 0);
  assert.equal(res.correlationId, 41);
});

test('acks=0 answers without an offset; the write still lands in order', async (t) => {
  const h = await startHarness(t);
  for (let i = 0; i < 5; i++) {
    const p = await produceOne(h, buildBatch([{ value: `z${i}` }]), 0);
    assert.equal(p.errorCode, 0);
    assert.equal(p.baseOffset, -1);
  }
  const got = await waitFor('the acks=0 writes', async () => {
    const v = values((await fetchOne(h, 0, 200)).records);
    return v.length === 5 ? v : undefined;
  });
  assert.deepEqual(got, ['z0', 'z1', 'z2', 'z3', 'z4']);
});
