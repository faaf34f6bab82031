// Compression codecs for the SDK, by Kafka's attribute ids (src/log/compression.ts).
//
// - gzip: node:zlib. Asynchronous on the producer path (zlib runs on the libuv thread
//   pool, off the event loop); synchronous in the log registry.
// - snappy: `snappy` (napi-rs). Written in the xerial framing that Kafka's Java client
//   writes (snappy-java's SnappyOutputStream: magic header, then length-prefixed raw
//   blocks of at most 32 KiB). Every Kafka implementation reads xerial (Java, librdkafka,
//   KafkaJS's snappy codec, sarama), while raw snappy is only read by clients that look
//   for the missing header and fall back; writing xerial is the choice that interoperates
//   with all of them. On read both are accepted: a buffer that starts with the xerial
//   magic is unframed, anything else is treated as one raw block (what librdkafka and
//   KafkaJS write).
// - lz4: `lz4-napi`'s frame format (lz4_flex: independent 64 KiB blocks, no content
//   checksum), which is what Kafka's KafkaLZ4BlockOutputStream writes for v2 batches
//   (magic >= 1 computes the frame header checksum correctly [KAFKA-3160]).
// - zstd: `@mongodb-js/zstd`, standard zstd frames; it only has an asynchronous API, so
//   zstd batches decode through `decodeBatch` (async), not the synchronous
//   `decodeRecords` of src/log/batch.ts.
import { gzip as gzipCb, gunzip as gunzipCb, gzipSync, gunzipSync } from 'node:zlib';
import { promisify } from 'node:util';
import * as snappy from 'snappy';
import * as lz4 from 'lz4-napi';
import * as zstd from '@mongodb-js/zstd';
import { RaftkaError } from '../common/errors.ts';
import { BATCH_OVERHEAD, LOG_OVERHEAD, Attr, Off, computeCrc, decodeRecords, readBatchHeader, validateBatchAt, type LogRecord } from '../log/batch.ts';
import { CompressionType, registerCodec } from '../log/compression.ts';

export { CompressionType };

/** KafkaJS's enum names, so `CompressionTypes.GZIP` code ports unchanged. */
export const CompressionTypes = { None: 0, GZIP: 1, Snappy: 2, LZ4: 3, ZSTD: 4 } as const;

export type CompressionOption = 'none' | 'gzip' | 'snappy' | 'lz4' | 'zstd' | 0 | 1 | 2 | 3 | 4;

/** Resolves a compression option (a name or a Kafka attribute id) to the attribute id. */
export function compressionId(c: CompressionOption | undefined): number {
  if (c === undefined) return CompressionType.none;
  if (typeof c === 'number') {
    if (Number.isInteger(c) && c >= 0 && c <= 4) return c;
  } else if (Object.hasOwn(CompressionType, c)) return CompressionType[c];
  throw new RaftkaError('INVALID_CONFIG', `unknown compression ${JSON.stringify(c)}: use none, gzip, snappy, lz4 or zstd`);
}

// ─── snappy, xerial framing ───

/** snappy-java's stream header: 0x82 "SNAPPY" 0x00, then version 1 and min compatible version 1. */
const XERIAL_MAGIC = Buffer.from([0x82, 0x53, 0x4e, 0x41, 0x50, 0x50, 0x59, 0x00]);
const XERIAL_HEADER_BYTES = 16;
/** snappy-java's default block size, which Kafka's Java client uses. */
const XERIAL_BLOCK_BYTES = 32 * 1024;

function snappyRaw(data: Buffer): Buffer {
  return snappy.compressSync(data);
}

function snappyUnraw(data: Buffer): Buffer {
  return snappy.uncompressSync(data, { asBuffer: true }) as Buffer;
}

export function xerialCompress(data: Buffer): Buffer {
  const parts: Buffer[] = [];
  const header = Buffer.alloc(XERIAL_HEADER_BYTES);
  XERIAL_MAGIC.copy(header, 0);
  header.writeInt32BE(1, 8);
  header.writeInt32BE(1, 12);
  parts.push(header);
  // Empty input is the header alone, as snappy-java writes it.
  for (let pos = 0; pos < data.length; pos += XERIAL_BLOCK_BYTES) {
    const block = snappyRaw(data.subarray(pos, pos + XERIAL_BLOCK_BYTES));
    const len = Buffer.allocUnsafe(4);
    len.writeInt32BE(block.length, 0);
    parts.push(len, block);
  }
  return Buffer.concat(parts);
}

export function isXerial(data: Buffer): boolean {
  return data.length >= XERIAL_HEADER_BYTES && data.subarray(0, XERIAL_MAGIC.length).equals(XERIAL_MAGIC);
}

/** Decompresses xerial-framed or raw snappy. */
export function snappyDecompress(data: Buffer): Buffer {
  if (!isXerial(data)) return snappyUnraw(data);
  const out: Buffer[] = [];
  let pos = XERIAL_HEADER_BYTES;
  while (pos < data.length) {
    if (pos + 4 > data.length) throw new RangeError('xerial snappy: truncated block length');
    const len = data.readInt32BE(pos);
    pos += 4;
    if (len < 0 || pos + len > data.length) throw new RangeError(`xerial snappy: block of ${len} bytes overruns the buffer`);
    out.push(snappyUnraw(data.subarray(pos, pos + len)));
    pos += len;
  }
  return Buffer.concat(out);
}

// ─── the registry ───

export interface AsyncCodec {
  compress(data: Buffer): Promise<Buffer>;
  decompress(data: Buffer): Promise<Buffer>;
}

const gzipAsync = promisify(gzipCb);
const gunzipAsync = promisify(gunzipCb);

/**
 * Codecs used by the producer and decodeBatch. snappy and lz4 run synchronously: on a
 * 64 KiB batch they take tens of microseconds, less than a thread-pool hop costs.
 */
const asyncCodecs = new Map<number, AsyncCodec>([
  [CompressionType.none, { compress: (d) => Promise.resolve(d), decompress: (d) => Promise.resolve(d) }],
  [CompressionType.gzip, { compress: (d) => gzipAsync(d), decompress: (d) => gunzipAsync(d) }],
  [CompressionType.snappy, { compress: (d) => Promise.resolve(xerialCompress(d)), decompress: (d) => Promise.resolve(snappyDecompress(d)) }],
  [CompressionType.lz4, { compress: (d) => Promise.resolve(lz4.compressFrameSync(d)), decompress: (d) => Promise.resolve(lz4.decompressFrameSync(d)) }],
  [CompressionType.zstd, { compress: (d) => zstd.compress(d), decompress: (d) => zstd.decompress(d) }],
]);

export function asyncCodecFor(type: number): AsyncCodec {
  const c = asyncCodecs.get(type);
  if (!c) throw new RaftkaError('UNSUPPORTED_VERSION', `compression codec ${type} is not available`);
  return c;
}

let registered = false;

/**
 * Registers the synchronous codecs with the log layer's registry, so `decodeRecords`
 * and `buildBatch` handle snappy and lz4 too (gzip is built in). zstd has no
 * synchronous implementation here: its sync entry throws a clear error pointing to
 * `decodeBatch`. Idempotent; `new Raftka(...)` calls it.
 */
export function registerCodecs(): void {
  if (registered) return;
  registered = true;
  registerCodec(CompressionType.gzip, { compress: (d) => gzipSync(d), decompress: (d) => gunzipSync(d) });
  registerCodec(CompressionType.snappy, { compress: xerialCompress, decompress: snappyDecompress });
  registerCodec(CompressionType.lz4, { compress: (d) => lz4.compressFrameSync(d), decompress: (d) => lz4.decompressFrameSync(d) });
  const zstdSync = (): never => {
    throw new RaftkaError('UNSUPPORTED_VERSION', 'zstd has only an asynchronous codec in this SDK: decode zstd batches with decodeBatch() from src/client/codecs.ts');
  };
  registerCodec(CompressionType.zstd, { compress: zstdSync, decompress: zstdSync });
}

/**
 * Turns an uncompressed v2 batch (as BatchBuilder builds it) into a compressed one with
 * the same header: the records section is compressed, attributes get the codec id, and
 * the length and CRC are redone. Returns the input unchanged for `none`.
 */
export async function compressBatch(batch: Buffer, type: number): Promise<Buffer> {
  if (type === CompressionType.none) return batch;
  const body = await asyncCodecFor(type).compress(batch.subarray(BATCH_OVERHEAD));
  const out = Buffer.allocUnsafe(BATCH_OVERHEAD + body.length);
  batch.copy(out, 0, 0, BATCH_OVERHEAD);
  body.copy(out, BATCH_OVERHEAD);
  out.writeInt32BE(out.length - LOG_OVERHEAD, Off.batchLength);
  out.writeInt16BE((out.readInt16BE(Off.attributes) & ~Attr.compressionMask) | type, Off.attributes);
  out.writeUInt32BE(computeCrc(out), Off.crc);
  return out;
}

/**
 * Decodes one batch's records, decompressing with any codec (zstd included). Validates
 * the batch (size, magic, CRC) first; throws CORRUPT_MESSAGE on a defect. For the
 * consumer: split a fetch response with `iterateBatches` and decode each batch here.
 */
export async function decodeBatch(batch: Buffer): Promise<LogRecord[]> {
  const size = validateBatchAt(batch, 0);
  const h = readBatchHeader(batch);
  if (h.compression === CompressionType.none) return decodeRecords(batch.subarray(0, size));
  let body: Buffer;
  try {
    body = await asyncCodecFor(h.compression).decompress(batch.subarray(BATCH_OVERHEAD, size));
  } catch (e) {
    if (e instanceof RaftkaError) throw e;
    throw new RaftkaError('CORRUPT_MESSAGE', `batch at offset ${h.baseOffset} does not decompress: ${(e as Error).message}`);
  }
  // An uncompressed twin of the batch (CRC not redone: it was checked above) for the
  // shared record decoder.
  const plain = Buffer.allocUnsafe(BATCH_OVERHEAD + body.length);
  batch.copy(plain, 0, 0, BATCH_OVERHEAD);
  body.copy(plain, BATCH_OVERHEAD);
  plain.writeInt32BE(plain.length - LOG_OVERHEAD, Off.batchLength);
  plain.writeInt16BE(h.attributes & ~Attr.compressionMask, Off.attributes);
  return decodeRecords(plain);
}
