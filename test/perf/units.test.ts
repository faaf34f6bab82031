// The pure parts of the perf tools: the rate schedule, how records, rates and partitions
// are split, batch counting from headers alone, and HDR histograms merged across loads.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import fc from 'fast-check';
import { assertProperty } from '../support/property.ts';
import { RateSchedule } from '../../src/perf/rate.ts';
import { split } from '../../src/perf/produce.ts';
import { allot, dealPartitions } from '../../src/perf/consume.ts';
import { countBatches, forEachStamp } from '../../src/perf/consumer-load.ts';
import { LatencyRecorder, summarizeEncoded } from '../../src/perf/latency.ts';
import { readStamp, stampedValue, valuePool } from '../../src/perf/payload.ts';
import { buildBatch, decodeRecords, setBaseOffset } from '../../src/log/batch.ts';
import { compressBatch } from '../../src/client/codecs.ts';

test('rate schedule: record i is due at start + i/rate, never more than the total', async () => {
  const s = new RateSchedule(5000, 12, 1000);
  assert.equal(s.dueBy(999.9), 0);
  assert.equal(s.dueBy(1000), 1);
  assert.equal(s.dueBy(1000.19), 1);
  assert.equal(s.dueBy(1000.2), 2);
  assert.equal(s.dueBy(1_000_000), 12);
  assert.equal(s.dueAt(5), 1001);
  const unlimited = new RateSchedule(-1, 7, 0);
  assert.ok(unlimited.unlimited);
  assert.equal(unlimited.dueBy(0), 7);
  await assertProperty(
    'dueBy counts exactly the records whose dueAt has passed',
    fc.property(fc.integer({ min: 1, max: 1_000_000 }), fc.integer({ min: 0, max: 100_000 }), fc.double({ min: 0, max: 60_000, noNaN: true }), (rate, total, t) => {
      const sch = new RateSchedule(rate, total, 0);
      const due = sch.dueBy(t);
      assert.ok(due >= 0 && due <= total);
      if (due > 0) assert.ok(sch.dueAt(due - 1) <= t + 1e-6, `record ${due - 1} due at ${sch.dueAt(due - 1)} > ${t}`);
      if (due < total) assert.ok(sch.dueAt(due) > t - 1e-6, `record ${due} due at ${sch.dueAt(due)} <= ${t}`);
    }),
  );
  assert.throws(() => new RateSchedule(1, -1, 0), RangeError);
});

test('split, allot and deal: shares add up and differ by at most one', async () => {
  assert.deepEqual(split(10, 3), [4, 3, 3]);
  assert.deepEqual(dealPartitions(7, 3), [[0, 3, 6], [1, 4], [2, 5]]);
  assert.deepEqual(allot(10, [2, 100, 100]), [2, 4, 4]);
  assert.equal(allot(10, [2, 3]), undefined);
  await assertProperty(
    'allot takes n in all, never more than a partition holds',
    fc.property(fc.array(fc.integer({ min: 0, max: 1000 }), { minLength: 1, maxLength: 12 }), fc.integer({ min: 0, max: 12_000 }), (avail, n) => {
      const take = allot(n, avail);
      const total = avail.reduce((s, a) => s + a, 0);
      if (total < n) return assert.equal(take, undefined);
      assert.ok(take);
      assert.equal(take.reduce((s, x) => s + x, 0), n);
      take.forEach((x, i) => assert.ok(x >= 0 && x <= avail[i]!));
    }),
  );
  await assertProperty(
    'split shares sum to the total',
    fc.property(fc.integer({ min: 0, max: 10 ** 9 }), fc.integer({ min: 1, max: 64 }), (total, n) => {
      const s = split(total, n);
      assert.equal(s.reduce((a, b) => a + b, 0), total);
      assert.ok(Math.max(...s) - Math.min(...s) <= 1);
    }),
  );
});

test('countBatches reads records, bytes and the next offset from headers, compressed or not', async () => {
  const a = buildBatch(Array.from({ length: 5 }, (_, i) => ({ value: `v${i}` })));
  setBaseOffset(a, 0, 100);
  const b = await compressBatch(buildBatch(Array.from({ length: 3 }, () => ({ value: 'x'.repeat(500) }))), 3);
  setBaseOffset(b, 0, 105);
  const both = Buffer.concat([a, b]);
  assert.deepEqual(countBatches(both), { records: 8, bytes: both.length, nextOffset: 108 });
  // A fetch may end in a partial batch: it is not counted.
  assert.deepEqual(countBatches(both.subarray(0, a.length + 30)), { records: 5, bytes: a.length, nextOffset: 105 });
  assert.deepEqual(countBatches(Buffer.alloc(0)), { records: 0, bytes: 0, nextOffset: -1 });
});

test('latency: histograms merged across loads give the percentiles of the union', () => {
  const one = new LatencyRecorder();
  const two = new LatencyRecorder();
  for (let i = 1; i <= 900; i++) one.record(i / 100); // 0.01 .. 9 ms
  two.record(500, 100); // 100 samples of 500 ms
  const w = one.takeWindow();
  assert.equal(w.count, 900);
  assert.ok(Math.abs(w.maxMs - 9) < 1e-9);
  assert.equal(one.takeWindow().count, 0);
  const s = summarizeEncoded([one.encode(), two.encode()]);
  assert.equal(s.count, 1000);
  assert.ok(Math.abs(s.p50Ms - 5) < 0.01, `p50 ${s.p50Ms}`);
  assert.ok(Math.abs(s.p95Ms - 500) < 0.5, `p95 ${s.p95Ms}`);
  assert.ok(Math.abs(s.maxMs - 500) < 0.5, `max ${s.maxMs}`);
  assert.ok(Math.abs(s.avgMs - (4.505 * 900 + 500 * 100) / 1000) < 0.05, `avg ${s.avgMs}`);
  one.destroy();
  two.destroy();
  assert.ok(Number.isNaN(summarizeEncoded([]).p99Ms));
});

test('payloads: exact sizes, distinct plain values, JSON that parses in part, stamps that read back', () => {
  const plain = valuePool(1024, false);
  assert.ok(plain.every((v) => v.length === 1024));
  assert.equal(new Set(plain.map((v) => v.toString())).size, plain.length);
  const json = valuePool(300, true);
  assert.ok(json.every((v) => v.length === 300 && v.toString().startsWith('{"id":')));
  const s = stampedValue(plain[0]!, 1_700_000_000_123.456);
  assert.equal(s.length, 1024);
  assert.equal(readStamp(s), 1_700_000_000_123.456);
  assert.equal(readStamp(Buffer.alloc(4)), undefined);
  assert.throws(() => valuePool(-1, false), RangeError);
});

test('forEachStamp reads every send stamp in place, as a full decode would, whatever the keys and headers', async () => {
  await assertProperty(
    'stamps read in place match decodeRecords',
    fc.property(
      fc.array(
        fc.record({
          at: fc.double({ min: 1e12, max: 2e12, noNaN: true }),
          key: fc.option(fc.uint8Array({ maxLength: 300 }), { nil: null }),
          extra: fc.nat({ max: 2000 }),
          headers: fc.array(fc.record({ key: fc.string({ maxLength: 10 }), value: fc.uint8Array({ maxLength: 50 }) }), { maxLength: 3 }),
        }),
        { minLength: 1, maxLength: 30 },
      ),
      (recs) => {
        const batch = buildBatch(
          recs.map((r) => ({
            key: r.key === null ? null : Buffer.from(r.key),
            value: stampedValue(Buffer.alloc(8 + r.extra, 1), r.at),
            headers: r.headers.map((h) => ({ key: h.key, value: Buffer.from(h.value) })),
          })),
        );
        const got: number[] = [];
        forEachStamp(batch, (at) => got.push(at));
        assert.deepEqual(got, decodeRecords(batch).map((r) => readStamp(r.value)));
        assert.deepEqual(got, recs.map((r) => r.at));
      },
    ),
  );
});
