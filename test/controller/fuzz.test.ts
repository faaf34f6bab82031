// Bad input never crashes the controller and never produces a record the log cannot
// hold [DESIGN invariant 5]: requests whose fields have the wrong types, out-of-range
// numbers, huge or empty strings. Every handler must answer with an error code (or
// succeed), and whatever records it returns must encode, decode, replay and keep the
// invariants.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import fc from 'fast-check';
import { isRaftkaError } from '../../src/common/errors.ts';
import { assertProperty } from '../support/property.ts';
import { Harness, checkInvariants, incarnation, newHistory } from './harness.ts';

// Mostly the right type with odd values (so the semantic checks run), sometimes junk
// (so the structural checks do).
const junk: fc.Arbitrary<unknown> = fc.oneof(
  fc.double(),
  fc.constantFrom(NaN, Infinity, -Infinity, 2 ** 53, null, undefined, {}, [], true),
  fc.string({ maxLength: 3 }),
);
const wildInt: fc.Arbitrary<unknown> = fc.oneof(
  { arbitrary: fc.integer({ min: -2, max: 6 }), weight: 12 },
  { arbitrary: fc.constantFrom(-1, 0, 2 ** 31, -(2 ** 31), Number.MAX_SAFE_INTEGER), weight: 3 },
  { arbitrary: fc.integer(), weight: 2 },
  { arbitrary: junk, weight: 1 },
);
const wildString: fc.Arbitrary<unknown> = fc.oneof(
  {
    arbitrary: fc.constantFrom('a', 'b', 't', '', '.', '..', 'a.b', 'a_b', 'min.insync.replicas', 'retention.ms', 'unclean.leader.election.enable', 'true', '2'),
    weight: 12,
  },
  { arbitrary: fc.string({ maxLength: 8 }), weight: 3 },
  { arbitrary: fc.string({ minLength: 249, maxLength: 260 }), weight: 1 },
  { arbitrary: junk, weight: 1 },
);
const wildList = (item: fc.Arbitrary<unknown>): fc.Arbitrary<unknown> =>
  fc.oneof({ arbitrary: fc.array(item, { maxLength: 4 }), weight: 12 }, { arbitrary: junk, weight: 1 });
const wildBool: fc.Arbitrary<unknown> = fc.oneof({ arbitrary: fc.boolean(), weight: 12 }, { arbitrary: junk, weight: 1 });

type Call = { handler: string; req: unknown };

const calls: fc.Arbitrary<Call> = fc.oneof(
  fc.record({
    handler: fc.constant('registerBroker'),
    req: fc.record({
      brokerId: wildInt,
      incarnationId: fc.oneof(fc.constant(incarnation(1, 9)), fc.constant(incarnation(7, 0)), wildString),
      endpoints: wildList(fc.record({ name: wildString, host: wildString, port: wildInt })),
      rack: wildString,
      previousBrokerEpoch: wildInt,
    }),
  }),
  fc.record({
    handler: fc.constant('brokerHeartbeat'),
    req: fc.record(
      {
        brokerId: wildInt,
        brokerEpoch: wildInt,
        currentMetadataOffset: wildInt,
        caughtUp: wildBool,
        wantFence: wildBool,
        wantShutDown: wildBool,
        leaderlessReplicas: wildList(fc.record({ topicId: wildString, partition: wildInt, leaderEpoch: wildInt, lastWrittenEpoch: wildInt, logEndOffset: wildInt })),
      },
      { requiredKeys: ['brokerId', 'brokerEpoch', 'currentMetadataOffset', 'caughtUp', 'wantFence', 'wantShutDown'] },
    ),
  }),
  fc.record({ handler: fc.constant('controlledShutdown'), req: fc.record({ brokerId: wildInt, brokerEpoch: wildInt }) }),
  fc.record({ handler: fc.constant('unregisterBroker'), req: fc.record({ brokerId: wildInt }) }),
  fc.record({
    handler: fc.constant('createTopics'),
    req: fc.record({
      topics: wildList(
        fc.record(
          {
            name: wildString,
            numPartitions: wildInt,
            replicationFactor: wildInt,
            assignments: fc.oneof({ arbitrary: fc.constant(undefined), weight: 4 }, { arbitrary: wildList(wildList(wildInt)), weight: 1 }),
            configs: fc.oneof(
              { arbitrary: fc.constant({}), weight: 3 },
              { arbitrary: fc.constantFrom({ 'min.insync.replicas': '2' }, { 'unclean.leader.election.enable': 'true' }, { 'flush.before.ack': 'false' }), weight: 3 },
              { arbitrary: fc.dictionary(wildString.map(String), wildString as fc.Arbitrary<string>, { maxKeys: 3 }), weight: 1 },
              { arbitrary: junk, weight: 1 },
            ),
          },
          { requiredKeys: ['name', 'assignments', 'configs'] },
        ),
      ),
      validateOnly: wildBool,
    }),
  }),
  fc.record({ handler: fc.constant('deleteTopics'), req: fc.record({ topicNames: wildList(wildString), topicIds: wildList(wildString) }) }),
  fc.record({
    handler: fc.constant('createPartitions'),
    req: fc.record({ topics: wildList(fc.record({ name: wildString, count: wildInt, assignments: wildList(wildList(wildInt)) }, { requiredKeys: ['name', 'count'] })) }),
  }),
  fc.record({
    handler: fc.constant('alterPartition'),
    req: fc.record({
      brokerId: wildInt,
      brokerEpoch: wildInt,
      topicId: wildString,
      partition: wildInt,
      leaderEpoch: wildInt,
      partitionEpoch: wildInt,
      newIsr: wildList(wildInt),
      newIsrBrokerEpochs: wildList(fc.record({ brokerId: wildInt, brokerEpoch: wildInt })),
    }),
  }),
  fc.record({
    handler: fc.constant('electLeaders'),
    req: fc.record({ electionType: fc.constantFrom('preferred', 'unclean', 'bogus'), partitions: wildList(fc.record({ topic: wildString, partition: wildInt })) }),
  }),
  fc.record({
    handler: fc.constant('incrementalAlterConfigs'),
    req: fc.record({
      resources: wildList(
        fc.record({
          resourceType: fc.constantFrom('topic', 'cluster', 'broker', 'user', null),
          resourceName: wildString,
          configs: wildList(fc.record({ name: wildString, op: fc.constantFrom('set', 'delete', 'x', null), value: wildString })),
        }),
      ),
    }),
  }),
  fc.record({ handler: fc.constant('allocateProducerIds'), req: fc.record({ brokerId: wildInt, brokerEpoch: wildInt }) }),
);

test('malformed requests get error codes, never crashes or unreadable records', async () => {
  await assertProperty(
    'controller survives malformed requests',
    fc.property(fc.array(calls, { minLength: 1, maxLength: 30 }), (cs) => {
      const h = new Harness({ 'broker.session.timeout.ms': 1000 });
      h.startBrokers([1, 2, 3]);
      h.createTopic('t', 2, 2);
      const hist = newHistory();
      const c = h.controller as unknown as Record<string, (req: unknown, now: number) => { records: unknown[]; response: unknown }>;
      for (const call of cs) {
        const before = h.controller.image;
        let result: { records: unknown[]; response: unknown };
        try {
          result = c[call.handler]!.call(h.controller, call.req, h.nowMs);
        } catch (e) {
          // Malformed as a whole: refused before touching anything.
          assert.ok(isRaftkaError(e, 'INVALID_REQUEST'), String(e));
          assert.equal(h.controller.image, before);
          continue;
        }
        assert.ok(result.response !== undefined);
        h.commit(result as never);
        checkInvariants(h.image, hist, `${call.handler} ${JSON.stringify(call.req)}`);
      }
    }),
    { numRuns: 300 },
  );
});
