// The newest batches of a log as the very Buffers they were written from, so a read at
// the tail (followers that keep up, consumers at the high watermark: nearly every fetch
// under load) is answered without a pread, a fresh allocation or, for a single batch, a
// copy. Profiling acks=all produce showed the per-fetch read buffers (two followers per
// batch) driving much of the brokers' GC time.
//
// Invariant: the entries are a contiguous run of batches ending at the log end offset
// (each entry starts where the previous ended). Every write that does not go through
// `append` (truncation, a failed write, a follower append, the cleaner's swap, a fresh
// start) must `clear`.
//
// Bounded by entries and by the bytes it keeps alive: an entry is usually a view into a
// whole produce request, so what counts is the size of the memory behind the view, not
// the batch's own length; a batch whose memory alone exceeds the bound is not kept.
// Bounded in time too: readers at the tail come within milliseconds of a write, so an
// entry older than a second mostly pins memory (every partition a broker leads kept its
// last 2 MiB for good once writes to it stopped: 24 MB per broker in the perf matrix).

/** Bytes an entry keeps alive: the whole allocation behind the view. */
function pinned(b: Buffer): number {
  return Math.max(b.length, b.buffer.byteLength);
}

export interface TailEntry {
  baseOffset: number;
  lastOffset: number;
  bytes: Buffer;
  writtenAtMs: number;
}

export class TailCache {
  private entries: TailEntry[] = [];
  private head = 0;
  private size = 0;

  constructor(
    readonly bytesMax: number,
    readonly entriesMax: number,
  ) {}

  get length(): number {
    return this.entries.length - this.head;
  }

  /** Records a batch just written at the log end. */
  append(baseOffset: number, lastOffset: number, bytes: Buffer, writtenAtMs: number): void {
    const last = this.entries[this.entries.length - 1];
    if (last !== undefined && this.length > 0 && baseOffset !== last.lastOffset + 1) this.clear();
    const cost = pinned(bytes);
    if (cost > this.bytesMax) {
      // Not kept, and the run it would have continued is no longer the log's tail.
      this.clear();
      return;
    }
    this.entries.push({ baseOffset, lastOffset, bytes, writtenAtMs });
    this.size += cost;
    while (this.length > 1 && (this.size > this.bytesMax || this.length > this.entriesMax)) this.dropOldest();
    this.compact();
  }

  /** Drops the entries written before `cutoffMs` (the oldest first, so the rest still ends at the log end). */
  expireBefore(cutoffMs: number): void {
    while (this.length > 0 && this.entries[this.head]!.writtenAtMs < cutoffMs) this.dropOldest();
    if (this.length === 0) this.clear();
    else this.compact();
  }

  private dropOldest(): void {
    this.size -= pinned(this.entries[this.head]!.bytes);
    this.entries[this.head++] = undefined as unknown as TailEntry;
  }

  /** Compacts the array now and then instead of shifting on every eviction. */
  private compact(): void {
    if (this.head > 64 && this.head * 2 > this.entries.length) {
      this.entries = this.entries.slice(this.head);
      this.head = 0;
    }
  }

  /** Bytes the entries keep alive. */
  get pinnedBytes(): number {
    return this.size;
  }

  clear(): void {
    this.entries = [];
    this.head = 0;
    this.size = 0;
  }

  /**
   * The batches a log read from `fromOffset` would return (the one holding it, then on,
   * none at or past `upperBoundOffset`, at most `maxBytes` but the first one whole when
   * `minOneBatch`), or undefined when the cache does not reach back to `fromOffset`.
   * An empty answer (nothing below the bound) is a valid hit.
   */
  read(fromOffset: number, maxBytes: number, upperBoundOffset: number, minOneBatch: boolean): Buffer[] | undefined {
    if (this.length === 0 || fromOffset < this.entries[this.head]!.baseOffset) return undefined;
    let i = this.entries.length - 1;
    while (i > this.head && this.entries[i]!.baseOffset > fromOffset) i--;
    const out: Buffer[] = [];
    let bytes = 0;
    for (let j = i; j < this.entries.length; j++) {
      const e = this.entries[j]!;
      if (e.lastOffset < fromOffset) continue;
      if (e.baseOffset >= upperBoundOffset) break;
      if (bytes + e.bytes.length > maxBytes && !(out.length === 0 && minOneBatch)) break;
      out.push(e.bytes);
      bytes += e.bytes.length;
    }
    return out;
  }
}
