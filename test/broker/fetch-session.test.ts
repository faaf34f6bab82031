// Incremental replica fetch sessions [KIP-227]: the leader's session cache and the
// follower's session, alone and against each other with requests and answers lost.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import fc from 'fast-check';
import { FetchSessionCache, FollowerFetchSession, markSent, nextSessionEpoch, worthSending, type LeaderFetchSession } from '../../src/broker/fetch-session.ts';
import { tpKey, type ReplicaFetchPartition, type ReplicaFetchPartitionResponse, type ReplicaFetchRequest } from '../../src/broker/types.ts';
import { ERRORS } from '../../src/common/errors.ts';
import { assertProperty } from '../support/property.ts';

const T = 'AAAAAAAAAAAAAAAAAAAAAA';

function fetchOf(partition: number, fetchOffset: number, flushedOffset = fetchOffset): ReplicaFetchPartition {
  return { topicId: T, partition, currentLeaderEpoch: 1, fetchOffset, lastFetchedEpoch: 1, flushedOffset, maxBytes: 1 << 20 };
}

function wantedOf(...fetches: ReplicaFetchPartition[]): Map<string, ReplicaFetchPartition> {
  return new Map(fetches.map((f) => [tpKey(f.topicId, f.partition), f]));
}

function request(replicaId: number, part: ReturnType<FollowerFetchSession['build']>): ReplicaFetchRequest {
  return { replicaId, brokerEpoch: 1, maxWaitMs: 0, minBytes: 1, maxBytes: 1 << 20, ...part };
}

function sessionOf(r: ReturnType<FetchSessionCache['resolve']>): LeaderFetchSession {
  if ('errorCode' in r) throw new Error(`refused: ${r.message}`);
  return r.session;
}

function answer(hw: number, records = 0, errorCode = 0): ReplicaFetchPartitionResponse {
  return { topicId: T, partition: 0, errorCode, highWatermark: hw, logStartOffset: 0, logEndOffset: hw, records: Buffer.alloc(records) };
}

test('a full fetch opens a session; incremental fetches carry only changed and forgotten partitions', () => {
  const leader = new FetchSessionCache(() => 42);
  const follower = new FollowerFetchSession();

  const full = follower.build(wantedOf(fetchOf(0, 10), fetchOf(1, 20), fetchOf(2, 30)));
  assert.deepEqual([full.sessionId, full.sessionEpoch, full.partitions.length, full.forgotten.length], [0, 0, 3, 0]);
  const s = sessionOf(leader.resolve(request(2, full), 0));
  assert.equal(s.id, 42);
  follower.answered(s.id);

  // Nothing changed: an empty incremental fetch still reaches the leader (it is the long poll).
  const same = follower.build(wantedOf(fetchOf(0, 10), fetchOf(1, 20), fetchOf(2, 30)));
  assert.deepEqual([same.sessionId, same.sessionEpoch, same.partitions, same.forgotten], [42, 1, [], []]);
  assert.equal(sessionOf(leader.resolve(request(2, same), 0)), s);
  follower.answered(s.id);

  // Partition 1 moved (offset), partition 2 only flushed, partition 0 is dropped, 3 is new.
  const inc = follower.build(wantedOf(fetchOf(1, 25), fetchOf(2, 30, 31), fetchOf(3, 0)));
  assert.equal(inc.sessionEpoch, 2);
  assert.deepEqual(inc.partitions.map((p) => p.partition).sort(), [1, 2, 3]);
  assert.deepEqual(inc.forgotten, [{ topicId: T, partition: 0 }]);
  sessionOf(leader.resolve(request(2, inc), 0));
  assert.deepEqual([...s.partitions.values()].map((sp) => [sp.fetch.partition, sp.fetch.fetchOffset, sp.fetch.flushedOffset]).sort(), [[1, 25, 25], [2, 30, 31], [3, 0, 0]]);
  assert.deepEqual(s.parkKeys(), [1, 2, 3].map((p) => `leo:${tpKey(T, p)}`));
});

test('an unknown session or an unexpected epoch is refused with its code, and a full fetch starts over', () => {
  let next = 7;
  const leader = new FetchSessionCache(() => next++);
  const s = sessionOf(leader.resolve(request(2, { sessionId: 0, sessionEpoch: 0, partitions: [fetchOf(0, 1)], forgotten: [] }), 0));
  const unknown = leader.resolve(request(2, { sessionId: s.id + 100, sessionEpoch: 1, partitions: [], forgotten: [] }), 0);
  assert.ok('errorCode' in unknown && unknown.errorCode === ERRORS.FETCH_SESSION_ID_NOT_FOUND.code);
  // Another replica's session is not this one's.
  const other = leader.resolve(request(3, { sessionId: s.id, sessionEpoch: 1, partitions: [], forgotten: [] }), 0);
  assert.ok('errorCode' in other && other.errorCode === ERRORS.FETCH_SESSION_ID_NOT_FOUND.code);
  // A retried (already seen) epoch: refused, and the session is gone for good.
  sessionOf(leader.resolve(request(2, { sessionId: s.id, sessionEpoch: 1, partitions: [], forgotten: [] }), 0));
  const stale = leader.resolve(request(2, { sessionId: s.id, sessionEpoch: 1, partitions: [], forgotten: [] }), 0);
  assert.ok('errorCode' in stale && stale.errorCode === ERRORS.INVALID_FETCH_SESSION_EPOCH.code);
  const gone = leader.resolve(request(2, { sessionId: s.id, sessionEpoch: 2, partitions: [], forgotten: [] }), 0);
  assert.ok('errorCode' in gone && gone.errorCode === ERRORS.FETCH_SESSION_ID_NOT_FOUND.code);
  const fresh = sessionOf(leader.resolve(request(2, { sessionId: 0, sessionEpoch: 0, partitions: [fetchOf(0, 1)], forgotten: [] }), 0));
  assert.notEqual(fresh.id, s.id);
});

test('a new session never reuses the id it replaces, and idle sessions are evicted', () => {
  const leader = new FetchSessionCache(() => 5);
  const a = sessionOf(leader.resolve(request(2, { sessionId: 0, sessionEpoch: 0, partitions: [], forgotten: [] }), 0));
  const b = sessionOf(leader.resolve(request(2, { sessionId: 0, sessionEpoch: 0, partitions: [], forgotten: [] }), 0));
  assert.notEqual(a.id, b.id);
  sessionOf(leader.resolve(request(3, { sessionId: 0, sessionEpoch: 0, partitions: [], forgotten: [] }), 50_000));
  assert.equal(leader.size, 2);
  assert.equal(leader.evictIdle(120_000), 1);
  assert.equal(leader.size, 1);
  const late = leader.resolve(request(2, { sessionId: b.id, sessionEpoch: 1, partitions: [], forgotten: [] }), 120_000);
  assert.ok('errorCode' in late && late.errorCode === ERRORS.FETCH_SESSION_ID_NOT_FOUND.code);
});

test('session epochs wrap from 2^31-1 to 1, never to 0 (a full fetch)', () => {
  assert.equal(nextSessionEpoch(1), 2);
  assert.equal(nextSessionEpoch(0x7fffffff), 1);
});

test('an answer is worth sending with records, an error, a divergence, or a HW / log start the follower was not told', () => {
  const leader = new FetchSessionCache();
  const s = sessionOf(leader.resolve(request(2, { sessionId: 0, sessionEpoch: 0, partitions: [fetchOf(0, 5)], forgotten: [] }), 0));
  const sp = s.partitions.get(tpKey(T, 0))!;
  assert.ok(worthSending(sp, answer(5)), 'first answer: the follower knows nothing yet');
  markSent(sp, answer(5));
  assert.ok(!worthSending(sp, answer(5)));
  assert.ok(worthSending(sp, answer(6)), 'new HW');
  assert.ok(worthSending(sp, { ...answer(5), logStartOffset: 3 }), 'new log start');
  assert.ok(worthSending(sp, answer(5, 100)), 'records');
  assert.ok(worthSending(sp, answer(5, 0, ERRORS.NOT_LEADER_OR_FOLLOWER.code)), 'error');
  assert.ok(worthSending(sp, { ...answer(5), divergingEpoch: { epoch: 1, endOffset: 3 } }), 'divergence');
});

// The follower's states change at random; requests and answers get lost at random. After
// every answered request the leader's session holds exactly the follower's current fetch
// state for exactly the partitions it wants, whatever was lost before.
test('property: with requests and answers lost, an answered fetch leaves the leader session equal to what the follower fetches', async () => {
  const step = fc.record({
    wanted: fc.dictionary(fc.integer({ min: 0, max: 7 }).map(String), fc.record({ fetchOffset: fc.nat(50), flushedLag: fc.nat(3), epoch: fc.integer({ min: 1, max: 3 }) }), { maxKeys: 8 }),
    fate: fc.constantFrom('answered', 'answered', 'answered', 'request lost', 'answer lost'),
    evict: fc.boolean(),
  });
  await assertProperty(
    'fetch session agreement',
    fc.property(fc.array(step, { minLength: 1, maxLength: 40 }), (steps) => {
      const leader = new FetchSessionCache();
      const follower = new FollowerFetchSession();
      let now = 0;
      for (const { wanted, fate, evict } of steps) {
        now += 1_000;
        if (evict) leader.evictIdle(now, 1_000);
        const want = new Map<string, ReplicaFetchPartition>();
        for (const [p, v] of Object.entries(wanted)) {
          const f = { ...fetchOf(Number(p), v.fetchOffset, Math.max(0, v.fetchOffset - v.flushedLag)), currentLeaderEpoch: v.epoch };
          want.set(tpKey(T, f.partition), f);
        }
        const req = request(2, follower.build(want));
        if (fate === 'request lost') {
          follower.reset();
          continue;
        }
        const r = leader.resolve(req, now);
        if ('errorCode' in r || fate === 'answer lost') {
          follower.reset();
          continue;
        }
        follower.answered(r.session.id);
        const held = new Map([...r.session.partitions].map(([k, sp]) => [k, sp.fetch]));
        assert.deepEqual(held, want);
      }
    }),
  );
});
