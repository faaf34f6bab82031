// The tail cache answers a read exactly as a read of the whole log would (same batches,
// same bounds) whenever it answers at all, and it answers every read from its oldest
// entry on; it stays within its bounds.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import fc from 'fast-check';
import { assertProperty } from '../support/property.ts';
import { TailCache } from '../../src/log/tail-cache.ts';

interface Batch {
  base: number;
  last: number;
  bytes: Buffer;
}

/** What a log read returns: the batch holding `from`, then on, below `upper`, within `maxBytes` (first whole when minOne). */
function reference(log: Batch[], from: number, maxBytes: number, upper: number, minOne: boolean): Buffer[] {
  const out: Buffer[] = [];
  let bytes = 0;
  for (const b of log) {
    if (b.last < from) continue;
    if (b.base >= upper) break;
    if (bytes + b.bytes.length > maxBytes && !(out.length === 0 && minOne)) break;
    out.push(b.bytes);
    bytes += b.bytes.length;
  }
  return out;
}

test('tail cache: answers like the log or not at all, and always from its oldest entry on', async () => {
  await assertProperty(
    'tail cache matches a full-log read',
    fc.property(
      fc.array(fc.record({ records: fc.integer({ min: 1, max: 5 }), size: fc.integer({ min: 61, max: 3000 }) }), { minLength: 1, maxLength: 60 }),
      fc.integer({ min: 500, max: 20_000 }),
      fc.integer({ min: 1, max: 10 }),
      fc.array(fc.record({ from: fc.nat(), maxBytes: fc.integer({ min: 0, max: 20_000 }), upperBack: fc.nat({ max: 20 }), minOne: fc.boolean() }), { minLength: 1, maxLength: 20 }),
      (appends, bytesMax, entriesMax, reads) => {
        const cache = new TailCache(bytesMax, entriesMax);
        const log: Batch[] = [];
        let next = 0;
        for (const a of appends) {
          const b = { base: next, last: next + a.records - 1, bytes: Buffer.alloc(a.size, log.length % 251) };
          log.push(b);
          cache.append(b.base, b.last, b.bytes, 0);
          next = b.last + 1;
        }
        assert.ok(cache.length <= entriesMax);
        if (cache.length === 0) {
          // Only when the newest batch alone is over the bound.
          assert.ok(log[log.length - 1]!.bytes.length > bytesMax);
          for (const r of reads) assert.equal(cache.read(r.from % (next + 1), r.maxBytes, next, r.minOne), undefined);
          return;
        }
        const cached = log.slice(log.length - cache.length);
        const cachedBytes = cached.reduce((s, b) => s + b.bytes.length, 0);
        assert.ok(cache.length === 1 || cachedBytes <= bytesMax, `${cachedBytes} bytes cached over ${bytesMax}`);
        const oldest = cached[0]!.base;
        for (const r of reads) {
          const from = r.from % (next + 1);
          const upper = Math.max(0, next - r.upperBack);
          const got = cache.read(from, r.maxBytes, upper, r.minOne);
          if (from >= oldest) assert.ok(got !== undefined, `a read at ${from} >= the oldest cached ${oldest} must hit`);
          else assert.equal(got, undefined);
          if (got) assert.deepEqual(got, reference(log, from, r.maxBytes, upper, r.minOne));
        }
      },
    ),
  );
});

test('tail cache: counts the memory a view keeps alive, not the view', () => {
  const request = Buffer.alloc(64 * 1024);
  const c = new TailCache(100 * 1024, 8);
  c.append(0, 0, request.subarray(0, 100), 0);
  c.append(1, 1, request.subarray(100, 200), 0);
  assert.equal(c.length, 1, 'two views of a 64 KiB request count 128 KiB');
  c.append(2, 2, Buffer.alloc(200 * 1024).subarray(0, 10), 0);
  assert.equal(c.length, 0, 'a view into more than the bound is not kept');
  assert.equal(c.read(2, 1000, 3, true), undefined);
});

test('tail cache: a batch that does not continue the run starts it over; clear empties it', () => {
  const c = new TailCache(1 << 20, 8);
  c.append(0, 4, Buffer.alloc(100), 0);
  c.append(5, 9, Buffer.alloc(100), 0);
  assert.equal(c.read(3, 1000, 10, true)!.length, 2);
  c.append(20, 21, Buffer.alloc(100), 0); // a gap: only the new run is trusted
  assert.equal(c.length, 1);
  assert.equal(c.read(7, 1000, 22, true), undefined);
  assert.deepEqual(c.read(22, 1000, 22, true), []);
  c.clear();
  assert.equal(c.read(22, 1000, 22, true), undefined);
});

test('tail cache: expireBefore drops the entries written before the cutoff, oldest first', () => {
  const c = new TailCache(1 << 20, 8);
  c.append(0, 4, Buffer.alloc(100), 1000);
  c.append(5, 9, Buffer.alloc(100), 1500);
  c.append(10, 14, Buffer.alloc(100), 2000);
  c.expireBefore(1500);
  assert.equal(c.length, 2);
  assert.equal(c.pinnedBytes, 200);
  assert.equal(c.read(3, 1000, 15, true), undefined, 'the dropped batch is read from disk again');
  assert.equal(c.read(5, 1000, 15, true)!.length, 2);
  c.expireBefore(2001);
  assert.equal(c.length, 0);
  assert.equal(c.pinnedBytes, 0);
  assert.equal(c.read(10, 1000, 15, true), undefined);
  c.append(15, 15, Buffer.alloc(10), 2100);
  assert.equal(c.read(15, 1000, 16, true)!.length, 1, 'a run starts again after expiry');
});
