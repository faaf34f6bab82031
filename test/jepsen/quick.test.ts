import { test } from 'node:test';
import assert from 'node:assert/strict';
import { FAULT_KINDS } from '../../src/jepsen/fault-api.ts';
import { validityProperty, type RunOutcome } from '../../src/jepsen/runner.ts';
import { tempDir } from '../support/tmp.ts';
import { assertProperty } from '../support/property.ts';

// The quick Jepsen suite of `npm test`: a few generated schedules of ~20 s with every
// fault kind, each run checked for zero anomalies. A failure prints the fast-check seed
// (FC_SEED replays it) and the shrunk schedule; its report stays in the run's report
// dir (printed in the summary) only while the test runs, so the summary is printed too.
const RUNS = 3;

test('quick Jepsen suite: generated fault schedules leave zero anomalies', { timeout: 290_000 }, async (t) => {
  const reportDir = tempDir(t, 'raftka-jepsen-quick-');
  const outcomes: RunOutcome[] = [];
  await assertProperty(
    'jepsen quick suite',
    // One more cluster run than RUNS may be spent shrinking a failure, to stay in time.
    validityProperty({ nodes: 3, timeMs: 20_000, kinds: FAULT_KINDS, reportDir, print: (s) => process.stdout.write(`# ${s.replace(/\n/g, '\n# ')}\n`) }, RUNS + 1, (o) => outcomes.push(o)),
    { numRuns: RUNS },
  );
  assert.ok(outcomes.length >= Math.min(RUNS, Number(process.env['FC_RUNS'] ?? RUNS)));
  for (const o of outcomes) {
    assert.equal(o.valid, true, o.summary);
    assert.ok(o.result.stats!.sendsOk > 0, 'the workload made progress');
    assert.ok(o.schedule.faults.length > 0);
  }
});
