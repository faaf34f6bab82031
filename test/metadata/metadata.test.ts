import { test } from 'node:test';
import assert from 'node:assert/strict';
import fc from 'fast-check';
import { isRaftkaError, RaftkaError } from '../../src/common/errors.ts';
import { LOG_CONFIG_DEFS } from '../../src/log/config.ts';
import {
  BATCH_FORMAT,
  MetadataDelta,
  MetadataImage,
  MetadataStateMachine,
  NO_LEADER,
  TOPIC_CONFIG_DEFS,
  decodeRecords,
  decodeSnapshot,
  encodeRecords,
  encodeSnapshot,
  imageToRecords,
  imagesEqual,
  record,
  replayAll,
  type MetadataRecord,
  type MetadataUpdate,
} from '../../src/metadata/index.ts';
import type { Entry } from '../../src/raft/types.ts';
import { assertProperty } from '../support/property.ts';
import { testUuid as uuid } from '../support/ids.ts';

const T1 = uuid(1);
const T2 = uuid(2);

const ALL_RECORDS: MetadataRecord[] = [
  record({ type: 'featureLevel', name: 'metadata.version', featureLevel: 1 }),
  record({
    type: 'registerBroker',
    brokerId: 1,
    incarnationId: uuid(101),
    brokerEpoch: 1,
    endpoints: [{ name: 'CLIENT', host: '127.0.0.1', port: 9092 }],
    rack: 'a',
    fenced: true,
  }),
  record({
    type: 'registerBroker',
    brokerId: 2,
    incarnationId: uuid(102),
    brokerEpoch: 2,
    endpoints: [{ name: 'CLIENT', host: '127.0.0.1', port: 9093 }],
    rack: null,
    fenced: true,
  }),
  record({ type: 'unfenceBroker', brokerId: 1, brokerEpoch: 1 }),
  record({ type: 'unfenceBroker', brokerId: 2, brokerEpoch: 2 }),
  record({ type: 'topic', name: 'orders', topicId: T1 }),
  record({
    type: 'partition',
    topicId: T1,
    partition: 0,
    replicas: [1, 2],
    isr: [1, 2],
    elr: [],
    lastKnownElr: [],
    leader: 1,
    leaderEpoch: 0,
    partitionEpoch: 0,
  }),
  record({ type: 'partitionChange', topicId: T1, partition: 0, isr: [1] }),
  record({ type: 'config', resourceType: 'topic', resourceName: 'orders', name: 'retention.ms', value: '1000' }),
  record({ type: 'config', resourceType: 'cluster', resourceName: '', name: 'min.insync.replicas', value: '2' }),
  record({ type: 'producerIds', brokerId: 1, brokerEpoch: 1, nextProducerId: 1000 }),
  record({ type: 'noOp' }),
  record({ type: 'fenceBroker', brokerId: 2, brokerEpoch: 2 }),
];

function expectCorrupt(f: () => unknown, re: RegExp, name = 'CORRUPT_STORAGE'): void {
  assert.throws(f, (e: unknown) => {
    assert.ok(isRaftkaError(e), `expected a RaftkaError, got ${String(e)}`);
    assert.equal(e.errorName, name);
    assert.match(e.message, re);
    return true;
  });
}

test('codec: every record type round-trips', () => {
  const bytes = encodeRecords(ALL_RECORDS);
  assert.equal(bytes[0], BATCH_FORMAT);
  assert.deepEqual(decodeRecords(bytes), ALL_RECORDS);
  const change = record({ type: 'partitionChange', topicId: T1, partition: 3, leader: NO_LEADER });
  const [back] = decodeRecords(encodeRecords([change]));
  assert.deepEqual(back, change);
  assert.equal('isr' in back!, false, 'absent fields stay absent');
});

test('codec: bad bytes give typed errors naming the problem', () => {
  const enc = (s: string): Uint8Array => new Uint8Array([BATCH_FORMAT, ...new TextEncoder().encode(s)]);
  expectCorrupt(() => decodeRecords(new Uint8Array()), /empty batch/);
  expectCorrupt(() => decodeRecords(new Uint8Array([9, 1, 2])), /unknown batch format 9/);
  expectCorrupt(() => decodeRecords(new Uint8Array([BATCH_FORMAT, 0xff, 0xfe])), /UTF-8/);
  expectCorrupt(() => decodeRecords(enc('[{')), /not valid JSON/);
  expectCorrupt(() => decodeRecords(enc('{}')), /not a list/);
  expectCorrupt(() => decodeRecords(enc('[1]')), /record 0: not an object/);
  expectCorrupt(() => decodeRecords(enc('[{"type":"bogus","version":0}]')), /unknown record type "bogus"/);
  expectCorrupt(() => decodeRecords(enc('[{"type":"noOp","version":7}]')), /noOp record version 7 is not supported/);
  expectCorrupt(() => decodeRecords(enc('[{"type":"removeTopic","version":0,"topicId":"nope"}]')), /topicId "nope" is not a uuid/);
  const p = { ...ALL_RECORDS[6] };
  expectCorrupt(() => decodeRecords(enc(JSON.stringify([{ ...p, isr: [1, 1] }]))), /isr holds broker 1 twice/);
  expectCorrupt(() => decodeRecords(enc(JSON.stringify([{ ...p, leader: -2 }]))), /leader -2 is not an integer/);
  expectCorrupt(() => decodeRecords(enc(JSON.stringify([{ ...p, partition: 1.5 }]))), /partition 1.5/);
  const reg = { ...ALL_RECORDS[1] };
  expectCorrupt(() => decodeRecords(enc(JSON.stringify([{ ...reg, endpoints: [{ name: 'X', host: 'h', port: 70000 }] }]))), /endpoints\[0\]: port/);
  expectCorrupt(() => decodeRecords(enc(JSON.stringify([{ ...reg, fenced: 'yes' }]))), /fenced "yes" is not a boolean/);
  expectCorrupt(() => decodeRecords(enc('[{"type":"config","version":0,"resourceType":"user","resourceName":"","name":"a","value":null}]')), /resourceType "user"/);
  // Bytes from a client are the client's fault.
  expectCorrupt(() => decodeRecords(new Uint8Array([0]), { errorName: 'INVALID_REQUEST' }), /unknown batch format/, 'INVALID_REQUEST');
});

test('codec: arbitrary bytes never crash the decoder', async () => {
  const valid = encodeRecords(ALL_RECORDS);
  await assertProperty(
    'decodeRecords(random or mutated bytes) returns records or throws CORRUPT_STORAGE',
    fc.property(
      fc.oneof(
        fc.uint8Array({ maxLength: 200 }),
        fc.tuple(fc.nat(valid.length - 1), fc.integer({ min: 0, max: 255 })).map(([i, v]) => {
          const b = valid.slice();
          b[i] = v;
          return b;
        }),
        fc.nat(valid.length).map((n) => valid.slice(0, n)),
      ),
      (bytes) => {
        try {
          decodeRecords(bytes);
        } catch (e) {
          if (!(e instanceof RaftkaError) || e.errorName !== 'CORRUPT_STORAGE') throw e;
        }
      },
    ),
    { numRuns: 500 },
  );
});

test('delta: replay builds a new image and leaves the old one untouched', () => {
  const before = replayAll(MetadataImage.EMPTY, ALL_RECORDS.slice(0, 7), 7, 1);
  const p0 = before.partition(T1, 0)!;
  assert.deepEqual(p0.isr, [1, 2]);
  const after = replayAll(before, [record({ type: 'partitionChange', topicId: T1, partition: 0, isr: [1] })], 8, 1);
  assert.deepEqual(before.partition(T1, 0)!.isr, [1, 2], 'the base image did not change');
  const p1 = after.partition(T1, 0)!;
  assert.deepEqual(p1.isr, [1]);
  assert.equal(p1.partitionEpoch, 1, 'partition epoch always grows');
  assert.equal(p1.leaderEpoch, 0, 'leader epoch grows only with a new leader');
  assert.equal(after.offset, 8);
  assert.equal(after.brokers, before.brokers, 'untouched maps are shared');
  assert.ok(Object.isFrozen(p1) && Object.isFrozen(p1.isr));

  const moved = replayAll(after, [record({ type: 'partitionChange', topicId: T1, partition: 0, leader: NO_LEADER, isr: [] })]);
  assert.equal(moved.partition(T1, 0)!.leaderEpoch, 1);
  assert.equal(moved.partition(T1, 0)!.partitionEpoch, 2);
  const same = replayAll(moved, [record({ type: 'partitionChange', topicId: T1, partition: 0, leader: NO_LEADER })]);
  assert.equal(same.partition(T1, 0)!.leaderEpoch, 1, 'the same leader again is no leader change');
});

test('delta: accessors, configs and topic removal', () => {
  const img = replayAll(MetadataImage.EMPTY, ALL_RECORDS, 13, 2);
  assert.equal(img.topic('orders')!.topicId, T1);
  assert.equal(img.topicById(T1)!.name, 'orders');
  assert.equal(img.broker(1)!.rack, 'a');
  assert.equal(img.isUnfenced(1), true);
  assert.equal(img.isUnfenced(2), false, 'fenced last');
  assert.deepEqual(img.unfencedBrokers().map((b) => b.brokerId), [1]);
  assert.equal(img.nextProducerId, 1000);
  assert.equal(img.lastBrokerEpoch, 2);
  assert.equal(img.features.get('metadata.version'), 1);
  assert.deepEqual(img.topicConfigOverrides('orders'), { 'retention.ms': '1000' });
  const cfg = img.topicConfig('orders');
  assert.equal(cfg['retention.ms'], 1000, 'topic override');
  assert.equal(cfg['min.insync.replicas'], 2, 'cluster default');
  assert.equal(cfg['unclean.leader.election.enable'], false, 'static default');
  assert.deepEqual(img.partitionsLedBy(1).map((p) => p.partition), [0]);

  const deleted = replayAll(img, [
    record({ type: 'config', resourceType: 'topic', resourceName: 'orders', name: 'retention.ms', value: null }),
    record({ type: 'config', resourceType: 'topic', resourceName: 'orders', name: 'segment.ms', value: '5000' }),
    record({ type: 'removeTopic', topicId: T1 }),
    record({ type: 'topic', name: 'orders', topicId: T2 }),
  ]);
  assert.equal(deleted.topic('orders')!.topicId, T2, 'a name can be reused with a new id');
  assert.equal(deleted.topicById(T1), undefined);
  assert.equal(deleted.configsOf('topic', 'orders').size, 0, 'a removed topic takes its configs along');
  assert.equal(img.topicById(T1)!.partitions.length, 1);
});

test('delta: records that do not fit the image are refused with CORRUPT_STORAGE', () => {
  const img = replayAll(MetadataImage.EMPTY, ALL_RECORDS.slice(0, 7));
  const bad = (r: MetadataRecord, re: RegExp): void => expectCorrupt(() => replayAll(img, [r]), re);
  bad(record({ type: 'partitionChange', topicId: T2, partition: 0, isr: [] }), /topic id .* does not exist/);
  bad(record({ type: 'partitionChange', topicId: T1, partition: 5, isr: [] }), /partition 5 does not exist/);
  bad(record({ type: 'partitionChange', topicId: T1, partition: 0, isr: [1, 3] }), /not a subset of replicas/);
  bad(record({ type: 'partitionChange', topicId: T1, partition: 0, isr: [2] }), /leader 1 is not in isr/);
  bad(record({ type: 'partitionChange', topicId: T1, partition: 0, isr: [1], elr: [1] }), /overlaps isr/);
  bad(record({ type: 'fenceBroker', brokerId: 1, brokerEpoch: 9 }), /broker epoch 9 is not the current 1/);
  bad(record({ type: 'fenceBroker', brokerId: 7, brokerEpoch: 1 }), /broker 7 is not registered/);
  bad(record({ type: 'topic', name: 'orders', topicId: T2 }), /already exists/);
  bad(record({ type: 'producerIds', brokerId: 1, brokerEpoch: 1, nextProducerId: 0 }), /not above/);
  bad(record({ type: 'config', resourceType: 'topic', resourceName: 'nope', name: 'a', value: 'b' }), /topic nope does not exist/);
  bad({ ...(ALL_RECORDS[6] as Extract<MetadataRecord, { type: 'partition' }>), partition: 4 }, /skips partition 1/);
  bad({ ...(ALL_RECORDS[1] as Extract<MetadataRecord, { type: 'registerBroker' }>), brokerEpoch: 1 }, /not above the current 1/);
});

test('snapshot: round-trips, is canonical, and rejects bad bytes', () => {
  const img = replayAll(MetadataImage.EMPTY, ALL_RECORDS, 13, 2);
  const back = decodeSnapshot(encodeSnapshot(img));
  assert.ok(imagesEqual(img, back));
  assert.equal(back.offset, 13);
  assert.equal(back.controllerEpoch, 2);
  assert.equal(back.nextProducerId, 1000);
  assert.deepEqual(back.partition(T1, 0), img.partition(T1, 0));
  // Rebuilding from the image's own records gives the same image (producer ids and the
  // highest broker epoch travel in the snapshot header).
  const noPids = replayAll(MetadataImage.EMPTY, ALL_RECORDS.filter((r) => r.type !== 'producerIds'), 13, 2);
  assert.ok(imagesEqual(replayAll(MetadataImage.EMPTY, imageToRecords(noPids), 13, 2), noPids));
  // An unregistered broker's epoch is still remembered.
  const gone = replayAll(img, [record({ type: 'unregisterBroker', brokerId: 2, brokerEpoch: 2 })]);
  assert.equal(decodeSnapshot(encodeSnapshot(gone)).lastBrokerEpoch, 2);
  assert.ok(!imagesEqual(gone, img));

  expectCorrupt(() => decodeSnapshot(new Uint8Array()), /empty snapshot/);
  expectCorrupt(() => decodeSnapshot(encodeRecords([])), /unknown snapshot format 1/);
  const bytes = encodeSnapshot(img);
  const text = new TextDecoder().decode(bytes.subarray(1)).replace('"isr":[1]', '"isr":[3]');
  const broken = new Uint8Array([bytes[0]!, ...new TextEncoder().encode(text)]);
  expectCorrupt(() => decodeSnapshot(broken), /metadata snapshot: record \d+: .*not a subset of replicas/);
});

function entry(index: number, term: number, records: MetadataRecord[] | null): Entry {
  return records === null
    ? { index, term, kind: 'noop', data: new Uint8Array() }
    : { index, term, kind: 'normal', data: encodeRecords(records) };
}

test('state machine: applies entries, tracks offset and controller epoch, notifies, snapshots', () => {
  const sm = new MetadataStateMachine();
  const updates: MetadataUpdate[] = [];
  const unsubscribe = sm.subscribe((u) => updates.push(u));
  sm.apply(1, entry(1, 1, null));
  assert.equal(sm.image.offset, 1);
  assert.equal(sm.image.controllerEpoch, 1);
  sm.apply(2, entry(2, 1, ALL_RECORDS.slice(0, 7)));
  sm.apply(3, entry(3, 2, ALL_RECORDS.slice(7)));
  assert.equal(sm.image.offset, 3);
  assert.equal(sm.image.controllerEpoch, 2);
  assert.equal(updates.length, 3);
  assert.equal(updates[1]!.records!.length, 7);
  assert.equal(updates[2]!.previous, updates[1]!.image);
  assert.ok(imagesEqual(sm.image, replayAll(MetadataImage.EMPTY, ALL_RECORDS, 3, 2)));

  // A bad entry is refused whole: the image stays where it was.
  const held = sm.image;
  const badBatch = [record({ type: 'noOp' }), record({ type: 'removeTopic', topicId: T2 })];
  expectCorrupt(() => sm.apply(4, entry(4, 2, badBatch)), /metadata log entry 4: .*does not exist/);
  assert.equal(sm.image, held);
  expectCorrupt(() => sm.apply(3, entry(3, 2, [])), /applied after 3/);

  const snap = sm.snapshot();
  const other = new MetadataStateMachine();
  const seen: MetadataUpdate[] = [];
  other.subscribe((u) => seen.push(u));
  other.restore({ meta: { index: 3, term: 2, config: { voters: [], observers: [] } }, data: snap });
  assert.ok(imagesEqual(other.image, sm.image));
  assert.equal(seen[0]!.records, null);
  other.apply(4, entry(4, 3, [record({ type: 'noOp' })]));
  assert.equal(other.image.offset, 4);
  unsubscribe();
  sm.apply(4, entry(4, 3, null));
  assert.equal(updates.length, 3, 'unsubscribed');
});

test('MetadataDelta.size counts replayed records', () => {
  const d = new MetadataDelta(MetadataImage.EMPTY);
  for (const r of ALL_RECORDS) d.replay(r);
  assert.equal(d.size, ALL_RECORDS.length);
});

test('topic config keys cover the log layer\'s with the same defaults', () => {
  for (const [key, def] of Object.entries(LOG_CONFIG_DEFS)) {
    const mine = (TOPIC_CONFIG_DEFS as Record<string, { default: unknown; kind: string }>)[key];
    assert.ok(mine !== undefined, `${key} missing from TOPIC_CONFIG_DEFS`);
    assert.deepEqual(mine.default, def.default, key);
    assert.equal(mine.kind, def.kind, key);
  }
});
