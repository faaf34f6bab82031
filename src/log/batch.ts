// The record batch: Kafka's v2 (magic 2) layout, byte for byte, so offsets and epochs
// can be patched in place and the CRC (which starts at `attributes`) stays valid.
//
//   0 baseOffset int64 | 8 batchLength int32 | 12 partitionLeaderEpoch int32 | 16 magic int8
//  17 crc uint32 (CRC32C of bytes 21..end) | 21 attributes int16 | 23 lastOffsetDelta int32
//  27 baseTimestamp int64 | 35 maxTimestamp int64 | 43 producerId int64
//  51 producerEpoch int16 | 53 baseSequence int32 | 57 recordCount int32 | 61 records…
//
// A record: length varint, attributes int8, timestampDelta varlong, offsetDelta varint,
// key (varint length, -1 = null), value (same), header count varint, headers.
import { crc32c } from '@node-rs/crc32';
import { RaftkaError } from '../common/errors.ts';
import { codecFor, CompressionType } from './compression.ts';
import { Reader, sizeOfVarint, sizeOfVarlong, writeVarint, writeVarlong } from './varint.ts';

export const MAGIC = 2;
export const BATCH_OVERHEAD = 61;
/** Bytes before `batchLength` counts: baseOffset + batchLength itself. */
export const LOG_OVERHEAD = 12;
const CRC_START = 21;

export const Off = {
  baseOffset: 0,
  batchLength: 8,
  partitionLeaderEpoch: 12,
  magic: 16,
  crc: 17,
  attributes: 21,
  lastOffsetDelta: 23,
  baseTimestamp: 27,
  maxTimestamp: 35,
  producerId: 43,
  producerEpoch: 51,
  baseSequence: 53,
  recordCount: 57,
} as const;

export const Attr = {
  compressionMask: 0x07,
  logAppendTime: 0x08,
  transactional: 0x10,
  control: 0x20,
  deleteHorizon: 0x40,
} as const;

export const NO_PRODUCER_ID = -1;
export const NO_PRODUCER_EPOCH = -1;
export const NO_SEQUENCE = -1;
export const NO_PARTITION_LEADER_EPOCH = -1;
export const NO_TIMESTAMP = -1;

export interface Header {
  key: string;
  value: Buffer | null;
}

export interface RecordInput {
  /** Offset delta from the batch's base; defaults to the next one. The cleaner sets it to keep offsets. */
  offsetDelta?: number;
  key?: Buffer | string | null;
  value: Buffer | string | null;
  headers?: Header[] | Record<string, Buffer | string>;
  timestamp?: number;
}

export interface LogRecord {
  offset: number;
  timestamp: number;
  key: Buffer | null;
  value: Buffer | null;
  headers: Header[];
}

/** A batch's header fields, read without touching its records. */
export interface BatchHeader {
  baseOffset: number;
  lastOffset: number;
  batchLength: number;
  /** Total size in bytes (batchLength + 12). */
  sizeInBytes: number;
  partitionLeaderEpoch: number;
  magic: number;
  crc: number;
  attributes: number;
  compression: number;
  isTransactional: boolean;
  isControl: boolean;
  baseTimestamp: number;
  maxTimestamp: number;
  producerId: number;
  producerEpoch: number;
  baseSequence: number;
  lastSequence: number;
  recordCount: number;
}

// int64 fields as two 32-bit halves: exact for every value a Number holds exactly
// (offsets, timestamps and producer ids stay far below 2^53), and no BigInt allocated per
// field (four per header read, on every follower, consumer and producer-state path).
const TWO_POW_32 = 4294967296;

function readInt64(buf: Buffer, pos: number): number {
  return buf.readInt32BE(pos) * TWO_POW_32 + buf.readUInt32BE(pos + 4);
}

function writeInt64(buf: Buffer, pos: number, v: number): void {
  if (!Number.isSafeInteger(v)) throw new RangeError(`int64 field value ${v} is not a safe integer`);
  const hi = Math.floor(v / TWO_POW_32);
  buf.writeInt32BE(hi, pos);
  buf.writeUInt32BE(v - hi * TWO_POW_32, pos + 4);
}

export function readBatchHeader(buf: Buffer, pos = 0): BatchHeader {
  const batchLength = buf.readInt32BE(pos + Off.batchLength);
  const attributes = buf.readInt16BE(pos + Off.attributes);
  const baseOffset = readInt64(buf, pos + Off.baseOffset);
  const lastOffsetDelta = buf.readInt32BE(pos + Off.lastOffsetDelta);
  const baseSequence = buf.readInt32BE(pos + Off.baseSequence);
  return {
    baseOffset,
    lastOffset: baseOffset + lastOffsetDelta,
    batchLength,
    sizeInBytes: batchLength + LOG_OVERHEAD,
    partitionLeaderEpoch: buf.readInt32BE(pos + Off.partitionLeaderEpoch),
    magic: buf.readInt8(pos + Off.magic),
    crc: buf.readUInt32BE(pos + Off.crc),
    attributes,
    compression: attributes & Attr.compressionMask,
    isTransactional: (attributes & Attr.transactional) !== 0,
    isControl: (attributes & Attr.control) !== 0,
    baseTimestamp: readInt64(buf, pos + Off.baseTimestamp),
    maxTimestamp: readInt64(buf, pos + Off.maxTimestamp),
    producerId: readInt64(buf, pos + Off.producerId),
    producerEpoch: buf.readInt16BE(pos + Off.producerEpoch),
    baseSequence,
    lastSequence: baseSequence === NO_SEQUENCE ? NO_SEQUENCE : (baseSequence + lastOffsetDelta) % 2 ** 31,
    recordCount: buf.readInt32BE(pos + Off.recordCount),
  };
}

export function computeCrc(batch: Buffer): number {
  return crc32c(batch.subarray(CRC_START)) >>> 0;
}

export function setBaseOffset(buf: Buffer, pos: number, baseOffset: number): void {
  writeInt64(buf, pos + Off.baseOffset, baseOffset);
}

export function setPartitionLeaderEpoch(buf: Buffer, pos: number, epoch: number): void {
  buf.writeInt32BE(epoch, pos + Off.partitionLeaderEpoch);
}

/** Switches a batch to LogAppendTime; this changes CRC-covered bytes, so the CRC is redone. */
export function setLogAppendTime(batch: Buffer, timestamp: number): void {
  batch.writeInt16BE(batch.readInt16BE(Off.attributes) | Attr.logAppendTime, Off.attributes);
  writeInt64(batch, Off.maxTimestamp, timestamp);
  batch.writeUInt32BE(computeCrc(batch), Off.crc);
}

function corrupt(msg: string): RaftkaError {
  return new RaftkaError('CORRUPT_MESSAGE', msg);
}

/**
 * Checks the batch starting at `pos` is complete, well-formed and matches its CRC, and
 * returns its size. Throws CORRUPT_MESSAGE naming what was wrong.
 */
export function validateBatchAt(buf: Buffer, pos: number, end = buf.length): number {
  const avail = end - pos;
  if (avail < BATCH_OVERHEAD) throw corrupt(`batch at byte ${pos} is truncated: ${avail} bytes, header needs ${BATCH_OVERHEAD}`);
  const batchLength = buf.readInt32BE(pos + Off.batchLength);
  const size = batchLength + LOG_OVERHEAD;
  if (batchLength < BATCH_OVERHEAD - LOG_OVERHEAD) throw corrupt(`batch at byte ${pos} has invalid length ${batchLength}`);
  if (size > avail) throw corrupt(`batch at byte ${pos} is truncated: length says ${size} bytes, ${avail} present`);
  const magic = buf.readInt8(pos + Off.magic);
  if (magic !== MAGIC) throw corrupt(`batch at byte ${pos} has unsupported magic ${magic}`);
  const stored = buf.readUInt32BE(pos + Off.crc);
  const actual = crc32c(buf.subarray(pos + CRC_START, pos + size)) >>> 0;
  if (stored !== actual) throw corrupt(`batch at byte ${pos} failed its CRC check (stored ${stored}, computed ${actual})`);
  const lastOffsetDelta = buf.readInt32BE(pos + Off.lastOffsetDelta);
  const count = buf.readInt32BE(pos + Off.recordCount);
  if (count < 0 || lastOffsetDelta < 0 || (count > 0 && lastOffsetDelta < count - 1)) {
    throw corrupt(`batch at byte ${pos} has inconsistent record count ${count} and last offset delta ${lastOffsetDelta}`);
  }
  return size;
}

/** Splits a buffer of concatenated batches, validating each; throws CORRUPT_MESSAGE on any defect. */
export function splitBatches(buf: Buffer): Array<{ pos: number; size: number }> {
  const out: Array<{ pos: number; size: number }> = [];
  let pos = 0;
  while (pos < buf.length) {
    const size = validateBatchAt(buf, pos);
    out.push({ pos, size });
    pos += size;
  }
  return out;
}

function toBuf(v: Buffer | string | null | undefined): Buffer | null {
  if (v === null || v === undefined) return null;
  return typeof v === 'string' ? Buffer.from(v) : v;
}

const NO_HEADERS: readonly Header[] = [];
const NO_HEADER_KEYS: readonly Buffer[] = [];

function normalizeHeaders(h: RecordInput['headers']): readonly Header[] {
  if (!h) return NO_HEADERS;
  if (Array.isArray(h)) return h;
  return Object.entries(h).map(([key, value]) => ({ key, value: toBuf(value) }));
}

export interface BatchBuilderOptions {
  compression?: number;
  producerId?: number;
  producerEpoch?: number;
  baseSequence?: number;
  baseOffset?: number;
  partitionLeaderEpoch?: number;
  isTransactional?: boolean;
  isControl?: boolean;
  logAppendTime?: boolean;
  /** Used for records without a timestamp. */
  nowMs?: number;
  initialCapacity?: number;
}

/**
 * Encodes records straight into one growing buffer (no per-record allocation beyond
 * strings turned into bytes), then fills the header and CRC on build().
 */
export class BatchBuilder {
  private buf: Buffer;
  private pos = BATCH_OVERHEAD;
  private count = 0;
  private lastOffsetDelta = -1;
  private baseTimestamp = NO_TIMESTAMP;
  private maxTimestamp = NO_TIMESTAMP;
  private readonly opts: BatchBuilderOptions;

  constructor(opts: BatchBuilderOptions = {}) {
    this.opts = opts;
    this.buf = Buffer.allocUnsafe(Math.max(opts.initialCapacity ?? 1024, BATCH_OVERHEAD + 64));
  }

  get recordCount(): number {
    return this.count;
  }

  /** Bytes the batch would take uncompressed. */
  get sizeInBytes(): number {
    return this.pos;
  }

  private ensure(n: number): void {
    if (this.pos + n <= this.buf.length) return;
    let cap = this.buf.length * 2;
    while (cap < this.pos + n) cap *= 2;
    const next = Buffer.allocUnsafe(cap);
    this.buf.copy(next, 0, 0, this.pos);
    this.buf = next;
  }

  append(record: RecordInput): this {
    const key = toBuf(record.key);
    const value = toBuf(record.value);
    const headers = normalizeHeaders(record.headers);
    const timestamp = record.timestamp ?? this.opts.nowMs ?? Date.now();
    if (this.count === 0) this.baseTimestamp = timestamp;
    if (timestamp > this.maxTimestamp) this.maxTimestamp = timestamp;
    const tsDelta = timestamp - this.baseTimestamp;
    const offsetDelta = record.offsetDelta ?? this.lastOffsetDelta + 1;
    if (offsetDelta <= this.lastOffsetDelta) throw new RangeError(`offset delta ${offsetDelta} is not increasing`);
    this.lastOffsetDelta = offsetDelta;
    const headerKeys = headers.length === 0 ? NO_HEADER_KEYS : headers.map((h) => Buffer.from(h.key));
    let bodySize =
      1 +
      sizeOfVarlong(tsDelta) +
      sizeOfVarint(offsetDelta) +
      (key ? sizeOfVarint(key.length) + key.length : 1) +
      (value ? sizeOfVarint(value.length) + value.length : 1) +
      sizeOfVarint(headers.length);
    for (let i = 0; i < headers.length; i++) {
      const hk = headerKeys[i]!;
      const hv = headers[i]!.value;
      bodySize += sizeOfVarint(hk.length) + hk.length + (hv ? sizeOfVarint(hv.length) + hv.length : 1);
    }
    this.ensure(bodySize + 5);
    const b = this.buf;
    let p = writeVarint(b, this.pos, bodySize);
    b[p++] = 0;
    p = writeVarlong(b, p, tsDelta);
    p = writeVarint(b, p, offsetDelta);
    if (key) {
      p = writeVarint(b, p, key.length);
      p += key.copy(b, p);
    } else p = writeVarint(b, p, -1);
    if (value) {
      p = writeVarint(b, p, value.length);
      p += value.copy(b, p);
    } else p = writeVarint(b, p, -1);
    p = writeVarint(b, p, headers.length);
    for (let i = 0; i < headers.length; i++) {
      const hk = headerKeys[i]!;
      const hv = headers[i]!.value;
      p = writeVarint(b, p, hk.length);
      p += hk.copy(b, p);
      if (hv) {
        p = writeVarint(b, p, hv.length);
        p += hv.copy(b, p);
      } else p = writeVarint(b, p, -1);
    }
    this.pos = p;
    this.count++;
    return this;
  }

  /**
   * Returns the finished batch; the builder must not be used afterwards. `crc: false`
   * leaves the CRC field unset, for a caller that patches the header (producer id and
   * sequence, or a compressed body) and computes the CRC itself afterwards.
   */
  build({ crc = true }: { crc?: boolean } = {}): Buffer {
    const o = this.opts;
    const compression = o.compression ?? CompressionType.none;
    let out: Buffer;
    if (compression === CompressionType.none) {
      out = this.buf.subarray(0, this.pos);
    } else {
      const compressed = codecFor(compression).compress(this.buf.subarray(BATCH_OVERHEAD, this.pos));
      out = Buffer.allocUnsafe(BATCH_OVERHEAD + compressed.length);
      compressed.copy(out, BATCH_OVERHEAD);
    }
    const now = o.nowMs ?? Date.now();
    const baseTimestamp = this.count === 0 ? now : this.baseTimestamp;
    let attributes = compression;
    if (o.logAppendTime) attributes |= Attr.logAppendTime;
    if (o.isTransactional) attributes |= Attr.transactional;
    if (o.isControl) attributes |= Attr.control;
    writeInt64(out, Off.baseOffset, o.baseOffset ?? 0);
    out.writeInt32BE(out.length - LOG_OVERHEAD, Off.batchLength);
    out.writeInt32BE(o.partitionLeaderEpoch ?? NO_PARTITION_LEADER_EPOCH, Off.partitionLeaderEpoch);
    out.writeInt8(MAGIC, Off.magic);
    out.writeInt16BE(attributes, Off.attributes);
    out.writeInt32BE(Math.max(this.lastOffsetDelta, 0), Off.lastOffsetDelta);
    writeInt64(out, Off.baseTimestamp, baseTimestamp);
    writeInt64(out, Off.maxTimestamp, this.count === 0 ? baseTimestamp : this.maxTimestamp);
    writeInt64(out, Off.producerId, o.producerId ?? NO_PRODUCER_ID);
    out.writeInt16BE(o.producerEpoch ?? NO_PRODUCER_EPOCH, Off.producerEpoch);
    out.writeInt32BE(o.baseSequence ?? NO_SEQUENCE, Off.baseSequence);
    out.writeInt32BE(this.count, Off.recordCount);
    if (crc) out.writeUInt32BE(computeCrc(out), Off.crc);
    return out;
  }
}

/** Builds one batch from records; the common case in tests and tools. */
export function buildBatch(records: RecordInput[], opts: BatchBuilderOptions = {}): Buffer {
  const b = new BatchBuilder(opts);
  for (const r of records) b.append(r);
  return b.build();
}

/** Decodes a batch's records (decompressing if needed). Throws CORRUPT_MESSAGE on malformed records. */
export function decodeRecords(batch: Buffer): LogRecord[] {
  const h = readBatchHeader(batch);
  let body = batch.subarray(BATCH_OVERHEAD, h.sizeInBytes);
  if (h.compression !== CompressionType.none) {
    try {
      body = codecFor(h.compression).decompress(body);
    } catch (e) {
      if (e instanceof RaftkaError) throw e;
      throw corrupt(`batch at offset ${h.baseOffset} does not decompress: ${(e as Error).message}`);
    }
  }
  const logAppend = (h.attributes & Attr.logAppendTime) !== 0;
  const out: LogRecord[] = [];
  const r = new Reader(body, 0, body.length);
  try {
    for (let i = 0; i < h.recordCount; i++) {
      const len = r.varint();
      const end = r.pos + len;
      if (len < 0 || end > body.length) throw new RangeError(`record length ${len} out of bounds`);
      r.int8();
      const tsDelta = r.varlong();
      const offsetDelta = r.varint();
      const keyLen = r.varint();
      const key = keyLen < 0 ? null : Buffer.from(r.bytes(keyLen));
      const valueLen = r.varint();
      const value = valueLen < 0 ? null : Buffer.from(r.bytes(valueLen));
      const nh = r.varint();
      if (nh < 0) throw new RangeError(`negative header count ${nh}`);
      const headers: Header[] = [];
      for (let j = 0; j < nh; j++) {
        const hk = r.bytes(r.varint()).toString();
        const hvLen = r.varint();
        headers.push({ key: hk, value: hvLen < 0 ? null : Buffer.from(r.bytes(hvLen)) });
      }
      if (r.pos !== end) throw new RangeError(`record ${i} length ${len} does not match its contents`);
      out.push({
        offset: h.baseOffset + offsetDelta,
        timestamp: logAppend ? h.maxTimestamp : h.baseTimestamp + tsDelta,
        key,
        value,
        headers,
      });
    }
  } catch (e) {
    if (e instanceof RaftkaError) throw e;
    throw corrupt(`batch at offset ${h.baseOffset} has a malformed record: ${(e as Error).message}`);
  }
  if (r.pos !== body.length) throw corrupt(`batch at offset ${h.baseOffset} has ${body.length - r.pos} trailing bytes`);
  return out;
}

/** Iterates the batches in a buffer of concatenated batches (e.g. a fetch response). */
export function* iterateBatches(buf: Buffer): Generator<{ header: BatchHeader; bytes: Buffer }> {
  let pos = 0;
  while (pos + LOG_OVERHEAD <= buf.length) {
    const size = buf.readInt32BE(pos + Off.batchLength) + LOG_OVERHEAD;
    if (pos + size > buf.length) return; // a partial trailing batch, as in Kafka fetch responses
    validateBatchAt(buf, pos, pos + size);
    const bytes = buf.subarray(pos, pos + size);
    yield { header: readBatchHeader(bytes), bytes };
    pos += size;
  }
}
