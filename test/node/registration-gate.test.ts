// A restarted broker must not act on metadata from before its own registration: the
// image it replays at start, or one current with the quorum while its old incarnation's
// session runs, may still name it leader at the old epoch.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { MetadataStateMachine, encodeRecords, encodeSnapshot, record, type MetadataImage, type MetadataRecord } from '../../src/metadata/index.ts';
import { applyOnceRegistered } from '../../src/node/registration-gate.ts';
import type { Entry } from '../../src/raft/types.ts';
import { testUuid as uuid } from '../support/ids.ts';

const TOPIC = uuid(1);
const OLD_INCARNATION = uuid(101);
const NEW_INCARNATION = uuid(201);

const register = (brokerId: number, incarnationId: string, brokerEpoch: number) =>
  record({ type: 'registerBroker', brokerId, incarnationId, brokerEpoch, endpoints: [{ name: 'CLIENT', host: '127.0.0.1', port: 9090 + brokerId }], rack: null, fenced: true });

/** Broker 1 (old incarnation) leads the partition at epoch 0 with ISR [1, 2]. */
const BEFORE_RESTART: MetadataRecord[] = [
  record({ type: 'featureLevel', name: 'metadata.version', featureLevel: 1 }),
  register(1, OLD_INCARNATION, 1),
  register(2, uuid(102), 2),
  record({ type: 'unfenceBroker', brokerId: 1, brokerEpoch: 1 }),
  record({ type: 'unfenceBroker', brokerId: 2, brokerEpoch: 2 }),
  record({ type: 'topic', name: 'lazy', topicId: TOPIC }),
  record({ type: 'partition', topicId: TOPIC, partition: 0, replicas: [1, 2], isr: [1, 2], elr: [], lastKnownElr: [], leader: 1, leaderEpoch: 0, partitionEpoch: 0 }),
];

/** What the controller writes for the new incarnation: its registration, fenced, and the leadership moved in the same batch. */
const REREGISTRATION: MetadataRecord[] = [register(1, NEW_INCARNATION, 3), record({ type: 'partitionChange', topicId: TOPIC, partition: 0, isr: [2], leader: 2 })];

function entry(index: number, records: MetadataRecord[] | null): Entry {
  return records === null ? { index, term: 1, kind: 'noop', data: new Uint8Array() } : { index, term: 1, kind: 'normal', data: encodeRecords(records) };
}

function leaderOf(image: MetadataImage): { leader: number; leaderEpoch: number } {
  const p = image.topic('lazy')!.partitions[0]!;
  return { leader: p.leader, leaderEpoch: p.leaderEpoch };
}

test('a broker applies no image from before its own registration, then every image from it on', () => {
  const sm = new MetadataStateMachine();
  const applied: Array<{ offset: number; first: boolean; leader: number; leaderEpoch: number }> = [];
  const unsubscribe = applyOnceRegistered(sm, 1, NEW_INCARNATION, (image, first) => applied.push({ offset: image.offset, first, ...leaderOf(image) }));

  // The replayed log names broker 1 leader at epoch 0, and more entries arrive while the
  // old incarnation's session runs: none of them is applied.
  sm.apply(1, entry(1, BEFORE_RESTART));
  sm.apply(2, entry(2, null));
  sm.apply(3, entry(3, [record({ type: 'noOp' })]));
  assert.deepEqual(applied, []);
  assert.deepEqual(leaderOf(sm.image), { leader: 1, leaderEpoch: 0 }, 'the unapplied image still names this broker leader');

  // Its registration arrives with the leadership moved away: the first image applied
  // already has another leader at a newer epoch, and every later image follows.
  sm.apply(4, entry(4, REREGISTRATION));
  sm.apply(5, entry(5, [record({ type: 'unfenceBroker', brokerId: 1, brokerEpoch: 3 })]));
  assert.deepEqual(applied, [
    { offset: 4, first: true, leader: 2, leaderEpoch: 1 },
    { offset: 5, first: false, leader: 2, leaderEpoch: 1 },
  ]);

  unsubscribe();
  sm.apply(6, entry(6, null));
  assert.equal(applied.length, 2, 'nothing after unsubscribing');
});

test('another incarnation of the same broker, or another broker, does not open the gate; a snapshot holding the registration does', () => {
  const other = new MetadataStateMachine();
  const seen: number[] = [];
  applyOnceRegistered(other, 1, uuid(999), (image) => seen.push(image.offset));
  other.apply(1, entry(1, BEFORE_RESTART));
  other.apply(2, entry(2, REREGISTRATION));
  assert.deepEqual(seen, [], 'the registration of incarnation 201 is not that of 999');

  const source = new MetadataStateMachine();
  source.apply(1, entry(1, BEFORE_RESTART));
  source.apply(2, entry(2, REREGISTRATION));
  const restored = new MetadataStateMachine();
  const firsts: boolean[] = [];
  applyOnceRegistered(restored, 1, NEW_INCARNATION, (_image, first) => firsts.push(first));
  restored.restore({ meta: { index: 2, term: 1, config: { voters: [], observers: [] } }, data: encodeSnapshot(source.image) });
  assert.deepEqual(firsts, [true]);
  assert.deepEqual(leaderOf(restored.image), { leader: 2, leaderEpoch: 1 });
});
