import { test } from 'node:test';
import assert from 'node:assert/strict';
import fc from 'fast-check';
import {
  BatchBuilder,
  buildBatch,
  decodeRecords,
  iterateBatches,
  readBatchHeader,
  setBaseOffset,
  splitBatches,
  validateBatchAt,
  Off,
} from '../../src/log/batch.ts';
import { CompressionType } from '../../src/log/compression.ts';
import { Reader, sizeOfVarint, sizeOfVarlong, writeVarint, writeVarlong } from '../../src/log/varint.ts';
import { isRaftkaError } from '../../src/common/errors.ts';
import { assertProperty } from '../support/property.ts';

test('varint and varlong round-trip with the sizes they claim', async () => {
  await assertProperty(
    'varint',
    fc.property(fc.integer({ min: -(2 ** 31), max: 2 ** 31 - 1 }), fc.integer({ min: 0, max: 2 ** 52 - 1 }), (i, l) => {
      const buf = Buffer.alloc(16);
      assert.equal(writeVarint(buf, 0, i), sizeOfVarint(i));
      assert.equal(new Reader(buf, 0, 16).varint(), i);
      for (const v of [l, l === 0 ? 0 : -l]) {
        assert.equal(writeVarlong(buf, 0, v), sizeOfVarlong(v));
        assert.equal(new Reader(buf, 0, 16).varlong(), v);
      }
    }),
  );
});

test('Kafka zig-zag vectors', () => {
  const buf = Buffer.alloc(8);
  assert.deepEqual([...buf.subarray(0, writeVarint(buf, 0, 300))], [0xd8, 0x04]);
  assert.deepEqual([...buf.subarray(0, writeVarint(buf, 0, -1))], [0x01]);
  assert.deepEqual([...buf.subarray(0, writeVarint(buf, 0, 1))], [0x02]);
});

const recordArb = fc.record({
  key: fc.option(fc.uint8Array({ maxLength: 40 }).map((a) => Buffer.from(a)), { nil: null }),
  value: fc.option(fc.uint8Array({ maxLength: 200 }).map((a) => Buffer.from(a)), { nil: null }),
  headers: fc.array(fc.record({ key: fc.string({ maxLength: 10 }), value: fc.option(fc.uint8Array({ maxLength: 10 }).map((a) => Buffer.from(a)), { nil: null }) }), { maxLength: 3 }),
  timestamp: fc.integer({ min: 0, max: 2 ** 42 }),
});

test('builder and decoder round-trip any records, with and without gzip', async () => {
  await assertProperty(
    'batch round-trip',
    fc.property(fc.array(recordArb, { maxLength: 30 }), fc.boolean(), fc.maxSafeNat(), (records, gzip, base) => {
      const batch = buildBatch(records, { compression: gzip ? CompressionType.gzip : CompressionType.none, baseOffset: base % 2 ** 50, producerId: 7, producerEpoch: 1, baseSequence: 3 });
      assert.equal(validateBatchAt(batch, 0), batch.length);
      const h = readBatchHeader(batch);
      assert.equal(h.recordCount, records.length);
      assert.equal(h.baseOffset, base % 2 ** 50);
      assert.equal(h.producerId, 7);
      const out = decodeRecords(batch);
      assert.equal(out.length, records.length);
      out.forEach((r, i) => {
        const inp = records[i]!;
        assert.equal(r.offset, h.baseOffset + i);
        assert.deepEqual(r.key, inp.key);
        assert.deepEqual(r.value, inp.value);
        assert.equal(r.timestamp, inp.timestamp);
        assert.deepEqual(r.headers, inp.headers.map((x) => ({ key: x.key, value: x.value })));
      });
      if (records.length > 0) assert.equal(h.maxTimestamp, Math.max(...records.map((r) => r.timestamp)));
    }),
  );
});

test('patching the base offset keeps the CRC valid (the CRC starts at attributes)', () => {
  const batch = buildBatch([{ value: 'a' }, { value: 'b' }]);
  setBaseOffset(batch, 0, 123456789);
  validateBatchAt(batch, 0);
  assert.equal(decodeRecords(batch)[1]!.offset, 123456790);
});

test('any flipped byte after the CRC field is detected as CORRUPT_MESSAGE', async () => {
  const batch = buildBatch([{ key: 'k', value: 'hello world' }, { value: 'x'.repeat(100) }]);
  await assertProperty(
    'crc detects corruption',
    fc.property(fc.integer({ min: Off.crc, max: batch.length - 1 }), fc.integer({ min: 1, max: 255 }), (pos, x) => {
      const copy = Buffer.from(batch);
      copy[pos] = copy[pos]! ^ x;
      assert.throws(() => validateBatchAt(copy, 0), (e: unknown) => isRaftkaError(e, 'CORRUPT_MESSAGE'));
    }),
  );
});

test('truncated batches and garbage are rejected with a message naming the problem', () => {
  const batch = buildBatch([{ value: 'hello' }]);
  assert.throws(() => validateBatchAt(batch.subarray(0, 30), 0), /truncated/);
  assert.throws(() => validateBatchAt(batch.subarray(0, batch.length - 1), 0), /truncated/);
  const bad = Buffer.from(batch);
  bad.writeInt8(1, Off.magic);
  assert.throws(() => validateBatchAt(bad, 0), /magic 1/);
  assert.throws(() => splitBatches(Buffer.alloc(100)), (e: unknown) => isRaftkaError(e, 'CORRUPT_MESSAGE'));
});

test('an empty batch and the iterator over concatenated batches', () => {
  const empty = new BatchBuilder({ nowMs: 5 }).build();
  assert.equal(readBatchHeader(empty).recordCount, 0);
  assert.deepEqual(decodeRecords(empty), []);
  const two = Buffer.concat([buildBatch([{ value: 'a' }], { baseOffset: 0 }), buildBatch([{ value: 'b' }, { value: 'c' }], { baseOffset: 1 })]);
  const seen = [...iterateBatches(Buffer.concat([two, two.subarray(0, 20)]))].map((b) => b.header.baseOffset);
  assert.deepEqual(seen, [0, 1]);
});

test('explicit offset deltas keep gaps (as the cleaner needs)', () => {
  const b = new BatchBuilder({ baseOffset: 10 });
  b.append({ offsetDelta: 0, value: 'a' }).append({ offsetDelta: 5, value: 'b' });
  const batch = b.build();
  validateBatchAt(batch, 0);
  assert.equal(readBatchHeader(batch).lastOffset, 15);
  assert.deepEqual(decodeRecords(batch).map((r) => r.offset), [10, 15]);
});

test('int64 header fields round-trip at their extremes and match the big-endian int64 encoding', async () => {
  await assertProperty(
    'int64 header fields',
    fc.property(
      fc.integer({ min: 0, max: Number.MAX_SAFE_INTEGER - 1000 }),
      fc.oneof(fc.constant(-1), fc.integer({ min: 0, max: Number.MAX_SAFE_INTEGER })),
      fc.integer({ min: -1, max: 2 ** 50 }),
      (baseOffset, producerId, timestamp) => {
        const b = buildBatch([{ value: 'v', timestamp }], { baseOffset, producerId, producerEpoch: producerId < 0 ? -1 : 0, baseSequence: producerId < 0 ? -1 : 0 });
        const h = readBatchHeader(b);
        assert.equal(h.baseOffset, baseOffset);
        assert.equal(h.producerId, producerId);
        assert.equal(h.maxTimestamp, timestamp);
        assert.equal(b.readBigInt64BE(Off.baseOffset), BigInt(baseOffset));
        assert.equal(b.readBigInt64BE(Off.producerId), BigInt(producerId));
      },
    ),
  );
});
