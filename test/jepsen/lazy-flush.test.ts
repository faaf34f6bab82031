import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { parseHistory } from '../../src/jepsen/history.ts';
import { runOnce } from '../../src/jepsen/runner.ts';
import type { FaultKind, FaultStep } from '../../src/jepsen/fault-api.ts';
import { tempDir } from '../support/tmp.ts';

type HasAfter = Parameters<typeof tempDir>[0];

/** One --no-flush-before-ack run of two producers on one topic of two partitions; its outcome and nemesis ops. */
async function lazyRun(t: HasAfter, name: string, seed: number, timeMs: number, kinds: FaultKind[], faults: FaultStep[]) {
  const reportDir = tempDir(t, 'raftka-jepsen-lazy-');
  const o = await runOnce(seed, { topics: 1, partitions: 2, producers: 2, consumers: 1, faults }, { nodes: 3, timeMs, kinds, flushBeforeAck: false, reportDir }, name);
  const nemesis = parseHistory(readFileSync(join(reportDir, name, 'history.jsonl'), 'utf8')).filter((op) => op.process === 'nemesis');
  return { o, nemesis };
}

// Topics with flush.before.ack=false acknowledge writes no replica has synced, so a power
// loss takes the unsynced tail of the node it hits. Invariant 2 still holds while the
// other in-sync replicas keep their power: the node that lost its tail must come back as
// a follower that truncates and refetches, never as a leader or an ISR member that
// serves the hole. Three power losses, all on one node (the first hit's), while two
// producers write.
test('flush.before.ack=false topics: power losses of one node cut its unsynced tail and lose no acknowledged write', { timeout: 180_000 }, async (t) => {
  const { o, nemesis } = await lazyRun(t, 'lazy', 23, 16_000, ['power-loss'], [
    { kind: 'power-loss', atMs: 2000, durationMs: 2500, target: 'partition-leader' },
    { kind: 'power-loss', atMs: 6500, durationMs: 2500, target: 'controller' },
    { kind: 'power-loss', atMs: 11_000, durationMs: 2500, allNodes: true },
  ]);
  assert.equal(o.valid, true, o.summary);
  assert.ok(o.result.stats!.sendsOk > 0, 'the workload made progress');
  const losses = nemesis.filter((op) => op.f === 'power-loss' && op.type === 'ok');
  assert.equal(losses.length, 3, o.summary);
  const values = losses.map((op) => op.value as { nodes: number[]; cutFiles: number; cutBytes: number });
  assert.ok(values.every((v) => v.nodes.length === 1 && v.nodes[0] === values[0]!.nodes[0]), `one node lost power every time: ${JSON.stringify(values)}`);
  // Without a cut there was nothing unsynced to lose, and the run would prove nothing.
  assert.ok(values.some((v) => v.cutBytes > 0), `some power loss cut written bytes: ${JSON.stringify(values)}`);
});

// Kills go to any node in this mode: a kill keeps the page cache, so a killed replica
// still holds what it acknowledged. Here a power loss of one node, then a kill of all
// three at once: every replica restarts after an unclean stop, none is eligible, and
// the run's recovery elects, unclean, the replica reporting the most complete log.
test('flush.before.ack=false topics: after every replica stopped uncleanly, the unclean election of the most complete log loses no acknowledged write', { timeout: 180_000 }, async (t) => {
  const { o, nemesis } = await lazyRun(t, 'recovery', 29, 12_000, ['power-loss', 'kill'], [
    { kind: 'power-loss', atMs: 2000, durationMs: 2500, target: 'partition-leader' },
    { kind: 'kill', atMs: 7000, durationMs: 2000, target: 'all' },
  ]);
  assert.equal(o.valid, true, o.summary);
  const kills = nemesis.filter((op) => op.f === 'kill' && op.type === 'ok');
  assert.deepEqual(kills.map((op) => (op.value as { nodes: number[] }).nodes), [[1, 2, 3]], 'the kill hit every node');
  const recovery = nemesis.filter((op) => op.f === 'unclean-recovery');
  assert.deepEqual(recovery.map((op) => op.type), ['invoke', 'ok'], o.summary);
  const elected = (recovery[1]!.value as { elected: Record<string, number> }).elected;
  assert.ok(Object.keys(elected).length > 0, `partitions were left without a leader and elected: ${JSON.stringify(elected)}`);
  assert.deepEqual(o.recovery, { elected, notElected: [] });
  assert.match(o.summary, /unclean recovery after the heal \(every replica had stopped uncleanly\): jepsen0-\d→\d/);
  assert.ok(o.result.stats!.sendsOk > 0, 'the workload made progress');
});
