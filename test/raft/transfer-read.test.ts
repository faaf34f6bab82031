// Leadership transfer [dissertation §3.10] and read-index linearizable reads
// [dissertation §6.4].
import { test } from 'node:test';
import assert from 'node:assert/strict';
import type { Message, NodeId, Ready } from '../../src/raft/types.ts';
import { SimCluster } from './sim/cluster.ts';
import { bytes, cluster, exchange, outbox, take } from './helpers.ts';

function electedSim(seed: number): SimCluster {
  const sim = new SimCluster({ nodeIds: [1, 2, 3], seed, persistRate: 1 });
  assert.ok(sim.runUntil(5000, () => sim.leader() !== null && sim.leader()!.commitIndex > 0));
  return sim;
}

void test('leadership transfer: the target takes over in the next term well within an election timeout', () => {
  const sim = electedSim(41);
  const old = sim.leader()!;
  const target = [1, 2, 3].find((id) => id !== old.id)!;
  const term = old.currentTerm;
  assert.equal(old.transferLeadership(target), true);
  assert.deepEqual(old.propose(bytes('during')), { ok: false, reason: 'transferring', leaderId: old.id });
  const started = sim.now;
  assert.ok(sim.runUntil(1000, () => sim.core(target).softState().role === 'leader'));
  assert.ok(sim.now - started < 200, `took ${sim.now - started} ms`);
  assert.equal(sim.core(target).currentTerm, term + 1);
  assert.equal(old.softState().role, 'follower');
  assert.ok(sim.propose(bytes('after')).ok);
});

void test('leadership transfer to a lagging voter waits until it has caught up', () => {
  const sim = electedSim(42);
  const old = sim.leader()!;
  const target = [1, 2, 3].find((id) => id !== old.id)!;
  sim.isolate(target);
  for (let i = 0; i < 10; i++) sim.propose(bytes(`x${i}`));
  sim.run(500);
  sim.heal();
  const last = old.lastIndex();
  assert.ok(old.transferLeadership(target));
  assert.ok(sim.runUntil(1000, () => sim.core(target).softState().role === 'leader'));
  assert.ok(sim.core(target).lastIndex() > last, 'it had every entry before campaigning');
});

void test('transfer is refused for a non-voter or unknown node, and abandoned after an election timeout', () => {
  const cores = cluster([1, 2, 3, 4], { voters: [1, 2, 3], observers: [4] });
  const l = cores.get(1)!;
  l.tick(5000);
  exchange(cores);
  assert.equal(l.transferLeadership(4), false, 'an observer cannot lead');
  assert.equal(l.transferLeadership(9), false);
  assert.equal(l.transferLeadership(2), true);
  outbox(l); // TimeoutNow is lost
  l.tick(5000 + 1000);
  assert.ok(l.propose(bytes('resumed')).ok, 'proposals resume once the transfer is abandoned');
});

void test('read-index on the leader: answered with the commit index after a heartbeat round confirms leadership', () => {
  const cores = cluster([1, 2, 3]);
  const l = cores.get(1)!;
  l.tick(5000);
  exchange(cores);
  const r = l.propose(bytes('w'));
  exchange(cores);
  assert.ok(r.ok && l.commitIndex >= r.index);
  l.readIndex('q1');
  const rd = take(l)!;
  assert.deepEqual(rd.readStates, [], 'not before a quorum confirmed');
  const hbs = rd.messages.filter((m) => m.type === 'heartbeat');
  assert.equal(hbs.length, 2);
  // One follower's answer plus the leader itself is a majority.
  const f2 = cores.get(2)!;
  f2.step(hbs.find((m) => m.to === 2)!);
  for (const m of outbox(f2)) l.step(m);
  assert.deepEqual(take(l)?.readStates, [{ context: 'q1', index: l.commitIndex }]);
});

void test('read-index from a follower is forwarded to the leader and answered with a point covering every prior commit', () => {
  const sim = electedSim(43);
  const leader = sim.leader()!;
  const follower: NodeId = [1, 2, 3].find((id) => id !== leader.id)!;
  const w = sim.propose(bytes('w'));
  assert.ok(sim.runUntil(1000, () => leader.commitIndex >= w.index));
  sim.readIndex(follower, 'from-follower');
  assert.ok(sim.runUntil(1000, () => sim.readResults.some((r) => r.context === 'from-follower')));
  const res = sim.readResults.find((r) => r.context === 'from-follower')!;
  assert.equal(res.node, follower);
  assert.ok(res.index >= w.index);
});

void test('a leader cut off from its quorum never answers a read, and fails it when it steps down', () => {
  const sim = electedSim(44);
  const leader = sim.leader()!;
  sim.isolate(leader.id);
  sim.readIndex(leader.id, 'isolated');
  sim.run(1500);
  assert.equal(sim.readResults.length, 0, 'no quorum, no answer');
  assert.ok(sim.runUntil(2000, () => leader.softState().role !== 'leader'));
  sim.run(20);
  assert.deepEqual(sim.readResults.map((r) => [r.context, r.index]), [['isolated', -1]]);
});

void test("a new leader defers reads until its term's first entry commits", () => {
  const cores = cluster([1, 2, 3]);
  const l = cores.get(1)!;
  const reads: string[] = [];
  const collect = (id: NodeId, rd: Ready): void => {
    if (id === 1) reads.push(...rd.readStates.map((r) => `${r.context}@${r.index}`));
  };
  l.tick(5000);
  const noAppends = (m: Message): boolean => m.type !== 'append';
  exchange(cores, noAppends, collect);
  assert.equal(l.softState().role, 'leader');
  l.readIndex('early');
  l.tick(5200);
  exchange(cores, noAppends, collect);
  assert.deepEqual(reads, [], 'the noop is not committed: the commit index is not known yet');
  l.tick(5400);
  exchange(cores, () => true, collect);
  assert.ok(l.commitIndex >= 1);
  assert.deepEqual(reads, [`early@${l.commitIndex}`]);
});
