// One hosted replica: its log and its role. As leader it owns a LeaderState (ISR, HW,
// follower progress); as follower it tracks the leader's high watermark from fetches.
// Role changes come only from the metadata image, at a leader epoch at least as new as
// the current one, so a stale leader is fenced by epoch.
import { RaftkaError } from '../common/errors.ts';
import type { Logger } from '../common/logger.ts';
import type { PartitionLog, AppendInfo } from '../log/partition-log.ts';
import { iterateBatches } from '../log/batch.ts';
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

export class Partition {
  private _role: Role;
  private _leaderEpoch: number;
  private _partitionEpoch: number;
  private _replicas: readonly number[];
  private _isr: readonly number[];
  /** Follower: the leader's HW as last seen, capped at the local log end. */
  private followerHighWatermark = 0;

  constructor(
    readonly tp: TopicPartition,
    readonly log: PartitionLog,
    private readonly localBrokerId: number,
    private settings: PartitionSettings,
    private readonly logger: Logger,
  ) {
    this._role = { kind: 'follower', leaderId: -1 };
    this._leaderEpoch = -1;
    this._partitionEpoch = -1;
    this._replicas = [];
    this._isr = [];
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

  /** Leader append. acks=all is refused up front (nothing written) when the ISR is below min.insync.replicas. */
  async appendAsLeader(records: Buffer, acks: number): Promise<AppendInfo> {
    const state = this.requireLeader();
    if (acks === -1 && state.isr.length < this.settings.minInsyncReplicas) {
      throw new RaftkaError('NOT_ENOUGH_REPLICAS', `ISR ${JSON.stringify(state.isr)} is smaller than min.insync.replicas ${this.settings.minInsyncReplicas}`);
    }
    const info = await this.log.appendAsLeader(records, state.leaderEpoch);
    this.onLocalProgress();
    return info;
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
    const base = { topicId: this.tp.topicId, partition: this.tp.partition, records: Buffer.alloc(0) };
    const fail = (errorCode: number) => ({
      response: { ...base, errorCode, highWatermark: -1, logStartOffset: -1, logEndOffset: -1 },
      hwAdvanced: false,
      isrChange: undefined,
    });
    if (this._role.kind !== 'leader') return fail(ERRORS.NOT_LEADER_OR_FOLLOWER.code);
    const state = this._role.state;
    if (p.currentLeaderEpoch < state.leaderEpoch) return fail(ERRORS.FENCED_LEADER_EPOCH.code);
    if (p.currentLeaderEpoch > state.leaderEpoch) return fail(ERRORS.UNKNOWN_LEADER_EPOCH.code);
    if (!state.isReplica(replicaId)) return fail(ERRORS.NOT_LEADER_OR_FOLLOWER.code);
    const info = () => ({ highWatermark: state.highWatermark, logStartOffset: this.log.logStartOffset, logEndOffset: this.log.logEndOffset });
    if (p.lastFetchedEpoch >= 0 && p.fetchOffset > 0) {
      const end = this.log.endOffsetForEpoch(p.lastFetchedEpoch);
      if (end.epoch !== p.lastFetchedEpoch || end.endOffset < p.fetchOffset) {
        return { response: { ...base, errorCode: 0, ...info(), divergingEpoch: end }, hwAdvanced: false, isrChange: undefined };
      }
    }
    if (p.fetchOffset < this.log.logStartOffset || p.fetchOffset > this.log.logEndOffset) {
      return { response: { ...base, errorCode: ERRORS.OFFSET_OUT_OF_RANGE.code, ...info() }, hwAdvanced: false, isrChange: undefined };
    }
    const { highWatermarkAdvanced, isrChange } = state.onFollowerFetch(replicaId, p.fetchOffset, p.flushedOffset, nowMs);
    const r = await this.log.read(p.fetchOffset, p.maxBytes);
    return { response: { ...base, errorCode: 0, ...info(), records: r.records }, hwAdvanced: highWatermarkAdvanced, isrChange };
  }

  /** Follower: appends what the leader sent and adopts its HW (capped at our log end). */
  async appendFromLeader(resp: ReplicaFetchPartitionResponse): Promise<number> {
    let appended = 0;
    if (resp.records.length > 0) {
      // Only whole batches at or after our log end (a fetch may end with a partial batch).
      const whole: Buffer[] = [];
      let end = this.log.logEndOffset;
      for (const { bytes, header } of iterateBatches(resp.records)) {
        if (header.baseOffset < end) continue;
        whole.push(bytes);
        end = header.lastOffset + 1;
      }
      if (whole.length > 0) {
        const info = await this.log.appendAsFollower(whole.length === 1 ? whole[0]! : Buffer.concat(whole));
        appended = info.lastOffset + 1 - info.firstOffset;
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
