// Every codec round-trips on its own and inside a batch: a batch compressed by the SDK
// decodes with the log layer's decodeRecords once the codecs are registered (zstd, which
// is async-only here, through decodeBatch), and snappy reads both xerial and raw.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import fc from 'fast-check';
import * as snappy from 'snappy';
import * as lz4 from 'lz4-napi';
import { asyncCodecFor, compressBatch, decodeBatch, isXerial, registerCodecs, snappyDecompress, xerialCompress, compressionId, CompressionTypes } from '../../src/client/codecs.ts';
import { buildBatch, decodeRecords, readBatchHeader, validateBatchAt } from '../../src/log/batch.ts';
import { CompressionType } from '../../src/log/compression.ts';
import { isRaftkaError } from '../../src/common/errors.ts';
import { assertProperty } from '../support/property.ts';

registerCodecs();

const json = (n: number) => Buffer.from(JSON.stringify(Array.from({ length: n }, (_, i) => ({ id: i, user: `user-${i % 17}`, event: 'click', ok: true }))));

test('each codec round-trips arbitrary bytes', async () => {
  await assertProperty(
    'codec round trip',
    fc.asyncProperty(fc.constantFrom(1, 2, 3, 4), fc.uint8Array({ maxLength: 100_000 }), async (type, bytes) => {
      const data = Buffer.from(bytes);
      const c = asyncCodecFor(type);
      return (await c.decompress(await c.compress(data))).equals(data);
    }),
    { numRuns: 60 },
  );
});

test('snappy writes xerial framing (32 KiB blocks) and reads both xerial and raw', () => {
  const data = json(3000);
  assert.ok(data.length > 64 * 1024);
  const framed = xerialCompress(data);
  assert.ok(isXerial(framed));
  assert.equal(framed.readInt32BE(8), 1);
  assert.equal(framed.readInt32BE(12), 1);
  assert.ok(snappyDecompress(framed).equals(data));
  // Raw snappy, as librdkafka and KafkaJS write it.
  assert.ok(snappyDecompress(snappy.compressSync(data)).equals(data));
  assert.ok(snappyDecompress(xerialCompress(Buffer.alloc(0))).equals(Buffer.alloc(0)));
});

test('lz4 writes the LZ4 frame format with independent blocks, as Kafka reads it', () => {
  const out = lz4.compressFrameSync(json(100));
  assert.equal(out.readUInt32LE(0), 0x184d2204); // frame magic
  const flg = out[4]!;
  assert.equal(flg >> 6, 1, 'frame version 01');
  assert.ok((flg & 0x20) !== 0, 'block independence flag');
});

test('a batch compressed by the SDK decodes with decodeRecords (gzip, snappy, lz4) and decodeBatch (all)', async () => {
  const records = Array.from({ length: 200 }, (_, i) => ({ key: i % 3 === 0 ? null : `k${i}`, value: JSON.stringify({ i, payload: 'x'.repeat(i % 50) }), headers: { h: `v${i}` }, timestamp: 1_700_000_000_000 + i }));
  const plain = buildBatch(records, { producerId: 7, producerEpoch: 0, baseSequence: 42 });
  const expected = decodeRecords(plain);
  for (const type of [1, 2, 3, 4]) {
    const batch = await compressBatch(plain, type);
    validateBatchAt(batch, 0); // CRC redone
    const h = readBatchHeader(batch);
    assert.equal(h.compression, type);
    assert.equal(h.producerId, 7);
    assert.equal(h.baseSequence, 42);
    assert.equal(h.recordCount, 200);
    assert.ok(batch.length < plain.length, `codec ${type} shrinks compressible records`);
    assert.deepEqual(await decodeBatch(batch), expected);
    if (type !== CompressionType.zstd) assert.deepEqual(decodeRecords(batch), expected);
    else assert.throws(() => decodeRecords(batch), (e) => isRaftkaError(e, 'UNSUPPORTED_VERSION') && /decodeBatch/.test(e.message));
  }
});

test('decodeBatch rejects a corrupted compressed batch with CORRUPT_MESSAGE', async () => {
  const batch = await compressBatch(buildBatch([{ value: 'hello' }]), 3);
  batch[batch.length - 2]! ^= 0xff;
  await assert.rejects(decodeBatch(batch), (e) => isRaftkaError(e, 'CORRUPT_MESSAGE'));
});

test('compression options: names, KafkaJS enum values, and a clear error for anything else', () => {
  assert.equal(compressionId('lz4'), 3);
  assert.equal(compressionId(CompressionTypes.ZSTD), 4);
  assert.equal(compressionId(undefined), 0);
  assert.throws(() => compressionId('brotli' as never), (e) => isRaftkaError(e, 'INVALID_CONFIG'));
});
