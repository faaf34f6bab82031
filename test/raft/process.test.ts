// Three real Raft processes on 127.0.0.1 with LevelDB on disk: kill -9 of the leader, a
// new leader commits, the old leader restarts from its disk and catches up, and all
// three applied the same entries at the same indexes (same hash chain, same entries).
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { RaftProcessCluster } from '../support/raft-cluster.ts';
import { tempDir, waitFor } from '../support/tmp.ts';
import { openRawRaftDb, entryKey } from '../../src/io/raft-storage.ts';
import type { NodeStatus } from '../../src/io/raft-node-process.ts';

type State = NodeStatus & { recent: Array<[number, number, string]> };

async function startCluster(t: { after(fn: () => unknown): void }, root: string): Promise<RaftProcessCluster> {
  const c = await RaftProcessCluster.start({ root });
  // Stops every process by PID, whether the test passed or not.
  t.after(() => c.stop());
  return c;
}

function diagnose(c: RaftProcessCluster): string {
  return [...c.nodes.keys()].map((id) => `--- node ${id} log tail ---\n${c.logTail(id, 15)}`).join('\n');
}

void test('kill -9 of the leader: a new leader commits, the old one restarts and catches up, all logs agree', async (t) => {
  const root = tempDir(t, 'raftka-proc-');
  const c = await startCluster(t, root);
  try {
    const first = await waitFor('a leader all three agree on', () => c.leader(), 20_000, 50);
    for (let i = 1; i <= 5; i++) {
      const r = await c.request<{ index: number; term: number }>(first.nodeId, { op: 'propose', data: `a-${i}` });
      assert.equal(r.term, first.term);
    }
    // A linearizable read on a follower sees all five.
    const follower = c.aliveIds().find((id) => id !== first.nodeId)!;
    const read = await c.request<NodeStatus & { index: number }>(follower, { op: 'read' });
    assert.ok(read.count >= 5, `follower read after its read index saw ${read.count} entries`);

    const killedAt = await c.kill9(first.nodeId);
    const second = await waitFor(
      'a new leader among the survivors',
      async () => {
        const l = await c.leader();
        return l !== undefined && l.nodeId !== first.nodeId ? l : undefined;
      },
      20_000,
      50,
    );
    assert.ok(second.term > first.term, 'the new leader has a higher term');
    for (let i = 1; i <= 3; i++) {
      const r = await c.request<{ index: number; term: number }>(second.nodeId, { op: 'propose', data: `b-${i}` });
      assert.equal(r.term, second.term);
    }
    t.diagnostic(`new leader ${second.nodeId} committed 3 entries ${Date.now() - killedAt} ms after kill -9 of ${first.nodeId}`);

    await c.restart(first.nodeId);
    const target = (await c.status(second.nodeId)).commitIndex;
    await waitFor(
      'the old leader to catch up and all three to agree',
      async () => {
        const ss = await c.statuses();
        if (ss.length !== 3) return undefined;
        const ok = ss.every((s) => s.appliedIndex >= target && s.appliedIndex === ss[0]!.appliedIndex && s.hash === ss[0]!.hash);
        return ok ? ss : undefined;
      },
      20_000,
      50,
    );
    const states = await Promise.all([1, 2, 3].map((id) => c.request<State>(id, { op: 'state' })));
    const texts = states.map((s) => s.recent.map(([, , text]) => text));
    assert.deepEqual(texts[0], ['a-1', 'a-2', 'a-3', 'a-4', 'a-5', 'b-1', 'b-2', 'b-3']);
    assert.deepEqual(states[1]!.recent, states[0]!.recent);
    assert.deepEqual(states[2]!.recent, states[0]!.recent);
    const restarted = states.find((s) => s.nodeId === first.nodeId)!;
    assert.equal(restarted.leaderId, second.nodeId, 'the restarted node follows the new leader');
    assert.equal(restarted.role, 'follower');
  } catch (e) {
    t.diagnostic(diagnose(c));
    throw e;
  }
});

void test('a node whose Raft log was damaged refuses to start and names the key', async (t) => {
  const root = tempDir(t, 'raftka-proc-');
  const c = await startCluster(t, root);
  const l = await waitFor('a leader', () => c.leader(), 20_000, 50);
  await c.request(l.nodeId, { op: 'propose', data: 'x' });
  const victim = c.aliveIds().find((id) => id !== l.nodeId)!;
  await waitFor('the entry on the victim', async () => ((await c.status(victim)).commitIndex >= 2 ? true : undefined), 10_000);
  await c.kill9(victim);
  const raw = openRawRaftDb(c.nodes.get(victim)!.dir);
  await raw.open();
  // Flip a byte in the last run of entries (the one holding the entry just committed).
  let lastRun: Buffer | undefined;
  for await (const k of raw.keys({ gte: entryKey(0), lte: entryKey(Number.MAX_SAFE_INTEGER) })) lastRun = k;
  assert.ok(lastRun !== undefined);
  const v = Buffer.from((await raw.get(lastRun))!);
  v[v.length - 1]! ^= 0xff;
  await raw.put(lastRun, v);
  await raw.close();
  const runAt = lastRun.readBigUInt64BE(1);
  await assert.rejects(c.restart(victim), new RegExp(`failed to start: .*entry run @${runAt} is unreadable: CRC32C mismatch`));
  assert.deepEqual(c.aliveIds().sort(), [1, 2, 3].filter((id) => id !== victim));
});

void test('a follower that missed a compacted stretch of the log catches up from a snapshot', async (t) => {
  const root = tempDir(t, 'raftka-proc-');
  // Snapshots every 50 entries, so the leader's log no longer holds what the follower lacks.
  const c = await RaftProcessCluster.start({ root, snapshotIntervalEntries: 50 });
  t.after(() => c.stop());
  try {
    const l = await waitFor('a leader', () => c.leader(), 20_000, 50);
    const lagger = c.aliveIds().find((id) => id !== l.nodeId)!;
    await c.kill9(lagger);
    const r = await c.request<{ committed: number; failed: number }>(l.nodeId, { op: 'burst', count: 300, sizeBytes: 100, inflight: 20 });
    assert.equal(r.committed, 300);
    await c.restart(lagger);
    const target = (await c.status(l.nodeId)).commitIndex;
    const ss = await waitFor(
      'the lagging follower to install the snapshot and agree',
      async () => {
        const all = await c.statuses();
        return all.length === 3 && all.every((s) => s.appliedIndex >= target && s.appliedIndex === all[0]!.appliedIndex && s.hash === all[0]!.hash)
          ? all
          : undefined;
      },
      20_000,
      50,
    );
    assert.ok(ss.every((s) => s.count >= 300));
    // Asserted on the control channel, not the log file: a kill -9 can drop log lines still
    // being written, while IPC is ordered, so the event precedes the status reply just read.
    const installed = c.nodes.get(lagger)!.events.filter((e) => e.ev === 'snapshotInstalled');
    assert.ok(installed.length >= 1, 'the follower caught up by installing the leader\'s snapshot');
    // Restarting it again restores from its own stored snapshot plus the log after it.
    await c.kill9(lagger);
    await c.restart(lagger);
    const before = ss.find((s) => s.nodeId === lagger)!;
    await waitFor(
      'agreement again after restarting from its own snapshot',
      async () => {
        const all = await c.statuses();
        return all.length === 3 && all.every((s) => s.appliedIndex >= before.appliedIndex && s.appliedIndex === all[0]!.appliedIndex && s.hash === all[0]!.hash)
          ? true
          : undefined;
      },
      20_000,
      50,
    );
  } catch (e) {
    t.diagnostic(diagnose(c));
    throw e;
  }
});
