import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { parseHistory, type Op } from '../../src/jepsen/history.ts';
import { runOnce } from '../../src/jepsen/runner.ts';
import { tempDir } from '../support/tmp.ts';

test('workload on a healthy cluster: every acknowledged send is read back at its offset by the consumers and the final reads; the history is well formed', { timeout: 120_000 }, async (t) => {
  const reportDir = tempDir(t, 'raftka-jepsen-report-');
  const schedule = { topics: 2, partitions: 2, producers: 2, consumers: 2, faults: [] };
  const o = await runOnce(11, schedule, { nodes: 3, timeMs: 5000, kinds: [], reportDir }, 'healthy');

  assert.equal(o.valid, true, o.summary);
  assert.deepEqual(o.uncovered, []);
  const history = parseHistory(readFileSync(join(reportDir, 'healthy', 'history.jsonl'), 'utf8'));
  assert.equal(history.length, o.result.stats!.ops);
  const s = o.result.stats!;
  assert.ok(s.sendsOk > 20, `sends ok ${s.sendsOk}`);
  assert.ok(s.pollsOk > 5, `polls ok ${s.pollsOk}`);
  assert.equal(s.unseen, 0, 'final reads saw every acknowledged record');

  // Independently of the checker: the final reader's polls return exactly the acked records.
  const acked = new Map<string, number>();
  for (const op of history) {
    if (op.f === 'send' && op.type === 'ok') for (const [k, [off, v]] of op.value as [string, [number, number]][]) acked.set(`${k}@${off}`, v);
  }
  const finalProcess = schedule.producers + schedule.consumers;
  const finalRead = new Map<string, number | string>();
  for (const op of history as Op[]) {
    if (op.process === finalProcess && op.f === 'poll' && op.type === 'ok') {
      for (const [k, rs] of Object.entries(op.value as Record<string, [number, number][]>)) for (const [off, v] of rs) finalRead.set(`${k}@${off}`, v);
    }
  }
  assert.ok(acked.size > 20);
  for (const [at, v] of acked) assert.equal(finalRead.get(at), v, `acked ${v} at ${at}`);
  // The final reader covered every key of both topics.
  const keys = new Set([...finalRead.keys()].map((x) => x.split('@')[0]));
  assert.deepEqual([...keys].sort(), ['jepsen0-0', 'jepsen0-1', 'jepsen1-0', 'jepsen1-1']);
  const finalOp = history.find((op) => op.f === 'final-reads' && op.type === 'ok');
  assert.deepEqual(finalOp?.value, ['jepsen0-0', 'jepsen0-1', 'jepsen1-0', 'jepsen1-1']);
  // One consumer reads by assign, the other as a group member: each recorded how it
  // started before polling, and the group member polled with a rebalance log and committed.
  const firstOps = [schedule.producers, schedule.producers + 1].map((p) => history.find((op) => op.process === p)?.f).sort();
  assert.deepEqual(firstOps, ['assign', 'subscribe']);
  const member = history.find((op) => op.f === 'subscribe')!.process;
  assert.ok(history.some((op) => op.process === member && op.f === 'poll' && op.type === 'ok' && 'rebalanceLog' in op), 'the member was told its partitions');
  assert.ok(history.some((op) => op.process === member && op.f === 'commit' && op.type === 'ok'), 'the member committed');
});
