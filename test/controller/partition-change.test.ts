import { test } from 'node:test';
import assert from 'node:assert/strict';
import { planPartitionChange, type PartitionChangeInput } from '../../src/controller/partition-change.ts';
import { NO_LEADER, type PartitionState } from '../../src/metadata/index.ts';

const base: PartitionState = {
  topicId: 'AAAAAAAAAAAAAAAAAAAAAA',
  partition: 0,
  replicas: [1, 2, 3],
  isr: [1, 2, 3],
  elr: [],
  lastKnownElr: [],
  leader: 1,
  leaderEpoch: 5,
  partitionEpoch: 9,
};

function plan(p: Partial<PartitionState>, opts: Partial<PartitionChangeInput> & { down?: number[] } = {}) {
  const down = new Set(opts.down ?? []);
  return planPartitionChange({
    partition: { ...base, ...p },
    usable: (b) => !down.has(b),
    minInsyncReplicas: 2,
    uncleanLeaderElectionEnable: false,
    ...opts,
  });
}

test('no change, no record', () => {
  const r = plan({});
  assert.equal(r.record, null);
  assert.equal(r.outcome, 'unchanged');
});

test('shrinking the ISR keeps the leader; epochs follow the record', () => {
  const r = plan({}, { targetIsr: [1, 2] });
  assert.deepEqual(r.record, { type: 'partitionChange', version: 0, topicId: base.topicId, partition: 0, isr: [1, 2] });
  assert.deepEqual([r.after.leaderEpoch, r.after.partitionEpoch], [5, 10]);
});

test('the ISR is kept in replica order whatever order it is given in', () => {
  assert.deepEqual(plan({}, { targetIsr: [3, 1] }).after.isr, [1, 3]);
});

test('clean election picks the first usable ISR member in preference order', () => {
  const r = plan({}, { targetIsr: [2, 3], down: [1, 2] });
  assert.equal(r.outcome, 'clean');
  assert.equal(r.after.leader, 3);
  assert.equal(r.after.leaderEpoch, 6);
});

test('below min ISR the removed replicas go to the ELR; at min ISR the ELR empties', () => {
  let r = plan({}, { targetIsr: [1] });
  assert.deepEqual([r.after.isr, r.after.elr], [[1], [2, 3]]);
  r = plan({ isr: [1], elr: [2, 3] }, { targetIsr: [1, 2] });
  assert.deepEqual([r.after.isr, r.after.elr], [[1, 2], []]);
});

test('ELR election when no ISR member is usable; the new leader joins the ISR', () => {
  const r = plan({ isr: [1], elr: [2, 3], leader: 1 }, { down: [1, 2] });
  assert.equal(r.outcome, 'elr');
  assert.deepEqual([r.after.leader, r.after.isr, r.after.elr], [3, [3], [1, 2]]);
});

test('an unclean restart moves a replica from the ELR to lastKnownElr, which unclean election prefers', () => {
  let r = plan({ isr: [], elr: [2, 3], leader: NO_LEADER }, { down: [1, 2, 3], dropFromElr: new Set([3]) });
  assert.deepEqual([r.after.elr, r.after.lastKnownElr, r.after.leader], [[2], [3], NO_LEADER]);
  assert.equal(r.outcome, 'unchanged', 'still offline');
  r = plan({ isr: [], elr: [], lastKnownElr: [3], leader: NO_LEADER }, { down: [2], uncleanLeaderElectionEnable: true });
  assert.equal(r.outcome, 'unclean');
  assert.deepEqual([r.after.leader, r.after.isr, r.after.elr, r.after.lastKnownElr], [3, [3], [], []]);
});

test('unclean election only when enabled or asked for', () => {
  const offline = { isr: [], elr: [], leader: NO_LEADER } as const;
  assert.equal(plan(offline, { down: [1] }).record, null);
  const reported = { lastWrittenEpoch: 4, logEndOffset: 100 };
  assert.equal(plan(offline, { down: [1], election: 'unclean', replicaLogEnd: () => reported }).after.leader, 2);
  assert.equal(plan(offline, { down: [1], uncleanLeaderElectionEnable: true }).after.leader, 2);
});

test('unclean election takes the most complete reported log: the last written epoch first, then the log end offset', () => {
  const offline = { isr: [], elr: [], leader: NO_LEADER } as const;
  const elect = (ends: Record<number, [epoch: number, logEnd: number]>, extra: Partial<PartitionState> = {}, opts: Partial<PartitionChangeInput> & { down?: number[] } = {}) =>
    plan(
      { ...offline, ...extra },
      {
        election: 'unclean',
        replicaLogEnd: (b) => (ends[b] ? { lastWrittenEpoch: ends[b][0], logEndOffset: ends[b][1] } : undefined),
        ...opts,
      },
    );
  const leader = (...args: Parameters<typeof elect>) => elect(...args).after.leader;
  assert.equal(leader({ 1: [4, 100], 2: [4, 180], 3: [4, 150] }), 2, 'the longest log of one epoch');
  assert.equal(leader({ 1: [4, 100], 2: [3, 180], 3: [5, 120] }), 3, 'a later epoch beats a longer log of an earlier one');
  assert.equal(leader({ 1: [4, 100], 2: [4, 180] }, {}, { down: [2, 3] }), 1, 'an unusable replica is never chosen, however long its log');
  assert.equal(leader({ 1: [4, 150], 2: [4, 150], 3: [4, 150] }, { lastKnownElr: [2] }), 2, 'equal logs: lastKnownElr first');
  assert.equal(leader({ 1: [4, 150], 2: [4, 150], 3: [4, 120] }), 1, 'equal logs: replica order');
  // An admin's election waits for every usable replica's report...
  const waiting = elect({ 3: [4, 100] }, {}, { down: [2] });
  assert.deepEqual([waiting.record, waiting.outcome, waiting.awaitingLogEnds], [null, 'unchanged', [1]]);
  // ...and for replicas whose brokers are starting (fenced, heartbeating), not for those down.
  const starting = elect({ 1: [4, 100], 2: [4, 100] }, {}, { down: [3], starting: (b) => b === 3 });
  assert.deepEqual([starting.record, starting.awaitingLogEnds], [null, [3]]);
  assert.equal(leader({ 1: [4, 100], 2: [4, 120] }, {}, { down: [3], starting: () => false }), 2);
  // ...the topic config's does not: a report beats none, then lastKnownElr, then replica order.
  const auto = { election: 'ifNeeded', uncleanLeaderElectionEnable: true } as const;
  assert.equal(leader({ 3: [1, 10] }, {}, auto), 3);
  assert.equal(leader({}, {}, auto), 1);
  assert.equal(leader({}, { lastKnownElr: [3] }, auto), 3);
  assert.equal(elect({}, {}, auto).awaitingLogEnds, undefined);
  // The reports change nothing where a clean or ELR leader exists.
  const r = plan({ isr: [], elr: [3], leader: NO_LEADER }, { election: 'unclean', replicaLogEnd: (b) => ({ lastWrittenEpoch: 4, logEndOffset: b === 1 ? 500 : 100 }) });
  assert.deepEqual([r.outcome, r.after.leader], ['elr', 3]);
});

test('a leader that is fenced and alone goes offline, into the ELR', () => {
  const r = plan({ isr: [1], leader: 1 }, { targetIsr: [], down: [1] });
  assert.equal(r.outcome, 'offline');
  assert.deepEqual([r.after.leader, r.after.isr, r.after.elr, r.after.leaderEpoch], [NO_LEADER, [], [1], 6]);
});

test('preferred election moves leadership back only to a usable ISR member', () => {
  assert.equal(plan({ leader: 2 }, { election: 'preferred' }).after.leader, 1);
  assert.equal(plan({ leader: 2 }, { election: 'preferred' }).outcome, 'preferred');
  assert.equal(plan({ leader: 2, isr: [2, 3] }, { election: 'preferred' }).record, null);
  assert.equal(plan({ leader: 2 }, { election: 'preferred', down: [1] }).record, null);
});
