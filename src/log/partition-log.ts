// A partition's log: ordered segments in one directory, plus the recovery-point and
// leader-epoch checkpoints. Mutations (append, roll, truncate, retention, the cleaner's
// swap) run one at a time through a queue; reads run concurrently and only ever see whole
// batches below a segment's written size.
//
// Durability: `flush()` fdatasyncs every segment with unflushed bytes; appends waiting
// for durability share one flush (group commit). The recovery point (all offsets below
// it are on disk) is checkpointed; after a crash, everything from the segment holding it
// onwards is rescanned, CRC-checked, and cut at the first torn or corrupt batch.
import { mkdir, readdir, rename } from 'node:fs/promises';
import { join } from 'node:path';
import { RaftkaError, assert } from '../common/errors.ts';
import { systemClock, type Clock } from '../common/clock.ts';
import { silentLogger, type Logger } from '../common/logger.ts';
import {
  type BatchHeader,
  decodeRecords,
  readBatchHeader,
  setBaseOffset,
  setLogAppendTime,
  setPartitionLeaderEpoch,
  splitBatches,
} from './batch.ts';
import { fsyncDir, readFileIfExists, unlinkIfExists, writeFileAtomic } from './checkpoint.ts';
import { logConfig, type LogConfig } from './config.ts';
import { LeaderEpochCache } from './leader-epoch.ts';
import { LogSegment, segmentFileName, type AppendedBatch, type SegmentOptions, type SyncObserver } from './segment.ts';
import { cleanSegment, buildOffsetMap } from './cleaner.ts';
import { TailCache } from './tail-cache.ts';
import { readBuffers } from './read-buffers.ts';

export interface LogOptions {
  config?: LogConfig;
  clock?: Clock;
  logger?: Logger;
  /** Test-only: told the durable length of every file after each fsync. */
  onSync?: SyncObserver;
  /**
   * How often the recovery point is checkpointed after flushes (default 10 s). Each
   * checkpoint is a file write, two fsyncs and a rename per partition; it only bounds how
   * much an unclean start rescans, so Kafka does it once a minute
   * (log.flush.offset.checkpoint.interval.ms). Once a second it cost ~2.5% of a broker's
   * CPU under produce load.
   */
  recoveryCheckpointIntervalMs?: number;
}

export interface AppendInfo {
  firstOffset: number;
  lastOffset: number;
  maxTimestamp: number;
  /** The broker's timestamp when message.timestamp.type=LogAppendTime, else -1. */
  logAppendTimeMs: number;
  batchCount: number;
  recordCount: number;
  bytes: number;
  /** Set when a LeaderAppendAdmission answered with the offsets of an earlier append: nothing was written. */
  duplicate?: boolean;
}

/**
 * A leader append's admission check (the idempotent producer check [KIP-98]), run inside
 * the log's serialized append path at the moment offsets are assigned, so the check and
 * the assignment are one step with respect to every other append to this log.
 * `batches` are the append's headers as sent (offsets not yet patched); the first batch
 * will get `firstOffset`. Throw a RaftkaError to refuse the append (nothing is written);
 * answer 'duplicate' with the offsets an earlier append got to write nothing and resolve
 * the append with them. Must be synchronous and must not touch the log.
 */
export type LeaderAppendAdmission = (
  batches: readonly BatchHeader[],
  firstOffset: number,
  nowMs: number,
  appendTimeMs: number,
) => { kind: 'append' } | { kind: 'duplicate'; firstOffset: number; lastOffset: number; maxTimestamp: number };

export interface ReadResult {
  /** Whole raw batches, as stored. Empty when nothing is available. */
  records: Buffer;
  logStartOffset: number;
  logEndOffset: number;
}

interface PendingAppend {
  buf: Buffer;
  batches: Array<{ pos: number; size: number }>;
  asLeader: boolean;
  leaderEpoch: number;
  admit: LeaderAppendAdmission | undefined;
  resolve(info: AppendInfo): void;
  reject(e: unknown): void;
}

interface Checkpoint {
  version: 1;
  recoveryPoint: number;
  logStartOffset: number;
  cleanShutdown: boolean;
}

const CHECKPOINT_FILE = 'partition.checkpoint';
const DRAIN_BYTES_MAX = 1024 * 1024;
/**
 * The tail cache (tail-cache.ts): enough for the batches appended while a follower's
 * fetch is on its way; counted by the memory kept alive (each entry may be a view into
 * a whole produce request, up to the SDK's 1 MiB maxRequestSize plus framing).
 */
const TAIL_CACHE_BYTES = 2 * 1024 * 1024;
const TAIL_CACHE_ENTRIES = 8;
/** Tail cache entries older than this are dropped by expireTailCache(). */
const TAIL_CACHE_MAX_AGE_MS = 1000;
const EPOCH_FILE = 'leader-epoch-checkpoint';

/**
 * Several cached batches as one buffer, in a buffer lent by the read pool: joining them
 * for every follower fetch was as much new external memory as the bytes produced (read
 * by a profile of 1 KiB produce), and the reader gives it back once sent
 * (log/read-buffers.ts).
 */
function joinIntoLent(parts: readonly Buffer[]): Buffer {
  let n = 0;
  for (const p of parts) n += p.length;
  const out = readBuffers.acquire(n);
  let pos = 0;
  for (const p of parts) pos += p.copy(out, pos);
  return out.subarray(0, n);
}

export class PartitionLog {
  private segments: LogSegment[] = [];
  private _logStartOffset = 0;
  private _recoveryPoint = 0;
  private unflushedRecords = 0;
  private pending: PendingAppend[] = [];
  private drainQueued = false;
  private opTail: Promise<unknown> = Promise.resolve();
  private flushing: Promise<void> | undefined;
  private flushWanted = false;
  private durableWaiters: Array<{ offset: number; resolve(): void; reject(e: unknown): void }> = [];
  private checkpointTail: Promise<void> = Promise.resolve();
  private lastCheckpointMs = 0;
  private flushTimer: NodeJS.Timeout | undefined;
  private closed = false;
  private cleaning = false;
  private dirDirty = false;
  private readonly tail = new TailCache(TAIL_CACHE_BYTES, TAIL_CACHE_ENTRIES);
  private segOpts: SegmentOptions;
  private _config: LogConfig;

  private constructor(
    readonly dir: string,
    config: LogConfig,
    private readonly clock: Clock,
    private readonly logger: Logger,
    private readonly epochs: LeaderEpochCache,
    private readonly opts: LogOptions,
  ) {
    this._config = config;
    this.segOpts = { indexIntervalBytes: config['index.interval.bytes'], logger, onSync: opts.onSync };
  }

  /** The topic-level settings in force now (see updateConfig). */
  get config(): LogConfig {
    return this._config;
  }

  /**
   * Applies changed topic settings (an IncrementalAlterConfigs that committed): appends,
   * retention, compaction and flushing read them from the next operation on; a new
   * index.interval.bytes applies to segments created from now on.
   */
  updateConfig(config: LogConfig): void {
    this._config = config;
    if (config['index.interval.bytes'] !== this.segOpts.indexIntervalBytes) this.segOpts = { ...this.segOpts, indexIntervalBytes: config['index.interval.bytes'] };
  }

  static async open(dir: string, opts: LogOptions = {}): Promise<PartitionLog> {
    await mkdir(dir, { recursive: true });
    const logger = (opts.logger ?? silentLogger()).child({ component: 'log', dir });
    const epochs = await LeaderEpochCache.load(join(dir, EPOCH_FILE));
    const log = new PartitionLog(dir, opts.config ?? logConfig(), opts.clock ?? systemClock, logger, epochs, opts);
    await log.load();
    return log;
  }

  get logStartOffset(): number {
    return this._logStartOffset;
  }

  get logEndOffset(): number {
    return this.active.nextOffset;
  }

  /** Every offset below this is on disk (fdatasync'd). */
  get flushedOffset(): number {
    return this._recoveryPoint;
  }

  get sizeInBytes(): number {
    return this.segments.reduce((n, s) => n + s.size, 0);
  }

  get segmentCount(): number {
    return this.segments.length;
  }

  /** Base offset of the segment appends go to; changes when the log rolls. */
  get activeSegmentBaseOffset(): number {
    return this.active.baseOffset;
  }

  segmentBaseOffsets(): number[] {
    return this.segments.map((s) => s.baseOffset);
  }

  get leaderEpochCache(): LeaderEpochCache {
    return this.epochs;
  }

  private get active(): LogSegment {
    return this.segments[this.segments.length - 1]!;
  }

  // ---- open and recovery ----

  private async load(): Promise<void> {
    const names = await readdir(this.dir);
    // Half-finished cleaner output and checkpoint temp files are dropped; the originals are intact.
    for (const n of names) if (n.endsWith('.cleaned') || n.endsWith('.tmp')) await unlinkIfExists(join(this.dir, n));
    const bases = names
      .filter((n) => /^\d{20}\.log$/.test(n))
      .map((n) => Number(n.slice(0, 20)))
      .sort((a, b) => a - b);
    const cp = await this.readCheckpoint();
    this._logStartOffset = cp?.logStartOffset ?? bases[0] ?? 0;
    for (const base of bases) this.segments.push(await LogSegment.openLazy(this.dir, base, this.segOpts));
    if (this.segments.length === 0) {
      this.segments.push(await LogSegment.create(this.dir, this._logStartOffset, this.segOpts));
      await fsyncDir(this.dir);
      this._recoveryPoint = this._logStartOffset;
    } else if (cp?.cleanShutdown) {
      await this.active.ensureLoaded();
      this._recoveryPoint = this.active.nextOffset;
    } else {
      await this.recover(cp?.recoveryPoint ?? 0);
    }
    if (this._logStartOffset < this.segments[0]!.baseOffset) this._logStartOffset = this.segments[0]!.baseOffset;
    if (this._logStartOffset > this.logEndOffset) this._logStartOffset = this.logEndOffset;
    if (this.epochs.truncateFromEnd(this.logEndOffset)) await this.epochs.persist();
    // From here on the log is live: a crash must not be mistaken for a clean shutdown.
    await this.writeCheckpoint(false);
    this.logger.debug({ logStartOffset: this._logStartOffset, logEndOffset: this.logEndOffset, segments: this.segments.length }, 'log opened');
  }

  private async recover(recoveryPoint: number): Promise<void> {
    let i = Math.max(0, this.floorIndex(recoveryPoint));
    this.logger.info({ recoveryPoint, fromSegment: this.segments[i]!.baseOffset }, 'recovering log after unclean shutdown');
    // The leader-epoch checkpoint is written after the batches it describes, so a crash
    // can leave batches whose epoch it never recorded. A follower whose cache lacks the
    // epoch of its last batches reports no last fetched epoch, the leader's divergence
    // check [KIP-101] is skipped, and a divergent tail survives (seen: offset 0 written
    // in epoch 0 on a killed leader, kept beside the new leader's offset 0 of epoch 1).
    // So the epochs of the rescanned range are rebuilt from the batches themselves.
    this.epochs.truncateFromEnd(this.segments[i]!.baseOffset);
    const assignEpoch = (h: BatchHeader) => {
      if (h.partitionLeaderEpoch >= 0) this.epochs.assign(h.partitionLeaderEpoch, h.baseOffset);
    };
    for (; i < this.segments.length; i++) {
      const seg = this.segments[i]!;
      const { truncated } = await seg.recover(assignEpoch);
      if (truncated && i < this.segments.length - 1) {
        const doomed = this.segments.splice(i + 1);
        this.logger.warn({ segments: doomed.map((s) => s.baseOffset) }, 'deleting segments after a corrupt batch');
        for (const s of doomed) await s.delete();
        break;
      }
    }
    // What recovery kept is valid but not known to be durable (after a process crash the
    // unsynced writes may sit in the page cache only). fsync it, so the flushed offset
    // covers the whole log: a replica reports it to the leader, whose durable high
    // watermark and ISR admission wait for it, and a replica with nothing new to append
    // would otherwise report the old checkpoint's recovery point forever (nothing else
    // flushes an idle log).
    for (let j = Math.max(0, this.floorIndex(recoveryPoint)); j < this.segments.length; j++) {
      const seg = this.segments[j]!;
      seg.unflushed = true;
      await seg.flush();
    }
    await fsyncDir(this.dir);
    this._recoveryPoint = this.logEndOffset;
    await this.epochs.persist();
  }

  private async readCheckpoint(): Promise<Checkpoint | undefined> {
    const path = join(this.dir, CHECKPOINT_FILE);
    const text = await readFileIfExists(path);
    if (text === undefined) return undefined;
    try {
      const cp = JSON.parse(text) as Checkpoint;
      if (cp.version !== 1 || !Number.isInteger(cp.recoveryPoint) || !Number.isInteger(cp.logStartOffset)) throw new Error('bad fields');
      return cp;
    } catch (e) {
      // Losing it costs only a longer recovery: scan everything.
      this.logger.warn({ file: path, err: (e as Error).message }, 'checkpoint unreadable; recovering the whole log');
      return undefined;
    }
  }

  private writeCheckpoint(cleanShutdown: boolean): Promise<void> {
    const run = async () => {
      const cp: Checkpoint = { version: 1, recoveryPoint: this._recoveryPoint, logStartOffset: this._logStartOffset, cleanShutdown };
      await writeFileAtomic(join(this.dir, CHECKPOINT_FILE), JSON.stringify(cp));
      this.lastCheckpointMs = this.clock.monotonicMs();
    };
    const p = this.checkpointTail.then(run);
    this.checkpointTail = p.catch((e: unknown) => this.logger.error({ err: e }, 'checkpoint write failed'));
    return p;
  }

  // ---- serialization of mutations ----

  private serialize<T>(fn: () => Promise<T>): Promise<T> {
    const p = this.opTail.then(() => {
      if (this.closed) throw new RaftkaError('KAFKA_STORAGE_ERROR', `log ${this.dir} is closed`);
      return fn();
    });
    this.opTail = p.catch(() => undefined);
    return p;
  }

  private floorIndex(offset: number): number {
    let lo = 0;
    let hi = this.segments.length - 1;
    let found = -1;
    while (lo <= hi) {
      const mid = (lo + hi) >>> 1;
      if (this.segments[mid]!.baseOffset <= offset) {
        found = mid;
        lo = mid + 1;
      } else hi = mid - 1;
    }
    return found;
  }

  // ---- append ----

  /**
   * Leader append: validates every batch (CRC, size), assigns offsets from the log end by
   * patching each batch's base offset and leader epoch in place, and writes it. Nothing
   * is written when any batch is invalid. Resolves once written (and, when
   * flush.before.ack, once durable). `admit`, when given, may refuse the append or
   * answer it as a duplicate (see LeaderAppendAdmission). `onWritten` is told once the
   * batches are written, before the durability wait: a leader wakes its followers then,
   * so their fetch, write and fsync overlap its own fsync instead of following it.
   */
  appendAsLeader(records: Buffer, leaderEpoch: number, admit?: LeaderAppendAdmission, onWritten?: () => void): Promise<AppendInfo> {
    return this.enqueue(records, true, leaderEpoch, admit, onWritten);
  }

  /** Follower append: batches keep the leader's offsets and epochs; they must start at or after the log end. */
  appendAsFollower(records: Buffer): Promise<AppendInfo> {
    return this.enqueue(records, false, -1, undefined);
  }

  private async enqueue(buf: Buffer, asLeader: boolean, leaderEpoch: number, admit: LeaderAppendAdmission | undefined, onWritten?: () => void): Promise<AppendInfo> {
    if (this.closed) throw new RaftkaError('KAFKA_STORAGE_ERROR', `log ${this.dir} is closed`);
    const batches = splitBatches(buf);
    if (batches.length === 0) throw new RaftkaError('CORRUPT_MESSAGE', 'append holds no record batch');
    const max = this.config['max.message.bytes'];
    let prevLast = -1;
    for (const b of batches) {
      // Only a leader enforces max.message.bytes, as in Kafka: a follower copies what its
      // leader accepted, possibly under a larger limit before a config change reached
      // either of them, and refusing it would strand the replica forever.
      if (asLeader && b.size > max) {
        throw new RaftkaError('MESSAGE_TOO_LARGE', `record batch of ${b.size} bytes exceeds max.message.bytes ${max}`);
      }
      if (!asLeader) {
        const h = readBatchHeader(buf, b.pos);
        if (h.baseOffset <= prevLast) throw new RaftkaError('CORRUPT_MESSAGE', `batch offsets go back: ${h.baseOffset} after ${prevLast}`);
        prevLast = h.lastOffset;
      }
      if (asLeader && this.config['cleanup.policy'].includes('compact')) {
        for (const r of decodeRecords(buf.subarray(b.pos, b.pos + b.size))) {
          if (r.key === null) throw new RaftkaError('INVALID_RECORD', 'compacted topics accept only records with a key');
        }
      }
    }
    const info = await new Promise<AppendInfo>((resolve, reject) => {
      this.pending.push({ buf, batches, asLeader, leaderEpoch, admit, resolve, reject });
      if (!this.drainQueued) {
        this.drainQueued = true;
        void this.serialize(() => this.drain()).catch(() => undefined);
      }
    });
    onWritten?.();
    if (this.config['flush.before.ack']) await this.waitForDurable(info.lastOffset + 1);
    return info;
  }

  private async drain(): Promise<void> {
    this.drainQueued = false;
    // Take at most DRAIN_BYTES_MAX per write (1 MiB measured best of 256 KiB..1 MiB):
    // while it is in the kernel, the appenders it releases validate their next batches,
    // so CRC work and writes overlap instead of alternating.
    let take = 0;
    let bytes = 0;
    while (take < this.pending.length && (take === 0 || bytes < DRAIN_BYTES_MAX)) bytes += this.pending[take++]!.buf.length;
    const work = this.pending.slice(0, take);
    this.pending = this.pending.slice(take);
    if (this.pending.length > 0) {
      this.drainQueued = true;
      void this.serialize(() => this.drain()).catch(() => undefined);
    }
    const now = this.clock.nowMs();
    let bufs: Buffer[] = [];
    let meta: AppendedBatch[] = [];
    let size = this.active.size;
    const done: Array<{ p: PendingAppend; info: AppendInfo }> = [];
    let epochChanged = false;
    const leaderWrite = work.every((p) => p.asLeader);
    try {
      for (const p of work) {
        let next = meta.length > 0 ? meta[meta.length - 1]!.lastOffset + 1 : this.active.nextOffset;
        const appendTime = this.config['message.timestamp.type'] === 'LogAppendTime' ? now : -1;
        if (p.admit) {
          let verdict: ReturnType<LeaderAppendAdmission>;
          try {
            verdict = p.admit(p.batches.map((b) => readBatchHeader(p.buf, b.pos)), next, now, appendTime);
          } catch (e) {
            p.reject(e);
            continue;
          }
          if (verdict.kind === 'duplicate') {
            // Resolved with this drain's writes, so it is never answered before them.
            const info = { firstOffset: verdict.firstOffset, lastOffset: verdict.lastOffset, maxTimestamp: verdict.maxTimestamp, logAppendTimeMs: appendTime >= 0 ? verdict.maxTimestamp : -1 };
            done.push({ p, info: { ...info, batchCount: 0, recordCount: 0, bytes: 0, duplicate: true } });
            continue;
          }
        }
        if (!p.asLeader) {
          const firstBase = readBatchHeader(p.buf, p.batches[0]!.pos).baseOffset;
          if (firstBase < next) {
            p.reject(new RaftkaError('OFFSET_OUT_OF_RANGE', `follower batch at offset ${firstBase} is below the log end offset ${next}`));
            continue;
          }
        }
        let first = -1;
        let last = -1;
        let maxTs = -1;
        let recordCount = 0;
        for (const b of p.batches) {
          const bytes = p.buf.subarray(b.pos, b.pos + b.size);
          if (p.asLeader) {
            setBaseOffset(bytes, 0, next);
            setPartitionLeaderEpoch(bytes, 0, p.leaderEpoch);
            if (appendTime >= 0) setLogAppendTime(bytes, appendTime);
          }
          const h = readBatchHeader(bytes);
          if (this.shouldRoll(size, b.size, now)) {
            await this.writeOut(bufs, meta, now, leaderWrite);
            bufs = [];
            meta = [];
            await this.roll(h.baseOffset);
            size = 0;
          }
          if (h.partitionLeaderEpoch >= 0 && this.epochs.assign(h.partitionLeaderEpoch, h.baseOffset)) epochChanged = true;
          bufs.push(bytes);
          meta.push({ baseOffset: h.baseOffset, lastOffset: h.lastOffset, maxTimestamp: h.maxTimestamp, size: b.size });
          size += b.size;
          if (first < 0) first = h.baseOffset;
          last = h.lastOffset;
          if (h.maxTimestamp > maxTs) maxTs = h.maxTimestamp;
          recordCount += h.recordCount;
          next = h.lastOffset + 1;
        }
        done.push({ p, info: { firstOffset: first, lastOffset: last, maxTimestamp: maxTs, logAppendTimeMs: appendTime, batchCount: p.batches.length, recordCount, bytes: p.buf.length } });
      }
      await this.writeOut(bufs, meta, now, leaderWrite);
      if (epochChanged) await this.epochs.persist();
    } catch (e) {
      this.logger.error({ err: e }, 'append failed');
      this.tail.clear();
      const err = e instanceof RaftkaError ? e : new RaftkaError('KAFKA_STORAGE_ERROR', `append to ${this.dir} failed: ${(e as Error).message}`);
      for (const p of work) if (!done.some((d) => d.p === p)) p.reject(err);
      for (const d of done) d.p.reject(err);
      return;
    }
    for (const d of done) this.unflushedRecords += d.info.recordCount;
    this.applyFlushPolicy();
    // Resolve on the next turn of the event loop: the next drain (queued behind this one)
    // issues its write first, so the released appenders validate their next batches
    // while that write is in the kernel.
    if (this.pending.length > 0) setImmediate(() => { for (const d of done) d.p.resolve(d.info); });
    else for (const d of done) d.p.resolve(d.info);
  }

  /** Writes what a drain gathered to the active segment (a method, not a closure per drain: see readForFollower in broker/partition.ts). */
  private async writeOut(bufs: Buffer[], meta: AppendedBatch[], now: number, leaderWrite: boolean): Promise<void> {
    if (bufs.length === 0) return;
    await this.active.append(bufs, meta, now);
    // Only leader appends: consumers and followers read from leaders, and a follower's
    // batches are views into whole fetch responses, too much memory to keep alive.
    if (leaderWrite) for (let i = 0; i < bufs.length; i++) this.tail.append(meta[i]!.baseOffset, meta[i]!.lastOffset, bufs[i]!, now);
    else this.tail.clear();
  }

  private shouldRoll(size: number, batchSize: number, now: number): boolean {
    const seg = this.active;
    if (size === 0) return false;
    if (size + batchSize > this.config['segment.bytes']) return true;
    if (seg.indexSizeInBytes + 8 > this.config['segment.index.bytes']) return true;
    return seg.firstAppendMs !== undefined && now - seg.firstAppendMs >= this.config['segment.ms'];
  }

  private async roll(baseOffset: number): Promise<void> {
    const old = this.active;
    assert(baseOffset >= old.nextOffset, () => `roll at ${baseOffset} below log end ${old.nextOffset}`);
    await old.sealIndexes();
    // The old segment is made durable before the next one exists. Otherwise a power loss
    // could keep the new (empty) segment file while the old one loses its unsynced tail:
    // the log end would stay at the new base offset with a hole below it, which recovery
    // cannot tell from the gaps compaction leaves between segments. Once per segment.
    await old.flush();
    this.segments.push(await LogSegment.create(this.dir, baseOffset, this.segOpts));
    this.dirDirty = true;
    this.logger.debug({ baseOffset }, 'rolled segment');
  }

  /** Rolls the active segment now (if it holds anything). */
  forceRoll(): Promise<void> {
    return this.serialize(async () => {
      if (this.active.size > 0) await this.roll(this.active.nextOffset);
    });
  }

  /** Releases tail-cache entries written more than a second ago (the owner calls this periodically). */
  expireTailCache(): void {
    this.tail.expireBefore(this.clock.nowMs() - TAIL_CACHE_MAX_AGE_MS);
  }

  /** Bytes the tail cache keeps alive (inspection, tests). */
  get tailCacheBytes(): number {
    return this.tail.pinnedBytes;
  }

  // ---- durability ----

  private applyFlushPolicy(): void {
    if (this.unflushedRecords >= this.config['flush.messages']) {
      void this.flush().catch(() => undefined);
      return;
    }
    const flushMs = this.config['flush.ms'];
    if (this.flushTimer === undefined && flushMs < Number.MAX_SAFE_INTEGER && this.unflushedRecords > 0) {
      this.flushTimer = setTimeout(() => {
        this.flushTimer = undefined;
        void this.flush().catch(() => undefined);
      }, flushMs);
      this.flushTimer.unref();
    }
  }

  /** Resolves once every offset below `offset` is durable; concurrent waiters share one fsync. */
  waitForDurable(offset: number): Promise<void> {
    if (offset <= this._recoveryPoint) return Promise.resolve();
    return new Promise((resolve, reject) => {
      this.durableWaiters.push({ offset, resolve, reject });
      void this.flush().catch(() => undefined);
    });
  }

  /** fdatasyncs everything written so far. A flush already running is followed by one more. */
  flush(): Promise<void> {
    if (this.flushing) {
      this.flushWanted = true;
      return this.flushing.then(() => (this.flushing ? this.flushing : this.flush()));
    }
    this.flushing = this.runFlush().finally(() => {
      this.flushing = undefined;
      if (this.flushWanted) {
        this.flushWanted = false;
        void this.flush().catch(() => undefined);
      }
    });
    return this.flushing;
  }

  private async runFlush(): Promise<void> {
    if (this.flushTimer) {
      clearTimeout(this.flushTimer);
      this.flushTimer = undefined;
    }
    // Only bytes written before the fsyncs start are covered by them.
    const target = this.logEndOffset;
    const records = this.unflushedRecords;
    const dirty = this.segments.filter((s) => s.unflushed);
    const dirDirty = this.dirDirty;
    this.dirDirty = false;
    try {
      for (const s of dirty) await s.flush();
      // A segment created since the last flush needs its directory entry made durable too.
      if (dirDirty) await fsyncDir(this.dir);
    } catch (e) {
      this.dirDirty ||= dirDirty;
      const err = new RaftkaError('KAFKA_STORAGE_ERROR', `fsync of ${this.dir} failed: ${(e as Error).message}`);
      const waiters = this.durableWaiters;
      this.durableWaiters = [];
      for (const w of waiters) w.reject(err);
      throw err;
    }
    this.unflushedRecords = Math.max(0, this.unflushedRecords - records);
    if (target > this._recoveryPoint) this._recoveryPoint = target;
    const still: typeof this.durableWaiters = [];
    for (const w of this.durableWaiters) {
      if (w.offset <= this._recoveryPoint) w.resolve();
      else still.push(w);
    }
    this.durableWaiters = still;
    if (still.length > 0) this.flushWanted = true;
    const interval = this.opts.recoveryCheckpointIntervalMs ?? 10_000;
    if (this.clock.monotonicMs() - this.lastCheckpointMs >= interval) void this.writeCheckpoint(false).catch(() => undefined);
  }

  // ---- read ----

  /**
   * Raw batches from `fromOffset`: at most `maxBytes` (but one whole batch when
   * `minOneBatch`, so a large batch never stalls a consumer), none at or past
   * `upperBoundOffset` (the high watermark for consumers).
   */
  async read(
    fromOffset: number,
    maxBytes: number,
    opts: { upperBoundOffset?: number; minOneBatch?: boolean } = {},
  ): Promise<ReadResult> {
    const logEnd = this.logEndOffset;
    const start = this._logStartOffset;
    if (!Number.isInteger(fromOffset) || fromOffset < start || fromOffset > logEnd) {
      throw new RaftkaError('OFFSET_OUT_OF_RANGE', `offset ${fromOffset} is outside the log range [${start}, ${logEnd}]`);
    }
    if (!Number.isInteger(maxBytes) || maxBytes < 0) throw new RaftkaError('INVALID_FETCH_SIZE', `maxBytes ${maxBytes} is invalid`);
    const upper = Math.min(opts.upperBoundOffset ?? logEnd, logEnd);
    const cached = this.tail.read(fromOffset, maxBytes, upper, opts.minOneBatch ?? true);
    if (cached !== undefined) {
      const records = cached.length === 1 ? cached[0]! : cached.length === 0 ? Buffer.alloc(0) : joinIntoLent(cached);
      return { records, logStartOffset: this._logStartOffset, logEndOffset: this.logEndOffset };
    }
    const segments = this.segments.slice();
    let i = this.floorIndex(fromOffset);
    let offset = fromOffset;
    while (i >= 0 && i < segments.length && offset < upper) {
      const seg = segments[i]!;
      if (seg.deleted) {
        // Retention or truncation raced with this read: answer from the current state.
        return this.read(Math.max(offset, this._logStartOffset), maxBytes, opts);
      }
      const buf = await seg.read(offset, maxBytes, upper, opts.minOneBatch ?? true);
      if (buf && buf.length > 0) return { records: buf, logStartOffset: this._logStartOffset, logEndOffset: this.logEndOffset };
      i++;
      if (i < segments.length) offset = Math.max(offset, segments[i]!.baseOffset);
    }
    return { records: Buffer.alloc(0), logStartOffset: this._logStartOffset, logEndOffset: this.logEndOffset };
  }

  /** The first offset whose record timestamp is >= `timestamp`, or undefined (Kafka ListOffsets). */
  async offsetForTimestamp(timestamp: number): Promise<number | undefined> {
    for (const seg of this.segments.slice()) {
      const found = await seg.findTimestamp(timestamp, decodeRecords);
      if (found !== undefined && found >= this._logStartOffset) return found;
    }
    return undefined;
  }

  /** [KIP-101] The end offset of `epoch` here, answering a follower's OffsetsForLeaderEpoch. */
  endOffsetForEpoch(epoch: number): { epoch: number; endOffset: number } {
    return this.epochs.endOffsetFor(epoch, this.logEndOffset);
  }

  // ---- truncation ----

  /**
   * Removes every offset >= `offset` (a follower dropping a divergent tail). The cut is
   * fsynced before returning, so a power loss cannot bring the removed records back.
   */
  truncateTo(offset: number): Promise<number> {
    return this.serialize(async () => {
      if (offset >= this.logEndOffset) return this.logEndOffset;
      if (offset < this._logStartOffset) throw new RaftkaError('OFFSET_OUT_OF_RANGE', `cannot truncate to ${offset} below the log start ${this._logStartOffset}`);
      this.logger.info({ offset, logEndOffset: this.logEndOffset }, 'truncating log');
      this.tail.clear();
      while (this.segments.length > 1 && this.active.baseOffset >= offset) {
        const seg = this.segments.pop()!;
        await seg.delete();
      }
      await this.active.truncateTo(offset);
      await this.afterTruncate();
      return this.logEndOffset;
    });
  }

  /** Drops the whole log and starts empty at `offset` (the leader's log start moved past ours). */
  truncateFullyAndStartAt(offset: number): Promise<void> {
    return this.serialize(async () => {
      const old = this.segments;
      this.tail.clear();
      this.segments = [];
      for (const s of old) await s.delete();
      this.segments.push(await LogSegment.create(this.dir, offset, this.segOpts));
      this._logStartOffset = offset;
      this.epochs.clear();
      await this.afterTruncate();
      await fsyncDir(this.dir);
    });
  }

  private async afterTruncate(): Promise<void> {
    if (this._recoveryPoint > this.logEndOffset) this._recoveryPoint = this.logEndOffset;
    this.epochs.truncateFromEnd(this.logEndOffset);
    await this.epochs.persist();
    await this.writeCheckpoint(false);
  }

  // ---- retention ----

  /**
   * Deletes whole segments past retention.ms / retention.bytes (only with
   * cleanup.policy=delete), never the active one and never one holding offsets at or
   * above `upperBoundOffset` (the high watermark). Returns how many were deleted.
   */
  deleteOldSegments(upperBoundOffset = this.logEndOffset): Promise<number> {
    return this.serialize(async () => {
      if (!this.config['cleanup.policy'].includes('delete')) return 0;
      const now = this.clock.nowMs();
      const retentionMs = this.config['retention.ms'];
      const retentionBytes = this.config['retention.bytes'];
      let size = this.sizeInBytes;
      let deleted = 0;
      while (this.segments.length > 1) {
        const seg = this.segments[0]!;
        const next = this.segments[1]!;
        if (next.baseOffset > upperBoundOffset) break;
        await seg.ensureLoaded();
        const byTime = retentionMs >= 0 && seg.maxTimestamp < now - retentionMs;
        const bySize = retentionBytes >= 0 && size - seg.size >= retentionBytes;
        if (!byTime && !bySize) break;
        this.segments.shift();
        await seg.delete();
        size -= seg.size;
        deleted++;
        this._logStartOffset = Math.max(this._logStartOffset, next.baseOffset);
      }
      if (deleted > 0) {
        if (this._recoveryPoint < this._logStartOffset) this._recoveryPoint = this._logStartOffset;
        if (this.epochs.truncateFromStart(this._logStartOffset)) await this.epochs.persist();
        await this.writeCheckpoint(false);
        this.logger.info({ deleted, logStartOffset: this._logStartOffset }, 'deleted segments by retention');
      }
      return deleted;
    });
  }

  // ---- compaction ----

  /**
   * One cleaning pass (cleanup.policy=compact): keeps the latest record per key in every
   * sealed segment below `upperBoundOffset`, drops tombstones older than
   * delete.retention.ms, never changes an offset and never touches the active segment.
   * The rewrite happens off the mutation queue; only the final file swap is serialized,
   * so appends and reads go on meanwhile.
   */
  async compact(upperBoundOffset = this.logEndOffset): Promise<{ segmentsCleaned: number; bytesBefore: number; bytesAfter: number }> {
    const stats = { segmentsCleaned: 0, bytesBefore: 0, bytesAfter: 0 };
    if (!this.config['cleanup.policy'].includes('compact') || this.cleaning || this.closed) return stats;
    this.cleaning = true;
    try {
      const now = this.clock.nowMs();
      const lagMs = this.config['min.compaction.lag.ms'];
      const candidates: LogSegment[] = [];
      const snapshot = this.segments.slice(0, -1);
      for (let i = 0; i < snapshot.length; i++) {
        const seg = snapshot[i]!;
        const nextBase = this.segments[this.segments.indexOf(seg) + 1]?.baseOffset ?? Infinity;
        if (nextBase > upperBoundOffset) break;
        await seg.ensureLoaded();
        if (lagMs > 0 && seg.maxTimestamp > now - lagMs) break;
        candidates.push(seg);
      }
      if (candidates.length === 0) return stats;
      const map = await buildOffsetMap(candidates);
      const tombstoneHorizonMs = now - this.config['delete.retention.ms'];
      for (const seg of candidates) {
        if (seg.deleted) continue;
        const cleanedPath = join(this.dir, segmentFileName(seg.baseOffset, '.log.cleaned'));
        const result = await cleanSegment(seg, map, tombstoneHorizonMs, cleanedPath);
        if (!result.changed) {
          await unlinkIfExists(cleanedPath);
          continue;
        }
        const swapped = await this.serialize(async () => {
          const idx = this.segments.indexOf(seg);
          if (idx < 0 || seg.deleted || idx === this.segments.length - 1) return false;
          this.tail.clear();
          // Index files go first: a crash before the rename leaves the old log with no
          // index (rebuilt on open); after it, the new log with none. Never a mismatch.
          await unlinkIfExists(seg.indexPath);
          await unlinkIfExists(seg.timeIndexPath);
          await rename(cleanedPath, seg.logPath);
          await fsyncDir(this.dir);
          this.opts.onSync?.(seg.logPath, result.bytesAfter);
          const fresh = await LogSegment.openLazy(this.dir, seg.baseOffset, this.segOpts);
          await fresh.ensureLoaded();
          await fresh.sealIndexes();
          this.segments[idx] = fresh;
          await seg.retire();
          return true;
        });
        if (!swapped) {
          await unlinkIfExists(cleanedPath);
          continue;
        }
        stats.segmentsCleaned++;
        stats.bytesBefore += result.bytesBefore;
        stats.bytesAfter += result.bytesAfter;
      }
      if (stats.segmentsCleaned > 0) this.logger.info(stats, 'compacted log');
      return stats;
    } finally {
      this.cleaning = false;
    }
  }

  // ---- lifecycle ----

  /** Flushes, seals the indexes and marks the shutdown clean, so the next open skips recovery. */
  async close(): Promise<void> {
    if (this.closed) return;
    await this.serialize(async () => {
      await this.flush();
      await this.active.sealIndexes();
      this.closed = true;
    });
    if (this.flushTimer) clearTimeout(this.flushTimer);
    await this.writeCheckpoint(true);
    await this.checkpointTail;
    for (const s of this.segments) await s.close();
  }

  /**
   * Crash simulation: stops using the files without flushing or checkpointing anything
   * more. I/O already in flight completes first (a process dies between syscalls, and
   * the next incarnation must not race a ghost writer).
   */
  async abandon(): Promise<void> {
    this.closed = true;
    if (this.flushTimer) clearTimeout(this.flushTimer);
    await this.opTail;
    await this.flushing?.catch(() => undefined);
    await this.checkpointTail;
    for (const s of this.segments) s.abandon();
  }

  /** Deletes the log directory's contents (DeleteTopics). */
  async deleteAll(): Promise<void> {
    await this.serialize(async () => {
      this.closed = true;
      for (const s of this.segments) await s.delete();
      for (const f of [CHECKPOINT_FILE, EPOCH_FILE]) await unlinkIfExists(join(this.dir, f));
    });
  }
}
