// Incremental replica fetch sessions [KIP-227]. A follower's long poll to a leader names
// every partition it follows there; without sessions each round would carry all of them
// both ways, although one produce changes one partition. With a session the leader keeps
// the follower's last fetch state per partition: an incremental request lists only the
// partitions whose fetch state changed (and those the follower stopped fetching), and the
// response only the partitions with records, an error, a divergence or a new high
// watermark / log start offset. Per-round work and allocation then follow the traffic,
// not the partition count.
//
// Protocol: session epoch 0 is a full fetch, which (re)creates the follower's session and
// answers its id; epoch n >= 1 is the n-th incremental fetch of that session. An unknown
// id (leader restarted, session evicted) or an unexpected epoch (a response was lost, a
// request retried) is refused; the follower then starts over with a full fetch. Both
// sides are pure state machines; the replica manager and the replica fetcher drive them.
import { ERRORS } from '../common/errors.ts';
import { tpKey, type ReplicaFetchPartition, type ReplicaFetchPartitionResponse, type ReplicaFetchRequest, type TopicPartitionId } from './types.ts';

/** Kafka's min.incremental.fetch.session.eviction.ms: an unused session is dropped after this. */
export const FETCH_SESSION_IDLE_MS = 120_000;

/** Session epochs run 1..2^31-1 and wrap to 1 (they travel as int32; 0 means a full fetch). */
export function nextSessionEpoch(epoch: number): number {
  return epoch >= 0x7fffffff ? 1 : epoch + 1;
}

/** One partition of a leader's session: what the follower last asked, what it was last told. */
export interface SessionPartition {
  readonly key: string;
  /** The follower's fetch state for this partition, as of its latest request naming it. */
  fetch: ReplicaFetchPartition;
  /** High watermark and log start offset in the last response that carried this partition (-1: never sent). */
  sentHighWatermark: number;
  sentLogStartOffset: number;
  /** High watermark in the latest answer computed (sent or not): a parked fetch wakes when it moves. */
  answeredHighWatermark: number;
}

export class LeaderFetchSession {
  /** Expected epoch of the next incremental request. */
  nextEpoch = 1;
  lastUsedMs: number;
  readonly partitions = new Map<string, SessionPartition>();
  private keys: string[] | undefined;

  constructor(
    readonly id: number,
    readonly replicaId: number,
    nowMs: number,
  ) {
    this.lastUsedMs = nowMs;
  }

  /**
   * The replica manager's `leo:<tp>` waiter keys of the session's partitions, for a parked
   * fetch (cached until membership changes).
   */
  parkKeys(): readonly string[] {
    this.keys ??= [...this.partitions.keys()].map((k) => `leo:${k}`);
    return this.keys;
  }

  update(fetches: readonly ReplicaFetchPartition[], forgotten: readonly TopicPartitionId[]): void {
    for (const f of forgotten) {
      if (this.partitions.delete(tpKey(f.topicId, f.partition))) this.keys = undefined;
    }
    for (const f of fetches) {
      const key = tpKey(f.topicId, f.partition);
      const sp = this.partitions.get(key);
      if (sp) sp.fetch = f;
      else {
        this.partitions.set(key, { key, fetch: f, sentHighWatermark: -1, sentLogStartOffset: -1, answeredHighWatermark: -1 });
        this.keys = undefined;
      }
    }
  }
}

/** Whether a partition's answer goes into an incremental response. */
export function worthSending(sp: SessionPartition, r: ReplicaFetchPartitionResponse): boolean {
  return r.records.length > 0 || r.errorCode !== 0 || r.divergingEpoch !== undefined || r.highWatermark !== sp.sentHighWatermark || r.logStartOffset !== sp.sentLogStartOffset;
}

/** Records what a response told the follower (called only for responses actually sent). */
export function markSent(sp: SessionPartition, r: ReplicaFetchPartitionResponse): void {
  sp.sentHighWatermark = r.highWatermark;
  sp.sentLogStartOffset = r.logStartOffset;
}

export type SessionResolution = { session: LeaderFetchSession } | { errorCode: number; message: string };

/**
 * Leader side: at most one session per follower broker (its fetcher to this leader is one
 * loop), so the cache is bounded by the number of brokers.
 */
export class FetchSessionCache {
  private readonly byReplica = new Map<number, LeaderFetchSession>();

  constructor(private readonly newId: () => number = () => 1 + Math.floor(Math.random() * 0x7ffffffe)) {}

  get size(): number {
    return this.byReplica.size;
  }

  /**
   * Applies a request to its session (creating one on a full fetch) and advances the
   * session epoch. The caller serves every partition of the returned session.
   */
  resolve(req: ReplicaFetchRequest, nowMs: number): SessionResolution {
    if (req.sessionEpoch === 0) {
      let id = this.newId();
      // Never reuse the id being replaced: a late request of the old session must miss.
      if (id === this.byReplica.get(req.replicaId)?.id) id = (id % 0x7ffffffe) + 1;
      const session = new LeaderFetchSession(id, req.replicaId, nowMs);
      session.update(req.partitions, []);
      this.byReplica.set(req.replicaId, session);
      return { session };
    }
    const session = this.byReplica.get(req.replicaId);
    if (!session || session.id !== req.sessionId) {
      return { errorCode: ERRORS.FETCH_SESSION_ID_NOT_FOUND.code, message: `no fetch session ${req.sessionId} for replica ${req.replicaId}` };
    }
    if (req.sessionEpoch !== session.nextEpoch) {
      // The follower starts over; this session cannot be trusted any more.
      this.byReplica.delete(req.replicaId);
      return { errorCode: ERRORS.INVALID_FETCH_SESSION_EPOCH.code, message: `fetch session ${session.id} expects epoch ${session.nextEpoch}, got ${req.sessionEpoch}` };
    }
    session.nextEpoch = nextSessionEpoch(session.nextEpoch);
    session.lastUsedMs = nowMs;
    session.update(req.partitions, req.forgotten);
    return { session };
  }

  /** Drops sessions unused for `idleMs` (followers that went away). */
  evictIdle(nowMs: number, idleMs = FETCH_SESSION_IDLE_MS): number {
    let n = 0;
    for (const [replica, s] of this.byReplica) {
      if (nowMs - s.lastUsedMs >= idleMs) {
        this.byReplica.delete(replica);
        n++;
      }
    }
    return n;
  }
}

/** Fields of a partition's fetch state that the leader must hear about when they change. */
function sameFetch(a: ReplicaFetchPartition, b: ReplicaFetchPartition): boolean {
  return a.fetchOffset === b.fetchOffset && a.flushedOffset === b.flushedOffset && a.currentLeaderEpoch === b.currentLeaderEpoch && a.lastFetchedEpoch === b.lastFetchedEpoch && a.maxBytes === b.maxBytes;
}

export interface SessionRequestPart {
  sessionId: number;
  sessionEpoch: number;
  partitions: ReplicaFetchPartition[];
  forgotten: TopicPartitionId[];
}

/** Follower side: the session this fetcher holds with one leader. */
export class FollowerFetchSession {
  private id = 0;
  private epoch = 0;
  /** What the leader's session holds for each partition (as of the last request built). */
  private readonly sent = new Map<string, ReplicaFetchPartition>();

  /**
   * The session part of the next request for the partitions `wanted` (by tpKey): all of
   * them on a full fetch, else only the changed ones, plus the ones no longer wanted.
   */
  build(wanted: ReadonlyMap<string, ReplicaFetchPartition>): SessionRequestPart {
    const full = this.epoch === 0;
    const partitions: ReplicaFetchPartition[] = [];
    const forgotten: TopicPartitionId[] = [];
    if (full) this.sent.clear();
    for (const [key, old] of this.sent) {
      if (!wanted.has(key)) {
        forgotten.push({ topicId: old.topicId, partition: old.partition });
        this.sent.delete(key);
      }
    }
    for (const [key, f] of wanted) {
      const old = this.sent.get(key);
      if (old !== undefined && sameFetch(old, f)) continue;
      partitions.push(f);
      this.sent.set(key, f);
    }
    return { sessionId: full ? 0 : this.id, sessionEpoch: this.epoch, partitions, forgotten };
  }

  /** The request built last was answered: the session (new or continued) moves on. */
  answered(sessionId: number): void {
    this.id = sessionId;
    this.epoch = nextSessionEpoch(this.epoch);
  }

  /** Anything went wrong: the next request is a full fetch. */
  reset(): void {
    this.id = 0;
    this.epoch = 0;
    this.sent.clear();
  }
}
