// One hosted replica: its log and its role. As leader it owns a LeaderState (ISR, HW,
// follower progress); as follower it tracks the leader's high watermark from fetches.
// Role changes come only from the metadata image, at a leader epoch at least as new as
// the current one, so a stale leader is fenced by epoch.
import { RaftkaError, isRaftkaError } from '../common/errors.ts';
import type { Logger } from '../common/logger.ts';
import { systemClock, type Clock } from '../common/clock.ts';
import type { PartitionLog, AppendInfo, LeaderAppendAdmission } from '../log/partition-log.ts';
import { BATCH_OVERHEAD, LOG_OVERHEAD, Off, iterateBatches, readBatchHeader, validateBatchAt, type BatchHeader } from '../log/batch.ts';
import { PRODUCER_ID_EXPIRATION_MS_DEFAULT, ProducerStateManager } from './producer-state.ts';
import { deleteProducerSnapshotsAbove, listProducerSnapshots, pruneProducerSnapshots, readProducerSnapshot, writeProducerSnapshot } from './producer-snapshots.ts';
import { LeaderState, type IsrChange } from '../replication/leader-state.ts';
import type { PartitionAssignment, ReplicaFetchPartition, ReplicaFetchPartitionResponse, TopicPartition } from './types.ts';
import { ERRORS } from '../common/errors.ts';

export type Role =
  | { readonly kind: 'leader'; readonly state: LeaderState }
  | { readonly kind: 'follower'; readonly leaderId: number };

export interface PartitionSettings {
  readonly minInsyncReplicas: number;
  readonly replicaLagTimeMaxMs: number;
}

export interface ProducerStateOptions {
  /** producer.id.expiration.ms: idle producers are forgotten after this long (default 1 day). */
  readonly expirationMs?: number;
  /** A producer state snapshot is also written after this many bytes appended since the last one (default 64 MiB). */
  readonly snapshotIntervalBytes?: number;
  /** Wall clock for producer expiry (default the system clock). */
  readonly clock?: Clock;
}

/** An empty records field (zero length: nothing can write into it, so one is shared). */
const NO_RECORDS = Buffer.alloc(0);

/** How many bytes of log one rebuild read takes. */
const REPLAY_READ_BYTES = 1024 * 1024;

export class Partition {
  private _role: Role;
  private _leaderEpoch: number;
  private _partitionEpoch: number;
  private _replicas: readonly number[];
  private _isr: readonly number[];
  /** Follower: the leader's HW as last seen, capped at the local log end. */
  private followerHighWatermark = 0;

  // ── Idempotent producer state [KIP-98] ──
  // Persistence: a snapshot file (src/broker/producer-snapshots.ts) is written when the
  // log rolls a segment, after snapshotIntervalBytes of appends, and at clean close; at
  // open (and after a truncation) the newest snapshot at or below the log end is loaded
  // and the batches after it are replayed from the log. Without any snapshot the whole
  // log is replayed from its start.
  private _producers: ProducerStateManager;
  /** Set while the state is rebuilt (or must be): idempotent appends are refused meanwhile. */
  private producerStateLoading = false;
  private readonly producerExpirationMs: number;
  private readonly snapshotIntervalBytes: number;
  private readonly clock: Clock;
  private snapshotTail: Promise<void> = Promise.resolve();
  private snapshotSegmentBase = -1;
  private bytesSinceSnapshot = 0;
  private closed = false;
  private readonly admit: LeaderAppendAdmission;

  constructor(
    readonly tp: TopicPartition,
    readonly log: PartitionLog,
    private readonly localBrokerId: number,
    private settings: PartitionSettings,
    private readonly logger: Logger,
    producerOpts: ProducerStateOptions = {},
  ) {
    this._role = { kind: 'follower', leaderId: -1 };
    this._leaderEpoch = -1;
    this._partitionEpoch = -1;
    this._replicas = [];
    this._isr = [];
    this.producerExpirationMs = producerOpts.expirationMs ?? PRODUCER_ID_EXPIRATION_MS_DEFAULT;
    this.snapshotIntervalBytes = producerOpts.snapshotIntervalBytes ?? 64 * 1024 * 1024;
    this.clock = producerOpts.clock ?? systemClock;
    this._producers = new ProducerStateManager(this.producerExpirationMs, log.logEndOffset);
    this.admit = (batches, firstOffset, nowMs, appendTimeMs) => this.admitAsLeader(batches, firstOffset, nowMs, appendTimeMs);
  }

  get role(): Role {
    return this._role;
  }

  get leaderEpoch(): number {
    return this._leaderEpoch;
  }

  get partitionEpoch(): number {
    return this._partitionEpoch;
  }

  get isr(): readonly number[] {
    return this._role.kind === 'leader' ? this._role.state.isr : this._isr;
  }

  get leaderId(): number {
    return this._role.kind === 'leader' ? this.localBrokerId : this._role.leaderId;
  }

  get highWatermark(): number {
    return this._role.kind === 'leader' ? this._role.state.highWatermark : Math.min(this.followerHighWatermark, this.log.logEndOffset);
  }

  get durable(): boolean {
    return this.log.config['flush.before.ack'];
  }

  updateSettings(settings: PartitionSettings): void {
    this.settings = settings;
  }

  /**
   * Applies an assignment from the metadata image. Returns what happened so the replica
   * manager can start or stop fetching and fail parked requests.
   */
  reconcile(a: PartitionAssignment, nowMs: number): 'becameLeader' | 'becameFollower' | 'isrUpdated' | 'unchanged' {
    if (a.leaderEpoch < this._leaderEpoch) return 'unchanged';
    const newEpoch = a.leaderEpoch > this._leaderEpoch;
    this._replicas = a.replicas;
    this._isr = a.isr;
    if (a.leader === this.localBrokerId) {
      if (newEpoch || this._role.kind !== 'leader') {
        const hw = Math.min(this.highWatermark, this.log.logEndOffset);
        this._leaderEpoch = a.leaderEpoch;
        this._partitionEpoch = a.partitionEpoch;
        this._role = {
          kind: 'leader',
          state: new LeaderState({
            localBrokerId: this.localBrokerId,
            replicas: a.replicas,
            isr: a.isr,
            leaderEpoch: a.leaderEpoch,
            partitionEpoch: a.partitionEpoch,
            minInsyncReplicas: this.settings.minInsyncReplicas,
            replicaLagTimeMaxMs: this.settings.replicaLagTimeMaxMs,
            durable: this.durable,
            logEndOffset: this.log.logEndOffset,
            flushedOffset: this.log.flushedOffset,
            highWatermark: hw,
            nowMs,
          }),
        };
        this._role.state.onLocalProgress(this.log.logEndOffset, this.log.flushedOffset);
        this.logger.info({ leaderEpoch: a.leaderEpoch, isr: a.isr, logEndOffset: this.log.logEndOffset }, 'became leader');
        return 'becameLeader';
      }
      if (a.partitionEpoch > this._partitionEpoch) {
        this._partitionEpoch = a.partitionEpoch;
        this._role.state.onIsrCommitted(a.isr, a.partitionEpoch);
        return 'isrUpdated';
      }
      return 'unchanged';
    }
    this._partitionEpoch = a.partitionEpoch;
    if (newEpoch || this._role.kind === 'leader' || this._role.leaderId !== a.leader) {
      if (this._role.kind === 'leader') this.followerHighWatermark = this._role.state.highWatermark;
      this._leaderEpoch = a.leaderEpoch;
      this._role = { kind: 'follower', leaderId: a.leader };
      this.logger.info({ leaderEpoch: a.leaderEpoch, leader: a.leader }, 'became follower');
      return 'becameFollower';
    }
    return 'unchanged';
  }

  private requireLeader(): LeaderState {
    if (this._role.kind !== 'leader') {
      throw new RaftkaError('NOT_LEADER_OR_FOLLOWER', `broker ${this.localBrokerId} is not the leader of ${this.tp.topic}-${this.tp.partition}; leader is ${this._role.leaderId}`);
    }
    return this._role.state;
  }

  /**
   * Leader append. acks=all is refused up front (nothing written) when the ISR is below
   * min.insync.replicas. `onWritten`: see PartitionLog.appendAsLeader.
   */
  async appendAsLeader(records: Buffer, acks: number, onWritten?: () => void): Promise<AppendInfo> {
    const state = this.requireLeader();
    if (acks === -1 && state.isr.length < this.settings.minInsyncReplicas) {
      throw new RaftkaError('NOT_ENOUGH_REPLICAS', `ISR ${JSON.stringify(state.isr)} is smaller than min.insync.replicas ${this.settings.minInsyncReplicas}`);
    }
    let info: AppendInfo;
    try {
      info = await this.log.appendAsLeader(records, state.leaderEpoch, this.admit, onWritten);
    } catch (e) {
      // A failed write after admission may leave the producer state ahead of the log:
      // rebuild it from what the log holds before admitting more idempotent batches.
      if (isRaftkaError(e, 'KAFKA_STORAGE_ERROR')) this.scheduleProducerStateRebuild();
      throw e;
    }
    this.onLocalProgress();
    if (!info.duplicate) this.afterAppend(info.bytes);
    return info;
  }

  /** The producer state (read-only use: tests, inspection). */
  get producers(): ProducerStateManager {
    return this._producers;
  }

  /**
   * Runs inside the log's serialized append path at offset assignment (see
   * LeaderAppendAdmission), so two in-flight requests of one producer cannot both pass
   * the sequence check before either is placed.
   */
  private admitAsLeader(batches: readonly BatchHeader[], firstOffset: number, nowMs: number, appendTimeMs: number): ReturnType<LeaderAppendAdmission> {
    if (this.producerStateLoading && batches.some((b) => b.producerId >= 0)) {
      throw new RaftkaError('NOT_LEADER_OR_FOLLOWER', `${this.tp.topic}-${this.tp.partition} is still loading its producer state; retry shortly`);
    }
    const v = this._producers.admitAsLeader(batches, firstOffset, nowMs, appendTimeMs);
    switch (v.kind) {
      case 'append':
        return v;
      case 'duplicate':
        this.logger.debug({ firstOffset: v.firstOffset, lastOffset: v.lastOffset }, 'duplicate idempotent batch answered with its original offsets');
        return { kind: 'duplicate', firstOffset: v.firstOffset, lastOffset: v.lastOffset, maxTimestamp: v.timestamp };
      case 'error':
        throw new RaftkaError(v.error, v.message);
    }
  }

  // ---- producer state: load, rebuild, snapshots ----

  /**
   * (Re)builds the producer state: the newest snapshot at or below the log end, then
   * every batch after it. Snapshots past the log end (a crash or truncation dropped what
   * they describe) are deleted. Idempotent appends are refused until it is done.
   */
  async loadProducerState(): Promise<void> {
    this.producerStateLoading = true;
    try {
      const dir = this.log.dir;
      const end = this.log.logEndOffset;
      await deleteProducerSnapshotsAbove(dir, end);
      let state: ProducerStateManager | undefined;
      for (const offset of (await listProducerSnapshots(dir)).reverse()) {
        const snap = await readProducerSnapshot(dir, offset);
        if (snap) {
          state = ProducerStateManager.restore(snap, this.producerExpirationMs);
          break;
        }
      }
      state ??= new ProducerStateManager(this.producerExpirationMs, this.log.logStartOffset);
      const from = state.appliedEndOffset;
      // Replay until caught up with the log end as it is when we swap the state in (a
      // follower append may land while we read).
      for (;;) {
        const target = this.log.logEndOffset;
        if (state.appliedEndOffset >= target) break;
        const start = Math.max(state.appliedEndOffset, this.log.logStartOffset);
        if (start >= target) {
          state.advanceTo(target);
          break;
        }
        const r = await this.log.read(start, REPLAY_READ_BYTES, { upperBoundOffset: target });
        const now = this.clock.nowMs();
        let any = false;
        for (const { header } of iterateBatches(r.records)) {
          state.applyFromLog(header, now);
          any = true;
        }
        if (!any) state.advanceTo(target);
      }
      state.expire(this.clock.nowMs());
      this._producers = state;
      this.snapshotSegmentBase = this.log.activeSegmentBaseOffset;
      this.logger.debug({ from, to: state.appliedEndOffset, producers: state.size }, 'producer state loaded');
    } finally {
      this.producerStateLoading = false;
    }
  }

  private scheduleProducerStateRebuild(): void {
    if (this.producerStateLoading || this.closed) return;
    this.producerStateLoading = true;
    void this.loadProducerState().catch((e: unknown) => {
      this.logger.error({ err: e }, 'rebuilding the producer state failed');
      // Stay refusing idempotent appends: a state we cannot trust must not admit them.
      this.producerStateLoading = true;
    });
  }

  /** Drops idle producers (producer.id.expiration.ms); returns how many. */
  expireProducers(nowMs: number = this.clock.nowMs()): number {
    return this._producers.expire(nowMs);
  }

  /** Snapshots the producer state when the log rolled or enough bytes went by (off the append path). */
  private afterAppend(bytes: number): void {
    this.bytesSinceSnapshot += bytes;
    // A state being rebuilt may be ahead of the log; never persist it.
    if (this.producerStateLoading) return;
    const rolled = this.log.activeSegmentBaseOffset !== this.snapshotSegmentBase;
    if (rolled || this.bytesSinceSnapshot >= this.snapshotIntervalBytes) void this.snapshotProducerState().catch(() => undefined);
  }

  /** Writes a snapshot of the producer state as it is now; one at a time per partition. */
  snapshotProducerState(): Promise<void> {
    this.snapshotSegmentBase = this.log.activeSegmentBaseOffset;
    this.bytesSinceSnapshot = 0;
    const snap = this._producers.snapshot();
    const dir = this.log.dir;
    const p = this.snapshotTail.then(async () => {
      if (this.closed && snap.offset !== this.log.logEndOffset) return;
      await writeProducerSnapshot(dir, snap);
      await pruneProducerSnapshots(dir);
    });
    this.snapshotTail = p.catch((e: unknown) => this.logger.warn({ err: (e as Error).message }, 'writing a producer state snapshot failed'));
    return p;
  }

  /** Follower truncation of a divergent tail [KIP-320]; the producer state follows the log. */
  async truncateTo(offset: number): Promise<void> {
    await this.log.truncateTo(offset);
    await this.loadProducerState();
  }

  /** Follower reset to the leader's log start: no batch is left, so no producer state either. */
  async truncateFullyAndStartAt(offset: number): Promise<void> {
    await this.log.truncateFullyAndStartAt(offset);
    await deleteProducerSnapshotsAbove(this.log.dir, -1);
    this._producers = new ProducerStateManager(this.producerExpirationMs, this.log.logEndOffset);
  }

  /** Closes the log, then snapshots the producer state at the log end so the next open replays nothing. */
  async close(): Promise<void> {
    await this.log.close();
    this.closed = true;
    if (!this.producerStateLoading && this._producers.appliedEndOffset === this.log.logEndOffset) {
      await this.snapshotProducerState().catch(() => undefined);
    }
    await this.snapshotTail;
  }

  /** Stops writing snapshots (the replica is being deleted or abandoned). */
  stopProducerSnapshots(): void {
    this.closed = true;
  }

  /** Returns true when the HW advanced. */
  onLocalProgress(): boolean {
    if (this._role.kind !== 'leader') return false;
    return this._role.state.onLocalProgress(this.log.logEndOffset, this.log.flushedOffset);
  }

  /** Whether an acks=all write ending at `endOffset` is committed, and if not, whether it can still be. */
  ackState(endOffset: number, leaderEpoch: number): 'committed' | 'waiting' | 'notLeader' | 'notEnoughReplicas' {
    if (this._role.kind !== 'leader' || this._role.state.leaderEpoch !== leaderEpoch) return 'notLeader';
    if (this._role.state.highWatermark >= endOffset) return 'committed';
    if (this._role.state.isr.length < this.settings.minInsyncReplicas) return 'notEnoughReplicas';
    return 'waiting';
  }

  /** Consumer read: raw batches below the high watermark. */
  async readForConsumer(fetchOffset: number, maxBytes: number): Promise<{ records: Buffer; highWatermark: number; logStartOffset: number; logEndOffset: number }> {
    const state = this.requireLeader();
    if (!state.readyForConsumers) {
      throw new RaftkaError('OFFSET_NOT_AVAILABLE', `the new leader's high watermark has not reached its epoch start ${state.epochStartOffset} yet`);
    }
    const hw = state.highWatermark;
    if (fetchOffset > hw && fetchOffset <= this.log.logEndOffset) {
      return { records: Buffer.alloc(0), highWatermark: hw, logStartOffset: this.log.logStartOffset, logEndOffset: this.log.logEndOffset };
    }
    const r = await this.log.read(fetchOffset, maxBytes, { upperBoundOffset: hw });
    return { records: r.records, highWatermark: hw, logStartOffset: r.logStartOffset, logEndOffset: r.logEndOffset };
  }

  /**
   * A follower's fetch: checks epochs, detects divergence [KIP-320], records its progress
   * (which may advance the HW or propose an ISR expansion), and returns batches up to the
   * log end.
   */
  async readForFollower(
    replicaId: number,
    p: ReplicaFetchPartition,
    nowMs: number,
  ): Promise<{ response: ReplicaFetchPartitionResponse; hwAdvanced: boolean; isrChange: IsrChange | undefined }> {
    // Called for every partition of every replica fetch (a follower's long poll carries
    // all the partitions it follows from this leader, and wakes for any of them), so it
    // creates no closures (tsx's keepNames wraps each in a defineProperty call) and skips
    // the read when the follower already has everything.
    if (this._role.kind !== 'leader') return this.followerFetchError(ERRORS.NOT_LEADER_OR_FOLLOWER.code);
    const state = this._role.state;
    if (p.currentLeaderEpoch < state.leaderEpoch) return this.followerFetchError(ERRORS.FENCED_LEADER_EPOCH.code);
    if (p.currentLeaderEpoch > state.leaderEpoch) return this.followerFetchError(ERRORS.UNKNOWN_LEADER_EPOCH.code);
    if (!state.isReplica(replicaId)) return this.followerFetchError(ERRORS.NOT_LEADER_OR_FOLLOWER.code);
    if (p.lastFetchedEpoch >= 0 && p.fetchOffset > 0) {
      const end = this.log.endOffsetForEpoch(p.lastFetchedEpoch);
      if (end.epoch !== p.lastFetchedEpoch || end.endOffset < p.fetchOffset) {
        return { response: this.followerResponse(0, state.highWatermark, NO_RECORDS, end), hwAdvanced: false, isrChange: undefined };
      }
    }
    if (p.fetchOffset < this.log.logStartOffset || p.fetchOffset > this.log.logEndOffset) {
      return { response: this.followerResponse(ERRORS.OFFSET_OUT_OF_RANGE.code, state.highWatermark, NO_RECORDS), hwAdvanced: false, isrChange: undefined };
    }
    const { highWatermarkAdvanced, isrChange } = state.onFollowerFetch(replicaId, p.fetchOffset, p.flushedOffset, nowMs);
    const records = p.fetchOffset === this.log.logEndOffset ? NO_RECORDS : (await this.log.read(p.fetchOffset, p.maxBytes)).records;
    return { response: this.followerResponse(0, state.highWatermark, records), hwAdvanced: highWatermarkAdvanced, isrChange };
  }

  private followerResponse(
    errorCode: number,
    highWatermark: number,
    records: Buffer,
    divergingEpoch?: { epoch: number; endOffset: number },
  ): ReplicaFetchPartitionResponse {
    const base = { topicId: this.tp.topicId, partition: this.tp.partition, errorCode, highWatermark, logStartOffset: this.log.logStartOffset, logEndOffset: this.log.logEndOffset, records };
    return divergingEpoch ? { ...base, divergingEpoch } : base;
  }

  private followerFetchError(errorCode: number): { response: ReplicaFetchPartitionResponse; hwAdvanced: boolean; isrChange: undefined } {
    return {
      response: { topicId: this.tp.topicId, partition: this.tp.partition, records: NO_RECORDS, errorCode, highWatermark: -1, logStartOffset: -1, logEndOffset: -1 },
      hwAdvanced: false,
      isrChange: undefined,
    };
  }

  /**
   * Follower: appends what the leader sent and adopts its HW (capped at our log end). The
   * appended batches update the producer state, so this replica deduplicates retries
   * once it leads.
   */
  async appendFromLeader(resp: ReplicaFetchPartitionResponse): Promise<number> {
    let appended = 0;
    if (resp.records.length > 0) {
      // Only whole batches at or after our log end (a fetch may end with a partial batch).
      // They are contiguous in the response, so they are appended as one view of it (no
      // copy), and read by header only here: the append checks every batch it writes
      // (CRC, framing), which a second check here would only repeat.
      const buf = resp.records;
      const headers: BatchHeader[] = [];
      let end = this.log.logEndOffset;
      let from = -1;
      let to = -1;
      let pos = 0;
      while (pos + LOG_OVERHEAD <= buf.length) {
        const size = buf.readInt32BE(pos + Off.batchLength) + LOG_OVERHEAD;
        if (size < BATCH_OVERHEAD) validateBatchAt(buf, pos); // throws CORRUPT_MESSAGE
        if (pos + size > buf.length) break;
        const header = readBatchHeader(buf, pos);
        if (header.baseOffset >= end) {
          if (from < 0) from = pos;
          to = pos + size;
          headers.push(header);
          end = header.lastOffset + 1;
        }
        pos += size;
      }
      if (headers.length > 0) {
        let info: AppendInfo;
        try {
          info = await this.log.appendAsFollower(buf.subarray(from, to));
        } catch (e) {
          if (isRaftkaError(e, 'KAFKA_STORAGE_ERROR')) this.scheduleProducerStateRebuild();
          throw e;
        }
        const now = this.clock.nowMs();
        for (const h of headers) this._producers.applyFromLog(h, now);
        appended = info.lastOffset + 1 - info.firstOffset;
        this.afterAppend(info.bytes);
      }
    }
    if (resp.highWatermark > this.followerHighWatermark) this.followerHighWatermark = resp.highWatermark;
    return appended;
  }

  /** Epoch of the last batch held, for the next fetch's divergence check. */
  lastFetchedEpoch(): number {
    return this.log.leaderEpochCache.latestEpoch() ?? -1;
  }
}
