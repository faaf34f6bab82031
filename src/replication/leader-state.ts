// The partition leader's view of its replicas: follower progress, the in-sync replica
// set and the high watermark. Pure: the replica manager feeds it fetches, appends and
// time, and acts on what it returns (ISR changes go to the controller as AlterPartition).
//
// High watermark (HW) = the smallest durable offset over the ISR, where "durable" is the
// flushed offset when writes are fsynced before acknowledgement (the default) and the log
// end offset otherwise. It never moves back, and it does not move while the ISR is
// smaller than min.insync.replicas [KIP-966 strict min ISR], so the last replica standing
// cannot expose (or acknowledge) records no other replica holds.

export interface ReplicaProgress {
  readonly brokerId: number;
  logEndOffset: number;
  flushedOffset: number;
  /** Last time this follower had fetched everything the leader had (Kafka's lastCaughtUpTimeMs). */
  lastCaughtUpTimeMs: number;
  lastFetchTimeMs: number;
  /** The leader's log end offset when this follower last fetched. */
  leaderEndOffsetAtLastFetch: number;
}

export interface LeaderStateInit {
  localBrokerId: number;
  replicas: readonly number[];
  isr: readonly number[];
  leaderEpoch: number;
  partitionEpoch: number;
  minInsyncReplicas: number;
  replicaLagTimeMaxMs: number;
  /** Durable HW requires fsynced offsets from every ISR member. */
  durable: boolean;
  /** The leader's own log when it became leader. */
  logEndOffset: number;
  flushedOffset: number;
  highWatermark: number;
  nowMs: number;
}

export type IsrChange = { readonly isr: readonly number[]; readonly reason: 'shrink' | 'expand' };

export class LeaderState {
  readonly localBrokerId: number;
  readonly leaderEpoch: number;
  private _partitionEpoch: number;
  private _isr: readonly number[];
  private _highWatermark: number;
  /** The log end offset when this leadership began: records below it may be from older epochs. */
  readonly epochStartOffset: number;
  private readonly replicas: readonly number[];
  private readonly progress = new Map<number, ReplicaProgress>();
  /** An AlterPartition in flight: no other ISR change until it is answered. */
  private pendingIsr: readonly number[] | undefined;
  private readonly opts: LeaderStateInit;

  constructor(init: LeaderStateInit) {
    this.opts = init;
    this.localBrokerId = init.localBrokerId;
    this.leaderEpoch = init.leaderEpoch;
    this._partitionEpoch = init.partitionEpoch;
    this._isr = [...init.isr];
    this.replicas = [...init.replicas];
    this._highWatermark = init.highWatermark;
    this.epochStartOffset = init.logEndOffset;
    for (const id of init.replicas) {
      const local = id === init.localBrokerId;
      this.progress.set(id, {
        brokerId: id,
        logEndOffset: local ? init.logEndOffset : -1,
        flushedOffset: local ? init.flushedOffset : -1,
        // A new leader gives every follower a full lag period before shrinking it away.
        lastCaughtUpTimeMs: init.nowMs,
        lastFetchTimeMs: init.nowMs,
        leaderEndOffsetAtLastFetch: init.logEndOffset,
      });
    }
  }

  get isr(): readonly number[] {
    return this._isr;
  }

  get partitionEpoch(): number {
    return this._partitionEpoch;
  }

  get highWatermark(): number {
    return this._highWatermark;
  }

  /**
   * Until the HW reaches the log end this leader started with, earlier leaders' records
   * are not known to be committed here; consumers are held back meanwhile so the HW they
   * see never moves back across a leader change (Raft's own-term commit rule, applied
   * to partitions).
   */
  get readyForConsumers(): boolean {
    return this._highWatermark >= this.epochStartOffset;
  }

  replica(brokerId: number): Readonly<ReplicaProgress> | undefined {
    return this.progress.get(brokerId);
  }

  private durableOffset(p: ReplicaProgress): number {
    return this.opts.durable ? Math.min(p.flushedOffset, p.logEndOffset) : p.logEndOffset;
  }

  /**
   * Recomputes the HW; returns true when it advanced. The HW is the minimum over the
   * "maximal ISR" [Kafka, KIP-497]: the committed ISR plus members of an expansion still
   * in flight. Once the controller commits an expansion it may elect the new member at
   * once, so everything acknowledged during the round trip must already be on it. The
   * min ISR check uses the committed ISR only (the conservative side).
   */
  private updateHighWatermark(): boolean {
    if (this._isr.length < this.opts.minInsyncReplicas) return false;
    const maximal = this.pendingIsr ? new Set([...this._isr, ...this.pendingIsr]) : this._isr;
    let hw = Infinity;
    for (const id of maximal) {
      const p = this.progress.get(id);
      if (!p) return false;
      hw = Math.min(hw, this.durableOffset(p));
    }
    if (hw > this._highWatermark && Number.isFinite(hw)) {
      this._highWatermark = hw;
      return true;
    }
    return false;
  }

  /** The leader appended or flushed locally. */
  onLocalProgress(logEndOffset: number, flushedOffset: number): boolean {
    const p = this.progress.get(this.localBrokerId)!;
    p.logEndOffset = logEndOffset;
    p.flushedOffset = flushedOffset;
    return this.updateHighWatermark();
  }

  /**
   * A follower fetched from `fetchOffset` (so it holds everything below it) and reported
   * `flushedOffset`. Returns whether the HW advanced and any ISR expansion to propose.
   */
  onFollowerFetch(
    brokerId: number,
    fetchOffset: number,
    flushedOffset: number,
    nowMs: number,
  ): { highWatermarkAdvanced: boolean; isrChange: IsrChange | undefined } {
    const p = this.progress.get(brokerId);
    if (!p) return { highWatermarkAdvanced: false, isrChange: undefined };
    const leaderEnd = this.progress.get(this.localBrokerId)!.logEndOffset;
    // Kafka's rule: caught up now if it has all the leader has; caught up as of the last
    // fetch if it has what the leader had then.
    if (fetchOffset >= leaderEnd) p.lastCaughtUpTimeMs = nowMs;
    else if (fetchOffset >= p.leaderEndOffsetAtLastFetch) p.lastCaughtUpTimeMs = Math.max(p.lastCaughtUpTimeMs, p.lastFetchTimeMs);
    p.logEndOffset = fetchOffset;
    p.flushedOffset = Math.min(flushedOffset, fetchOffset);
    p.lastFetchTimeMs = nowMs;
    p.leaderEndOffsetAtLastFetch = leaderEnd;
    const highWatermarkAdvanced = this.updateHighWatermark();
    return { highWatermarkAdvanced, isrChange: this.maybeExpand(p) };
  }

  /** A follower joins the ISR once it holds everything up to the HW and this epoch's start [Kafka]. */
  private maybeExpand(p: ReplicaProgress): IsrChange | undefined {
    if (this.pendingIsr || this._isr.includes(p.brokerId)) return undefined;
    if (this.durableOffset(p) < Math.max(this._highWatermark, this.epochStartOffset)) return undefined;
    return this.propose([...this._isr, p.brokerId].sort((a, b) => a - b), 'expand');
  }

  /** Followers that have not caught up within replica.lag.time.max.ms leave the ISR. */
  maybeShrink(nowMs: number): IsrChange | undefined {
    if (this.pendingIsr) return undefined;
    const lagging = this._isr.filter((id) => {
      if (id === this.localBrokerId) return false;
      const p = this.progress.get(id);
      return !p || nowMs - p.lastCaughtUpTimeMs > this.opts.replicaLagTimeMaxMs;
    });
    if (lagging.length === 0) return undefined;
    return this.propose(this._isr.filter((id) => !lagging.includes(id)), 'shrink');
  }

  /** Removes a replica now (its broker was fenced or shut down), if no change is in flight. */
  proposeRemoval(brokerId: number): IsrChange | undefined {
    if (this.pendingIsr || !this._isr.includes(brokerId) || brokerId === this.localBrokerId) return undefined;
    return this.propose(this._isr.filter((id) => id !== brokerId), 'shrink');
  }

  private propose(isr: readonly number[], reason: IsrChange['reason']): IsrChange {
    this.pendingIsr = isr;
    return { isr, reason };
  }

  /** The controller committed an ISR (ours or its own); adopt it. */
  onIsrCommitted(isr: readonly number[], partitionEpoch: number): boolean {
    if (partitionEpoch < this._partitionEpoch) return false;
    this._isr = [...isr];
    this._partitionEpoch = partitionEpoch;
    this.pendingIsr = undefined;
    return this.updateHighWatermark();
  }

  /** The proposed change was rejected (stale epochs): allow a new one. */
  onIsrRejected(): void {
    this.pendingIsr = undefined;
  }

  get hasPendingIsrChange(): boolean {
    return this.pendingIsr !== undefined;
  }

  isReplica(brokerId: number): boolean {
    return this.replicas.includes(brokerId);
  }
}
