import { test, type TestContext } from 'node:test';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import assert from 'node:assert/strict';
import fc from 'fast-check';
import { LeaderState, type LeaderStateInit } from '../../src/replication/leader-state.ts';
import { divergenceTruncationOffset, type EpochLookup } from '../../src/replication/truncation.ts';
import { LeaderEpochCache } from '../../src/log/leader-epoch.ts';
import { PartitionLog } from '../../src/log/partition-log.ts';
import { logConfig } from '../../src/log/config.ts';
import { buildBatch } from '../../src/log/batch.ts';
import { assertProperty } from '../support/property.ts';
import { defer, tempDir } from '../support/tmp.ts';

const init = (extra: Partial<LeaderStateInit> = {}): LeaderStateInit => ({
  localBrokerId: 1,
  replicas: [1, 2, 3],
  isr: [1, 2, 3],
  leaderEpoch: 5,
  partitionEpoch: 10,
  minInsyncReplicas: 2,
  replicaLagTimeMaxMs: 10_000,
  durable: true,
  logEndOffset: 100,
  flushedOffset: 100,
  highWatermark: 90,
  nowMs: 0,
  ...extra,
});

test('the high watermark is the smallest flushed offset over the ISR and never goes back', () => {
  const s = new LeaderState(init());
  assert.equal(s.readyForConsumers, false, 'not before the HW reaches the epoch start');
  s.onLocalProgress(120, 110);
  assert.equal(s.onFollowerFetch(2, 120, 105, 1).highWatermarkAdvanced, false, 'follower 3 has reported nothing yet');
  assert.equal(s.onFollowerFetch(3, 115, 115, 1).highWatermarkAdvanced, true);
  assert.equal(s.highWatermark, 105);
  s.onFollowerFetch(2, 100, 100, 2); // a lower report (follower truncated) cannot pull the HW back
  assert.equal(s.highWatermark, 105);
  s.onFollowerFetch(2, 120, 120, 3);
  assert.equal(s.highWatermark, 110);
  assert.equal(s.readyForConsumers, true);
});

test('non-durable mode counts log end offsets instead of flushed offsets', () => {
  const s = new LeaderState(init({ durable: false, isr: [1, 2] }));
  s.onFollowerFetch(2, 100, 0, 1);
  assert.equal(s.highWatermark, 100);
});

test('the HW does not move while the ISR is below min.insync.replicas', () => {
  const s = new LeaderState(init({ isr: [1], minInsyncReplicas: 2 }));
  s.onLocalProgress(200, 200);
  assert.equal(s.highWatermark, 90);
  const { isrChange } = s.onFollowerFetch(2, 200, 200, 1);
  assert.deepEqual(isrChange, { isr: [1, 2], reason: 'expand' });
  assert.equal(s.highWatermark, 90, 'an ISR below min.insync.replicas does not advance the HW, pending expansion or not');
  assert.equal(s.onIsrCommitted([1, 2], 11), true);
  assert.equal(s.highWatermark, 200);
});

test('while an expansion is in flight the HW waits for the joining member too (maximal ISR)', () => {
  const s = new LeaderState(init({ isr: [1, 2], replicas: [1, 2, 3], highWatermark: 100 }));
  s.onLocalProgress(100, 100);
  s.onFollowerFetch(2, 100, 100, 1);
  const { isrChange } = s.onFollowerFetch(3, 100, 100, 1);
  assert.deepEqual(isrChange, { isr: [1, 2, 3], reason: 'expand' });
  s.onLocalProgress(120, 120);
  s.onFollowerFetch(2, 120, 120, 2);
  assert.equal(s.highWatermark, 100, 'records replicated to 1 and 2 but not to the joining 3 are not acknowledged yet');
  s.onFollowerFetch(3, 120, 120, 3);
  assert.equal(s.highWatermark, 120);
});

test('a follower that stops catching up for replica.lag.time.max.ms is shrunk away, one change at a time', () => {
  const s = new LeaderState(init());
  s.onLocalProgress(100, 100);
  s.onFollowerFetch(2, 100, 100, 5_000);
  s.onFollowerFetch(3, 100, 100, 5_000);
  assert.equal(s.maybeShrink(14_000), undefined);
  s.onLocalProgress(150, 150);
  s.onFollowerFetch(2, 150, 150, 14_000);
  assert.deepEqual(s.maybeShrink(15_001), { isr: [1, 2], reason: 'shrink' });
  assert.equal(s.maybeShrink(20_000), undefined, 'one AlterPartition in flight at a time');
  s.onIsrRejected();
  assert.ok(s.maybeShrink(20_000));
  assert.equal(s.onIsrCommitted([1, 2], 9), false, 'a stale partition epoch is ignored');
});

test('the HW never decreases and never exceeds any ISR member durable offset (property)', async () => {
  await assertProperty(
    'leader HW',
    fc.property(
      fc.array(fc.tuple(fc.constantFrom(1, 2, 3), fc.nat(50), fc.nat(50)), { maxLength: 60 }),
      (events) => {
        const s = new LeaderState(init({ highWatermark: 0, logEndOffset: 0, flushedOffset: 0 }));
        let leo = 0;
        const durable = new Map<number, number>([[1, 0], [2, -1], [3, -1]]);
        let prev = s.highWatermark;
        let t = 0;
        for (const [who, a, b] of events) {
          if (who === 1) {
            leo += a;
            const f = Math.min(leo, b + (durable.get(1) ?? 0));
            s.onLocalProgress(leo, f);
            durable.set(1, f);
          } else {
            const fetch = Math.min(leo, a + Math.max(0, durable.get(who)!));
            const flushed = Math.min(fetch, Math.max(durable.get(who)!, b)); // flushed offsets only grow
            s.onFollowerFetch(who, fetch, flushed, t++);
            durable.set(who, Math.min(fetch, flushed));
          }
          assert.ok(s.highWatermark >= prev);
          prev = s.highWatermark;
          if (s.highWatermark > 0) for (const id of s.isr) assert.ok(s.highWatermark <= durable.get(id)!, `HW ${s.highWatermark} above ${id}'s ${durable.get(id)}`);
        }
      },
    ),
  );
});

function lookup(entries: Array<[number, number]>, leo: number): EpochLookup {
  const c = new LeaderEpochCache('/dev/null');
  for (const [e, o] of entries) c.assign(e, o);
  return { endOffsetFor: (e) => c.endOffsetFor(e, leo) };
}

test('follower truncation by diverging epoch (KIP-101 / KIP-279 / KIP-320 cases)', () => {
  const f = lookup([[1, 0], [2, 50]], 80);
  // The leader ended our epoch 2 at 70: cut there.
  assert.equal(divergenceTruncationOffset(f, 80, { epoch: 2, endOffset: 70 }), 70);
  // The leader never had epoch 2; its epoch 1 ended at 40, ours at 50: cut at 40.
  assert.equal(divergenceTruncationOffset(f, 80, { epoch: 1, endOffset: 40 }), 40);
  // The leader's epoch 1 ran longer than ours: we agree up to our end of it.
  assert.equal(divergenceTruncationOffset(f, 80, { epoch: 1, endOffset: 60 }), 50);
  // An epoch we never had (3 > ours): our largest epoch below it answers.
  assert.equal(divergenceTruncationOffset(f, 80, { epoch: 3, endOffset: 90 }), 80);
  // No common history at all.
  assert.equal(divergenceTruncationOffset(f, 80, { epoch: -1, endOffset: -1 }), 0);
  assert.equal(divergenceTruncationOffset(lookup([[5, 0]], 10), 10, { epoch: 2, endOffset: 7 }), 0);
});

test('leader restarted with ISR = {leader}, min.insync.replicas 2 and no produce: lagging and truncated followers rejoin and the HW reaches the epoch start', () => {
  // After a power loss of every node: the new leader (epoch 6) holds 0..120, its HW is
  // back at 0 (not persisted), follower 2 is behind at 100, follower 3 was cut to 40.
  const s = new LeaderState(init({ leaderEpoch: 6, isr: [1], logEndOffset: 120, flushedOffset: 120, highWatermark: 0 }));
  s.onLocalProgress(120, 120);
  assert.equal(s.epochStartOffset, 120);
  assert.equal(s.readyForConsumers, false);
  // Neither is admitted below the epoch start: it lacks records the HW will cover.
  assert.equal(s.onFollowerFetch(2, 100, 100, 1).isrChange, undefined);
  assert.equal(s.onFollowerFetch(3, 40, 40, 1).isrChange, undefined);
  assert.equal(s.highWatermark, 0, 'ISR = {leader} below min.insync.replicas: the HW stays');
  // Not durable yet (fetched but not fsynced): still out.
  assert.equal(s.onFollowerFetch(2, 120, 110, 2).isrChange, undefined);
  // No produce happens (acks=all is refused with NOT_ENOUGH_REPLICAS): fetching alone gets them in.
  const expand2 = s.onFollowerFetch(2, 120, 120, 3).isrChange;
  assert.deepEqual(expand2, { isr: [1, 2], reason: 'expand' });
  assert.equal(s.onFollowerFetch(3, 80, 80, 3).isrChange, undefined, 'one ISR change in flight at a time');
  assert.equal(s.onIsrCommitted(expand2!.isr, 11), true);
  assert.equal(s.highWatermark, 120);
  assert.equal(s.readyForConsumers, true);
  const expand3 = s.onFollowerFetch(3, 120, 120, 4).isrChange;
  assert.deepEqual(expand3, { isr: [1, 2, 3], reason: 'expand' });
  s.onIsrCommitted(expand3!.isr, 12);
  assert.deepEqual(s.isr, [1, 2, 3]);
  assert.equal(s.highWatermark, 120);
});

/** Three replicas' logs as a power loss of every node leaves them; reopened after an unclean stop. */
async function restartedLogs(t: TestContext): Promise<{ leader: PartitionLog; caughtUp: PartitionLog; ahead: PartitionLog }> {
  const config = logConfig({ 'flush.before.ack': true });
  const dirs = [tempDir(t), tempDir(t), tempDir(t)] as const;
  const [leader, caughtUp, ahead] = await Promise.all(dirs.map((dir) => PartitionLog.open(dir, { config })));
  // Epoch 0 wrote 0..14; every replica fsynced it all, but the power loss cut the
  // leader-to-be and the caught-up follower back to 12 (their last fsync there).
  for (let i = 0; i < 7; i++) {
    const batch = buildBatch([0, 1].map((j) => ({ key: `k${i}-${j}`, value: `v${i}-${j}`, timestamp: 1000 + i })));
    const info = await leader!.appendAsLeader(batch, 0);
    const { records } = await leader!.read(info.firstOffset, 1 << 20);
    if (i < 6) await caughtUp!.appendAsFollower(records);
    await ahead!.appendAsFollower(records);
  }
  await leader!.truncateTo(12);
  const logs = [leader!, caughtUp!, ahead!];
  for (const log of logs) await log.abandon();
  // The crash came between two recovery-point checkpoints (written every 10 s): the last
  // one on disk names an older recovery point.
  for (const dir of dirs) writeFileSync(join(dir, 'partition.checkpoint'), JSON.stringify({ version: 1, recoveryPoint: 0, logStartOffset: 0, cleanShutdown: false }));
  const reopened = await Promise.all(dirs.map((dir) => PartitionLog.open(dir, { config })));
  for (const log of reopened) defer(t, () => log.close());
  return { leader: reopened[0]!, caughtUp: reopened[1]!, ahead: reopened[2]! };
}

test('after every node lost power, idle followers rejoin the ISR = {leader} and the HW reaches the epoch start with no produce', async (t) => {
  const { leader, caughtUp, ahead } = await restartedLogs(t);
  assert.equal(leader.logEndOffset, 12);
  assert.equal(caughtUp.logEndOffset, 12);
  assert.equal(ahead.logEndOffset, 14);
  // The controller elected broker 1 at epoch 1 with ISR = {1}; as Partition.reconcile
  // does, the leader starts with the HW it knew (0 after a restart).
  const s = new LeaderState({
    localBrokerId: 1,
    replicas: [1, 2, 3],
    isr: [1],
    leaderEpoch: 1,
    partitionEpoch: 7,
    minInsyncReplicas: 2,
    replicaLagTimeMaxMs: 10_000,
    durable: true,
    logEndOffset: leader.logEndOffset,
    flushedOffset: leader.flushedOffset,
    highWatermark: 0,
    nowMs: 0,
  });
  s.onLocalProgress(leader.logEndOffset, leader.flushedOffset);
  // The followers' fetch loops, as the replica fetcher and Partition.readForFollower run
  // them: divergence check [KIP-320], progress report, append of what the leader has.
  const followers = new Map([[2, caughtUp], [3, ahead]]);
  for (let round = 1; round <= 10 && s.isr.length < 3; round++) {
    for (const [id, log] of followers) {
      const lastEpoch = log.leaderEpochCache.latestEpoch() ?? -1;
      const end = leader.endOffsetForEpoch(lastEpoch);
      if (lastEpoch >= 0 && (end.epoch !== lastEpoch || end.endOffset < log.logEndOffset)) {
        await log.truncateTo(divergenceTruncationOffset({ endOffsetFor: (e) => log.endOffsetForEpoch(e) }, log.logEndOffset, end));
        continue;
      }
      const { isrChange } = s.onFollowerFetch(id, log.logEndOffset, log.flushedOffset, round);
      if (isrChange) s.onIsrCommitted(isrChange.isr, s.partitionEpoch + 1);
      if (log.logEndOffset < leader.logEndOffset) await log.appendAsFollower((await leader.read(log.logEndOffset, 1 << 20)).records);
    }
  }
  assert.equal(ahead.logEndOffset, 12, 'the tail the new leader lost was truncated away');
  assert.deepEqual(s.isr, [1, 2, 3]);
  assert.equal(s.highWatermark, 12);
  assert.equal(s.readyForConsumers, true, 'consumers are served again (no OFFSET_NOT_AVAILABLE)');
  // Why: what recovery kept counts as flushed (it is fsynced at open). Before, an idle
  // replica reported the old checkpoint's recovery point forever, as nothing flushed it.
  for (const log of [leader, caughtUp, ahead]) assert.equal(log.flushedOffset, log.logEndOffset);
});
