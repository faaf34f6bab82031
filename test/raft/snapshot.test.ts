// Snapshots [Raft §7]: the state machine hands a snapshot at an applied index, the log
// behind it is compacted, and a follower that needs compacted entries receives the
// snapshot in chunks, resuming where it left off after a lost chunk.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import type { InstallSnapshotRequest, NodeId } from '../../src/raft/types.ts';
import { SimCluster } from './sim/cluster.ts';
import { bytes } from './helpers.ts';

function settled(sim: SimCluster): NodeId {
  assert.ok(sim.runUntil(5000, () => sim.leader() !== null));
  return sim.leader()!.id;
}

void test('a follower that missed compacted entries installs the snapshot in chunks and then replicates normally', () => {
  const sim = new SimCluster({ nodeIds: [1, 2, 3], seed: 21, persistRate: 1, raft: { snapshotChunkBytes: 32 }, snapshotPaddingBytes: 120 });
  const leaderId = settled(sim);
  const lagger = [1, 2, 3].find((id) => id !== leaderId)!;
  sim.crash(lagger);
  for (let i = 0; i < 30; i++) sim.propose(bytes(`m${i}`));
  sim.run(1000);
  for (const id of [1, 2, 3]) if (id !== lagger) assert.ok(sim.snapshot(id));
  const leader = sim.core(leaderId);
  assert.ok(leader.log.snapshotIndex >= 31, 'the leader compacted its log');
  const chunks: InstallSnapshotRequest[] = [];
  sim.intercept = (m) => {
    if (m.type === 'installSnapshot') chunks.push(m);
  };
  sim.restart(lagger);
  const target = leader.commitIndex;
  assert.ok(sim.runUntil(5000, () => sim.node(lagger).machine.applied >= target));
  assert.ok(chunks.length >= 4, `the snapshot came in ${chunks.length} chunks`);
  assert.deepEqual(chunks.map((c) => c.offset), chunks.map((_, i) => i * 32), 'chunks in order, none re-sent');
  assert.equal(chunks.at(-1)!.done, true);
  assert.equal(sim.node(lagger).disk.snapshot?.meta.index, leader.log.snapshotIndex);
  assert.equal(sim.stats.snapshotsInstalled, 1);
  // Replication resumes after the snapshot.
  const r = sim.propose(bytes('after'));
  assert.ok(r.ok);
  assert.ok(sim.runUntil(2000, () => sim.node(lagger).machine.applied >= r.index));
});

void test('a lost chunk is re-sent and the transfer resumes from the offset the follower holds', () => {
  const sim = new SimCluster({ nodeIds: [1, 2, 3], seed: 8, persistRate: 1, raft: { snapshotChunkBytes: 32 }, snapshotPaddingBytes: 120 });
  const leaderId = settled(sim);
  const lagger = [1, 2, 3].find((id) => id !== leaderId)!;
  sim.crash(lagger);
  for (let i = 0; i < 10; i++) sim.propose(bytes(`m${i}`));
  sim.run(1000);
  sim.snapshot(leaderId);
  const offsets: number[] = [];
  let dropped = false;
  sim.intercept = (m) => {
    if (m.type !== 'installSnapshot') return false;
    offsets.push(m.offset);
    if (m.offset === 64 && !dropped) {
      dropped = true;
      return true;
    }
    return false;
  };
  sim.restart(lagger);
  const target = sim.core(leaderId).commitIndex;
  assert.ok(sim.runUntil(5000, () => sim.node(lagger).machine.applied >= target));
  assert.ok(dropped);
  const at64 = offsets.indexOf(64);
  assert.equal(offsets[at64 + 1], 64, 'the lost chunk is sent again');
  assert.ok(offsets.slice(at64 + 1).every((o) => o >= 64), `never restarted from 0: ${offsets.join(',')}`);
});

void test('compaction keeps what the state machine needs: a restarted node recovers from its snapshot plus the log after it', () => {
  const sim = new SimCluster({ nodeIds: [1, 2, 3], seed: 4, persistRate: 1 });
  const leaderId = settled(sim);
  for (let i = 0; i < 10; i++) sim.propose(bytes(`a${i}`));
  sim.run(500);
  const node = [1, 2, 3].find((id) => id !== leaderId)!;
  assert.ok(sim.snapshot(node));
  for (let i = 0; i < 5; i++) sim.propose(bytes(`b${i}`));
  sim.run(500);
  const before = sim.node(node).machine;
  sim.crash(node);
  sim.restart(node);
  // Restored from the snapshot, then the committed entries after it are re-applied.
  assert.ok(sim.runUntil(2000, () => sim.node(node).machine.applied >= before.applied));
  assert.equal(sim.node(node).machine.hash, before.hash);
});
