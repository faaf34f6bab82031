// The driver's effect ordering and failure handling, around the real core with an
// in-memory store and transport whose timing the test controls.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { isRaftkaError } from '../../src/common/errors.ts';
import { SeededRandom } from '../../src/common/random.ts';
import { RaftCore } from '../../src/raft/core.ts';
import { RaftDriver, type RaftLogStore } from '../../src/raft/driver.ts';
import { EMPTY_HARD_STATE, type Entry, type Message, type PersistedState, type StateMachine } from '../../src/raft/types.ts';
import { waitFor } from '../support/tmp.ts';

const persisted: PersistedState = { hardState: EMPTY_HARD_STATE, snapshot: null, entries: [] };
const voter = (nodeId: number) => ({ nodeId, directoryId: `dir-${nodeId}` });

function core(voters: number[]): RaftCore {
  return new RaftCore({
    nodeId: 1,
    directoryId: 'dir-1',
    clusterId: 'c1',
    bootstrapConfig: { voters: voters.map(voter), observers: [] },
    persisted,
    nowMs: performance.now(),
    random: new SeededRandom(7),
    config: { electionTimeoutMs: 100, heartbeatIntervalMs: 20 },
  });
}

class RecordingSM implements StateMachine {
  applied: Entry[] = [];
  apply(_index: number, entry: Entry): void {
    this.applied.push(entry);
  }
  snapshot(): Uint8Array {
    return new Uint8Array(0);
  }
  restore(): void {}
}

void test('messages of a Ready leave only after its write is durable', async (t) => {
  const pending: Array<{ messages: readonly Message[]; resolve(): void }> = [];
  const durable = new Set<Message>();
  const sent: Message[] = [];
  const store: RaftLogStore = {
    persist: (rd) => new Promise<void>((resolve) => pending.push({ messages: rd.messages, resolve })),
    saveSnapshot: async () => undefined,
  };
  const driver = new RaftDriver({
    core: core([1, 2, 3]),
    persisted,
    store,
    transport: {
      send: (_to, ms) => {
        for (const m of ms) assert.ok(durable.has(m), `${m.type} sent before its Ready was durable`);
        sent.push(...ms);
      },
    },
    stateMachine: new RecordingSM(),
  });
  t.after(() => driver.stop(100));
  driver.start();
  // Hold each write a while, check nothing of it left, then let it complete; the election
  // timeout produces a Ready with pre-vote requests.
  let heldWithMessages = 0;
  while (!sent.some((m) => m.type === 'preVote')) {
    const w = await waitFor('a Ready in persist', () => pending.shift(), 5_000, 5);
    for (let i = 0; i < 20; i++) await new Promise((r) => setImmediate(r));
    assert.ok(w.messages.every((m) => !sent.includes(m)), 'nothing of a pending write was sent');
    if (w.messages.length > 0) heldWithMessages++;
    for (const m of w.messages) durable.add(m);
    w.resolve();
    await waitFor('the driver to act on the write', () => w.messages.every((m) => sent.includes(m)) || undefined, 5_000, 5);
  }
  assert.ok(heldWithMessages >= 1);
});

void test('a failed write stops the driver, rejects pending proposals and emits fatal', async (t) => {
  let failNext = false;
  const store: RaftLogStore = {
    persist: async () => {
      if (failNext) throw new Error('disk on fire');
    },
    saveSnapshot: async () => undefined,
  };
  const sm = new RecordingSM();
  const driver = new RaftDriver({ core: core([1]), persisted, store, transport: { send: () => undefined }, stateMachine: sm });
  t.after(() => driver.stop());
  const fatal = new Promise<Error>((resolve) => driver.once('fatal', resolve));
  const leaders: Array<number | null> = [];
  driver.on('leaderChange', (c) => leaders.push(c.leaderId));
  driver.start();
  await waitFor('single voter leads', () => driver.isLeader, 5_000, 5);
  assert.deepEqual(leaders.at(-1), 1);
  const ok = await driver.propose(new TextEncoder().encode('one'));
  assert.equal(sm.applied.at(-1)?.index, ok.index, 'applied by the time the proposal resolves');
  assert.equal(new TextDecoder().decode(sm.applied.at(-1)?.data), 'one');
  failNext = true;
  await assert.rejects(driver.propose(new TextEncoder().encode('two')), (e) => isRaftkaError(e, 'KAFKA_STORAGE_ERROR'));
  assert.match((await fatal).message, /disk on fire/);
  await assert.rejects(driver.propose(new TextEncoder().encode('three')), (e) => isRaftkaError(e, 'NOT_CONTROLLER'));
  assert.ok(!sm.applied.some((e) => new TextDecoder().decode(e.data) === 'two'), 'nothing applied past the failed write');
});

void test('proposals on a follower fail fast with NOT_CONTROLLER; a read without a leader fails', async (t) => {
  const driver = new RaftDriver({
    core: core([1, 2, 3]),
    persisted,
    store: { persist: async () => undefined, saveSnapshot: async () => undefined },
    transport: { send: () => undefined },
    stateMachine: new RecordingSM(),
  });
  t.after(() => driver.stop());
  driver.start();
  await assert.rejects(driver.propose(new Uint8Array([1])), (e) => isRaftkaError(e, 'NOT_CONTROLLER') && e.retriable);
  await assert.rejects(driver.readIndex(), (e) => isRaftkaError(e, 'NOT_CONTROLLER'));
});
