// Elections [Raft §5.2], pre-vote and check-quorum [dissertation §9.6, §6.2], the leader
// lease, voter identity by directory id [KIP-853], and the door checks on messages.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import type { Message, VoteRequest } from '../../src/raft/types.ts';
import { SimCluster, dirId, CLUSTER_ID } from './sim/cluster.ts';
import { cluster, exchange, newCore, outbox, take } from './helpers.ts';

void test('a single voter elects itself after its election timeout and commits its noop only once it is durable', () => {
  const c = newCore(1, { voters: [1] });
  take(c);
  c.tick(999);
  assert.equal(c.softState().role, 'follower', 'no election before the timeout');
  c.tick(2000);
  assert.equal(c.softState().role, 'leader');
  assert.equal(c.currentTerm, 1);
  const rd = c.ready();
  assert.deepEqual(rd.entries.map((e) => [e.index, e.term, e.kind]), [[1, 1, 'noop']]);
  assert.deepEqual(rd.committedEntries, [], 'not committed before its own write is durable');
  assert.deepEqual(rd.hardState?.votedFor, { nodeId: 1, directoryId: dirId(1) });
  c.advance(rd);
  const rd2 = take(c);
  assert.deepEqual(rd2?.committedEntries.map((e) => e.index), [1]);
  assert.equal(rd2?.hardState?.commitIndex, 1);
});

void test('pre-vote then vote: the vote is granted in the same Ready that persists it', () => {
  const cores = cluster([1, 2, 3]);
  for (const c of cores.values()) take(c);
  const c1 = cores.get(1)!;
  const c2 = cores.get(2)!;
  c1.tick(2000);
  assert.equal(c1.softState().role, 'preCandidate');
  assert.equal(c1.currentTerm, 0, 'a pre-candidate does not bump its term');
  const preVotes = outbox(c1).filter((m) => m.type === 'preVote');
  assert.equal(preVotes.length, 2);
  c2.step(preVotes.find((m) => m.to === 2)!);
  const rdPre = c2.ready();
  c2.advance(rdPre);
  assert.equal(rdPre.hardState, undefined, 'granting a pre-vote changes no durable state');
  const preResp = rdPre.messages[0]!;
  assert.equal(preResp.type, 'preVoteResponse');
  assert.ok(preResp.type === 'preVoteResponse' && preResp.granted);
  c1.step(preResp);
  assert.equal(c1.softState().role, 'candidate');
  assert.equal(c1.currentTerm, 1);
  const votes = outbox(c1).filter((m): m is VoteRequest => m.type === 'vote');
  c2.step(votes.find((m) => m.to === 2)!);
  const rdVote = c2.ready();
  c2.advance(rdVote);
  assert.deepEqual(rdVote.hardState, { term: 1, votedFor: { nodeId: 1, directoryId: dirId(1) }, commitIndex: 0 });
  const resp = rdVote.messages.find((m) => m.type === 'voteResponse');
  assert.ok(resp !== undefined && resp.type === 'voteResponse' && resp.granted);
  c1.step(resp);
  assert.equal(c1.softState().role, 'leader');
});

void test('three voters elect exactly one leader and every node learns it', () => {
  const sim = new SimCluster({ nodeIds: [1, 2, 3], seed: 5, persistRate: 1 });
  assert.ok(sim.runUntil(5000, () => sim.leader() !== null));
  sim.run(500);
  const leader = sim.leader()!;
  for (const n of sim.nodes.values()) assert.equal(n.core!.softState().leaderId, leader.id);
  assert.equal(sim.leaders.size, 1);
});

void test('a restarted voter remembers its vote and refuses a second candidate in the same term', () => {
  const c3 = newCore(3);
  take(c3);
  const req = (from: number): VoteRequest => ({
    type: 'vote', clusterId: CLUSTER_ID, from, to: 3, term: 1, lastLogIndex: 0, lastLogTerm: 0,
    candidateDirectoryId: dirId(from), voterDirectoryId: dirId(3), leadershipTransfer: false,
  });
  c3.step(req(1));
  const rd = take(c3)!;
  assert.ok(rd.messages.some((m) => m.type === 'voteResponse' && m.granted));
  // Crash and restart from exactly what was persisted.
  const restarted = newCore(3, { persisted: { hardState: rd.hardState!, snapshot: null, entries: [] } });
  take(restarted);
  restarted.step(req(2));
  const resp = outbox(restarted).find((m) => m.type === 'voteResponse');
  assert.ok(resp !== undefined && resp.type === 'voteResponse' && !resp.granted, 'one vote per term, even across a crash');
  // The candidate it voted for may ask again (a retransmission).
  restarted.step(req(1));
  const again = outbox(restarted).find((m) => m.type === 'voteResponse');
  assert.ok(again !== undefined && again.type === 'voteResponse' && again.granted);
});

void test('pre-vote: an isolated voter does not raise its term, and rejoining does not depose the leader', () => {
  const sim = new SimCluster({ nodeIds: [1, 2, 3], seed: 11, persistRate: 1 });
  assert.ok(sim.runUntil(5000, () => sim.leader() !== null));
  const leader = sim.leader()!;
  const term = leader.currentTerm;
  const follower = [1, 2, 3].find((id) => id !== leader.id)!;
  sim.isolate(follower);
  sim.run(10_000);
  assert.equal(sim.core(follower).currentTerm, term, 'pre-votes fail, so the term stays');
  assert.notEqual(sim.core(follower).softState().role, 'candidate');
  sim.heal();
  sim.run(5000);
  assert.equal(sim.leader()?.id, leader.id);
  assert.equal(sim.leader()?.currentTerm, term);
  assert.equal(sim.core(follower).softState().leaderId, leader.id);
});

void test('check-quorum: a leader cut off from the majority steps down, and the majority elects a new leader', () => {
  const sim = new SimCluster({ nodeIds: [1, 2, 3], seed: 3, persistRate: 1 });
  assert.ok(sim.runUntil(5000, () => sim.leader() !== null));
  const old = sim.leader()!;
  sim.isolate(old.id);
  const cutAt = sim.now;
  assert.ok(sim.runUntil(3000, () => old.softState().role !== 'leader'));
  const steppedDownAfter = sim.now - cutAt;
  assert.ok(steppedDownAfter >= 1900 && steppedDownAfter <= 2200, `stepped down after ${steppedDownAfter} ms`);
  const others = [1, 2, 3].filter((id) => id !== old.id);
  assert.ok(sim.runUntil(5000, () => others.some((id) => sim.core(id).softState().role === 'leader')));
});

void test('leader lease: a follower that heard from its leader ignores a disruptive vote request, unless it is a transfer', () => {
  const cores = cluster([1, 2, 3]);
  const c1 = cores.get(1)!;
  c1.tick(2000);
  exchange(cores);
  assert.equal(c1.softState().role, 'leader');
  const c2 = cores.get(2)!;
  const vote = (transfer: boolean): VoteRequest => ({
    type: 'vote', clusterId: CLUSTER_ID, from: 3, to: 2, term: 7, lastLogIndex: 99, lastLogTerm: 9,
    candidateDirectoryId: dirId(3), voterDirectoryId: dirId(2), leadershipTransfer: transfer,
  });
  c2.step(vote(false));
  assert.equal(c2.currentTerm, 1);
  assert.deepEqual(outbox(c2).filter((m) => m.type === 'voteResponse'), []);
  c2.step(vote(true));
  assert.equal(c2.currentTerm, 7);
  const resp = outbox(c2).find((m) => m.type === 'voteResponse');
  assert.ok(resp !== undefined && resp.type === 'voteResponse' && resp.granted);
});

void test('voter identity: a vote meant for another disk, or from a re-formatted voter, is refused; a wiped voter does not campaign', () => {
  // Node 2's disk was wiped and re-formatted: same node id, new directory id.
  const wiped = newCore(2, { directoryId: dirId(2, 1) });
  take(wiped);
  wiped.tick(10_000);
  assert.equal(wiped.softState().role, 'follower');
  assert.equal(wiped.softState().voter, false);
  assert.deepEqual(outbox(wiped).filter((m) => m.type === 'preVote'), []);
  const base = { type: 'vote' as const, clusterId: CLUSTER_ID, term: 1, lastLogIndex: 0, lastLogTerm: 0, leadershipTransfer: false };
  wiped.step({ ...base, from: 1, to: 2, candidateDirectoryId: dirId(1), voterDirectoryId: dirId(2) });
  const r1 = outbox(wiped).find((m) => m.type === 'voteResponse');
  assert.ok(r1 !== undefined && r1.type === 'voteResponse' && !r1.granted, 'the candidate asked the old disk');
  const c3 = newCore(3);
  take(c3);
  c3.step({ ...base, from: 2, to: 3, candidateDirectoryId: dirId(2, 1), voterDirectoryId: dirId(3) });
  const r2 = outbox(c3).find((m) => m.type === 'voteResponse');
  assert.ok(r2 !== undefined && r2.type === 'voteResponse' && !r2.granted, 'a new incarnation of voter 2 is not voter 2');
});

void test('messages from another cluster or from a node outside the configuration are reported and change nothing', () => {
  const c = newCore(1);
  take(c);
  const hb = (clusterId: string, from: number): Message => ({
    type: 'heartbeat', clusterId, from, to: 1, term: 9, commitIndex: 0, readContext: 0,
  });
  c.step(hb('another-cluster', 2));
  c.step(hb(CLUSTER_ID, 42));
  const rd = take(c)!;
  assert.deepEqual(rd.rejected, [
    { from: 2, type: 'heartbeat', reason: 'clusterId' },
    { from: 42, type: 'heartbeat', reason: 'unknownSender' },
  ]);
  assert.equal(c.currentTerm, 0);
  assert.equal(c.softState().leaderId, null);
  assert.deepEqual(rd.messages, []);
});

void test('a structurally broken message is refused as malformed instead of crashing the node', () => {
  const c = newCore(2);
  take(c);
  const base = { type: 'append' as const, clusterId: CLUSTER_ID, from: 1, to: 2, term: 1, prevLogIndex: 0, prevLogTerm: 0, leaderCommit: 0 };
  const e = (index: number, term: number) => ({ index, term, kind: 'normal' as const, data: new Uint8Array(1) });
  c.step({ ...base, entries: [e(1, 1), e(3, 1)] }); // a gap
  c.step({ ...base, entries: [e(1, 2)] }); // an entry from a term above the message's
  c.step({ ...base, prevLogIndex: -1, entries: [] });
  const rd = take(c)!;
  assert.deepEqual(rd.rejected.map((r) => r.reason), ['malformed', 'malformed', 'malformed']);
  assert.equal(c.lastIndex(), 0);
  assert.equal(c.currentTerm, 0);
});
