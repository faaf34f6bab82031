// Kafka's ConsumerProtocol layouts for the bytes the coordinator passes through
// untouched: a member's subscription (JoinGroupProtocol.metadata) and its assignment
// (SyncGroup). Subscription v1 carries ownedPartitions, which the cooperative protocol
// needs [KIP-429]; v0 readers ignore the tail. Decoding is defensive: bytes from another
// member may be garbage, which yields a RaftkaError, never a crash.
import { RaftkaError } from '../common/errors.ts';
import type { TopicPartitions } from './assignors.ts';

export interface Subscription {
  topics: string[];
  userData: Buffer | null;
  ownedPartitions: TopicPartitions[];
}

export interface MemberAssignment {
  assignment: TopicPartitions[];
  userData: Buffer | null;
}

class Writer {
  private readonly parts: Buffer[] = [];
  int16(v: number): this {
    const b = Buffer.allocUnsafe(2);
    b.writeInt16BE(v);
    this.parts.push(b);
    return this;
  }
  int32(v: number): this {
    const b = Buffer.allocUnsafe(4);
    b.writeInt32BE(v);
    this.parts.push(b);
    return this;
  }
  string(s: string): this {
    const b = Buffer.from(s, 'utf8');
    this.int16(b.length);
    this.parts.push(b);
    return this;
  }
  bytes(b: Buffer | null): this {
    if (b === null) return this.int32(-1);
    this.int32(b.length);
    this.parts.push(b);
    return this;
  }
  topicPartitions(list: TopicPartitions[]): this {
    this.int32(list.length);
    for (const tp of list) {
      this.string(tp.topic);
      this.int32(tp.partitions.length);
      for (const p of tp.partitions) this.int32(p);
    }
    return this;
  }
  done(): Buffer {
    return Buffer.concat(this.parts);
  }
}

class Reader {
  pos = 0;
  constructor(
    private readonly b: Buffer,
    private readonly what: string,
  ) {}
  private need(n: number): void {
    if (n < 0 || this.pos + n > this.b.length) throw new RaftkaError('INVALID_REQUEST', `${this.what}: truncated at byte ${this.pos}`);
  }
  get atEnd(): boolean {
    return this.pos >= this.b.length;
  }
  int16(): number {
    this.need(2);
    const v = this.b.readInt16BE(this.pos);
    this.pos += 2;
    return v;
  }
  int32(): number {
    this.need(4);
    const v = this.b.readInt32BE(this.pos);
    this.pos += 4;
    return v;
  }
  string(): string {
    const n = this.int16();
    this.need(n);
    const s = this.b.toString('utf8', this.pos, this.pos + n);
    this.pos += n;
    return s;
  }
  bytes(): Buffer | null {
    const n = this.int32();
    if (n === -1) return null;
    this.need(n);
    const v = this.b.subarray(this.pos, this.pos + n);
    this.pos += n;
    return v;
  }
  count(): number {
    const n = this.int32();
    if (n < 0 || n > this.b.length) throw new RaftkaError('INVALID_REQUEST', `${this.what}: bad array length ${n}`);
    return n;
  }
  topicPartitions(): TopicPartitions[] {
    const out: TopicPartitions[] = [];
    for (let i = this.count(); i > 0; i--) {
      const topic = this.string();
      const partitions: number[] = [];
      for (let j = this.count(); j > 0; j--) partitions.push(this.int32());
      out.push({ topic, partitions });
    }
    return out;
  }
}

export function encodeSubscription(s: Subscription): Buffer {
  const w = new Writer().int16(1).int32(s.topics.length);
  for (const t of s.topics) w.string(t);
  return w.bytes(s.userData).topicPartitions(s.ownedPartitions).done();
}

export function decodeSubscription(b: Buffer): Subscription {
  const r = new Reader(b, 'consumer subscription');
  const version = r.int16();
  const topics: string[] = [];
  for (let i = r.count(); i > 0; i--) topics.push(r.string());
  const userData = r.atEnd ? null : r.bytes();
  const ownedPartitions = version >= 1 && !r.atEnd ? r.topicPartitions() : [];
  return { topics, userData, ownedPartitions };
}

export function encodeAssignment(a: MemberAssignment): Buffer {
  return new Writer().int16(1).topicPartitions(a.assignment).bytes(a.userData).done();
}

export function decodeAssignment(b: Buffer): MemberAssignment {
  // A member the leader left out gets empty bytes: nothing assigned.
  if (b.length === 0) return { assignment: [], userData: null };
  const r = new Reader(b, 'consumer assignment');
  r.int16();
  const assignment = r.topicPartitions();
  const userData = r.atEnd ? null : r.bytes();
  return { assignment, userData };
}
