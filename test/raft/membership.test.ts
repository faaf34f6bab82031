// Observers (non-voting members) and single-server voter changes [dissertation §4.1],
// with the guards against the known pitfall: no change until the leader has committed an
// entry of its term, one uncommitted change at a time; a config applies when appended.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import type { AppendRequest, AppendResponse, NodeId } from '../../src/raft/types.ts';
import { encodeConfig } from '../../src/raft/types.ts';
import { CLUSTER_ID, SimCluster, dirId } from './sim/cluster.ts';
import { bytes, cluster, configOf, exchange, newCore, outbox, take } from './helpers.ts';

function electedSim(nodeIds: NodeId[], voterIds: NodeId[], seed: number): SimCluster {
  const sim = new SimCluster({ nodeIds, voterIds, seed, persistRate: 1 });
  assert.ok(sim.runUntil(5000, () => sim.leader() !== null && sim.leader()!.commitIndex > 0));
  return sim;
}

void test('an observer replicates and applies the log but never counts toward a quorum and never campaigns', () => {
  const sim = electedSim([1, 2, 3, 4], [1, 2, 3], 31);
  const leader = sim.leader()!;
  assert.notEqual(leader.id, 4);
  const r = sim.propose(bytes('one'));
  assert.ok(sim.runUntil(2000, () => sim.node(4).machine.applied >= r.index));
  assert.equal(sim.core(4).softState().voter, false);
  // Cut the leader off from the other voters: the observer's acknowledgement is not enough.
  const others = [1, 2, 3].filter((id) => id !== leader.id);
  for (const o of others) {
    sim.cutOneWay(leader.id, o);
    sim.cutOneWay(o, leader.id);
  }
  const r2 = sim.propose(bytes('two'));
  sim.run(1000);
  assert.equal(sim.core(4).lastIndex() >= r2.index, true, 'the observer has the entry');
  assert.ok(leader.commitIndex < r2.index, 'but it is not committed');
  // An isolated observer never starts an election.
  sim.heal();
  sim.isolate(4);
  const term = sim.core(4).currentTerm;
  sim.run(10_000);
  assert.equal(sim.core(4).currentTerm, term);
  assert.equal(sim.core(4).softState().role, 'follower');
});

void test('adding a voter: the observer is promoted and then counts toward the quorum', () => {
  const sim = electedSim([1, 2, 3, 4], [1, 2, 3], 32);
  const leader = sim.leader()!;
  const r = leader.proposeConfigChange({ type: 'addVoter', voter: { nodeId: 4, directoryId: dirId(4) } });
  assert.ok(r.ok);
  assert.deepEqual(leader.clusterConfig().voters.map((v) => v.nodeId), [1, 2, 3, 4], 'in effect on the leader once appended');
  assert.ok(sim.runUntil(2000, () => [1, 2, 3, 4].every((id) => sim.node(id).machine.applied >= r.index)));
  assert.equal(sim.core(4).softState().voter, true);
  // Four voters: a quorum is three. With one other voter cut off the leader still commits.
  const other = [1, 2, 3].find((id) => id !== leader.id)!;
  sim.isolate(other);
  const p = sim.propose(bytes('with 4'));
  assert.ok(sim.runUntil(2000, () => leader.commitIndex >= p.index));
});

void test('removing the leader: it commits its own removal, steps down, and the rest elect a leader', () => {
  const sim = electedSim([1, 2, 3], [1, 2, 3], 33);
  const leader = sim.leader()!;
  const r = leader.proposeConfigChange({ type: 'removeVoter', nodeId: leader.id });
  assert.ok(r.ok);
  assert.ok(sim.runUntil(2000, () => leader.commitIndex >= r.index));
  assert.equal(leader.softState().role, 'follower');
  assert.equal(leader.softState().voter, false);
  assert.ok(sim.runUntil(5000, () => sim.leader() !== null && sim.leader()!.id !== leader.id));
  const p = sim.propose(bytes('after removal'));
  assert.ok(p.ok);
  assert.ok(sim.runUntil(2000, () => sim.node(leader.id).machine.applied >= p.index), 'the removed node stays an observer');
});

void test('no config change before the leader commits an entry of its term, and only one uncommitted change at a time', () => {
  const cores = cluster([1, 2, 3, 4], { voters: [1, 2, 3], observers: [4] });
  const l = cores.get(1)!;
  l.tick(5000);
  // Elect node 1 but hold back every append, so its noop is not committed yet.
  exchange(cores, (m) => m.type !== 'append');
  assert.equal(l.softState().role, 'leader');
  const add4 = { type: 'addVoter' as const, voter: { nodeId: 4, directoryId: dirId(4) } };
  assert.deepEqual(l.proposeConfigChange(add4), { ok: false, reason: 'leaderNotReady', leaderId: 1 });
  // The next heartbeat round re-sends the lost probes.
  l.tick(5200);
  exchange(cores);
  assert.ok(l.commitIndex >= 1);
  const first = l.proposeConfigChange(add4);
  assert.ok(first.ok);
  const second = l.proposeConfigChange({ type: 'removeVoter', nodeId: 3 });
  assert.deepEqual(second, { ok: false, reason: 'configChangePending', leaderId: 1 });
  exchange(cores);
  assert.ok(l.proposeConfigChange({ type: 'removeVoter', nodeId: 3 }).ok, 'allowed once the first is committed');
  assert.equal(l.proposeConfigChange({ type: 'removeObserver', nodeId: 9 }).ok, false);
});

void test('a config entry takes effect on a follower when appended and is undone when a new leader truncates it', () => {
  const f = newCore(2, { voters: [1, 2, 3] });
  take(f);
  const newConfig = configOf([1, 2], [3]);
  const append = (from: number, term: number, entries: AppendRequest['entries']): AppendRequest => ({
    type: 'append', clusterId: CLUSTER_ID, from, to: 2, term, prevLogIndex: 0, prevLogTerm: 0, entries, leaderCommit: 0,
  });
  f.step(append(1, 1, [{ index: 1, term: 1, kind: 'config', data: encodeConfig(newConfig) }]));
  assert.deepEqual(f.clusterConfig(), newConfig, 'uncommitted, yet in effect');
  assert.deepEqual(take(f)?.config, newConfig, 'the driver is told');
  f.step(append(3, 2, [{ index: 1, term: 2, kind: 'noop', data: new Uint8Array(0) }]));
  assert.deepEqual(f.clusterConfig(), configOf([1, 2, 3]), 'truncated with its entry');
  assert.equal(outbox(f).some((m) => m.type === 'appendResponse' && m.success), true);
});

void test('a voter whose disk was wiped is re-replicated but cannot vote until it is re-added with its new directory id', () => {
  const sim = electedSim([1, 2, 3], [1, 2, 3], 34);
  const leader = sim.leader()!;
  for (let i = 0; i < 5; i++) sim.propose(bytes(`w${i}`));
  sim.run(500);
  const wiped = [1, 2, 3].find((id) => id !== leader.id)!;
  const third = [1, 2, 3].find((id) => id !== leader.id && id !== wiped)!;
  sim.wipe(wiped);
  sim.restart(wiped);
  assert.equal(sim.core(wiped).lastIndex(), 0);
  // The leader notices the lost log and replicates everything again.
  assert.ok(sim.runUntil(3000, () => sim.node(wiped).machine.applied >= leader.commitIndex));
  assert.equal(sim.core(wiped).softState().voter, false, 'the config names its old disk');
  // With the leader down, the third voter cannot be elected by the wiped node's vote alone.
  sim.crash(leader.id);
  sim.run(8000);
  assert.equal(sim.leader(), null, 'no quorum: the wiped node must not vote as its old self');
  sim.restart(leader.id);
  assert.ok(sim.runUntil(8000, () => sim.leader() !== null && sim.leader()!.commitIndex >= sim.leader()!.lastIndex()));
  // The operator replaces the voter: remove, then add with the new directory id.
  const l = sim.leader()!;
  const removed = l.proposeConfigChange({ type: 'removeVoter', nodeId: wiped });
  assert.ok(removed.ok);
  assert.ok(sim.runUntil(2000, () => l.commitIndex >= removed.index));
  const added = l.proposeConfigChange({ type: 'addVoter', voter: { nodeId: wiped, directoryId: sim.node(wiped).directoryId } });
  assert.ok(added.ok);
  assert.ok(sim.runUntil(2000, () => sim.node(wiped).machine.applied >= added.index));
  assert.equal(sim.core(wiped).softState().voter, true);
  assert.ok(third > 0);
});

void test("a wiped voter's acknowledgements do not count toward commit: its new disk is not the configured voter", () => {
  const cores = cluster([1, 2, 3]);
  const l = cores.get(1)!;
  l.tick(5000);
  exchange(cores);
  const r = l.propose(bytes('needs a real quorum'));
  assert.ok(r.ok);
  outbox(l);
  const ack = (directoryId: string): AppendResponse => ({
    type: 'appendResponse', clusterId: CLUSTER_ID, from: 2, to: 1, term: l.currentTerm, success: true,
    matchIndex: r.index, rejectedIndex: 0, conflictTerm: 0, conflictIndex: 0, voterDirectoryId: directoryId,
  });
  l.step(ack(dirId(2, 1)));
  assert.ok(l.commitIndex < r.index, 'node 2 answered from a re-formatted disk');
  assert.equal(l.progressOf(2)?.directoryId, dirId(2, 1));
  l.step(ack(dirId(2)));
  assert.equal(l.commitIndex, r.index, 'the configured disk counts');
});
