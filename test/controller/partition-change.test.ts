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
  assert.equal(plan(offline, { down: [1], election: 'unclean' }).after.leader, 2);
  assert.equal(plan(offline, { down: [1], uncleanLeaderElectionEnable: true }).after.leader, 2);
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
