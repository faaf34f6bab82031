import { test } from 'node:test';
import assert from 'node:assert/strict';
import fc from 'fast-check';
import {
  check,
  checkControllers,
  checkHistory,
  checkMetadataLogs,
  checkReplicas,
  type AnomalyName,
  type AnomalyReport,
  type CheckResult,
} from '../../src/jepsen/checker.ts';
import { HistoryError, type Op } from '../../src/jepsen/history.ts';
import { SeededRandom } from '../../src/common/random.ts';
import { assertProperty } from '../support/property.ts';
import { HistoryBuilder, run } from './builder.ts';
import { PLANT_KINDS, asHistory, generateHistory, plant } from './model.ts';

const K = 'orders-0';
const J = 'orders-1';

/** Asserts the result holds exactly these anomaly kinds and returns the first one's report. */
function only(result: CheckResult, ...names: AnomalyName[]): AnomalyReport {
  assert.deepEqual(Object.keys(result.anomalies).sort(), [...names].sort(), JSON.stringify(result.anomalies, null, 1));
  assert.equal(result.valid, names.length === 0);
  return result.anomalies[names[0] as AnomalyName] as AnomalyReport;
}

function assertCites(report: AnomalyReport, ...ops: number[]): void {
  assert.ok(
    report.examples.some((e) => ops.every((o) => e.ops.includes(o))),
    `no example cites ops ${ops.join(', ')}: ${JSON.stringify(report.examples)}`,
  );
}

// ---------------------------------------------------------------------------------
// Valid histories: nothing reported.

test('a tricky but valid history has no anomalies', () => {
  const h = new HistoryBuilder();
  h.nemesis('kill', { nodes: [2] });
  h.send(0, [[K, 0, 1], [J, 0, 101]]);
  h.sendFailed(1, [[K, 900]]); // failed and never read
  h.send(1, [[K, 1, 2], [K, 2, 3]]);
  h.sendFailed(0, [[K, 4]], 'info'); // indeterminate, landed at offset 3
  h.sendFailed(0, [[K, 905]], 'info'); // indeterminate, never landed
  h.send(0, [[K, 4, 5], [J, 1, 102], ['audit-0', 0, 201]]); // audit-0 is never read
  // Interleaved invoke/complete across processes.
  h.op(1, 'invoke', 'send', [[K, 6]]);
  h.op(10, 'invoke', 'assign', [K, J]);
  h.op(1, 'ok', 'send', [[K, [5, 6]]]);
  h.op(10, 'ok', 'assign', [K, J]);
  h.poll(10, { [K]: run(2, [3, 4]) }); // starts mid-log
  h.poll(10, { [K]: run(4, [5, 6]), [J]: run(0, [101]) });
  h.seek(10, { [K]: 1 }); // backwards, legitimately
  h.poll(10, { [K]: run(1, [2, 3]) });
  h.assign(10, [K], true);
  h.poll(10, { [K]: run(0, [1]) });
  h.pollFailed(10, 'fail');
  h.poll(10, { [K]: run(1, [2]) });
  h.pollFailed(10, 'info'); // may have consumed offsets 2..3 unseen
  h.poll(10, { [K]: run(4, [5]) });
  h.crash(10);
  h.assign(10, [K]);
  h.poll(10, { [K]: run(0, [1]) });
  // A group member re-reads after a rebalance hands it the key back at the committed offset.
  h.subscribe(20, [K, J]);
  h.poll(20, { [J]: run(0, [101, 102]) }, [J]);
  h.commit(20, 'g', { [J]: 1 });
  h.poll(20, { [J]: run(0, [101]) }, [J]);
  h.commit(20, 'g', { [J]: 1 });
  h.commit(20, 'g', { [J]: 2 });
  h.nemesis('start', { nodes: [2] });
  // Final reads cover both keys.
  h.assign(99, [K, J], true);
  h.poll(99, { [K]: run(0, [1, 2, 3, 4, 5, 6]), [J]: run(0, [101, 102]) });
  h.finalReads(99, [K, J]);

  const result = checkHistory(h.ops);
  only(result);
  assert.deepEqual(result.stats, {
    ops: h.ops.length,
    nemesisOps: 4,
    sendsOk: 4,
    sendsFail: 1,
    sendsInfo: 2,
    sendsPending: 0,
    recordsAcked: 8,
    pollsOk: 10,
    pollsFail: 1,
    pollsInfo: 1,
    reads: 22,
    keys: 3,
    unseen: 1, // audit-0's one record: no read got there, so it is not lost
    infoRecordsRead: 1,
    commitsOk: 3,
  });
});

test('concurrent and indeterminate commits going lower are not a regression', () => {
  const h = new HistoryBuilder();
  h.op(20, 'invoke', 'commit', { group: 'g', offsets: { [K]: 5 } });
  h.op(21, 'invoke', 'commit', { group: 'g', offsets: { [K]: 3 } });
  h.op(20, 'ok', 'commit', { group: 'g', offsets: { [K]: 5 } });
  h.op(21, 'ok', 'commit', { group: 'g', offsets: { [K]: 3 } }); // overlapped: either order
  h.commit(22, 'g', { [K]: 9 }, 'info'); // may not have landed
  h.commit(22, 'other', { [K]: 1 }); // another group
  h.commit(23, 'g', { [K]: 7 }, 'fail');
  h.commit(23, 'g', { [K]: 6 });
  only(checkHistory(h.ops));
});

test('an empty history, and one with only an unfinished send, are valid', () => {
  only(checkHistory([]));
  const h = new HistoryBuilder();
  h.op(0, 'invoke', 'send', [[K, 1]]);
  const r = checkHistory(h.ops);
  only(r);
  assert.equal(r.stats?.sendsPending, 1);
});

// ---------------------------------------------------------------------------------
// Each anomaly, planted by hand: caught under its name, with an example citing the op.

test('lost write: acknowledged, never read, though a read reached past it', () => {
  const h = new HistoryBuilder();
  h.send(0, [[K, 0, 1]]);
  const lost = h.send(0, [[K, 1, 2]]);
  h.send(0, [[K, 2, 3]]);
  h.assign(10, [K], true);
  h.poll(10, { [K]: run(0, [1]) });
  h.assign(11, [K]);
  const past = h.poll(11, { [K]: run(2, [3]) }); // started mid-log: no skip, but offset 1 is behind it
  const r = only(checkHistory(h.ops), 'lost-write');
  assert.equal(r.count, 1);
  assertCites(r, lost, past);
  assert.deepEqual(r.examples[0]?.values, [2]);
  assert.deepEqual(r.examples[0]?.offsets, [1]);
});

test('lost write: acknowledged past the end the final reads found', () => {
  const h = new HistoryBuilder();
  h.send(0, [[K, 0, 1]]);
  const lost = h.send(0, [[K, 1, 2]]);
  h.assign(99, [K], true);
  h.poll(99, { [K]: run(0, [1]) });
  const fin = h.finalReads(99, [K]);
  const r = only(checkHistory(h.ops), 'lost-write');
  assertCites(r, lost, fin);
});

test('lost write: read once, then gone from the final reads', () => {
  const h = new HistoryBuilder();
  h.send(0, [[K, 0, 1], [K, 1, 2], [K, 2, 3]]);
  h.assign(10, [K], true);
  h.poll(10, { [K]: run(0, [1, 2, 3]) });
  h.assign(99, [K], true);
  h.poll(99, { [K]: run(0, [1, 2]) });
  const fin = h.finalReads(99, [K]);
  const r = only(checkHistory(h.ops), 'lost-write');
  assert.equal(r.count, 1);
  assertCites(r, 1, fin);
  assert.deepEqual(r.examples[0]?.values, [3]);
});

test('acknowledged sends no read reached, or sent after the final reads began, are unseen, not lost', () => {
  const h = new HistoryBuilder();
  h.send(0, [[K, 0, 1], [K, 1, 2]]);
  h.assign(10, [K], true);
  h.poll(10, { [K]: run(0, [1]) });
  h.assign(99, [J], true);
  h.finalReads(99, [J]); // covers J only
  h.send(0, [[J, 0, 7]]); // acknowledged after the final reads
  const r = checkHistory(h.ops);
  only(r);
  assert.equal(r.stats?.unseen, 2);
});

test('duplicate: one value at two offsets', () => {
  const h = new HistoryBuilder();
  const w = h.send(0, [[K, 0, 1], [K, 1, 2]]);
  h.assign(10, [K], true);
  const p = h.poll(10, { [K]: [[0, 1], [1, 2], [2, 1]] });
  const r = only(checkHistory(h.ops), 'duplicate');
  assertCites(r, w, p);
  assert.deepEqual(r.examples[0]?.offsets, [0, 2]);
});

test('inconsistent offsets: one offset, two values', () => {
  const h = new HistoryBuilder();
  h.send(0, [[K, 0, 1]]);
  h.sendFailed(1, [[K, 2]], 'info');
  h.sendFailed(1, [[K, 3]], 'info');
  h.assign(10, [K], true);
  const a = h.poll(10, { [K]: run(0, [1, 2]) });
  h.assign(11, [K], true);
  const b = h.poll(11, { [K]: run(0, [1, 3]) });
  const r = only(checkHistory(h.ops), 'inconsistent-offsets');
  assert.equal(r.count, 1);
  assertCites(r, a, b); // the first op to show each value
  assert.deepEqual(r.examples[0]?.values, [2, 3]);
});

test('an ack and a read disagreeing about an offset is inconsistent too', () => {
  const h = new HistoryBuilder();
  const w = h.send(0, [[K, 0, 1]]);
  h.sendFailed(1, [[K, 2]], 'info');
  h.assign(10, [K], true);
  const p = h.poll(10, { [K]: run(0, [2, 1]) });
  // Value 1 also sits at two offsets: both anomalies are real.
  const r = only(checkHistory(h.ops), 'inconsistent-offsets', 'duplicate');
  assertCites(r, w, p);
});

test('nonmonotonic send, across ops and within one', () => {
  const h = new HistoryBuilder();
  h.send(2, [[K, 0, 9]]);
  const a = h.send(0, [[K, 2, 1]]);
  h.send(1, [[J, 0, 50]]);
  const b = h.send(0, [[K, 1, 2]]);
  let r = only(checkHistory(h.ops), 'nonmonotonic-send');
  assertCites(r, a, b);
  assert.equal(r.examples[0]?.process, 0);

  const i = new HistoryBuilder();
  const op = i.send(0, [[K, 1, 1], [J, 0, 3], [K, 0, 2]]);
  r = only(checkHistory(i.ops), 'int-nonmonotonic-send');
  assertCites(r, op);
});

test('nonmonotonic poll, across polls and within one', () => {
  const h = new HistoryBuilder();
  h.send(0, [[K, 0, 1], [K, 1, 2], [K, 2, 3]]);
  h.assign(10, [K], true);
  const a = h.poll(10, { [K]: run(0, [1, 2]) });
  h.assign(10, [K, J]); // keeps K's position: no excuse to go back
  h.pollFailed(10, 'fail');
  const b = h.poll(10, { [K]: run(1, [2, 3]) });
  let r = only(checkHistory(h.ops), 'nonmonotonic-poll');
  assertCites(r, a, b);
  assert.deepEqual(r.examples[0]?.offsets, [1, 1]);
  assert.deepEqual(r.examples[0]?.values, [2, 2]);
  assert.equal(r.examples[0]?.message, `process 10 read orders-0 at offset 1 and then at offset 1 from op ${a} to op ${b}`);

  const i = new HistoryBuilder();
  i.send(0, [[K, 0, 1], [K, 1, 2], [K, 2, 3]]);
  i.assign(10, [K], true);
  const p = i.poll(10, { [K]: [[0, 1], [2, 3], [1, 2]] });
  r = only(checkHistory(i.ops), 'int-nonmonotonic-poll', 'int-poll-skip');
  assertCites(r, p);
});

test('a rebalance excuses a poll that goes back, for the rebalanced key only', () => {
  const h = new HistoryBuilder();
  h.send(0, [[K, 0, 1], [K, 1, 2], [J, 0, 5], [J, 1, 6]]);
  h.subscribe(20, [K, J]);
  h.poll(20, { [K]: run(0, [1, 2]), [J]: run(0, [5, 6]) }, [K, J]);
  const back = h.poll(20, { [K]: run(0, [1]), [J]: run(1, [6]) }, [K]);
  const r = only(checkHistory(h.ops), 'nonmonotonic-poll');
  assert.equal(r.count, 1);
  assert.equal(r.examples[0]?.key, J);
  assertCites(r, back);
});

test('poll skip, across polls and within one', () => {
  const h = new HistoryBuilder();
  h.send(0, [[K, 0, 1], [K, 1, 2], [K, 2, 3], [K, 3, 4]]);
  h.assign(11, [K], true);
  h.poll(11, { [K]: run(0, [1, 2, 3, 4]) }); // shows that offsets 1 and 2 exist
  h.assign(10, [K], true);
  const a = h.poll(10, { [K]: run(0, [1]) });
  const b = h.poll(10, { [K]: run(3, [4]) });
  let r = only(checkHistory(h.ops), 'poll-skip');
  assertCites(r, a, b);
  assert.deepEqual(r.examples[0]?.offsets, [0, 3, 1, 2]);
  assert.deepEqual(r.examples[0]?.values, [2, 3]);
  assert.match(r.examples[0]?.message ?? '', /skipping 2 known offset\(s\): 1, 2$/);

  const i = new HistoryBuilder();
  i.send(0, [[K, 0, 1], [K, 1, 2], [K, 2, 3]]);
  i.assign(10, [K], true);
  const p = i.poll(10, { [K]: [[0, 1], [2, 3]] });
  i.assign(11, [K], true);
  i.poll(11, { [K]: run(0, [1, 2]) }); // offset 1 was read, so it is not lost
  r = only(checkHistory(i.ops), 'int-poll-skip');
  assertCites(r, p);
});

test('gaps no one shows to exist are not skips', () => {
  // Offsets 1 and 2 were never seen by anyone (say, truncated before acknowledgement).
  const h = new HistoryBuilder();
  h.send(0, [[K, 0, 1]]);
  h.send(0, [[K, 3, 2]]);
  h.assign(10, [K], true);
  h.poll(10, { [K]: [[0, 1], [3, 2]] });
  only(checkHistory(h.ops));
});

test('unexpected value and failed send read', () => {
  const h = new HistoryBuilder();
  h.send(0, [[K, 0, 1]]);
  const failed = h.sendFailed(0, [[K, 2]]);
  h.send(0, [[J, 0, 3]]);
  h.assign(10, [K], true);
  const p = h.poll(10, { [K]: [[0, 1], [1, 2], [2, 3]] }); // 3 was sent to J, not K
  const result = checkHistory(h.ops);
  only(result, 'unexpected-value', 'failed-send-read');
  assertCites(result.anomalies['failed-send-read'] as AnomalyReport, failed, p);
  const u = result.anomalies['unexpected-value'] as AnomalyReport;
  assertCites(u, p);
  assert.equal(u.examples[0]?.key, K);
  assert.deepEqual(u.examples[0]?.values, [3]);
});

test('committed offset regression: a commit invoked after an acknowledged higher one', () => {
  const h = new HistoryBuilder();
  h.commit(20, 'g', { [K]: 3, [J]: 1 });
  const hi = h.commit(21, 'g', { [K]: 5 });
  const lo = h.commit(20, 'g', { [K]: 4, [J]: 2 });
  const r = only(checkHistory(h.ops), 'committed-offset-regression');
  assert.equal(r.count, 1);
  assertCites(r, hi, lo);
  assert.equal(r.examples[0]?.group, 'g');
  assert.deepEqual(r.examples[0]?.offsets, [5, 4]);
});

test('counts every instance but keeps at most examplesMax examples', () => {
  const h = new HistoryBuilder();
  const values = Array.from({ length: 25 }, (_, i) => i + 1);
  h.send(0, values.map((v, i) => [K, i, v] as const));
  h.send(0, [[K, 25, 100]]);
  h.assign(10, [K]);
  h.poll(10, { [K]: run(25, [100]) });
  const r = only(checkHistory(h.ops), 'lost-write');
  assert.equal(r.count, 25);
  assert.equal(r.examples.length, 10);
  assert.equal(only(checkHistory(h.ops, { examplesMax: 3 }), 'lost-write').examples.length, 3);
});

test('a history the checker cannot trust is refused, not judged', () => {
  const h = new HistoryBuilder();
  h.send(0, [[K, 0, 1]]);
  h.sendFailed(1, [[K, 1]]);
  assert.throws(() => checkHistory(h.ops), (e: unknown) => e instanceof HistoryError && /value 1 was already sent to orders-0/.test(e.message));
  const g = new HistoryBuilder();
  g.op(0, 'ok', 'send', [[K, [0, 1]]]);
  assert.throws(() => checkHistory(g.ops), (e: unknown) => e instanceof HistoryError && e.opIndex === 0);
});

// ---------------------------------------------------------------------------------
// Cluster checks.

test('controllers: at most one per epoch', () => {
  const events = [
    { node: 1, epoch: 1, event: 'became-controller' },
    { node: 1, epoch: 1, event: 'became-controller' }, // the same node twice is one controller
    { node: 2, epoch: 1, event: 'resigned' },
    { node: 2, epoch: 2, event: 'became-controller' },
  ];
  only(checkControllers(events));
  const r = only(checkControllers([...events, { node: 3, epoch: 2, event: 'became-controller' }]), 'multiple-controllers');
  assert.equal(r.examples[0]?.epoch, 2);
  assert.deepEqual(r.examples[0]?.nodes, [2, 3]);
});

test('metadata logs: identical up to the committed index, each voter complete', () => {
  const e = (index: number, term: number, data: string) => ({ index, term, data });
  const base = [e(1, 1, 'a'), e(2, 1, 'b'), e(3, 2, 'c')];
  const voters = [
    { node: 1, entries: [...base, e(4, 2, 'uncommitted')] },
    { node: 2, entries: base.map((x) => ({ ...x, data: new TextEncoder().encode(x.data) })) },
    { node: 3, entries: [e(3, 2, 'c'), e(4, 3, 'other')], snapshotIndex: 2 }, // compacted prefix, divergent tail
  ];
  only(checkMetadataLogs(voters, 3));
  let r = only(checkMetadataLogs(voters, 4), 'metadata-log-divergence', 'metadata-log-missing');
  assert.equal(r.examples[0]?.index, 4);
  assert.deepEqual(r.examples[0]?.nodes, [1, 3]);
  r = only(checkMetadataLogs([voters[0] as (typeof voters)[0], { node: 2, entries: [e(1, 1, 'a'), e(2, 2, 'b'), e(3, 2, 'c')] }], 3), 'metadata-log-divergence');
  assert.equal(r.examples[0]?.index, 2);
  r = only(checkMetadataLogs([voters[0] as (typeof voters)[0], { node: 2, entries: [e(1, 1, 'a')] }], 3), 'metadata-log-missing');
  assert.equal(r.examples[0]?.index, 2);
  assert.deepEqual(r.examples[0]?.nodes, [2]);
  assert.throws(() => checkMetadataLogs([{ node: 1, entries: [e(2, 1, 'x'), e(1, 1, 'y')] }], 1), HistoryError);
});

test('replicas: byte-identical below the high watermark', () => {
  const b = (...xs: number[]) => Uint8Array.from(xs);
  only(checkReplicas([{ key: K, highWatermark: 3, replicas: [{ node: 1, bytes: b(1, 2, 3) }, { node: 2, bytes: b(1, 2, 3) }] }]));
  let r = only(
    checkReplicas([
      { key: K, highWatermark: 3, replicas: [{ node: 1, bytes: b(1, 2, 3) }, { node: 2, bytes: b(1, 2, 3) }, { node: 3, bytes: b(1, 9, 3) }] },
      { key: J, highWatermark: 2, replicas: [{ node: 1, bytes: b(1, 2) }, { node: 2, bytes: b(1) }] },
    ]),
    'replica-divergence',
  );
  assert.equal(r.count, 2);
  assert.match(r.examples[0]?.message ?? '', /node 3 differs from node 1, first differs at byte 1/);
  assert.match(r.examples[1]?.message ?? '', /lengths 2 and 1/);
  r = only(checkReplicas([{ key: K, highWatermark: 3, replicas: [{ node: 1, digest: 'aa' }, { node: 2, digest: 'bb' }] }]), 'replica-divergence');
  assert.deepEqual(r.examples[0]?.nodes, [1, 2]);
  assert.throws(() => checkReplicas([{ key: K, highWatermark: 1, replicas: [{ node: 1, digest: 'aa' }, { node: 2, bytes: b(1) }] }]), HistoryError);
});

test('check() joins the history verdict with the cluster checks', () => {
  const h = new HistoryBuilder();
  h.send(0, [[K, 0, 1]]);
  const ok = check(h.ops, { controllerEvents: [{ node: 1, epoch: 1, event: 'became-controller' }], replicas: [] });
  only(ok);
  assert.equal(ok.stats?.sendsOk, 1);
  const bad = check(h.ops, {
    controllerEvents: [
      { node: 1, epoch: 1, event: 'became-controller' },
      { node: 2, epoch: 1, event: 'became-controller' },
    ],
    metadataLogs: { voters: [{ node: 1, entries: [] }], committedIndex: 1 },
  });
  only(bad, 'multiple-controllers', 'metadata-log-missing');
});

// ---------------------------------------------------------------------------------
// Properties over model histories.

test('property: model histories are valid; one planted anomaly is reported as exactly that kind', async () => {
  await assertProperty(
    'jepsen checker vs model',
    fc.property(fc.integer(), fc.integer({ min: 20, max: 300 }), fc.constantFrom(...PLANT_KINDS), (seed, steps, kind) => {
      const rng = new SeededRandom(seed);
      const model = generateHistory(rng, steps);
      const clean = checkHistory(asHistory(model.ops));
      assert.deepEqual(clean.anomalies, {}, `model history reported anomalies: ${JSON.stringify(clean.anomalies)}`);
      const planted = plant(kind, model, rng);
      fc.pre(planted !== undefined);
      const result = checkHistory(asHistory(planted.ops));
      const report = only(result, kind);
      assertCites(report, planted.cited.index);
    }),
    { numRuns: 300 },
  );
});

// ---------------------------------------------------------------------------------
// Scale: maps by key, no quadratic scans.

function bigHistory(pairs: number): Op[] {
  const h = new HistoryBuilder();
  const keys = ['t-0', 't-1', 't-2', 't-3', 't-4', 't-5', 't-6', 't-7'];
  const ends = keys.map(() => 0);
  const positions = keys.map(() => 0);
  const logs: number[][] = keys.map(() => []);
  let v = 0;
  for (let c = 0; c < 4; c++) h.assign(100 + c, keys, true);
  for (let i = 0; h.ops.length < pairs * 2; i++) {
    if (i % 3 !== 2) {
      const k = i % keys.length;
      v++;
      (logs[k] as number[]).push(v);
      h.send(i % 5, [[keys[k] as string, (ends[k] as number)++, v]]);
    } else {
      // Each of 4 consumers reads its share, in order; every key is read by someone.
      const c = i % 4;
      const reads: Record<string, [number, number][]> = {};
      for (let k = c; k < keys.length; k += 4) {
        const from = positions[k] as number;
        const to = (logs[k] as number[]).length;
        if (to > from) reads[keys[k] as string] = (logs[k] as number[]).slice(from, to).map((x, j) => [from + j, x]);
        positions[k] = to;
      }
      h.poll(100 + c, reads);
    }
  }
  return h.ops;
}

test('a history of 300k ops checks in seconds', () => {
  const ops = bigHistory(150_000);
  const start = performance.now();
  const r = checkHistory(ops);
  const ms = performance.now() - start;
  only(r);
  assert.ok((r.stats?.reads ?? 0) > 90_000);
  // Generous: a million ops take about three times this on a laptop core.
  assert.ok(ms < 10_000, `took ${ms.toFixed(0)} ms`);
});
