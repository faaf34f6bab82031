// The group state machine with a manual clock and an in-memory "partition": membership,
// generation fencing, session and rebalance timers, static members, offset retention,
// and a reload from the written records giving the same groups back.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import fc from 'fast-check';
import { ManualClock } from '../../src/common/clock.ts';
import { ERRORS } from '../../src/common/errors.ts';
import { Group, type GroupConfig, type GroupRecord } from '../../src/group/group.ts';
import { decodeGroupValue, decodeKey, decodeOffsetValue, encodeGroupValue, encodeKey, encodeOffsetValue, groupPartition } from '../../src/group/records.ts';
import type { JoinGroupResponse } from '../../src/proto/group.ts';
import { assertProperty } from '../support/property.ts';

const CONFIG: GroupConfig = { minSessionTimeoutMs: 1000, maxSessionTimeoutMs: 60_000, initialRebalanceDelayMs: 0, maxSize: 10, offsetsRetentionMs: 60_000 };
const PROTOCOLS = (meta = 'm') => [{ name: 'range', metadata: Buffer.from(meta) }];

function setup(config: GroupConfig = CONFIG) {
  const clock = new ManualClock();
  const written: GroupRecord[] = [];
  const group = new Group('g', clock, config, async (records) => {
    written.push(...records);
  });
  return { clock, written, group };
}

/** Joins with MEMBER_ID_REQUIRED first, as a real client does; returns the pending join. */
async function joinNew(group: Group, opts: { session?: number; rebalance?: number; instance?: string; meta?: string } = {}): Promise<{ memberId: string; joined: Promise<JoinGroupResponse> }> {
  const base = { groupId: 'g', sessionTimeoutMs: opts.session ?? 10_000, rebalanceTimeoutMs: opts.rebalance ?? 5_000, protocolType: 'consumer', protocols: PROTOCOLS(opts.meta), groupInstanceId: opts.instance ?? '' };
  if (opts.instance) {
    const joined = group.join(base, 'client', 'host');
    return { memberId: '', joined };
  }
  const first = await group.join(base, 'client', 'host');
  assert.equal(first.errorCode, ERRORS.MEMBER_ID_REQUIRED.code);
  return { memberId: first.memberId, joined: group.join({ ...base, memberId: first.memberId }, 'client', 'host') };
}

test('one member: join, sync, heartbeat, commit; fencing of old generations and strangers', async () => {
  const { group } = setup();
  const a = await joinNew(group);
  const ja = await a.joined;
  assert.equal(ja.errorCode, 0);
  assert.equal(ja.leader, a.memberId);
  assert.equal(ja.generationId, 1);
  assert.equal(group.state, 'CompletingRebalance');
  const sa = await group.sync({ groupId: 'g', generationId: 1, memberId: a.memberId, assignments: [{ memberId: a.memberId, assignment: Buffer.from('p0') }] });
  assert.equal(sa.assignment.toString(), 'p0');
  assert.equal(group.state, 'Stable');
  assert.equal(group.heartbeat({ groupId: 'g', generationId: 1, memberId: a.memberId }).errorCode, 0);
  assert.equal(group.heartbeat({ groupId: 'g', generationId: 0, memberId: a.memberId }).errorCode, ERRORS.ILLEGAL_GENERATION.code);
  assert.equal(group.heartbeat({ groupId: 'g', generationId: 1, memberId: 'x' }).errorCode, ERRORS.UNKNOWN_MEMBER_ID.code);
  assert.equal(group.commitAllowed(0, a.memberId, undefined).errorCode, ERRORS.ILLEGAL_GENERATION.code);
  assert.equal(group.commitAllowed(-1, '', undefined).errorCode, ERRORS.UNKNOWN_MEMBER_ID.code);
  assert.equal(group.commitAllowed(1, a.memberId, undefined).errorCode, 0);
});

test('a second member triggers a rebalance: the first learns it from its heartbeat, both get generation 2', async () => {
  const { group } = setup();
  const a = await joinNew(group);
  await a.joined;
  await group.sync({ groupId: 'g', generationId: 1, memberId: a.memberId, assignments: [] });
  const b = await joinNew(group);
  assert.equal(group.state, 'PreparingRebalance');
  assert.equal(group.heartbeat({ groupId: 'g', generationId: 1, memberId: a.memberId }).errorCode, ERRORS.REBALANCE_IN_PROGRESS.code);
  const ra = group.join({ groupId: 'g', memberId: a.memberId, sessionTimeoutMs: 10_000, rebalanceTimeoutMs: 5_000, protocolType: 'consumer', protocols: PROTOCOLS() }, 'c', 'h');
  const [ja, jb] = await Promise.all([ra, b.joined]);
  assert.equal(ja.generationId, 2);
  assert.equal(jb.generationId, 2);
  assert.equal(ja.leader, a.memberId, 'the leader stays');
  assert.equal(ja.members.length, 2);
  assert.equal(jb.members.length, 0, 'only the leader sees the members');
  // The follower's sync waits for the leader's.
  const sb = group.sync({ groupId: 'g', generationId: 2, memberId: b.memberId });
  const sa = await group.sync({ groupId: 'g', generationId: 2, memberId: a.memberId, assignments: [{ memberId: a.memberId, assignment: Buffer.from('A') }, { memberId: b.memberId, assignment: Buffer.from('B') }] });
  assert.equal(sa.assignment.toString(), 'A');
  assert.equal((await sb).assignment.toString(), 'B');
});

test('a member whose session expires is removed; one that misses the rebalance deadline is dropped from the generation', async () => {
  const { group, clock } = setup();
  const a = await joinNew(group, { session: 10_000, rebalance: 3000 });
  await a.joined;
  await group.sync({ groupId: 'g', generationId: 1, memberId: a.memberId, assignments: [] });
  const b = await joinNew(group, { session: 10_000, rebalance: 3000 });
  // a never rejoins: after the rebalance timeout the generation completes without it.
  clock.advance(2999);
  group.tick();
  assert.equal(group.state, 'PreparingRebalance');
  clock.advance(2);
  group.tick();
  const jb = await b.joined;
  assert.equal(jb.errorCode, 0);
  assert.equal(jb.leader, b.memberId);
  assert.deepEqual([...group.members.keys()], [b.memberId]);
  await group.sync({ groupId: 'g', generationId: jb.generationId, memberId: b.memberId, assignments: [] });
  // b stops heartbeating: its session expires and the group empties.
  clock.advance(9999);
  group.tick();
  assert.equal(group.members.size, 1);
  clock.advance(2);
  group.tick();
  assert.equal(group.members.size, 0);
  assert.equal(group.state, 'Empty');
});

test('a static member restarting within its session keeps its assignment without a rebalance [KIP-345]', async () => {
  const { group } = setup();
  const a = await joinNew(group, { instance: 'pod-a' });
  const ja = await a.joined;
  await group.sync({ groupId: 'g', generationId: ja.generationId, memberId: ja.memberId, assignments: [{ memberId: ja.memberId, assignment: Buffer.from('mine') }] });
  const gen = group.generation;
  // The restart: a join without member id, same instance id and subscription.
  const again = await group.join({ groupId: 'g', sessionTimeoutMs: 10_000, protocolType: 'consumer', protocols: PROTOCOLS(), groupInstanceId: 'pod-a' }, 'client', 'host');
  assert.equal(again.errorCode, 0);
  assert.notEqual(again.memberId, ja.memberId);
  assert.equal(again.generationId, gen, 'no new generation');
  assert.equal(group.state, 'Stable');
  const s = await group.sync({ groupId: 'g', generationId: gen, memberId: again.memberId, groupInstanceId: 'pod-a' });
  assert.equal(s.assignment.toString(), 'mine');
  // The old incarnation is fenced.
  assert.equal(group.heartbeat({ groupId: 'g', generationId: gen, memberId: ja.memberId, groupInstanceId: 'pod-a' }).errorCode, ERRORS.FENCED_INSTANCE_ID.code);
});

test('bad joins: session timeout out of range, protocol type mismatch; nothing changes', async () => {
  const { group } = setup();
  const tooShort = await group.join({ groupId: 'g', sessionTimeoutMs: 10, protocolType: 'consumer', protocols: PROTOCOLS() }, 'c', 'h');
  assert.equal(tooShort.errorCode, ERRORS.INVALID_SESSION_TIMEOUT.code);
  const a = await joinNew(group);
  await a.joined;
  const other = await group.join({ groupId: 'g', sessionTimeoutMs: 10_000, protocolType: 'connect', protocols: PROTOCOLS(), memberId: '' }, 'c', 'h');
  assert.equal(other.errorCode, ERRORS.INCONSISTENT_GROUP_PROTOCOL.code);
  assert.equal(group.members.size, 1);
});

test('offsets of an empty group expire after the retention, as tombstones', async () => {
  const { group, clock, written } = setup();
  await group.commit([{ topic: 't', partition: 0, offset: 5, leaderEpoch: 0, metadata: '', commitTimestamp: clock.nowMs() }]);
  assert.equal(group.committed('t', 0)?.offset, 5);
  clock.advance(59_999);
  assert.deepEqual(group.tick(), []);
  clock.advance(1);
  const expired = group.tick();
  assert.equal(expired.length, 1);
  assert.equal(expired[0]!.value, null, 'a tombstone');
  assert.equal(group.committed('t', 0), undefined);
  assert.ok(written.length >= 1);
});

test('a group reloaded from its records has the same generation, members, assignments and offsets', async () => {
  const { group, clock, written } = setup();
  const a = await joinNew(group);
  const ja = await a.joined;
  await group.sync({ groupId: 'g', generationId: ja.generationId, memberId: a.memberId, assignments: [{ memberId: a.memberId, assignment: Buffer.from('asg') }] });
  await group.commit([{ topic: 't', partition: 3, offset: 9, leaderEpoch: 1, metadata: 'md', commitTimestamp: clock.nowMs() }]);
  const reloaded = new Group('g', clock, CONFIG, async () => {});
  for (const r of written) {
    const k = decodeKey(r.key)!;
    if (k.kind === 'group') reloaded.restore(r.value ? decodeGroupValue(r.value) : null);
    else reloaded.restoreOffset(k.topic, k.partition, r.value ? decodeOffsetValue(r.value) : null);
  }
  assert.equal(reloaded.state, 'Stable');
  assert.equal(reloaded.generation, group.generation);
  assert.equal(reloaded.leader, a.memberId);
  assert.equal(reloaded.heartbeat({ groupId: 'g', generationId: ja.generationId, memberId: a.memberId }).errorCode, 0);
  assert.equal((await reloaded.sync({ groupId: 'g', generationId: ja.generationId, memberId: a.memberId })).assignment.toString(), 'asg');
  assert.deepEqual(reloaded.committed('t', 3), group.committed('t', 3));
});

test('records round-trip (property)', async () => {
  const str = fc.string({ maxLength: 40 });
  await assertProperty(
    'group records round-trip',
    fc.property(
      fc.tuple(
      str,
      str,
      fc.integer({ min: 0, max: 1000 }),
      fc.record({ offset: fc.integer({ min: 0, max: Number.MAX_SAFE_INTEGER }), leaderEpoch: fc.integer({ min: -1, max: 1000 }), metadata: str, commitTimestamp: fc.integer({ min: 0, max: 2 ** 45 }) }),
      fc.array(fc.record({ memberId: str, groupInstanceId: fc.option(str, { nil: null }), clientId: str, clientHost: str, rebalanceTimeoutMs: fc.nat(), sessionTimeoutMs: fc.nat(), subscription: fc.uint8Array({ maxLength: 20 }).map((a) => Buffer.from(a)), assignment: fc.uint8Array({ maxLength: 20 }).map((a) => Buffer.from(a)) }), { maxLength: 4 }),
      ),
      ([group, topic, partition, offset, members]) => {
      assert.deepEqual(decodeKey(encodeKey({ kind: 'offset', group, topic, partition })), { kind: 'offset', group, topic, partition });
      assert.deepEqual(decodeKey(encodeKey({ kind: 'group', group })), { kind: 'group', group });
      assert.deepEqual(decodeOffsetValue(encodeOffsetValue(offset)), { ...offset });
      const v = { protocolType: 'consumer', generation: 3, protocol: members.length ? 'range' : null, leader: members[0]?.memberId ?? null, stateTimestamp: 12345, members: members.map((m) => ({ ...m })) };
      assert.deepEqual(decodeGroupValue(encodeGroupValue(v)), v);
    }),
  );
});

test("the coordinator partition is Kafka's: abs(String.hashCode) % partitions", () => {
  // Java: "ab".hashCode() == 97 * 31 + 98 == 3105; "hello".hashCode() == 99162322.
  assert.equal(groupPartition('ab', 1000), 105);
  assert.equal(groupPartition('hello', 50), 99162322 % 50);
  assert.equal(groupPartition('', 12), 0);
  // Java "polygenelubricants".hashCode() == Integer.MIN_VALUE; Utils.abs maps it to 0.
  assert.equal(groupPartition('polygenelubricants', 12), 0);
});

test('a member that lost its JoinGroup answer rejoins with the same metadata and gets the same generation, leader included', async () => {
  const { group } = setup();
  const a = await joinNew(group);
  const ja = await a.joined;
  const again = await group.join({ groupId: 'g', memberId: a.memberId, sessionTimeoutMs: 10_000, rebalanceTimeoutMs: 5_000, protocolType: 'consumer', protocols: PROTOCOLS() }, 'c', 'h');
  assert.equal(group.state, 'CompletingRebalance');
  assert.deepEqual([again.errorCode, again.generationId, again.leader, again.members.length], [0, ja.generationId, a.memberId, 1]);
  await group.sync({ groupId: 'g', generationId: ja.generationId, memberId: a.memberId, assignments: [] });
  // In Stable the leader's rejoin asks for a new assignment: a rebalance.
  const leaderRejoin = group.join({ groupId: 'g', memberId: a.memberId, sessionTimeoutMs: 10_000, rebalanceTimeoutMs: 5_000, protocolType: 'consumer', protocols: PROTOCOLS() }, 'c', 'h');
  assert.equal((await leaderRejoin).generationId, ja.generationId + 1);
});
