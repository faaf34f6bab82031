// The contract between the pure Raft core (src/raft/core.ts) and everything around it:
// the driver that persists, sends and applies (src/raft/driver.ts), the controller's
// state machine, and the deterministic simulator (test/raft/sim/).
//
// The core is a deterministic state machine in the spirit of etcd raft's Ready/Advance:
// inputs are time (`tick(nowMs)`), received messages (`step`), proposals, and the
// acknowledgement that a Ready was made durable (`advance`). Outputs are collected in a
// `Ready`. The core never does I/O, never reads a clock and draws randomness only from
// the `Random` it was given.
//
// ─── The persistence rule (read this before writing a driver) ───────────────────────
// For each Ready, in this order [Raft §5.1, §5.2; DESIGN.md "persist, then send, then
// apply"]:
//   1. persist: `snapshot` (if any, dropping every stored entry up to its index), then
//      delete stored entries with index >= `truncateFrom` (if set), append `entries`,
//      write `hardState` (if any); sync.
//   2. send `messages` — only after step 1 is durable. A vote is granted and an append
//      acknowledged by a message in this list; sending it before the write is synced
//      lets a crash forget a vote or an acknowledged entry, which breaks election
//      safety and can lose committed entries.
//   3. apply: `restore(snapshot)` if a snapshot is present, then `apply` every entry of
//      `committedEntries` in order. (`readStates` may be answered once the applied index
//      reaches theirs.)
//   4. call `core.advance(ready)`. Do not ask for another Ready before that.
// Messages may be sent in any order, dropped, duplicated or delayed: the protocol
// tolerates all of that. They must not be sent before the Ready's writes are durable.

import type { Random } from '../common/random.ts';

/** A broker/controller id (Kafka's `node.id`). */
export type NodeId = number;

/**
 * A voter is a node id plus the id of the metadata directory it votes from [KIP-853].
 * A voter whose disk was wiped comes back with a new directory id, so it cannot vote
 * (or be counted) as if it still had the log it promised to keep.
 */
export interface VoterKey {
  readonly nodeId: NodeId;
  readonly directoryId: string;
}

export function sameVoter(a: VoterKey | null, b: VoterKey | null): boolean {
  return a !== null && b !== null && a.nodeId === b.nodeId && a.directoryId === b.directoryId;
}

/**
 * Cluster membership. Voters elect the leader and form quorums; observers (broker-only
 * nodes, Raft "learners") replicate and apply the log but never vote or count toward
 * commit [KIP-595 "observers"]. A node id is in at most one of the two lists.
 *
 * The leader replicates to exactly these members, and every node refuses messages from
 * anyone else: a new broker-only node is added with `addObserver` first. To add a voter,
 * add it as an observer, let it catch up, then `addVoter` it: a voter that joins with an
 * empty log counts toward the quorum at once and stalls commits until it catches up.
 */
export interface ClusterConfig {
  readonly voters: readonly VoterKey[];
  readonly observers: readonly NodeId[];
}

/**
 * - `normal`: a state-machine record (controller metadata).
 * - `config`: a new ClusterConfig (data = encodeConfig(config)). It takes effect on
 *   every node as soon as it is appended to the log, committed or not [Raft
 *   dissertation §4.1]; a truncated config entry reverts to the previous config.
 * - `noop`: appended by a new leader at the start of its term, so it can commit by
 *   counting replicas of an entry of its own term [Raft §5.4.2, §8].
 */
export type EntryKind = 'normal' | 'config' | 'noop';

export interface Entry {
  readonly term: number;
  readonly index: number;
  readonly kind: EntryKind;
  readonly data: Uint8Array;
}

/** What must survive a crash besides the log [Raft Figure 2 "persistent state"]. */
export interface HardState {
  readonly term: number;
  /** The candidate this node voted for in `term`, by voter key, or null. */
  readonly votedFor: VoterKey | null;
  /**
   * Persisted so a restart re-applies only what was committed; it may lag the in-memory
   * commit index (it is recovered from the leader), never lead it.
   */
  readonly commitIndex: number;
}

/** Describes a snapshot: it replaces every entry up to and including `index`. */
export interface SnapshotMeta {
  readonly index: number;
  readonly term: number;
  /** The configuration in effect at `index`: the log before it is gone. */
  readonly config: ClusterConfig;
}

export interface Snapshot {
  readonly meta: SnapshotMeta;
  readonly data: Uint8Array;
}

// ─── Messages ─────────────────────────────────────────────────────────────────────
// Every message carries the cluster id (a node never acts on another cluster's
// traffic), sender, receiver and the sender's term (for pre-vote: the term it would
// campaign in). A receiver rejects a message whose clusterId differs or whose sender is
// in neither the voters nor the observers of its configuration.

interface MessageBase {
  readonly clusterId: string;
  readonly from: NodeId;
  readonly to: NodeId;
  readonly term: number;
}

/**
 * Pre-vote [Raft dissertation §9.6]: "would you vote for me in `term`?" asked without
 * bumping anyone's term, so a node that was partitioned away cannot disrupt a healthy
 * leader when it rejoins. Vote: the real request [Raft §5.2].
 */
export interface VoteRequest extends MessageBase {
  readonly type: 'preVote' | 'vote';
  readonly lastLogIndex: number;
  readonly lastLogTerm: number;
  readonly candidateDirectoryId: string;
  /** The receiver's directory id as the candidate knows it; a mismatch is refused [KIP-853]. */
  readonly voterDirectoryId: string;
  /** Set when campaigning because of TimeoutNow: voters ignore their leader lease. */
  readonly leadershipTransfer: boolean;
}

export interface VoteResponse extends MessageBase {
  readonly type: 'preVoteResponse' | 'voteResponse';
  readonly granted: boolean;
  /** Lets the candidate count only votes from the configured voter key. */
  readonly voterDirectoryId: string;
}

/** AppendEntries [Raft §5.3]. */
export interface AppendRequest extends MessageBase {
  readonly type: 'append';
  readonly prevLogIndex: number;
  readonly prevLogTerm: number;
  readonly entries: readonly Entry[];
  readonly leaderCommit: number;
}

/**
 * Fields of every replication response (append, heartbeat, snapshot) [KIP-853]: the
 * responder's directory id. A leader counts a response toward a quorum (commit,
 * check-quorum, read-index) only if it comes from the directory the configuration names
 * for that voter: a node whose disk was wiped lost its term and vote too, and could
 * otherwise help a stale leader commit. A change of directory also tells the leader the
 * follower's log is gone. Optional only so an older codec that does not carry it yet still
 * interoperates (then the leader falls back to trusting the node id): transports must
 * carry it.
 */
interface ReplicaResponse {
  readonly voterDirectoryId?: string;
}

export interface AppendResponse extends MessageBase, ReplicaResponse {
  readonly type: 'appendResponse';
  readonly success: boolean;
  /** On success: the follower's log matches the leader's up to this index. */
  readonly matchIndex: number;
  /** On reject: the prevLogIndex of the rejected append (to discard stale rejects). */
  readonly rejectedIndex: number;
  /**
   * Fast backtracking hint [Raft §5.3 "the follower can include the term of the
   * conflicting entry and the first index it stores for that term"]: the follower's
   * term at rejectedIndex (0 if its log is shorter) and the first index it holds of that
   * term (or its last index + 1 when its log is shorter).
   */
  readonly conflictTerm: number;
  readonly conflictIndex: number;
}

/**
 * Leader heartbeat. Also the check-quorum probe and the read-index confirmation round:
 * `readContext` is the leader's latest read-index sequence number, echoed back.
 * `commitIndex` is capped by the leader at the follower's match index, so a follower
 * never commits entries it has not been shown to share with the leader.
 */
export interface HeartbeatRequest extends MessageBase {
  readonly type: 'heartbeat';
  readonly commitIndex: number;
  readonly readContext: number;
}

export interface HeartbeatResponse extends MessageBase, ReplicaResponse {
  readonly type: 'heartbeatResponse';
  readonly readContext: number;
  /**
   * The follower's last log index. Below what it acknowledged, it lost its disk: the leader
   * then forgets those acknowledgements and probes again.
   */
  readonly lastLogIndex: number;
}

/** One chunk of a snapshot [Raft §7]. Chunks are sent one at a time, in order. */
export interface InstallSnapshotRequest extends MessageBase {
  readonly type: 'installSnapshot';
  readonly meta: SnapshotMeta;
  readonly offset: number;
  readonly totalBytes: number;
  readonly data: Uint8Array;
  readonly done: boolean;
}

export interface InstallSnapshotResponse extends MessageBase, ReplicaResponse {
  readonly type: 'installSnapshotResponse';
  readonly snapshotIndex: number;
  /** Bytes of this snapshot the follower holds: the leader resumes from here. */
  readonly nextOffset: number;
  /** The whole snapshot is installed (persisted before this response is sent). */
  readonly done: boolean;
}

/** Leadership transfer: "campaign now, skipping pre-vote" [Raft dissertation §3.10]. */
export interface TimeoutNow extends MessageBase {
  readonly type: 'timeoutNow';
}

/** A follower forwards a linearizable read to the leader [Raft dissertation §6.4]. */
export interface ReadIndexRequest extends MessageBase {
  readonly type: 'readIndex';
  readonly context: string;
}

export interface ReadIndexResponse extends MessageBase {
  readonly type: 'readIndexResponse';
  readonly context: string;
  /** -1 when the leader could not serve it (not leader any more). */
  readonly index: number;
}

export type Message =
  | VoteRequest
  | VoteResponse
  | AppendRequest
  | AppendResponse
  | HeartbeatRequest
  | HeartbeatResponse
  | InstallSnapshotRequest
  | InstallSnapshotResponse
  | TimeoutNow
  | ReadIndexRequest
  | ReadIndexResponse;

export type MessageType = Message['type'];

// ─── Ready ────────────────────────────────────────────────────────────────────────

/**
 * Roles and their transitions (`voter` = this node's key is in the config's voters):
 *   follower    → preCandidate (election timeout, voter only)
 *   preCandidate→ candidate (pre-vote majority) | follower (higher term / leader seen)
 *   candidate   → leader (vote majority) | follower | preCandidate (timeout)
 *   leader      → follower (higher term, check-quorum failure, removed from voters)
 * Observers are always followers.
 */
export type Role = 'follower' | 'preCandidate' | 'candidate' | 'leader';

/** Volatile state the driver and controller care about (who leads, at which epoch). */
export interface SoftState {
  readonly leaderId: NodeId | null;
  readonly role: Role;
  /** The term doubles as the controller epoch (KRaft's leader epoch). */
  readonly term: number;
  readonly voter: boolean;
}

/** A confirmed read-index: once `applied >= index`, a read may serve [Raft §6.4]. */
export interface ReadState {
  readonly context: string;
  /** -1: the read failed (leadership lost); retry against the new leader. */
  readonly index: number;
}

/**
 * - `clusterId`: from another cluster; `unknownSender`: not a voter or observer here;
 * - `wrongRecipient`: addressed to another node id;
 * - `malformed`: fails a structural check (entries not contiguous after prevLogIndex, an
 *   entry term above the message term, indices out of range): a peer bug, never applied.
 */
export type RejectReason = 'clusterId' | 'unknownSender' | 'wrongRecipient' | 'malformed';

export interface RejectedMessage {
  readonly from: NodeId;
  readonly type: MessageType;
  readonly reason: RejectReason;
}

export interface Ready {
  /** Present when changed since the last Ready. Informational; not persisted. */
  readonly softState?: SoftState;
  /** Present when changed: persist it. */
  readonly hardState?: HardState;
  /** A snapshot received from the leader: persist it, then `restore` it. */
  readonly snapshot?: Snapshot;
  /**
   * If set, stable entries with index >= truncateFrom must be deleted before `entries`
   * are appended (a follower replacing a conflicting tail [Raft §5.3]). When a snapshot
   * is present every entry <= snapshot.meta.index must be dropped too.
   */
  readonly truncateFrom?: number;
  /** Entries to append to stable storage, contiguous and ascending. */
  readonly entries: readonly Entry[];
  /** To send only after everything above is durable (see the persistence rule). */
  readonly messages: readonly Message[];
  /** Committed entries to apply, in order, after persisting. */
  readonly committedEntries: readonly Entry[];
  readonly readStates: readonly ReadState[];
  /** The effective configuration, when it changed (the driver connects to new peers). */
  readonly config?: ClusterConfig;
  /** Messages refused at the door, for logging and metrics. Never applied. */
  readonly rejected: readonly RejectedMessage[];
}

// ─── The state machine the controller plugs in ────────────────────────────────────

export interface StateMachine {
  /** Applies one committed entry. Entries arrive once each, in index order. */
  apply(index: number, entry: Entry): void;
  /** Serializes the state as of the last applied index. */
  snapshot(): Uint8Array;
  /** Replaces the state with a snapshot's (its index becomes the applied index). */
  restore(snapshot: Snapshot): void;
}

// ─── Proposals ─────────────────────────────────────────────────────────────────────

export type ConfigChange =
  /** Makes the node a voter (removing it from the observers if it was one). */
  | { readonly type: 'addVoter'; readonly voter: VoterKey }
  /** Removes the voter; it stays an observer so it learns it was removed. */
  | { readonly type: 'removeVoter'; readonly nodeId: NodeId }
  | { readonly type: 'addObserver'; readonly nodeId: NodeId }
  | { readonly type: 'removeObserver'; readonly nodeId: NodeId };

export type ProposeRejection =
  | 'notLeader'
  /** A leadership transfer is in progress: proposals would be lost or delayed. */
  | 'transferring'
  /** Config change only: the leader has not committed an entry of its term yet. */
  | 'leaderNotReady'
  /** Config change only: the previous change is not committed yet (one at a time). */
  | 'configChangePending'
  /** Config change only: it would change nothing, or remove the last voter. */
  | 'invalidConfigChange'
  | 'tooLarge';

export type ProposeResult =
  | { readonly ok: true; readonly index: number; readonly term: number }
  | { readonly ok: false; readonly reason: ProposeRejection; readonly leaderId: NodeId | null };

// ─── Configuration ─────────────────────────────────────────────────────────────────

/**
 * Timing and flow-control settings, in milliseconds of the time passed to `tick`.
 * Defaults follow KRaft: 1 s election timeout, 2 s fetch (check-quorum) timeout.
 */
export interface RaftConfig {
  /**
   * A follower that has not heard from a leader for a random time in [T, 2T) starts a
   * (pre-)vote. Randomization makes split votes rare [Raft §5.2]. Also the leader
   * lease: a voter that heard from a leader within T refuses (pre-)votes.
   */
  readonly electionTimeoutMs: number;
  /** Leader heartbeat period; must be well below electionTimeoutMs. */
  readonly heartbeatIntervalMs: number;
  /**
   * A leader that has not heard from a majority of voters within this time steps down
   * [Raft dissertation §6.2 check-quorum; KIP-595 fetch timeout].
   */
  readonly checkQuorumTimeoutMs: number;
  /** Bound on append messages in flight per follower (pipelining window). */
  readonly maxInflightAppends: number;
  /** Bound on the entry bytes in one append message (at least one entry is sent). */
  readonly maxAppendBytes: number;
  /** Bytes of snapshot data per InstallSnapshot chunk. */
  readonly snapshotChunkBytes: number;
  /** Largest single proposal accepted, in bytes. */
  readonly maxEntryBytes: number;
  /** Unconfirmed reads a leader queues before refusing more (bounded queue). */
  readonly maxPendingReads: number;
}

export const DEFAULT_RAFT_CONFIG: RaftConfig = Object.freeze({
  electionTimeoutMs: 1000,
  heartbeatIntervalMs: 100,
  checkQuorumTimeoutMs: 2000,
  maxInflightAppends: 64,
  maxAppendBytes: 1024 * 1024,
  snapshotChunkBytes: 256 * 1024,
  maxEntryBytes: 8 * 1024 * 1024,
  maxPendingReads: 10_000,
});

/** What a node recovers from its disk at start-up (empty for a freshly formatted one). */
export interface PersistedState {
  readonly hardState: HardState;
  readonly snapshot: Snapshot | null;
  /** Every stored entry after the snapshot, ascending and contiguous. */
  readonly entries: readonly Entry[];
}

export const EMPTY_HARD_STATE: HardState = Object.freeze({ term: 0, votedFor: null, commitIndex: 0 });

// ─── Config entry codec ────────────────────────────────────────────────────────────

export function encodeConfig(config: ClusterConfig): Uint8Array {
  return new TextEncoder().encode(
    JSON.stringify({
      voters: config.voters.map((v) => ({ nodeId: v.nodeId, directoryId: v.directoryId })),
      observers: [...config.observers],
    }),
  );
}

export function decodeConfig(data: Uint8Array): ClusterConfig {
  const raw = JSON.parse(new TextDecoder().decode(data)) as {
    voters?: Array<{ nodeId?: unknown; directoryId?: unknown }>;
    observers?: unknown[];
  };
  const voters = (raw.voters ?? []).map((v) => {
    if (typeof v.nodeId !== 'number' || typeof v.directoryId !== 'string') throw new Error('bad voter in config entry');
    return { nodeId: v.nodeId, directoryId: v.directoryId };
  });
  const observers = (raw.observers ?? []).map((o) => {
    if (typeof o !== 'number') throw new Error('bad observer in config entry');
    return o;
  });
  return { voters, observers };
}

// ─── The core's API (implemented by RaftCore in core.ts) ───────────────────────────

export interface RaftCoreOptions {
  readonly nodeId: NodeId;
  /** This node's metadata directory id (from `storage format`). */
  readonly directoryId: string;
  readonly clusterId: string;
  /**
   * The configuration to use when the persisted state holds none (no snapshot and no
   * config entry): the static initial voters written at format time [KIP-853 bootstrap].
   */
  readonly bootstrapConfig: ClusterConfig;
  readonly persisted: PersistedState;
  /** Current monotonic time; later times arrive through `tick`. */
  readonly nowMs: number;
  /** The only source of randomness (election timeouts). Seeded in simulations. */
  readonly random: Random;
  readonly config?: Partial<RaftConfig>;
}

/**
 * How a driver uses the core. Every method is synchronous and does no I/O.
 *  - `tick(nowMs)` moves time forward (monotonic ms): elections, heartbeats,
 *    check-quorum and transfer timeouts fire from here. Call it every ~10-50 ms and
 *    before `step` so the core's notion of now is fresh.
 *  - `step(message)` hands in a received message (validated here: cluster id, sender).
 *  - `propose`/`proposeConfigChange` append on the leader; `readIndex` asks for a
 *    linearizable read point; `transferLeadership` hands leadership to a voter.
 *  - `compact(index, data)`: the driver took a snapshot of the state machine at applied
 *    index `index` (<= appliedIndex, with no Ready outstanding); the core drops its log up
 *    to there, keeps `data` to send to followers that need it, and returns the metadata.
 *    The driver then stores the snapshot durably and only after that deletes its stored
 *    entries up to `index` (a crash in between leaves both, which is harmless).
 *  - `hasReady()`/`ready()`/`advance(ready)`: see the persistence rule at the top.
 */
export interface RaftNode {
  tick(nowMs: number): void;
  step(message: Message): void;
  propose(data: Uint8Array): ProposeResult;
  proposeConfigChange(change: ConfigChange): ProposeResult;
  readIndex(context: string): void;
  transferLeadership(to: NodeId): boolean;
  /** Returns the snapshot's metadata (term and config at `index`) for the driver to store. */
  compact(index: number, data: Uint8Array): SnapshotMeta;
  hasReady(): boolean;
  ready(): Ready;
  advance(ready: Ready): void;
  softState(): SoftState;
  clusterConfig(): ClusterConfig;
  readonly commitIndex: number;
  readonly appliedIndex: number;
  lastIndex(): number;
  /** On the leader: how far a member's log is known to match (undefined elsewhere). */
  progressOf(id: NodeId): { readonly match: number } | undefined;
}
