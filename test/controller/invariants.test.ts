// Random sequences of broker registrations, heartbeats, fencings, session expiries,
// controlled shutdowns, topic creations and deletions, ISR changes, elections, config
// changes, producer-id allocations and controller failovers (some with proposals that
// never commit) must keep the named invariants after every step. The harness already
// checks, at every commit, that the controller's view equals the image replayed from the
// encoded records.
import { test } from 'node:test';
import fc from 'fast-check';
import { assertProperty } from '../support/property.ts';
import { Harness, checkInvariants, newHistory } from './harness.ts';

const BROKERS = [1, 2, 3, 4, 5];
const TOPICS = ['a', 'b', 'c'];

type Cmd =
  | { c: 'register'; b: number; newIncarnation: boolean; clean: boolean; rack: number }
  | { c: 'heartbeat'; b: number; caughtUp: boolean; wantFence: boolean }
  | { c: 'advance'; ms: number }
  | { c: 'disconnect'; b: number }
  | { c: 'shutdown'; b: number }
  | { c: 'create'; t: number; partitions: number; rf: number; minIsr: number; unclean: boolean }
  | { c: 'delete'; t: number }
  | { c: 'addPartitions'; t: number; more: number }
  | { c: 'alter'; t: number; p: number; mask: boolean[]; stale: number }
  | { c: 'elect'; preferred: boolean }
  | { c: 'config'; t: number; minIsr: number; unclean: boolean }
  | { c: 'producerIds'; b: number }
  | { c: 'failover'; loseOne: boolean };

const broker = fc.constantFrom(...BROKERS);
const topic = fc.nat(TOPICS.length - 1);
const cmd: fc.Arbitrary<Cmd> = fc.oneof(
  { arbitrary: fc.record({ c: fc.constant('register' as const), b: broker, newIncarnation: fc.boolean(), clean: fc.boolean(), rack: fc.nat(2) }), weight: 3 },
  { arbitrary: fc.record({ c: fc.constant('heartbeat' as const), b: broker, caughtUp: fc.boolean(), wantFence: fc.boolean() }), weight: 5 },
  { arbitrary: fc.record({ c: fc.constant('advance' as const), ms: fc.integer({ min: 1, max: 1500 }) }), weight: 2 },
  { arbitrary: fc.record({ c: fc.constant('disconnect' as const), b: broker }), weight: 1 },
  { arbitrary: fc.record({ c: fc.constant('shutdown' as const), b: broker }), weight: 1 },
  {
    arbitrary: fc.record({
      c: fc.constant('create' as const),
      t: topic,
      partitions: fc.integer({ min: 1, max: 4 }),
      rf: fc.integer({ min: 1, max: 3 }),
      minIsr: fc.integer({ min: 1, max: 3 }),
      unclean: fc.boolean(),
    }),
    weight: 4,
  },
  { arbitrary: fc.record({ c: fc.constant('delete' as const), t: topic }), weight: 1 },
  { arbitrary: fc.record({ c: fc.constant('addPartitions' as const), t: topic, more: fc.integer({ min: 1, max: 2 }) }), weight: 1 },
  {
    arbitrary: fc.record({
      c: fc.constant('alter' as const),
      t: topic,
      p: fc.nat(5),
      mask: fc.array(fc.boolean(), { minLength: 5, maxLength: 5 }),
      stale: fc.constantFrom(0, 0, 0, 0, 1, 2, 3),
    }),
    weight: 6,
  },
  { arbitrary: fc.record({ c: fc.constant('elect' as const), preferred: fc.boolean() }), weight: 1 },
  { arbitrary: fc.record({ c: fc.constant('config' as const), t: topic, minIsr: fc.integer({ min: 1, max: 3 }), unclean: fc.boolean() }), weight: 1 },
  { arbitrary: fc.record({ c: fc.constant('producerIds' as const), b: broker }), weight: 1 },
  { arbitrary: fc.record({ c: fc.constant('failover' as const), loseOne: fc.boolean() }), weight: 1 },
);

const SESSION_MS = 1000;

/** An existing topic when there is one (so most commands act on something). */
function pickTopic(h: Harness, t: number): string {
  const names = [...h.image.topicIdsByName.keys()].sort();
  return names.length === 0 ? TOPICS[t]! : names[t % names.length]!;
}

function run(h: Harness, x: Cmd): void {
  const c = h.controller;
  const epoch = (b: number): number => h.epochs.get(b) ?? -1;
  switch (x.c) {
    case 'register': {
      const prev = h.image.broker(x.b)?.brokerEpoch;
      h.register(x.b, {
        newIncarnation: x.newIncarnation,
        rack: `r${x.rack}`,
        ...(x.clean && prev !== undefined ? { previousBrokerEpoch: prev } : {}),
      });
      return;
    }
    case 'heartbeat':
      h.heartbeat(x.b, { caughtUp: x.caughtUp, wantFence: x.wantFence });
      return;
    case 'advance':
      h.advance(x.ms);
      h.commit(c.tick(h.nowMs));
      return;
    case 'disconnect':
      h.commit(c.brokerDisconnected(x.b, epoch(x.b), h.nowMs));
      return;
    case 'shutdown':
      h.commit(c.controlledShutdown({ brokerId: x.b, brokerEpoch: epoch(x.b) }, h.nowMs));
      return;
    case 'create':
      h.commit(
        c.createTopics(
          {
            topics: [
              {
                name: TOPICS[x.t]!,
                numPartitions: x.partitions,
                replicationFactor: x.rf,
                configs: { 'min.insync.replicas': String(x.minIsr), 'unclean.leader.election.enable': String(x.unclean) },
              },
            ],
          },
          h.nowMs,
        ),
      );
      return;
    case 'delete':
      h.commit(c.deleteTopics({ topicNames: [pickTopic(h, x.t)] }, h.nowMs));
      return;
    case 'addPartitions': {
      const name = pickTopic(h, x.t);
      const t = h.image.topic(name);
      h.commit(c.createPartitions({ topics: [{ name, count: (t?.partitions.length ?? 0) + x.more }] }, h.nowMs));
      return;
    }
    case 'alter': {
      const t = h.image.topic(pickTopic(h, x.t));
      if (t === undefined) return;
      const p = t.partitions[x.p % t.partitions.length]!;
      // Mostly the leader itself with a subset of the replicas; sometimes at a stale
      // partition epoch, from a follower, or naming a broker that is not a replica.
      const subset = p.replicas.filter((_, i) => x.mask[i]);
      const from = x.stale === 2 ? (p.replicas.find((b) => b !== p.leader) ?? p.leader) : p.leader;
      const outsider = x.stale === 3 ? BROKERS.filter((b) => !p.replicas.includes(b)) : [];
      const newIsr = [...new Set([p.leader, ...subset, ...outsider])];
      h.commit(
        c.alterPartition(
          {
            brokerId: from,
            brokerEpoch: epoch(from),
            topicId: p.topicId,
            partition: p.partition,
            leaderEpoch: p.leaderEpoch,
            partitionEpoch: p.partitionEpoch - (x.stale === 1 ? 1 : 0),
            newIsr,
          },
          h.nowMs,
        ),
      );
      return;
    }
    case 'elect':
      h.commit(c.electLeaders({ electionType: x.preferred ? 'preferred' : 'unclean' }, h.nowMs));
      return;
    case 'config':
      h.commit(
        c.incrementalAlterConfigs(
          {
            resources: [
              {
                resourceType: 'topic',
                resourceName: pickTopic(h, x.t),
                configs: [
                  { name: 'min.insync.replicas', op: 'set', value: String(x.minIsr) },
                  { name: 'unclean.leader.election.enable', op: 'set', value: String(x.unclean) },
                ],
              },
            ],
          },
          h.nowMs,
        ),
      );
      return;
    case 'producerIds':
      h.commit(c.allocateProducerIds({ brokerId: x.b, brokerEpoch: epoch(x.b) }, h.nowMs));
      return;
    case 'failover':
      // A proposal that never commits (the old leader lost its term), then a new
      // controller from the committed image.
      if (x.loseOne) c.createTopics({ topics: [{ name: 'lost', numPartitions: 1, replicationFactor: 1 }] }, h.nowMs);
      h.failover();
      return;
  }
}

test('controller invariants hold over random operation sequences', async () => {
  await assertProperty(
    'controller invariants',
    fc.property(fc.array(cmd, { minLength: 1, maxLength: 80, size: 'max' }), fc.integer({ min: 1, max: 1000 }), (cmds, seed) => {
      const h = new Harness({ 'broker.session.timeout.ms': SESSION_MS, 'leader.imbalance.check.interval.ms': 2000 }, seed);
      const hist = newHistory();
      h.startBrokers([1, 2, 3], ['r0', 'r1', 'r2']);
      cmds.forEach((x, i) => {
        run(h, x);
        checkInvariants(h.image, hist, `step ${i} ${JSON.stringify(x)}`);
      });
    }),
    { numRuns: 200 },
  );
});
