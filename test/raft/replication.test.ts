// Log replication [Raft §5.3]: the consistency check, fast backtracking with the
// follower's conflict hint, commit by counting only own-term entries [Raft §5.4.2,
// Figure 8], and bounded pipelining with batching.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import type { AppendRequest, AppendResponse, Entry, HardState, Message } from '../../src/raft/types.ts';
import { CLUSTER_ID } from './sim/cluster.ts';
import { bytes, cluster, exchange, newCore, outbox, take } from './helpers.ts';

function entries(from: number, to: number, term: number): Entry[] {
  return Array.from({ length: to - from + 1 }, (_, i) => ({ index: from + i, term, kind: 'normal' as const, data: bytes(`t${term}i${from + i}`) }));
}

function hard(term: number, commitIndex = 0): HardState {
  return { term, votedFor: null, commitIndex };
}

void test('fast backtracking: a follower with a long divergent tail is repaired in one rejected round trip', () => {
  const common = entries(1, 5, 1);
  const cores = new Map([
    [1, newCore(1, { persisted: { hardState: hard(3, 5), snapshot: null, entries: [...common, ...entries(6, 10, 3)] } })],
    [2, newCore(2, { persisted: { hardState: hard(2, 5), snapshot: null, entries: [...common, ...entries(6, 55, 2)] } })],
    [3, newCore(3, { persisted: { hardState: hard(3, 5), snapshot: null, entries: common } })],
  ]);
  for (const c of cores.values()) take(c);
  cores.get(1)!.tick(5000);
  const said = exchange(cores);
  assert.equal(cores.get(1)!.softState().role, 'leader');
  const rejects = said.filter((m): m is AppendResponse => m.type === 'appendResponse' && m.from === 2 && !m.success);
  assert.equal(rejects.length, 1, 'one reject: the hint skips the whole term-2 run');
  assert.equal(rejects[0]!.conflictTerm, 2);
  assert.equal(rejects[0]!.conflictIndex, 6);
  const l = cores.get(1)!;
  const f = cores.get(2)!;
  assert.equal(f.lastIndex(), l.lastIndex());
  for (let i = 1; i <= l.lastIndex(); i++) assert.equal(f.log.term(i), l.log.term(i), `term at ${i}`);
  assert.equal(f.commitIndex >= 6 || l.commitIndex >= 11, true);
});

void test('a follower whose log is too short answers with its last index + 1', () => {
  const f = newCore(2, { persisted: { hardState: hard(1), snapshot: null, entries: entries(1, 3, 1) } });
  take(f);
  const append: AppendRequest = {
    type: 'append', clusterId: CLUSTER_ID, from: 1, to: 2, term: 2, prevLogIndex: 9, prevLogTerm: 2, entries: [], leaderCommit: 0,
  };
  f.step(append);
  const r = outbox(f).find((m): m is AppendResponse => m.type === 'appendResponse')!;
  assert.deepEqual([r.success, r.rejectedIndex, r.conflictTerm, r.conflictIndex], [false, 9, 0, 4]);
});

void test('a leader never commits an entry of an earlier term by counting replicas (Figure 8)', () => {
  // Node 1 led term 2 and appended index 2, which reached nobody; it now wins term 5.
  const c1 = newCore(1, { persisted: { hardState: hard(4, 1), snapshot: null, entries: [...entries(1, 1, 1), ...entries(2, 2, 2)] } });
  take(c1);
  c1.tick(5000);
  const term = c1.currentTerm + 1;
  for (const m of outbox(c1)) if (m.type === 'preVote') c1.step({ type: 'preVoteResponse', clusterId: CLUSTER_ID, from: m.to, to: 1, term, granted: true, voterDirectoryId: `dir-${m.to}-0` });
  for (const m of outbox(c1)) if (m.type === 'vote') c1.step({ type: 'voteResponse', clusterId: CLUSTER_ID, from: m.to, to: 1, term, granted: true, voterDirectoryId: `dir-${m.to}-0` });
  assert.equal(c1.softState().role, 'leader');
  outbox(c1); // the noop (index 3, this term) is now durable on the leader
  const ack = (matchIndex: number): AppendResponse => ({
    type: 'appendResponse', clusterId: CLUSTER_ID, from: 2, to: 1, term, success: true, matchIndex, rejectedIndex: 0, conflictTerm: 0, conflictIndex: 0,
  });
  c1.step(ack(2));
  assert.equal(c1.commitIndex, 1, 'index 2 is on a majority but of an older term: not committed');
  c1.step(ack(3));
  assert.equal(c1.commitIndex, 3, 'committing the own-term noop commits everything before it');
});

void test('pipelining is bounded by maxInflightAppends and appends are batched up to maxAppendBytes', () => {
  const cores = cluster([1, 2, 3], { raft: { maxInflightAppends: 3, maxAppendBytes: 10 } });
  const l = cores.get(1)!;
  l.tick(5000);
  exchange(cores);
  assert.equal(l.softState().role, 'leader');
  assert.equal(l.progressOf(2)?.state, 'replicate');
  for (let i = 0; i < 20; i++) assert.ok(l.propose(bytes(`e${i}`.padEnd(4, '.'))).ok);
  const sent = outbox(l).filter((m): m is AppendRequest => m.type === 'append' && m.to === 2);
  assert.equal(sent.length, 3, 'no more than the in-flight window');
  for (const m of sent) assert.equal(m.entries.length, 2, '4-byte entries, at most 10 bytes a message');
  // An acknowledgement frees a slot and the window slides.
  const f = cores.get(2)!;
  f.step(sent[0]!);
  const acks = outbox(f).filter((m) => m.type === 'appendResponse');
  for (const a of acks) l.step(a);
  const more = outbox(l).filter((m): m is AppendRequest => m.type === 'append' && m.to === 2);
  assert.equal(more.length, 1);
  assert.equal(more[0]!.prevLogIndex, sent[2]!.prevLogIndex + sent[2]!.entries.length);
});

void test('a lost append is re-sent after the next heartbeat round trip', () => {
  const cores = cluster([1, 2, 3]);
  const l = cores.get(1)!;
  l.tick(5000);
  exchange(cores);
  const r = l.propose(bytes('x'));
  assert.ok(r.ok);
  // The append to node 2 is lost; node 3's arrives, so the entry commits.
  exchange(cores, (m: Message) => !(m.type === 'append' && m.to === 2));
  assert.equal(cores.get(2)!.lastIndex(), r.index - 1);
  l.tick(5100);
  exchange(cores);
  assert.equal(cores.get(2)!.lastIndex(), r.index);
  assert.equal(cores.get(2)!.commitIndex, r.index, 'the heartbeat carries the commit index up to its match');
});

void test('a stale leader that hears of a higher term steps down', () => {
  const cores = cluster([1, 2, 3]);
  const l = cores.get(1)!;
  l.tick(5000);
  exchange(cores);
  const stale: AppendResponse = {
    type: 'appendResponse', clusterId: CLUSTER_ID, from: 3, to: 1, term: l.currentTerm + 1, success: false, matchIndex: 0, rejectedIndex: 0, conflictTerm: 0, conflictIndex: 0,
  };
  l.step(stale);
  assert.equal(l.softState().role, 'follower');
  assert.equal(l.currentTerm, stale.term);
  assert.equal(l.propose(bytes('y')).ok, false);
});

void test('followers learn a new commit index within a round trip, without waiting for the heartbeat timer', () => {
  const cores = cluster([1, 2, 3, 4], { voters: [1, 2, 3], observers: [4] });
  const l = cores.get(1)!;
  l.tick(5000);
  exchange(cores);
  const r = l.propose(bytes('prompt'));
  assert.ok(r.ok);
  exchange(cores); // no tick: only message exchanges
  assert.equal(l.commitIndex, r.index);
  for (const id of [2, 3, 4]) assert.equal(cores.get(id)!.commitIndex, r.index, `node ${id}`);
});

void test('a conflict that arrives while a Ready is being persisted is carried by the next Ready as a truncation', () => {
  const f = newCore(2);
  take(f);
  const append = (from: number, term: number, prevLogIndex: number, prevLogTerm: number, es: Entry[]): AppendRequest => ({
    type: 'append', clusterId: CLUSTER_ID, from, to: 2, term, prevLogIndex, prevLogTerm, entries: es, leaderCommit: 0,
  });
  f.step(append(1, 1, 0, 0, entries(1, 5, 1)));
  const first = f.ready(); // the driver is writing entries 1..5 ...
  assert.deepEqual(first.entries.map((e) => e.index), [1, 2, 3, 4, 5]);
  // ... when a new leader's append replaces the tail from index 3.
  f.step(append(3, 2, 2, 1, entries(3, 4, 2)));
  assert.equal(f.hasReady(), false, 'one Ready at a time');
  f.advance(first);
  assert.equal(f.log.persistedIndex, 2, 'only the surviving prefix counts as durable');
  const second = f.ready();
  f.advance(second);
  assert.equal(second.truncateFrom, 3);
  assert.deepEqual(second.entries.map((e) => [e.index, e.term]), [[3, 2], [4, 2]]);
  const acks = second.messages.filter((m): m is AppendResponse => m.type === 'appendResponse');
  assert.deepEqual(acks.map((a) => [a.to, a.success, a.matchIndex]), [[3, true, 4]], 'acknowledged with the Ready that persists it');
  const firstAcks = first.messages.filter((m): m is AppendResponse => m.type === 'appendResponse');
  assert.deepEqual(firstAcks.map((a) => [a.to, a.success, a.matchIndex]), [[1, true, 5]], 'sent once 1..5 are durable');
});
