import { test } from 'node:test';
import assert from 'node:assert/strict';
import fc from 'fast-check';
import { isRaftkaError } from '../../src/common/errors.ts';
import { placeReplicas, type PlacementBroker } from '../../src/controller/placement.ts';
import { topicNameProblem } from '../../src/controller/names.ts';
import { assertProperty } from '../support/property.ts';
import { Harness } from './harness.ts';

function counts(assignments: readonly (readonly number[])[], brokers: readonly PlacementBroker[]) {
  const replicas = new Map(brokers.map((b) => [b.brokerId, 0]));
  const leaders = new Map(brokers.map((b) => [b.brokerId, 0]));
  for (const a of assignments) {
    for (const b of a) replicas.set(b, replicas.get(b)! + 1);
    leaders.set(a[0]!, leaders.get(a[0]!)! + 1);
  }
  const spread = (m: Map<number, number>): number => Math.max(...m.values()) - Math.min(...m.values());
  return { replicaSpread: spread(replicas), leaderSpread: spread(leaders) };
}

const brokerIds = (n: number): fc.Arbitrary<number[]> =>
  fc.uniqueArray(fc.integer({ min: 0, max: 1000 }), { minLength: n, maxLength: n });

test('placement: replicas and leaders spread within one of each other, every replica list distinct', async () => {
  await assertProperty(
    'even placement without racks',
    fc.property(
      fc.integer({ min: 1, max: 12 }).chain((n) =>
        fc.record({
          ids: brokerIds(n),
          rf: fc.integer({ min: 1, max: n }),
          partitions: fc.integer({ min: 1, max: 60 }),
          seed: fc.integer(),
        }),
      ),
      ({ ids, rf, partitions, seed }) => {
        const brokers = ids.map((brokerId) => ({ brokerId, rack: null }));
        const out = placeReplicas({ brokers, numPartitions: partitions, replicationFactor: rf, seed });
        assert.equal(out.length, partitions);
        for (const a of out) {
          assert.equal(a.length, rf);
          assert.equal(new Set(a).size, rf);
          for (const b of a) assert.ok(ids.includes(b));
        }
        const { replicaSpread, leaderSpread } = counts(out, brokers);
        assert.ok(replicaSpread <= 1, `replica spread ${replicaSpread}`);
        assert.ok(leaderSpread <= 1, `leader spread ${leaderSpread}`);
      },
    ),
    { numRuns: 300 },
  );
});

test('placement: rack-aware — each partition spans min(rf, racks) racks; balanced racks keep counts even', async () => {
  await assertProperty(
    'rack-aware placement',
    fc.property(
      fc.integer({ min: 1, max: 4 }).chain((racks) =>
        fc.integer({ min: 1, max: 4 }).chain((perRack) => {
          const n = racks * perRack;
          return fc.record({
            racks: fc.constant(racks),
            n: fc.constant(n),
            rf: fc.integer({ min: 1, max: n }),
            partitions: fc.integer({ min: 1, max: 40 }),
            seed: fc.integer(),
            shuffle: fc.nat(),
          });
        }),
      ),
      ({ racks, n, rf, partitions, seed, shuffle }) => {
        const brokers = Array.from({ length: n }, (_, i) => ({ brokerId: i, rack: `rack-${(i * 7 + shuffle) % racks}` }));
        const rackOf = new Map(brokers.map((b) => [b.brokerId, b.rack]));
        const out = placeReplicas({ brokers, numPartitions: partitions, replicationFactor: rf, seed });
        for (const a of out) {
          assert.equal(new Set(a.map((b) => rackOf.get(b))).size, Math.min(rf, racks), `partition ${a.join(',')} racks`);
        }
        const { replicaSpread, leaderSpread } = counts(out, brokers);
        assert.ok(replicaSpread <= 1, `replica spread ${replicaSpread}`);
        assert.ok(leaderSpread <= 1, `leader spread ${leaderSpread}`);
      },
    ),
    { numRuns: 300 },
  );
});

test('placement: unbalanced racks still get rack diversity first', () => {
  const brokers = [
    { brokerId: 1, rack: 'a' },
    { brokerId: 2, rack: 'a' },
    { brokerId: 3, rack: 'a' },
    { brokerId: 4, rack: 'b' },
  ];
  for (const a of placeReplicas({ brokers, numPartitions: 8, replicationFactor: 2 })) {
    assert.ok(a.includes(4), `every partition uses rack b: ${a.join(',')}`);
  }
});

test('placement: a replication factor above the broker count is INVALID_REPLICATION_FACTOR', () => {
  assert.throws(
    () => placeReplicas({ brokers: [{ brokerId: 1, rack: null }], numPartitions: 1, replicationFactor: 2 }),
    (e: unknown) => isRaftkaError(e, 'INVALID_REPLICATION_FACTOR') && /only 1 broker/.test(e.message),
  );
});

test('placement: small topics spread over the whole cluster (cluster load breaks ties)', async () => {
  await assertProperty(
    'cluster-wide spread of single-partition topics',
    fc.property(fc.integer({ min: 1, max: 6 }), fc.integer({ min: 1, max: 20 }), (n, topics) => {
      const h = new Harness();
      h.startBrokers(Array.from({ length: n }, (_, i) => i + 1));
      for (let i = 0; i < topics; i++) h.createTopic(`t${i}`, 1, 1);
      const all = [...h.image.allPartitions()].map((p) => p.replicas);
      const { replicaSpread, leaderSpread } = counts(all, h.image.unfencedBrokers());
      assert.ok(replicaSpread <= 1 && leaderSpread <= 1, `spread ${replicaSpread}/${leaderSpread}`);
    }),
    { numRuns: 30 },
  );
});

test('placement skips fenced brokers', () => {
  const h = new Harness();
  h.startBrokers([1, 2, 3]);
  h.heartbeat(2, { wantFence: true });
  h.createTopic('t', 6, 2);
  for (const p of h.image.topic('t')!.partitions) assert.ok(!p.replicas.includes(2));
});

test('topic names follow Kafka\'s rules', () => {
  for (const ok of ['a', 'A-b_c.d', 'x'.repeat(249), '__consumer_offsets', '...']) assert.equal(topicNameProblem(ok), undefined, ok);
  for (const bad of ['', '.', '..', 'x'.repeat(250), 'a/b', 'a b', 'ü', 'a\u0000', 7]) assert.notEqual(topicNameProblem(bad), undefined, String(bad));
});
