/**
 * The records of `__consumer_offsets`, in Kafka's layout (GroupMetadataManager): a
 * versioned key naming what the record is about, and a versioned value (null: a
 * tombstone, deleted by compaction after delete.retention.ms).
 *
 *   offset commit   key v1: group string, topic string, partition int32
 *                   value v3: offset int64, leader epoch int32, metadata string,
 *                             commit timestamp int64
 *   group metadata  key v2: group string
 *                   value v3: protocol type string, generation int32, protocol
 *                             nullable string, leader nullable string, state timestamp
 *                             int64, members [member id, instance id (nullable), client
 *                             id, client host, rebalance timeout int32, session timeout
 *                             int32, subscription bytes, assignment bytes]
 *
 * Strings are int16 length + UTF-8 (-1: null); bytes and arrays int32 length. Keys are
 * compared byte for byte by compaction, so one group/partition always encodes the same.
 */
import { RaftkaError } from '../common/errors.ts';

export const OFFSET_KEY_VERSION = 1;
export const GROUP_KEY_VERSION = 2;
const OFFSET_VALUE_VERSION = 3;
const GROUP_VALUE_VERSION = 3;

export type GroupRecordKey = { kind: 'offset'; group: string; topic: string; partition: number } | { kind: 'group'; group: string };

export interface OffsetValue {
  offset: number;
  leaderEpoch: number;
  metadata: string;
  commitTimestamp: number;
}

export interface StoredMember {
  memberId: string;
  groupInstanceId: string | null;
  clientId: string;
  clientHost: string;
  rebalanceTimeoutMs: number;
  sessionTimeoutMs: number;
  subscription: Buffer;
  assignment: Buffer;
}

export interface GroupValue {
  protocolType: string;
  generation: number;
  protocol: string | null;
  leader: string | null;
  stateTimestamp: number;
  members: StoredMember[];
}

class Writer {
  private parts: Buffer[] = [];
  int16(v: number): this {
    const b = Buffer.alloc(2);
    b.writeInt16BE(v);
    this.parts.push(b);
    return this;
  }
  int32(v: number): this {
    const b = Buffer.alloc(4);
    b.writeInt32BE(v);
    this.parts.push(b);
    return this;
  }
  int64(v: number): this {
    const b = Buffer.alloc(8);
    b.writeBigInt64BE(BigInt(v));
    this.parts.push(b);
    return this;
  }
  string(v: string | null): this {
    if (v === null) return this.int16(-1);
    const s = Buffer.from(v, 'utf8');
    if (s.length > 0x7fff) throw new RaftkaError('INVALID_REQUEST', `a string of ${s.length} bytes does not fit a group record`);
    this.int16(s.length);
    this.parts.push(s);
    return this;
  }
  bytes(v: Buffer): this {
    this.int32(v.length);
    this.parts.push(v);
    return this;
  }
  build(): Buffer {
    return Buffer.concat(this.parts);
  }
}

class Reader {
  private pos = 0;
  constructor(
    private readonly buf: Buffer,
    private readonly what: string,
  ) {}
  private need(n: number): void {
    if (this.pos + n > this.buf.length) throw new RaftkaError('CORRUPT_MESSAGE', `${this.what} ends early at byte ${this.pos}`);
  }
  int16(): number {
    this.need(2);
    const v = this.buf.readInt16BE(this.pos);
    this.pos += 2;
    return v;
  }
  int32(): number {
    this.need(4);
    const v = this.buf.readInt32BE(this.pos);
    this.pos += 4;
    return v;
  }
  int64(): number {
    this.need(8);
    const v = Number(this.buf.readBigInt64BE(this.pos));
    this.pos += 8;
    return v;
  }
  nullableString(): string | null {
    const n = this.int16();
    if (n < 0) return null;
    this.need(n);
    const s = this.buf.toString('utf8', this.pos, this.pos + n);
    this.pos += n;
    return s;
  }
  string(): string {
    const s = this.nullableString();
    if (s === null) throw new RaftkaError('CORRUPT_MESSAGE', `${this.what} has a null where a string belongs`);
    return s;
  }
  bytes(): Buffer {
    const n = this.int32();
    if (n < 0) return Buffer.alloc(0);
    this.need(n);
    const b = Buffer.from(this.buf.subarray(this.pos, this.pos + n));
    this.pos += n;
    return b;
  }
}

export function encodeKey(k: GroupRecordKey): Buffer {
  if (k.kind === 'offset') return new Writer().int16(OFFSET_KEY_VERSION).string(k.group).string(k.topic).int32(k.partition).build();
  return new Writer().int16(GROUP_KEY_VERSION).string(k.group).build();
}

/** Decodes a key; undefined for a version this broker does not know (skipped on load). */
export function decodeKey(buf: Buffer): GroupRecordKey | undefined {
  const r = new Reader(buf, 'a __consumer_offsets key');
  const version = r.int16();
  // Versions 0 and 1 are both offset-commit keys in Kafka.
  if (version === 0 || version === OFFSET_KEY_VERSION) return { kind: 'offset', group: r.string(), topic: r.string(), partition: r.int32() };
  if (version === GROUP_KEY_VERSION) return { kind: 'group', group: r.string() };
  return undefined;
}

export function encodeOffsetValue(v: OffsetValue): Buffer {
  return new Writer().int16(OFFSET_VALUE_VERSION).int64(v.offset).int32(v.leaderEpoch).string(v.metadata).int64(v.commitTimestamp).build();
}

export function decodeOffsetValue(buf: Buffer): OffsetValue {
  const r = new Reader(buf, 'an offset commit value');
  const version = r.int16();
  if (version !== OFFSET_VALUE_VERSION) throw new RaftkaError('CORRUPT_MESSAGE', `offset commit value version ${version} is not supported`);
  return { offset: r.int64(), leaderEpoch: r.int32(), metadata: r.string(), commitTimestamp: r.int64() };
}

export function encodeGroupValue(v: GroupValue): Buffer {
  const w = new Writer().int16(GROUP_VALUE_VERSION).string(v.protocolType).int32(v.generation).string(v.protocol).string(v.leader).int64(v.stateTimestamp).int32(v.members.length);
  for (const m of v.members) {
    w.string(m.memberId).string(m.groupInstanceId).string(m.clientId).string(m.clientHost).int32(m.rebalanceTimeoutMs).int32(m.sessionTimeoutMs).bytes(m.subscription).bytes(m.assignment);
  }
  return w.build();
}

export function decodeGroupValue(buf: Buffer): GroupValue {
  const r = new Reader(buf, 'a group metadata value');
  const version = r.int16();
  if (version !== GROUP_VALUE_VERSION) throw new RaftkaError('CORRUPT_MESSAGE', `group metadata value version ${version} is not supported`);
  const protocolType = r.string();
  const generation = r.int32();
  const protocol = r.nullableString();
  const leader = r.nullableString();
  const stateTimestamp = r.int64();
  const n = r.int32();
  if (n < 0 || n > 100_000) throw new RaftkaError('CORRUPT_MESSAGE', `group metadata value claims ${n} members`);
  const members: StoredMember[] = [];
  for (let i = 0; i < n; i++) {
    members.push({
      memberId: r.string(),
      groupInstanceId: r.nullableString(),
      clientId: r.string(),
      clientHost: r.string(),
      rebalanceTimeoutMs: r.int32(),
      sessionTimeoutMs: r.int32(),
      subscription: r.bytes(),
      assignment: r.bytes(),
    });
  }
  return { protocolType, generation, protocol, leader, stateTimestamp, members };
}

/** Kafka's coordinator choice: Java's String.hashCode, made non-negative (Utils.abs). */
export function groupPartition(groupId: string, partitions: number): number {
  let h = 0;
  for (let i = 0; i < groupId.length; i++) h = (Math.imul(h, 31) + groupId.charCodeAt(i)) | 0;
  // Utils.abs: Integer.MIN_VALUE maps to 0, not to itself.
  const abs = h === -2147483648 ? 0 : Math.abs(h);
  return abs % partitions;
}
