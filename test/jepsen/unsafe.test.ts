import { test } from 'node:test';
import assert from 'node:assert/strict';
import { runOnce } from '../../src/jepsen/runner.ts';
import { unsafeSchedule } from '../../src/jepsen/schedule.ts';
import { tempDir } from '../support/tmp.ts';

// A harness that never finds anything proves nothing: with acks=1 and unclean leader
// election, cutting the leader off its followers and then killing it must lose
// acknowledged writes, and the checker must say so.
test('unsafe mode (acks=1, unclean leader election) loses acknowledged writes and the checker reports them', { timeout: 180_000 }, async (t) => {
  const reportDir = tempDir(t, 'raftka-jepsen-unsafe-');
  const o = await runOnce(5, unsafeSchedule(16_000), { nodes: 3, timeMs: 16_000, kinds: ['partition', 'kill'], unsafe: true, reportDir });
  assert.equal(o.valid, false, o.summary);
  const lost = o.result.anomalies['lost-write']?.count ?? 0;
  const inconsistent = o.result.anomalies['inconsistent-offsets']?.count ?? 0;
  assert.ok(lost + inconsistent > 0, `expected lost or inconsistent writes:\n${o.summary}`);
  assert.ok(o.result.stats!.sendsOk > 0);
});
