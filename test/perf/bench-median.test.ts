import { test } from 'node:test';
import assert from 'node:assert/strict';
import { medianFields } from '../../scripts/bench/perf.ts';

test('bench perf --repeat: the median of each figure, runs that did not measure one left out', () => {
  const m = medianFields([
    { a: 3, b: 10, c: NaN },
    { a: 1, b: 40, c: NaN },
    { a: 2, b: 20, c: 7 },
    { a: 100, b: 30, c: NaN },
  ]);
  assert.equal(m['a'], 2.5);
  assert.equal(m['b'], 25);
  assert.equal(m['c'], 7);
  assert.deepEqual(medianFields([{ x: 5 }, { x: 1 }, { x: 9 }]), { x: 5 });
  assert.ok(Number.isNaN(medianFields([{ y: NaN }])['y']));
});
