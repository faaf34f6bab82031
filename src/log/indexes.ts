// Sparse segment indexes, held in memory as typed arrays and written whole when a
// segment is sealed (rolled or closed). The active segment's index is never written
// incrementally: after a crash the segment holding the recovery point is rescanned and
// its index rebuilt, so a torn index file can never mislead a lookup.
//
// .index     entries of 8 bytes:  relativeOffset int32, position int32 (batch start)
// .timeindex entries of 12 bytes: timestamp int64, relativeOffset int32 — the largest
//            timestamp seen so far in the segment and the base offset of its batch.

export const OFFSET_ENTRY_BYTES = 8;
export const TIME_ENTRY_BYTES = 12;

class GrowableInt32 {
  data = new Int32Array(64);
  length = 0;
  push(v: number): void {
    if (this.length === this.data.length) {
      const next = new Int32Array(this.data.length * 2);
      next.set(this.data);
      this.data = next;
    }
    this.data[this.length++] = v;
  }
  get(i: number): number {
    return this.data[i]!;
  }
}

export class OffsetIndex {
  private rel = new GrowableInt32();
  private pos = new GrowableInt32();

  get entries(): number {
    return this.rel.length;
  }

  get sizeInBytes(): number {
    return this.rel.length * OFFSET_ENTRY_BYTES;
  }

  lastRelativeOffset(): number | undefined {
    return this.rel.length === 0 ? undefined : this.rel.get(this.rel.length - 1);
  }

  lastPosition(): number {
    return this.pos.length === 0 ? 0 : this.pos.get(this.pos.length - 1);
  }

  append(relativeOffset: number, position: number): void {
    this.rel.push(relativeOffset);
    this.pos.push(position);
  }

  /** Position of the last entry whose offset is <= relativeOffset (0 if none). */
  lookup(relativeOffset: number): number {
    let lo = 0;
    let hi = this.rel.length - 1;
    let found = -1;
    while (lo <= hi) {
      const mid = (lo + hi) >>> 1;
      if (this.rel.get(mid) <= relativeOffset) {
        found = mid;
        lo = mid + 1;
      } else hi = mid - 1;
    }
    return found < 0 ? 0 : this.pos.get(found);
  }

  /** Drops entries at or past `position` (the segment was truncated there). */
  truncateToPosition(position: number): void {
    while (this.pos.length > 0 && this.pos.get(this.pos.length - 1) >= position) {
      this.pos.length--;
      this.rel.length--;
    }
  }

  serialize(): Buffer {
    const buf = Buffer.allocUnsafe(this.sizeInBytes);
    for (let i = 0; i < this.rel.length; i++) {
      buf.writeInt32BE(this.rel.get(i), i * 8);
      buf.writeInt32BE(this.pos.get(i), i * 8 + 4);
    }
    return buf;
  }

  /** Parses an index file; returns undefined when it is inconsistent with a log of `logSize` bytes. */
  static parse(buf: Buffer, logSize: number): OffsetIndex | undefined {
    if (buf.length % OFFSET_ENTRY_BYTES !== 0) return undefined;
    const idx = new OffsetIndex();
    let prevRel = -1;
    let prevPos = -1;
    for (let p = 0; p < buf.length; p += 8) {
      const rel = buf.readInt32BE(p);
      const pos = buf.readInt32BE(p + 4);
      if (rel <= prevRel || pos <= prevPos || pos >= logSize) return undefined;
      idx.append(rel, pos);
      prevRel = rel;
      prevPos = pos;
    }
    return idx;
  }
}

export class TimeIndex {
  private ts: number[] = [];
  private rel: number[] = [];

  get entries(): number {
    return this.ts.length;
  }

  lastTimestamp(): number {
    return this.ts.length === 0 ? -1 : this.ts[this.ts.length - 1]!;
  }

  maybeAppend(timestamp: number, relativeOffset: number): void {
    if (timestamp > this.lastTimestamp()) {
      this.ts.push(timestamp);
      this.rel.push(relativeOffset);
    }
  }

  /**
   * Relative offset to start scanning from to find the first record with timestamp >=
   * `target`: the entry with the largest timestamp strictly below target. Every batch
   * before that entry's batch has a max timestamp no larger than it, so none qualifies.
   */
  lookup(target: number): number {
    let lo = 0;
    let hi = this.ts.length - 1;
    let found = -1;
    while (lo <= hi) {
      const mid = (lo + hi) >>> 1;
      if (this.ts[mid]! < target) {
        found = mid;
        lo = mid + 1;
      } else hi = mid - 1;
    }
    return found < 0 ? 0 : this.rel[found]!;
  }

  truncateToRelativeOffset(relativeOffset: number): void {
    while (this.rel.length > 0 && this.rel[this.rel.length - 1]! >= relativeOffset) {
      this.rel.pop();
      this.ts.pop();
    }
  }

  serialize(): Buffer {
    const buf = Buffer.allocUnsafe(this.ts.length * TIME_ENTRY_BYTES);
    for (let i = 0; i < this.ts.length; i++) {
      buf.writeBigInt64BE(BigInt(this.ts[i]!), i * 12);
      buf.writeInt32BE(this.rel[i]!, i * 12 + 8);
    }
    return buf;
  }

  static parse(buf: Buffer): TimeIndex | undefined {
    if (buf.length % TIME_ENTRY_BYTES !== 0) return undefined;
    const idx = new TimeIndex();
    let prevTs = Number.MIN_SAFE_INTEGER;
    let prevRel = -1;
    for (let p = 0; p < buf.length; p += 12) {
      const ts = Number(buf.readBigInt64BE(p));
      const rel = buf.readInt32BE(p + 8);
      if (ts <= prevTs || rel < prevRel) return undefined;
      idx.ts.push(ts);
      idx.rel.push(rel);
      prevTs = ts;
      prevRel = rel;
    }
    return idx;
  }
}
