// The per-broker group coordinator over an in-memory `__consumer_offsets` partition:
// a new leader replays the partition (in several reads) before it answers for its groups
// (COORDINATOR_LOAD_IN_PROGRESS meanwhile) and then serves exactly what the old one had
// written; losing the partition fails waiting joins and answers NOT_COORDINATOR; a
// write that is not committed changes nothing; deleted groups stay deleted on reload.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { ManualClock } from '../../src/common/clock.ts';
import { ERRORS } from '../../src/common/errors.ts';
import { silentLogger } from '../../src/common/logger.ts';
import { GroupCoordinator, type OffsetsLog } from '../../src/group/coordinator.ts';
import type { GroupConfig, GroupRecord } from '../../src/group/group.ts';
import { groupPartition } from '../../src/group/records.ts';
import { buildBatch, readBatchHeader } from '../../src/log/batch.ts';
import type { OffsetCommitRequest } from '../../src/proto/group.ts';
import { waitFor } from '../support/tmp.ts';

const CONFIG: GroupConfig = { minSessionTimeoutMs: 1000, maxSessionTimeoutMs: 60_000, initialRebalanceDelayMs: 0, maxSize: 10, offsetsRetentionMs: 3_600_000 };
const PARTITIONS = 2;
const PROTOCOL = { protocolType: 'consumer', protocols: [{ name: 'range', metadata: Buffer.from('sub') }] };

/** Group ids that hash to `partition` (Kafka's abs(hashCode) % PARTITIONS). */
function groupsOn(partition: number, n: number): string[] {
  const out: string[] = [];
  for (let i = 0; out.length < n; i++) if (groupPartition(`g${i}`, PARTITIONS) === partition) out.push(`g${i}`);
  return out;
}

/**
 * A replicated partition stand-in: one batch per append, each read returns at most one
 * batch (so a load takes several reads), reads wait while `hold` is set, appends fail
 * while `failAppends` is set.
 */
class MemoryOffsetsLog implements OffsetsLog {
  readonly batches = new Map<number, Buffer[]>();
  readonly ends = new Map<number, number>();
  failAppends = false;
  hold: Promise<void> | undefined;
  reads = 0;

  async append(partition: number, records: GroupRecord[]): Promise<void> {
    if (this.failAppends) throw new Error('not enough replicas');
    const base = this.ends.get(partition) ?? 0;
    const list = this.batches.get(partition) ?? [];
    list.push(buildBatch(records, { baseOffset: base, nowMs: 1 }));
    this.batches.set(partition, list);
    this.ends.set(partition, base + records.length);
  }

  async read(partition: number, fromOffset: number): Promise<{ records: Buffer; logStartOffset: number; logEndOffset: number }> {
    this.reads++;
    await this.hold;
    const list = this.batches.get(partition) ?? [];
    const batch = list.find((b) => readBatchHeader(b).lastOffset >= fromOffset);
    if (batch) return { records: batch, logStartOffset: 0, logEndOffset: this.ends.get(partition) ?? 0 };
    return { records: Buffer.alloc(0), logStartOffset: 0, logEndOffset: this.ends.get(partition) ?? 0 };
  }
}

function coordinator(log: OffsetsLog, clock: ManualClock, brokerId: number): GroupCoordinator {
  return new GroupCoordinator({ brokerId, clock, logger: silentLogger(), log, config: CONFIG, partitionExists: (t, p) => t === 'events' && p >= 0 && p < 4 });
}

async function loaded(c: GroupCoordinator, group: string): Promise<void> {
  await waitFor(`${group} loaded`, () => c.offsetFetch({ groupId: group }).errorCode === 0, 5000, 5);
}

function commitReq(groupId: string, generationId: number, memberId: string, offset: number): OffsetCommitRequest {
  return { groupId, generationId, memberId, topics: [{ name: 'events', partitions: [{ partition: 0, committedOffset: offset, committedMetadata: 'm' }, { partition: 3, committedOffset: offset * 2 }] }] };
}

/** A one-member group through join (MEMBER_ID_REQUIRED first) and sync. */
async function stableMember(c: GroupCoordinator, group: string, assignment: string): Promise<{ memberId: string; generationId: number }> {
  const first = await c.joinGroup({ groupId: group, sessionTimeoutMs: 10_000, ...PROTOCOL }, 'client', 'host');
  assert.equal(first.errorCode, ERRORS.MEMBER_ID_REQUIRED.code);
  const joined = await c.joinGroup({ groupId: group, sessionTimeoutMs: 10_000, memberId: first.memberId, ...PROTOCOL }, 'client', 'host');
  assert.equal(joined.errorCode, 0, joined.errorMessage);
  const synced = await c.syncGroup({ groupId: group, generationId: joined.generationId, memberId: first.memberId, assignments: [{ memberId: first.memberId, assignment: Buffer.from(assignment) }] });
  assert.equal(synced.errorCode, 0, synced.errorMessage);
  return { memberId: first.memberId, generationId: joined.generationId };
}

test('a new coordinator loads the partition before serving and then serves what the old one wrote', async () => {
  const clock = new ManualClock();
  const log = new MemoryOffsetsLog();
  const [gA, gB, gC] = groupsOn(0, 3) as [string, string, string];
  const [gOther] = groupsOn(1, 1) as [string];

  const old = coordinator(log, clock, 1);
  old.onLeadership(PARTITIONS, new Map([[0, 5]]));
  await loaded(old, gA);
  assert.equal((await old.joinGroup({ groupId: gOther, sessionTimeoutMs: 10_000, ...PROTOCOL }, 'c', 'h')).errorCode, ERRORS.NOT_COORDINATOR.code, 'partition 1 is not led here');
  const a = await stableMember(old, gA, 'assignment-a');
  assert.deepEqual((await old.offsetCommit(commitReq(gA, a.generationId, a.memberId, 10))).topics[0]!.partitions.map((p) => p.errorCode), [0, 0]);
  assert.deepEqual((await old.offsetCommit(commitReq(gA, a.generationId, a.memberId, 11))).topics[0]!.partitions.map((p) => p.errorCode), [0, 0]);
  // gB: offsets committed from outside the group (generation -1), no members.
  assert.equal((await old.offsetCommit(commitReq(gB, -1, '', 7))).topics[0]!.partitions[0]!.errorCode, 0);
  // gC: committed, then deleted: it stays deleted on reload.
  assert.equal((await old.offsetCommit(commitReq(gC, -1, '', 3))).topics[0]!.partitions[0]!.errorCode, 0);
  assert.equal((await old.deleteGroups([gC])).results[0]!.errorCode, 0);
  old.onLeadership(PARTITIONS, new Map());
  assert.equal(old.heartbeat({ groupId: gA, generationId: a.generationId, memberId: a.memberId }).errorCode, ERRORS.NOT_COORDINATOR.code, 'the old leader unloaded');
  old.stop();

  // The new leader: requests wait out the load with COORDINATOR_LOAD_IN_PROGRESS.
  let release!: () => void;
  log.hold = new Promise((r) => (release = r));
  const readsBefore = log.reads;
  const next = coordinator(log, clock, 2);
  next.onLeadership(PARTITIONS, new Map([[0, 6]]));
  assert.equal(next.offsetFetch({ groupId: gA }).errorCode, ERRORS.COORDINATOR_LOAD_IN_PROGRESS.code);
  assert.equal(next.heartbeat({ groupId: gA, generationId: a.generationId, memberId: a.memberId }).errorCode, ERRORS.COORDINATOR_LOAD_IN_PROGRESS.code);
  assert.equal((await next.offsetCommit(commitReq(gA, a.generationId, a.memberId, 99))).topics[0]!.partitions[0]!.errorCode, ERRORS.COORDINATOR_LOAD_IN_PROGRESS.code);
  assert.equal(next.describeGroups([gA]).groups[0]!.errorCode, ERRORS.COORDINATOR_LOAD_IN_PROGRESS.code);
  log.hold = undefined;
  release();
  await loaded(next, gA);
  assert.ok(log.reads - readsBefore >= log.batches.get(0)!.length, 'the load read every batch');

  const fetchedA = next.offsetFetch({ groupId: gA, topics: [{ name: 'events', partitions: [0, 1, 3] }] });
  assert.deepEqual(fetchedA.topics[0]!.partitions.map((p) => [p.committedOffset, p.metadata]), [[11, 'm'], [-1, ''], [22, '']]);
  assert.deepEqual(next.offsetFetch({ groupId: gB }).topics, [{ name: 'events', partitions: [0, 3].map((p) => ({ partition: p, committedOffset: p === 0 ? 7 : 14, committedLeaderEpoch: -1, metadata: p === 0 ? 'm' : '', errorCode: 0, errorMessage: '' })) }]);
  assert.deepEqual(next.offsetFetch({ groupId: gC }).topics, [], 'a deleted group has no offsets after the reload');
  assert.equal(next.describeGroups([gC]).groups[0]!.groupState, 'Dead');

  // The member carries on with the same generation and gets its assignment.
  const d = next.describeGroups([gA]).groups[0]!;
  assert.equal(d.groupState, 'Stable');
  assert.equal(d.generationId, a.generationId);
  assert.deepEqual(d.members.map((m) => m.memberId), [a.memberId]);
  assert.equal(next.heartbeat({ groupId: gA, generationId: a.generationId, memberId: a.memberId }).errorCode, 0);
  assert.equal((await next.syncGroup({ groupId: gA, generationId: a.generationId, memberId: a.memberId })).assignment.toString(), 'assignment-a');
  // Fencing still holds after the move.
  assert.equal((await next.offsetCommit(commitReq(gA, a.generationId - 1, a.memberId, 50))).topics[0]!.partitions[0]!.errorCode, ERRORS.ILLEGAL_GENERATION.code);
  assert.equal(next.offsetFetch({ groupId: gA, topics: [{ name: 'events', partitions: [0] }] }).topics[0]!.partitions[0]!.committedOffset, 11);
  assert.deepEqual(next.listGroups([]).groups.map((g) => g.groupId).sort(), [gA, gB].sort());
  next.stop();
});

test('losing the partition fails a waiting join with NOT_COORDINATOR; the next leader resumes at the stored generation', async () => {
  const clock = new ManualClock();
  const log = new MemoryOffsetsLog();
  const [g] = groupsOn(1, 1) as [string];
  const c = coordinator(log, clock, 1);
  c.onLeadership(PARTITIONS, new Map([[1, 0]]));
  await loaded(c, g);
  const a = await stableMember(c, g, 'x');
  // A second member joins: the rebalance waits for the first to rejoin.
  const first = await c.joinGroup({ groupId: g, sessionTimeoutMs: 10_000, ...PROTOCOL }, 'c2', 'h');
  const waiting = c.joinGroup({ groupId: g, sessionTimeoutMs: 10_000, memberId: first.memberId, ...PROTOCOL }, 'c2', 'h');
  assert.equal(c.heartbeat({ groupId: g, generationId: a.generationId, memberId: a.memberId }).errorCode, ERRORS.REBALANCE_IN_PROGRESS.code);
  // A new leader epoch (even on the same broker) means a reload: waiting calls fail.
  c.onLeadership(PARTITIONS, new Map([[1, 1]]));
  assert.equal((await waiting).errorCode, ERRORS.NOT_COORDINATOR.code);
  await loaded(c, g);
  const d = c.describeGroups([g]).groups[0]!;
  assert.equal(d.generationId, a.generationId, 'the unfinished rebalance was never written');
  assert.equal(c.heartbeat({ groupId: g, generationId: a.generationId, memberId: a.memberId }).errorCode, 0);
  c.stop();
});

test('a write that is not committed is answered as an error and changes nothing', async () => {
  const clock = new ManualClock();
  const log = new MemoryOffsetsLog();
  const [g] = groupsOn(0, 1) as [string];
  const c = coordinator(log, clock, 1);
  c.onLeadership(PARTITIONS, new Map([[0, 0]]));
  await loaded(c, g);
  assert.equal((await c.offsetCommit(commitReq(g, -1, '', 5))).topics[0]!.partitions[0]!.errorCode, 0);
  log.failAppends = true;
  const failed = await c.offsetCommit(commitReq(g, -1, '', 6));
  assert.deepEqual(failed.topics[0]!.partitions.map((p) => p.errorCode), [ERRORS.COORDINATOR_NOT_AVAILABLE.code, ERRORS.COORDINATOR_NOT_AVAILABLE.code]);
  assert.equal(c.offsetFetch({ groupId: g, topics: [{ name: 'events', partitions: [0] }] }).topics[0]!.partitions[0]!.committedOffset, 5);
  // Bad partitions are refused one by one; the others are stored.
  log.failAppends = false;
  const mixed = await c.offsetCommit({ groupId: g, generationId: -1, topics: [{ name: 'events', partitions: [{ partition: 0, committedOffset: 8 }, { partition: 9, committedOffset: 8 }, { partition: 1, committedOffset: -4 }] }] });
  assert.deepEqual(mixed.topics[0]!.partitions.map((p) => p.errorCode), [0, ERRORS.UNKNOWN_TOPIC_OR_PARTITION.code, ERRORS.INVALID_COMMIT_OFFSET_SIZE.code]);
  assert.deepEqual(c.offsetFetch({ groupId: g, topics: [{ name: 'events', partitions: [0, 1] }] }).topics[0]!.partitions.map((p) => p.committedOffset), [8, -1]);
  c.stop();
});

test('an empty group with nothing left, and expired offsets, are removed in the log too: the next leader does not bring them back', async () => {
  const clock = new ManualClock();
  const log = new MemoryOffsetsLog();
  const [left, idle, kept] = groupsOn(0, 3) as [string, string, string];
  const c = new GroupCoordinator({ brokerId: 1, clock, logger: silentLogger(), log, config: CONFIG, partitionExists: () => true, tickIntervalMs: 2 });
  c.onLeadership(PARTITIONS, new Map([[0, 0]]));
  c.start();
  await loaded(c, left);
  // `left`: one member that leaves, never committed anything.
  const a = await stableMember(c, left, 'x');
  assert.equal(c.leaveGroup({ groupId: left, members: [{ memberId: a.memberId }] }).members[0]!.errorCode, 0);
  await waitFor(`${left} removed`, () => c.describeGroups([left]).groups[0]!.groupState === 'Dead', 5000, 5);
  // `idle`: offsets committed from outside; they expire after the retention. `kept` is
  // committed later, within the retention.
  assert.equal((await c.offsetCommit(commitReq(idle, -1, '', 4))).topics[0]!.partitions[0]!.errorCode, 0);
  clock.advance(CONFIG.offsetsRetentionMs - 1000);
  assert.equal((await c.offsetCommit(commitReq(kept, -1, '', 6))).topics[0]!.partitions[0]!.errorCode, 0);
  clock.advance(1000);
  await waitFor(`${idle}'s offsets expired`, () => c.offsetFetch({ groupId: idle }).topics.length === 0, 5000, 5);
  assert.deepEqual(c.listGroups([]).groups.map((g) => g.groupId), [kept]);
  c.stop();

  const next = new GroupCoordinator({ brokerId: 2, clock, logger: silentLogger(), log, config: CONFIG, partitionExists: () => true, tickIntervalMs: 2 });
  next.onLeadership(PARTITIONS, new Map([[0, 1]]));
  await loaded(next, left);
  assert.deepEqual(next.listGroups([]).groups.map((g) => g.groupId), [kept]);
  assert.equal(next.describeGroups([left]).groups[0]!.groupState, 'Dead');
  assert.deepEqual(next.offsetFetch({ groupId: idle }).topics, []);
  assert.equal(next.offsetFetch({ groupId: kept, topics: [{ name: 'events', partitions: [0] }] }).topics[0]!.partitions[0]!.committedOffset, 6);
  // The retention of `kept` counts from its commit, not from this load.
  next.start();
  clock.advance(CONFIG.offsetsRetentionMs - 1000);
  await waitFor(`${kept}'s offsets expired`, () => next.offsetFetch({ groupId: kept }).topics.length === 0, 5000, 5);
  next.stop();
});
