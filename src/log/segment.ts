// One segment of a partition log: `<baseOffset>.log` holds batches exactly as appended;
// the sparse `.index` and `.timeindex` are kept in memory and written when the segment
// is sealed. A segment is opened lazily: until something reads it, only its name is known.
import { constants, writevSync } from 'node:fs';
import { open, stat, readFile, type FileHandle } from 'node:fs/promises';
import { join } from 'node:path';
import type { Logger } from '../common/logger.ts';
import { RaftkaError } from '../common/errors.ts';
import { BATCH_OVERHEAD, LOG_OVERHEAD, Off, readBatchHeader, validateBatchAt, type BatchHeader } from './batch.ts';
import { OffsetIndex, TimeIndex } from './indexes.ts';
import { unlinkIfExists, writeFileAtomic } from './checkpoint.ts';
import { readBuffers } from './read-buffers.ts';

/**
 * Appends up to this size are written on the calling thread. A page-cache write of a few
 * kilobytes takes microseconds, while handing it to the libuv pool costs a thread wake-up
 * and a completion wake-up; on a loaded two-core machine each wake-up can cost the event
 * loop its CPU (measured at 5,000 acks=all records/s: broker context switches -15%,
 * CPU -3%). Larger appends (throughput batches, follower fetches) stay asynchronous, so
 * their copy overlaps other work.
 */
const INLINE_WRITE_MAX = 64 * 1024;

export function segmentFileName(baseOffset: number, suffix: string): string {
  return `${String(baseOffset).padStart(20, '0')}${suffix}`;
}

/** Test-only hook: reports the file length made durable by each fsync (power-loss simulation). */
export type SyncObserver = (path: string, durableLength: number) => void;

export interface SegmentOptions {
  indexIntervalBytes: number;
  logger: Logger;
  onSync?: SyncObserver | undefined;
}

export interface AppendedBatch {
  baseOffset: number;
  lastOffset: number;
  maxTimestamp: number;
  size: number;
}

const SCAN_CHUNK_BYTES = 4 * 1024 * 1024;

export class LogSegment {
  readonly logPath: string;
  readonly indexPath: string;
  readonly timeIndexPath: string;
  /** Bytes of whole batches in the file; readers never look past it. */
  size: number;
  /** One past the last offset held (baseOffset when empty); valid once loaded. */
  nextOffset: number;
  maxTimestamp = -1;
  /** Wall-clock time of the first append into this segment, for segment.ms. */
  firstAppendMs: number | undefined;
  unflushed = false;
  deleted = false;
  private fh: FileHandle | undefined;
  private index: OffsetIndex | undefined;
  private timeIndex: TimeIndex | undefined;
  private bytesSinceIndexEntry = 0;
  private inflightReads = 0;

  private constructor(
    readonly dir: string,
    readonly baseOffset: number,
    size: number,
    private readonly opts: SegmentOptions,
  ) {
    this.logPath = join(dir, segmentFileName(baseOffset, '.log'));
    this.indexPath = join(dir, segmentFileName(baseOffset, '.index'));
    this.timeIndexPath = join(dir, segmentFileName(baseOffset, '.timeindex'));
    this.size = size;
    this.nextOffset = baseOffset;
  }

  static async create(dir: string, baseOffset: number, opts: SegmentOptions): Promise<LogSegment> {
    const seg = new LogSegment(dir, baseOffset, 0, opts);
    await unlinkIfExists(seg.indexPath);
    await unlinkIfExists(seg.timeIndexPath);
    // O_APPEND: writes always land at the end, also after a truncation moved it back.
    seg.fh = await open(seg.logPath, constants.O_CREAT | constants.O_TRUNC | constants.O_RDWR | constants.O_APPEND);
    seg.index = new OffsetIndex();
    seg.timeIndex = new TimeIndex();
    seg.unflushed = true; // the new file's directory entry is not durable yet
    return seg;
  }

  /** Knows the segment by name and size only; indexes load on first use. */
  static async openLazy(dir: string, baseOffset: number, opts: SegmentOptions): Promise<LogSegment> {
    const seg = new LogSegment(dir, baseOffset, 0, opts);
    seg.size = (await stat(seg.logPath)).size;
    return seg;
  }

  get loaded(): boolean {
    return this.index !== undefined;
  }

  get indexSizeInBytes(): number {
    return this.index?.sizeInBytes ?? 0;
  }

  private async handle(): Promise<FileHandle> {
    if (this.deleted) throw new RaftkaError('KAFKA_STORAGE_ERROR', `segment ${this.logPath} was deleted`);
    this.fh ??= await open(this.logPath, 'a+');
    return this.fh;
  }

  /**
   * Loads indexes written at seal time; if they are missing or inconsistent with the log
   * file, rebuilds them by scanning (the file is trusted up to its size here: this is
   * below the recovery point).
   */
  async ensureLoaded(): Promise<void> {
    if (this.index) return;
    const [idxBuf, timeBuf] = await Promise.all([readOptional(this.indexPath), readOptional(this.timeIndexPath)]);
    const idx = idxBuf ? OffsetIndex.parse(idxBuf, this.size) : undefined;
    const tidx = timeBuf ? TimeIndex.parse(timeBuf) : undefined;
    // The first batch of a segment is always indexed, so a non-empty segment with an
    // empty index has a stale or foreign index.
    if (idx && tidx && (this.size === 0) === (idx.entries === 0)) {
      // Find the tail from the last indexed batch: a short scan, not the whole segment.
      this.index = idx;
      this.timeIndex = tidx;
      this.maxTimestamp = tidx.lastTimestamp();
      await this.scan(idx.lastPosition(), false, (pos, h) => this.noteTail(pos, h));
      return;
    }
    if (idxBuf || timeBuf) this.opts.logger.warn({ file: this.indexPath }, 'segment index is missing or inconsistent; rebuilding');
    await this.rebuild(false);
  }

  private noteTail(_pos: number, h: BatchHeader): void {
    this.nextOffset = h.lastOffset + 1;
    if (h.maxTimestamp > this.maxTimestamp) this.maxTimestamp = h.maxTimestamp;
  }

  /**
   * Scans every batch from the start, checking CRCs when `validate`, rebuilding indexes.
   * Truncates the file at the first invalid batch and returns whether it did.
   */
  /** Rescans and CRC-checks every batch, cutting at the first bad one; `onBatch` sees each good one. */
  async recover(onBatch?: (h: BatchHeader) => void): Promise<{ truncated: boolean }> {
    return this.rebuild(true, onBatch);
  }

  private async rebuild(validate: boolean, onBatch?: (h: BatchHeader) => void): Promise<{ truncated: boolean }> {
    this.index = new OffsetIndex();
    this.timeIndex = new TimeIndex();
    this.bytesSinceIndexEntry = 0;
    this.maxTimestamp = -1;
    this.nextOffset = this.baseOffset;
    const end = await this.scan(0, validate, (pos, h) => {
      this.indexBatch(pos, h.baseOffset, h.maxTimestamp, h.sizeInBytes);
      this.noteTail(pos, h);
      onBatch?.(h);
    });
    if (end < this.size) {
      this.opts.logger.warn(
        { file: this.logPath, position: end, size: this.size },
        'segment has an invalid or torn batch; truncating at the last valid batch',
      );
      const fh = await this.handle();
      await fh.truncate(end);
      await fh.datasync();
      this.opts.onSync?.(this.logPath, end);
      this.size = end;
      return { truncated: true };
    }
    return { truncated: false };
  }

  /** Walks batch headers from `position`; returns the position after the last good batch. */
  private async scan(position: number, validate: boolean, visit: (pos: number, h: BatchHeader) => void): Promise<number> {
    const fh = await this.handle();
    let pos = position;
    let buf = Buffer.allocUnsafe(SCAN_CHUNK_BYTES);
    while (pos < this.size) {
      const want = Math.min(buf.length, this.size - pos);
      const { bytesRead } = await fh.read(buf, 0, want, pos);
      let p = 0;
      while (p + LOG_OVERHEAD <= bytesRead) {
        const batchSize = buf.readInt32BE(p + Off.batchLength) + LOG_OVERHEAD;
        if (batchSize < BATCH_OVERHEAD || pos + p + batchSize > this.size) return pos + p;
        if (p + batchSize > bytesRead) break; // continue in the next chunk
        if (validate) {
          try {
            validateBatchAt(buf, p, p + batchSize);
          } catch {
            return pos + p;
          }
        } else if (buf.readInt8(p + Off.magic) !== 2) return pos + p;
        const h = readBatchHeader(buf, p);
        if (h.baseOffset < this.nextOffset || h.lastOffset < h.baseOffset) return pos + p;
        visit(pos + p, h);
        p += batchSize;
      }
      if (p === 0) {
        // One batch larger than the buffer: grow and retry from the same place.
        const batchSize = bytesRead >= LOG_OVERHEAD ? buf.readInt32BE(Off.batchLength) + LOG_OVERHEAD : 0;
        if (batchSize <= buf.length) return pos;
        buf = Buffer.allocUnsafe(batchSize);
        continue;
      }
      pos += p;
    }
    return pos;
  }

  private indexBatch(position: number, baseOffset: number, maxTimestamp: number, size: number): void {
    const rel = baseOffset - this.baseOffset;
    if (this.index!.entries === 0 || this.bytesSinceIndexEntry >= this.opts.indexIntervalBytes) {
      if (this.index!.lastRelativeOffset() !== rel) this.index!.append(rel, position);
      this.timeIndex!.maybeAppend(Math.max(maxTimestamp, this.maxTimestamp), rel);
      this.bytesSinceIndexEntry = 0;
    }
    this.bytesSinceIndexEntry += size;
  }

  /** Appends whole, already validated batches (one writev). Offsets must follow nextOffset. */
  async append(buffers: Buffer[], batches: AppendedBatch[], nowMs: number): Promise<void> {
    const fh = await this.handle();
    let total = 0;
    for (const b of buffers) total += b.length;
    let written = 0;
    let bufs = buffers;
    try {
      while (written < total) {
        const bytesWritten = total <= INLINE_WRITE_MAX ? writevSync(fh.fd, bufs) : (await fh.writev(bufs)).bytesWritten;
        written += bytesWritten;
        if (written < total) bufs = remaining(buffers, written);
      }
    } catch (e) {
      // A partial write (ENOSPC, EIO) must not stay in the file: the next append would
      // land after it and positions would no longer match `size`.
      await fh.truncate(this.size);
      throw e;
    }
    this.firstAppendMs ??= nowMs;
    let pos = this.size;
    for (const b of batches) {
      this.indexBatch(pos, b.baseOffset, b.maxTimestamp, b.size);
      if (b.maxTimestamp > this.maxTimestamp) this.maxTimestamp = b.maxTimestamp;
      this.nextOffset = b.lastOffset + 1;
      pos += b.size;
    }
    this.size = pos;
    this.unflushed = true;
  }

  /** File position of the first batch whose last offset is >= offset (size if none). */
  async positionOf(offset: number): Promise<{ position: number; batchBase: number | undefined }> {
    await this.ensureLoaded();
    const start = this.index!.lookup(Math.max(0, offset - this.baseOffset));
    let result: { position: number; batchBase: number | undefined } = { position: this.size, batchBase: undefined };
    await this.scanUntil(start, (pos, h) => {
      if (h.lastOffset >= offset) {
        result = { position: pos, batchBase: h.baseOffset };
        return true;
      }
      return false;
    });
    return result;
  }

  private async scanUntil(position: number, stop: (pos: number, h: BatchHeader) => boolean): Promise<void> {
    const fh = await this.handle();
    const head = Buffer.allocUnsafe(BATCH_OVERHEAD);
    let pos = position;
    while (pos + BATCH_OVERHEAD <= this.size) {
      await fh.read(head, 0, BATCH_OVERHEAD, pos);
      const h = readBatchHeader(head);
      if (stop(pos, h)) return;
      pos += h.sizeInBytes;
    }
  }

  /**
   * Raw bytes of whole batches starting with the one holding `fromOffset`, at most
   * `maxBytes` (but at least one whole batch when `minOneBatch`), stopping before any
   * batch whose base offset is >= `upperBoundOffset`.
   */
  async read(fromOffset: number, maxBytes: number, upperBoundOffset: number, minOneBatch: boolean): Promise<Buffer | undefined> {
    this.inflightReads++;
    try {
      await this.ensureLoaded();
      const fh = await this.handle();
      const indexPos = this.index!.lookup(Math.max(0, fromOffset - this.baseOffset));
      const limit = this.size;
      // One pread normally covers the skip to fromOffset (at most index.interval.bytes
      // plus one batch) and the answer; the loop handles larger first batches.
      let want = Math.min(limit - indexPos, maxBytes + this.opts.indexIntervalBytes + BATCH_OVERHEAD);
      for (;;) {
        if (want <= 0) return undefined;
        const buf = readBuffers.acquire(want);
        // Given back unless it is answered: a failed read, a retry with more, nothing found.
        let answer: Buffer | undefined;
        try {
          const { bytesRead } = await fh.read(buf, 0, want, indexPos);
          let p = 0;
          let start = -1;
          let end = -1;
          let needMore = 0;
          while (p + BATCH_OVERHEAD <= bytesRead) {
            const h = readBatchHeader(buf, p);
            if (h.baseOffset >= upperBoundOffset) break;
            if (p + h.sizeInBytes > bytesRead) {
              if (start < 0 || (end === start && minOneBatch)) needMore = p + h.sizeInBytes;
              if (start < 0 && h.lastOffset < fromOffset) needMore = p + h.sizeInBytes + maxBytes;
              break;
            }
            if (start < 0 && h.lastOffset >= fromOffset) {
              start = p;
              end = p;
            }
            if (start >= 0) {
              if (end + h.sizeInBytes - start > maxBytes && !(end === start && minOneBatch)) break;
              end = p + h.sizeInBytes;
            }
            p += h.sizeInBytes;
          }
          if (needMore > 0 && indexPos + bytesRead < limit && needMore > want) {
            want = Math.min(limit - indexPos, needMore);
            continue;
          }
          if (start < 0 || end <= start) return undefined;
          // A view of a lent buffer: whoever consumes it last may give it back (read-buffers.ts).
          answer = buf.subarray(start, end);
          return answer;
        } finally {
          if (answer === undefined) readBuffers.release(buf);
        }
      }
    } finally {
      this.inflightReads--;
      if (this.deleted && this.inflightReads === 0) await this.closeHandle();
    }
  }

  /** Removes batches holding offsets >= offset (a batch straddling it goes whole). Returns the new next offset. */
  async truncateTo(offset: number): Promise<number> {
    await this.ensureLoaded();
    const { position, batchBase } = await this.positionOf(offset);
    if (position >= this.size) return this.nextOffset;
    const fh = await this.handle();
    await fh.truncate(position);
    await fh.datasync();
    this.opts.onSync?.(this.logPath, position);
    this.size = position;
    this.index!.truncateToPosition(position);
    this.timeIndex!.truncateToRelativeOffset((batchBase ?? offset) - this.baseOffset);
    // Recompute the tail from the last index entry.
    this.nextOffset = this.baseOffset;
    this.maxTimestamp = this.timeIndex!.lastTimestamp();
    await this.scan(this.index!.lastPosition(), false, (pos, h) => this.noteTail(pos, h));
    this.bytesSinceIndexEntry = 0;
    return this.nextOffset;
  }

  async flush(): Promise<void> {
    if (!this.unflushed || this.deleted) return;
    const size = this.size;
    this.unflushed = false;
    try {
      await (await this.handle()).datasync();
    } catch (e) {
      this.unflushed = true;
      throw e;
    }
    this.opts.onSync?.(this.logPath, size);
  }

  /** Writes the indexes of a segment that will not be appended to again. */
  async sealIndexes(): Promise<void> {
    if (!this.index || this.deleted) return;
    await writeFileAtomic(this.indexPath, this.index.serialize());
    await writeFileAtomic(this.timeIndexPath, this.timeIndex!.serialize());
  }

  /** The first record offset with timestamp >= target in this segment, by scanning from the time index hint. */
  async findTimestamp(target: number, decode: (batch: Buffer) => Array<{ offset: number; timestamp: number }>): Promise<number | undefined> {
    await this.ensureLoaded();
    if (this.maxTimestamp < target) return undefined;
    const rel = this.timeIndex!.lookup(target);
    const startPos = this.index!.lookup(rel);
    let found: { pos: number; size: number } | undefined;
    await this.scanUntil(startPos, (pos, h) => {
      if (h.maxTimestamp >= target) {
        found = { pos, size: h.sizeInBytes };
        return true;
      }
      return false;
    });
    if (!found) return undefined;
    const buf = Buffer.allocUnsafe(found.size);
    await (await this.handle()).read(buf, 0, found.size, found.pos);
    for (const r of decode(buf)) if (r.timestamp >= target) return r.offset;
    return readBatchHeader(buf).lastOffset;
  }

  /** Iterates whole batches (for the cleaner), validating each. */
  async *batches(): AsyncGenerator<Buffer> {
    const fh = await this.handle();
    let pos = 0;
    const limit = this.size;
    while (pos < limit) {
      const want = Math.min(SCAN_CHUNK_BYTES, limit - pos);
      let buf = Buffer.allocUnsafe(want);
      const { bytesRead } = await fh.read(buf, 0, want, pos);
      let p = 0;
      while (p + LOG_OVERHEAD <= bytesRead) {
        const size = buf.readInt32BE(p + Off.batchLength) + LOG_OVERHEAD;
        if (p + size > bytesRead) break;
        validateBatchAt(buf, p, p + size);
        yield Buffer.from(buf.subarray(p, p + size));
        p += size;
      }
      if (p === 0) {
        const size = buf.readInt32BE(Off.batchLength) + LOG_OVERHEAD;
        buf = Buffer.allocUnsafe(size);
        await fh.read(buf, 0, size, pos);
        validateBatchAt(buf, 0, size);
        yield buf;
        p = size;
      }
      pos += p;
    }
  }

  private async closeHandle(): Promise<void> {
    const fh = this.fh;
    this.fh = undefined;
    await fh?.close();
  }

  async close(): Promise<void> {
    await this.closeHandle();
  }

  /**
   * Stops using the file without syncing anything (crash simulation). The descriptor is
   * closed as the kernel closes a dead process's: close(2) flushes nothing, so what was
   * written stays in the page cache exactly as after a crash. Left to the GC, Node closes
   * it with a warning (DEP0137, an error in later Node versions).
   */
  abandon(): void {
    const fh = this.fh;
    this.fh = undefined;
    void fh?.close().catch(() => undefined);
  }

  /** Replaced by a cleaned copy of the same file name: stop using it, keep the files. */
  async retire(): Promise<void> {
    this.deleted = true;
    if (this.inflightReads === 0) await this.closeHandle();
  }

  async delete(): Promise<void> {
    this.deleted = true;
    await Promise.all([unlinkIfExists(this.logPath), unlinkIfExists(this.indexPath), unlinkIfExists(this.timeIndexPath)]);
    // A read in flight keeps the unlinked file readable; the last one closes it.
    if (this.inflightReads === 0) await this.closeHandle();
  }
}

function remaining(buffers: Buffer[], skip: number): Buffer[] {
  const out: Buffer[] = [];
  for (const b of buffers) {
    if (skip >= b.length) {
      skip -= b.length;
      continue;
    }
    out.push(skip > 0 ? b.subarray(skip) : b);
    skip = 0;
  }
  return out;
}

async function readOptional(path: string): Promise<Buffer | undefined> {
  try {
    return await readFile(path);
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code === 'ENOENT') return undefined;
    throw e;
  }
}
