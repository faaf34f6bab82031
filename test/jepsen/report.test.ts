import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { check } from '../../src/jepsen/checker.ts';
import { parseHistory } from '../../src/jepsen/history.ts';
import { anomalyTable, latencyPoints, nemesisWindows, runFlags, throughput, writeReport } from '../../src/jepsen/report.ts';
import { tempDir } from '../support/tmp.ts';
import { HistoryBuilder, run } from './builder.ts';

const K = 'jepsen0-0';

/**
 * Two producers, a consumer, a kill healed by a start and a partition left unhealed; the
 * write at offset 2 is acknowledged but missing from the final reads (a lost write).
 */
function syntheticHistory() {
  const b = new HistoryBuilder();
  b.send(0, [[K, 0, 10]]);
  b.send(1, [[K, 1, 11]]);
  b.nemesis('kill', { nodes: [2] });
  b.send(0, [[K, 2, 12]]);
  b.sendFailed(1, [[K, 13]], 'info');
  b.nemesis('start', { nodes: [2], of: 'kill' });
  b.assign(2, [K], true);
  b.poll(2, { [K]: run(0, [10, 11, 12]) });
  b.nemesis('partition', { halves: [[1], [2, 3]] });
  b.assign(3, [K], true);
  b.poll(3, { [K]: run(0, [10, 11]) });
  b.finalReads(3, [K]);
  return b.ops;
}

test('report shaping: latencies per completed send and poll, nemesis windows from fault to heal, throughput bins', () => {
  const h = syntheticHistory();
  const pts = latencyPoints(h);
  assert.equal(pts.filter((p) => p.f === 'send').length, 4);
  assert.equal(pts.filter((p) => p.f === 'poll').length, 2);
  assert.deepEqual(
    pts.filter((p) => p.type === 'info').map((p) => p.f),
    ['send'],
  );
  // Each builder op advances time by 1 µs: 0.001 ms, raised to the log scale's floor.
  for (const p of pts) assert.equal(p.ms, 0.01);
  const w = nemesisWindows(h);
  assert.equal(w.length, 2);
  assert.equal(w[0]!.fault, 'kill');
  const killAt = h.find((o) => o.process === 'nemesis' && o.f === 'kill')!.time / 1e9;
  const startOk = h.filter((o) => o.process === 'nemesis' && o.f === 'start').at(-1)!.time / 1e9;
  assert.equal(w[0]!.start, killAt);
  assert.equal(w[0]!.end, startOk);
  // The partition was never healed: its window runs to the end of the history.
  assert.equal(w[1]!.fault, 'partition');
  assert.equal(w[1]!.end, h.at(-1)!.time / 1e9);
  const tp = throughput(h);
  assert.equal(
    tp.filter((x) => x.series === 'send ok').reduce((s, x) => s + x.count, 0),
    3,
  );
});

test('report directory: history round-trips, results hold the verdict, index.html has inline SVG charts with nemesis shading and the anomalies found', async (t) => {
  const history = syntheticHistory();
  const result = check(history);
  assert.equal(result.valid, false);
  assert.ok(result.anomalies['lost-write'], 'the planted lost write is found');
  const dir = join(tempDir(t, 'raftka-report-'), 'run-1');
  const schedule = { topics: 1, partitions: 1, producers: 2, consumers: 1, faults: [{ kind: 'kill' as const, atMs: 1000, durationMs: 2000, target: 'random' as const }] };
  await writeReport(dir, {
    runId: 'run-1',
    seed: 42,
    schedule,
    options: { nodes: 3, timeMs: 20_000, kinds: ['kill', 'partition'], unsafe: false },
    history,
    result,
    uncovered: [],
    summary: 'jepsen run run-1: INVALID (seed 42)',
  });

  assert.deepEqual(parseHistory(readFileSync(join(dir, 'history.jsonl'), 'utf8')), history);
  const results = JSON.parse(readFileSync(join(dir, 'results.json'), 'utf8')) as Record<string, unknown>;
  assert.equal(results['seed'], 42);
  assert.equal(results['valid'], false);
  assert.deepEqual(results['schedule'], schedule);
  assert.deepEqual(Object.keys((results['result'] as { anomalies: object }).anomalies), Object.keys(result.anomalies));

  const html = readFileSync(join(dir, 'index.html'), 'utf8');
  assert.equal(html.match(/<svg[\s>]/g)?.length, 2, 'latency and throughput charts inline');
  // vega names each mark group after its layer: the shading layer has one rect per window.
  const shading = html.match(/<g class="mark-rect role-mark nemesis_windows_marks"[^>]*>([\s\S]*?)<\/g>/);
  assert.ok(shading, 'nemesis shading layer present');
  assert.equal(shading[1]!.match(/<path/g)?.length, 2, 'one shaded rect per nemesis window');
  assert.match(html, /latency_points_marks/);
  assert.match(html, /throughput_lines_marks/);
  assert.match(html, /<tr class="found" data-anomaly="lost-write"><td>lost-write<\/td><td>1<\/td>/);
  assert.match(html, /<tr class="none" data-anomaly="duplicate"><td>duplicate<\/td><td>0<\/td>/);
  assert.match(html, /value 12/, 'the lost write example is listed');
  assert.match(html, /INVALID/);
});

test('anomaly table of a valid result lists every anomaly with count 0', () => {
  const b = new HistoryBuilder();
  b.send(0, [[K, 0, 1]]);
  b.assign(1, [K], true);
  b.poll(1, { [K]: run(0, [1]) });
  b.finalReads(1, [K]);
  const html = anomalyTable(check(b.ops));
  assert.doesNotMatch(html, /class="found"/);
  assert.match(html, /data-anomaly="lost-write"><td>lost-write<\/td><td>0<\/td>/);
});

test('replay flags name every option that changes a run, and only those', () => {
  assert.equal(runFlags({ nodes: 3, timeMs: 30_000, kinds: ['kill', 'power-loss'] }), '--nodes 3 --time 30 --nemesis kill,power-loss');
  assert.equal(runFlags({ nodes: 5, timeMs: 20_000, kinds: [], unsafe: true, flushBeforeAck: true }), '--nodes 5 --time 20 --nemesis none --unsafe');
  assert.equal(runFlags({ nodes: 3, timeMs: 60_000, kinds: ['power-loss'], flushBeforeAck: false }), '--nodes 3 --time 60 --nemesis power-loss --no-flush-before-ack');
});
