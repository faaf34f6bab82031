// The Raft core: a deterministic state machine with no I/O, no timers and no randomness
// of its own (see types.ts for the contract and the persistence rule). One instance is
// one node's view of the quorum. It implements:
//  - elections with randomized timeouts [Raft §5.2], pre-vote [dissertation §9.6] and
//    check-quorum with a leader lease [dissertation §6.2, §9.6]: a voter that heard from
//    a leader within the election timeout refuses (pre-)votes, so a rejoining node
//    cannot depose a healthy leader; a leader that has not heard from a majority within
//    checkQuorumTimeoutMs steps down;
//  - replication with the consistency check and fast backtracking [Raft §5.3], bounded
//    pipelining (progress.ts), commit by counting only own-term entries [Raft §5.4.2];
//  - leadership transfer [dissertation §3.10], read-index reads [dissertation §6.4];
//  - snapshots sent in chunks [Raft §7], observers (non-voting members), and
//    single-server membership changes [dissertation §4.1] guarded against the known
//    pitfall (a leader first commits an entry of its own term; one change at a time);
//  - voter identity by node id + directory id [KIP-853].
import { assert, unreachable } from '../common/errors.ts';
import type { Random } from '../common/random.ts';
import { RaftLog } from './log.ts';
import { Progress } from './progress.ts';
import {
  DEFAULT_RAFT_CONFIG,
  decodeConfig,
  encodeConfig,
  sameVoter,
  type AppendRequest,
  type AppendResponse,
  type ClusterConfig,
  type ConfigChange,
  type Entry,
  type HardState,
  type HeartbeatRequest,
  type HeartbeatResponse,
  type InstallSnapshotRequest,
  type InstallSnapshotResponse,
  type Message,
  type NodeId,
  type ProposeResult,
  type RaftConfig,
  type RaftCoreOptions,
  type RaftNode,
  type Ready,
  type ReadState,
  type RejectedMessage,
  type Role,
  type Snapshot,
  type SnapshotMeta,
  type SoftState,
  type VoteRequest,
  type VoteResponse,
  type VoterKey,
} from './types.ts';

type Outgoing = Message extends infer M ? (M extends Message ? Omit<M, 'clusterId' | 'from' | 'term'> & { term?: number } : never) : never;

interface PendingRead {
  readonly seq: number;
  readonly index: number;
  readonly context: string;
  /** null: asked locally; otherwise the follower that forwarded it. */
  readonly from: NodeId | null;
}

interface IncomingSnapshot {
  readonly meta: SnapshotMeta;
  readonly totalBytes: number;
  readonly chunks: Uint8Array[];
  received: number;
}

interface Outstanding {
  readonly lastEntryIndex: number;
  readonly appliedTo: number;
  readonly snapshot: Snapshot | undefined;
}

export class RaftCore implements RaftNode {
  readonly id: NodeId;
  readonly directoryId: string;
  readonly clusterId: string;
  readonly cfg: RaftConfig;
  private readonly random: Random;
  private now: number;

  // Persistent state [Raft Figure 2]; the log holds the rest.
  private term: number;
  private votedFor: VoterKey | null;
  readonly log: RaftLog;

  private role: Role = 'follower';
  private leaderId: NodeId | null = null;
  private config: ClusterConfig;
  /** Index of the entry (or snapshot) that set `config`. */
  private configIndex: number;
  private readonly bootstrapConfig: ClusterConfig;
  /** The newest snapshot this node holds (to send to followers that need it). */
  private currentSnapshot: Snapshot | null;

  private electionDeadlineMs = 0;
  /** Last time a leader of the current term was heard from (the lease). */
  private lastLeaderContactMs = Number.NEGATIVE_INFINITY;
  private votes = new Map<NodeId, boolean>();

  // Leader state.
  private readonly progress = new Map<NodeId, Progress>();
  private lastHeartbeatMs = 0;
  /** The index of this leader's noop: once committed, the leader knows its commit index. */
  private termStartIndex = 0;
  private transferTarget: NodeId | null = null;
  private transferDeadlineMs = 0;
  private readSeq = 0;
  private pendingReads: PendingRead[] = [];
  /** Reads that arrived before this leader committed an entry of its term. */
  private readsAwaitingTermCommit: Array<{ context: string; from: NodeId | null }> = [];
  private broadcastPending = false;
  private heartbeatPending = false;

  // Follower state.
  private incomingSnapshot: IncomingSnapshot | null = null;

  // Outputs accumulated for the next Ready.
  private msgs: Message[] = [];
  private readStates: ReadState[] = [];
  private rejected: RejectedMessage[] = [];
  private snapshotToPersist: Snapshot | undefined;
  private configChanged = false;
  private prevHard: HardState;
  private prevSoft: SoftState;
  private outstanding: Outstanding | null = null;

  constructor(opts: RaftCoreOptions) {
    this.id = opts.nodeId;
    this.directoryId = opts.directoryId;
    this.clusterId = opts.clusterId;
    this.cfg = { ...DEFAULT_RAFT_CONFIG, ...opts.config };
    assert(this.cfg.heartbeatIntervalMs < this.cfg.electionTimeoutMs, 'heartbeatIntervalMs must be below electionTimeoutMs');
    this.random = opts.random;
    this.now = opts.nowMs;
    this.bootstrapConfig = opts.bootstrapConfig;
    const p = opts.persisted;
    this.term = p.hardState.term;
    this.votedFor = p.hardState.votedFor;
    this.currentSnapshot = p.snapshot;
    const snapMeta = p.snapshot?.meta;
    this.log = new RaftLog(snapMeta?.index ?? 0, snapMeta?.term ?? 0, p.entries, p.hardState.commitIndex);
    this.config = this.bootstrapConfig;
    this.configIndex = 0;
    this.recomputeConfig();
    this.configChanged = true;
    this.prevHard = p.hardState;
    this.prevSoft = { leaderId: null, role: 'follower', term: this.term, voter: this.isVoter() };
    this.resetElectionTimer();
  }

  // ─── Inspection ─────────────────────────────────────────────────────────────────

  get commitIndex(): number {
    return this.log.committed;
  }
  get appliedIndex(): number {
    return this.log.applied;
  }
  get currentTerm(): number {
    return this.term;
  }
  lastIndex(): number {
    return this.log.lastIndex();
  }
  softState(): SoftState {
    return { leaderId: this.leaderId, role: this.role, term: this.term, voter: this.isVoter() };
  }
  hardState(): HardState {
    return { term: this.term, votedFor: this.votedFor, commitIndex: this.log.committed };
  }
  clusterConfig(): ClusterConfig {
    return this.config;
  }
  /**
   * A voter of the latest config may campaign, and so may a voter of the last committed
   * config: a leader that appended its own removal and crashed before committing it has
   * the longest log, so the remaining voters (still on the old config) cannot win without
   * it; it must be able to lead the new config to commitment and then step down
   * [dissertation §4.2.2]. Votes are always counted in the latest config.
   */
  canCampaign(): boolean {
    if (this.isVoter()) return true;
    if (this.configIndex <= this.log.committed) return false;
    return this.configAt(this.log.committed).voters.some((v) => v.nodeId === this.id && v.directoryId === this.directoryId);
  }

  isVoter(): boolean {
    return this.config.voters.some((v) => v.nodeId === this.id && v.directoryId === this.directoryId);
  }
  /** For tests: the leader's view of a follower. */
  progressOf(id: NodeId): Readonly<Progress> | undefined {
    return this.progress.get(id);
  }

  // ─── Inputs ─────────────────────────────────────────────────────────────────────

  tick(nowMs: number): void {
    if (nowMs > this.now) this.now = nowMs;
    if (this.role === 'leader') {
      this.tickLeader();
    } else if (this.now >= this.electionDeadlineMs) {
      if (this.canCampaign()) this.campaign('preVote', false);
      else this.resetElectionTimer();
    }
  }

  step(m: Message): void {
    if (m.clusterId !== this.clusterId) return this.reject(m, 'clusterId');
    if (m.to !== this.id) return this.reject(m, 'wrongRecipient');
    if (!this.isMember(m.from) || m.from === this.id) return this.reject(m, 'unknownSender');
    if (!wellFormed(m)) return this.reject(m, 'malformed');

    if (m.term > this.term) {
      if (m.type === 'preVote' || m.type === 'vote') {
        // The lease: while a leader is active, ignore would-be disruptors [dissertation §9.6].
        if (this.inLease() && !m.leadershipTransfer) return;
      }
      if (m.type === 'preVote') {
        // Never bump our term for a pre-vote.
      } else if (m.type === 'preVoteResponse' && m.granted) {
        // Granted pre-votes carry the future term.
      } else {
        const fromLeader = m.type === 'append' || m.type === 'heartbeat' || m.type === 'installSnapshot';
        this.becomeFollower(m.term, fromLeader ? m.from : null);
      }
    } else if (m.term < this.term) {
      if (m.type === 'append' || m.type === 'heartbeat' || m.type === 'installSnapshot') {
        // A stale leader (or a leader of a term we moved past while campaigning): tell it
        // our term so it steps down; otherwise, with the lease, we could both be stuck.
        this.send({ type: 'appendResponse', to: m.from, success: false, matchIndex: 0, rejectedIndex: 0, conflictTerm: 0, conflictIndex: 0 });
      } else if (m.type === 'preVote') {
        this.send({ type: 'preVoteResponse', to: m.from, granted: false, voterDirectoryId: this.directoryId });
      }
      return;
    }

    switch (m.type) {
      case 'preVote':
      case 'vote':
        return this.handleVoteRequest(m);
      case 'preVoteResponse':
      case 'voteResponse':
        return this.handleVoteResponse(m);
      case 'append':
        this.followLeader(m.from);
        return this.handleAppend(m);
      case 'heartbeat':
        this.followLeader(m.from);
        return this.handleHeartbeat(m);
      case 'installSnapshot':
        this.followLeader(m.from);
        return this.handleInstallSnapshot(m);
      case 'appendResponse':
        return this.handleAppendResponse(m);
      case 'heartbeatResponse':
        return this.handleHeartbeatResponse(m);
      case 'installSnapshotResponse':
        return this.handleInstallSnapshotResponse(m);
      case 'timeoutNow':
        // Only the leader of our term sends it; campaign at once, skipping pre-vote.
        if (this.role !== 'leader' && this.canCampaign()) this.campaign('vote', true);
        return;
      case 'readIndex':
        if (this.role === 'leader') this.leaderReadIndex(m.context, m.from);
        else this.send({ type: 'readIndexResponse', to: m.from, context: m.context, index: -1 });
        return;
      case 'readIndexResponse':
        this.readStates.push({ context: m.context, index: m.index });
        return;
      default:
        unreachable(m);
    }
  }

  propose(data: Uint8Array): ProposeResult {
    const refused = this.refuseProposal();
    if (refused) return refused;
    if (data.byteLength > this.cfg.maxEntryBytes) return { ok: false, reason: 'tooLarge', leaderId: this.leaderId };
    return this.appendOwn('normal', data);
  }

  proposeConfigChange(change: ConfigChange): ProposeResult {
    const refused = this.refuseProposal();
    if (refused) return refused;
    // The single-server-change pitfall [Ongaro, raft-dev 2015]: a leader must commit an
    // entry of its own term before changing the config, and only one change may be
    // uncommitted at a time, or two leaders' configs can fail to overlap.
    if (this.log.term(this.log.committed) !== this.term) return { ok: false, reason: 'leaderNotReady', leaderId: this.id };
    if (this.configIndex > this.log.committed) return { ok: false, reason: 'configChangePending', leaderId: this.id };
    const next = applyChange(this.config, change);
    if (next === null) return { ok: false, reason: 'invalidConfigChange', leaderId: this.id };
    return this.appendOwn('config', encodeConfig(next));
  }

  /**
   * Asks for a linearizable read point. The answer arrives as a ReadState in a later
   * Ready: the leader's commit index once a majority confirmed it is still the leader
   * [dissertation §6.4]; serve the read after applying up to it.
   */
  readIndex(context: string): void {
    if (this.role === 'leader') this.leaderReadIndex(context, null);
    else if (this.leaderId !== null) this.send({ type: 'readIndex', to: this.leaderId, context, term: this.term });
    else this.readStates.push({ context, index: -1 });
  }

  transferLeadership(to: NodeId): boolean {
    if (this.role !== 'leader' || to === this.id) return false;
    if (!this.config.voters.some((v) => v.nodeId === to)) return false;
    const pr = this.progress.get(to);
    if (pr === undefined) return false;
    this.transferTarget = to;
    this.transferDeadlineMs = this.now + this.cfg.electionTimeoutMs;
    if (pr.match === this.log.lastIndex()) this.send({ type: 'timeoutNow', to });
    else this.sendAppend(pr);
    return true;
  }

  compact(index: number, data: Uint8Array): SnapshotMeta {
    assert(this.outstanding === null, 'compact() while a Ready is outstanding');
    if (index <= this.log.snapshotIndex && this.currentSnapshot !== null) return this.currentSnapshot.meta;
    const meta: SnapshotMeta = { index, term: this.log.term(index)!, config: this.configAt(index) };
    this.log.compact(index);
    this.currentSnapshot = { meta, data };
    return meta;
  }

  // ─── Ready / advance ────────────────────────────────────────────────────────────

  hasReady(): boolean {
    if (this.outstanding !== null) return false;
    return (
      this.msgs.length > 0 ||
      this.broadcastPending ||
      this.heartbeatPending ||
      this.readStates.length > 0 ||
      this.rejected.length > 0 ||
      this.snapshotToPersist !== undefined ||
      this.configChanged ||
      this.log.pendingTruncateFrom !== null ||
      this.log.handedIndex < this.log.lastIndex() ||
      this.log.committed > this.log.applied ||
      !sameHard(this.prevHard, this.hardState()) ||
      !sameSoft(this.prevSoft, this.softState())
    );
  }

  ready(): Ready {
    assert(this.outstanding === null, 'ready() called before advance() of the previous Ready');
    if (this.role === 'leader') {
      if (this.broadcastPending) {
        for (const pr of this.progress.values()) {
          this.fillPipeline(pr);
          // Tell an up-to-date follower about a new commit index now rather than at the
          // next heartbeat, so followers and observers apply within one round trip.
          if (!this.heartbeatPending && Math.min(pr.match, this.log.committed) > pr.commitSent) this.sendHeartbeat(pr);
        }
      }
      if (this.heartbeatPending) this.broadcastHeartbeat();
    }
    this.broadcastPending = false;
    this.heartbeatPending = false;

    const hard = this.hardState();
    const soft = this.softState();
    const snapshot = this.snapshotToPersist;
    const entries = this.log.unstableEntries();
    const truncateFrom = this.log.pendingTruncateFrom;
    const applyFrom = Math.max(this.log.applied, snapshot?.meta.index ?? 0) + 1;
    const committedEntries = this.log.committed >= applyFrom ? this.log.slice(applyFrom, this.log.committed + 1) : [];
    const rd: Ready = {
      ...(sameSoft(this.prevSoft, soft) ? {} : { softState: soft }),
      ...(sameHard(this.prevHard, hard) ? {} : { hardState: hard }),
      ...(snapshot ? { snapshot } : {}),
      ...(truncateFrom !== null ? { truncateFrom } : {}),
      entries,
      messages: this.msgs,
      committedEntries,
      readStates: this.readStates,
      ...(this.configChanged ? { config: this.config } : {}),
      rejected: this.rejected,
    };
    this.prevSoft = soft;
    this.prevHard = hard;
    this.snapshotToPersist = undefined;
    this.log.pendingTruncateFrom = null;
    this.log.handedIndex = this.log.lastIndex();
    this.configChanged = false;
    this.msgs = [];
    this.readStates = [];
    this.rejected = [];
    this.outstanding = {
      lastEntryIndex: this.log.lastIndex(),
      appliedTo: Math.max(applyFrom - 1, this.log.committed),
      snapshot,
    };
    return rd;
  }

  advance(_rd: Ready): void {
    const o = this.outstanding;
    assert(o !== null, 'advance() without an outstanding Ready');
    this.outstanding = null;
    // A truncation after ready() lowered handedIndex: only the surviving prefix is durable.
    this.log.persistedIndex = Math.max(this.log.persistedIndex, Math.min(o.lastEntryIndex, this.log.handedIndex));
    if (o.snapshot) this.log.applied = Math.max(this.log.applied, o.snapshot.meta.index);
    this.log.applied = Math.max(this.log.applied, Math.min(o.appliedTo, this.log.committed));
    // The leader counts itself toward a quorum only for entries on its own disk.
    if (this.role === 'leader') this.maybeCommit();
  }

  // ─── Roles ──────────────────────────────────────────────────────────────────────

  private becomeFollower(term: number, leaderId: NodeId | null): void {
    if (this.role === 'leader') this.failPendingReads();
    if (term > this.term) {
      this.term = term;
      this.votedFor = null;
    }
    this.role = 'follower';
    this.leaderId = leaderId;
    this.progress.clear();
    this.transferTarget = null;
    this.resetElectionTimer();
  }

  /** Called for leader messages of the current term. */
  private followLeader(from: NodeId): void {
    assert(this.role !== 'leader', () => `node ${this.id}: two leaders in term ${this.term} (${from} and us)`);
    if (this.role !== 'follower' || this.leaderId !== from) this.becomeFollower(this.term, from);
    this.lastLeaderContactMs = this.now;
    this.resetElectionTimer();
  }

  private campaign(kind: 'preVote' | 'vote', transfer: boolean): void {
    if (kind === 'preVote') {
      this.role = 'preCandidate';
      this.leaderId = null;
    } else {
      this.role = 'candidate';
      this.term += 1;
      this.votedFor = { nodeId: this.id, directoryId: this.directoryId };
      this.leaderId = null;
    }
    this.progress.clear();
    this.votes = new Map([[this.id, true]]);
    this.resetElectionTimer();
    if (this.voteQuorumReached()) {
      if (kind === 'preVote') this.campaign('vote', false);
      else this.becomeLeader();
      return;
    }
    const term = kind === 'preVote' ? this.term + 1 : this.term;
    for (const v of this.config.voters) {
      if (v.nodeId === this.id) continue;
      this.send({
        type: kind,
        to: v.nodeId,
        term,
        lastLogIndex: this.log.lastIndex(),
        lastLogTerm: this.log.lastTerm(),
        candidateDirectoryId: this.directoryId,
        voterDirectoryId: v.directoryId,
        leadershipTransfer: transfer,
      });
    }
  }

  private becomeLeader(): void {
    assert(this.role === 'candidate', 'becomeLeader from a non-candidate');
    this.role = 'leader';
    this.leaderId = this.id;
    this.progress.clear();
    for (const id of this.memberIds()) {
      if (id !== this.id) this.progress.set(id, new Progress(id, this.log.lastIndex() + 1, this.now));
    }
    this.pendingReads = [];
    this.readsAwaitingTermCommit = [];
    this.transferTarget = null;
    this.lastHeartbeatMs = this.now;
    // [Raft §8]: a noop of our term lets us learn the commit index.
    const r = this.appendOwn('noop', new Uint8Array(0));
    assert(r.ok, 'leader could not append its noop');
    this.termStartIndex = r.index;
  }

  private inLease(): boolean {
    if (this.role === 'leader') return true;
    return this.leaderId !== null && this.now - this.lastLeaderContactMs < this.cfg.electionTimeoutMs;
  }

  private resetElectionTimer(): void {
    const t = this.cfg.electionTimeoutMs;
    this.electionDeadlineMs = this.now + t + this.random.int(t);
  }

  // ─── Elections ──────────────────────────────────────────────────────────────────

  private handleVoteRequest(m: VoteRequest): void {
    const pre = m.type === 'preVote';
    const candidate: VoterKey = { nodeId: m.from, directoryId: m.candidateDirectoryId };
    // [KIP-853] the request must be meant for this disk, and not come from a new
    // incarnation (wiped disk) of a node we know as a voter by another directory id. A
    // candidate we do not know as a voter at all may still get our vote: servers vote
    // without consulting their configuration [dissertation §4.1], or a config change in
    // flight can leave no electable node.
    const conflictingVoter = this.config.voters.some((v) => v.nodeId === m.from && v.directoryId !== m.candidateDirectoryId);
    const canVote =
      sameVoter(this.votedFor, candidate) || (this.votedFor === null && this.leaderId === null) || (pre && m.term > this.term);
    const granted =
      m.voterDirectoryId === this.directoryId && !conflictingVoter && canVote && this.log.isUpToDate(m.lastLogIndex, m.lastLogTerm);
    if (granted && !pre) {
      this.votedFor = candidate;
      this.resetElectionTimer();
    }
    this.send({
      type: pre ? 'preVoteResponse' : 'voteResponse',
      to: m.from,
      term: pre && granted ? m.term : this.term,
      granted,
      voterDirectoryId: this.directoryId,
    });
  }

  private handleVoteResponse(m: VoteResponse): void {
    const expected = m.type === 'preVoteResponse' ? 'preCandidate' : 'candidate';
    if (this.role !== expected) return;
    // A grant from an older pre-vote round must not count for this one.
    if (m.type === 'preVoteResponse' && m.granted && m.term !== this.term + 1) return;
    if (!this.config.voters.some((v) => sameVoter(v, { nodeId: m.from, directoryId: m.voterDirectoryId }))) return;
    if (!this.votes.has(m.from)) this.votes.set(m.from, m.granted);
    if (this.voteQuorumReached()) {
      if (m.type === 'preVoteResponse') this.campaign('vote', false);
      else this.becomeLeader();
    } else if (this.voteQuorumLost()) {
      this.becomeFollower(this.term, null);
    }
  }

  private voteQuorumReached(): boolean {
    let yes = 0;
    for (const v of this.config.voters) if (this.votes.get(v.nodeId) === true) yes++;
    return yes >= quorum(this.config.voters.length);
  }

  private voteQuorumLost(): boolean {
    let no = 0;
    for (const v of this.config.voters) if (this.votes.get(v.nodeId) === false) no++;
    return no > this.config.voters.length - quorum(this.config.voters.length);
  }

  // ─── Replication: follower side ─────────────────────────────────────────────────

  private handleAppend(m: AppendRequest): void {
    const base = { type: 'appendResponse' as const, to: m.from };
    if (m.prevLogIndex < this.log.committed) {
      // Everything up to our commit index matches the leader already [Log Matching].
      this.send({ ...base, success: true, matchIndex: this.log.committed, rejectedIndex: 0, conflictTerm: 0, conflictIndex: 0 });
      return;
    }
    if (this.log.matchTerm(m.prevLogIndex, m.prevLogTerm)) {
      const lastNew = m.prevLogIndex + m.entries.length;
      const change = this.log.appendFromLeader(m.entries);
      // Config entries take effect when appended, and a truncated one stops applying.
      if (change === 'truncated' || (change === 'appended' && m.entries.some((e) => e.kind === 'config'))) {
        this.recomputeConfig();
      }
      this.log.commitTo(Math.min(m.leaderCommit, lastNew));
      this.send({ ...base, success: true, matchIndex: lastNew, rejectedIndex: 0, conflictTerm: 0, conflictIndex: 0 });
      return;
    }
    const mine = this.log.term(m.prevLogIndex);
    const hint =
      mine === undefined
        ? { conflictTerm: 0, conflictIndex: this.log.lastIndex() + 1 }
        : { conflictTerm: mine, conflictIndex: this.log.firstIndexOfTermAt(m.prevLogIndex) };
    this.send({ ...base, success: false, matchIndex: 0, rejectedIndex: m.prevLogIndex, ...hint });
  }

  private handleHeartbeat(m: HeartbeatRequest): void {
    // The leader caps commitIndex at our match index, so these entries agree with its log.
    if (m.commitIndex > this.log.committed && m.commitIndex <= this.log.lastIndex()) this.log.commitTo(m.commitIndex);
    this.send({ type: 'heartbeatResponse', to: m.from, readContext: m.readContext, lastLogIndex: this.log.lastIndex() });
  }

  private handleInstallSnapshot(m: InstallSnapshotRequest): void {
    const respond = (nextOffset: number, done: boolean): void =>
      this.send({ type: 'installSnapshotResponse', to: m.from, snapshotIndex: m.meta.index, nextOffset, done });
    if (m.meta.index <= this.log.committed) {
      // We already hold (committed) everything it covers.
      this.incomingSnapshot = null;
      return respond(m.totalBytes, true);
    }
    let inc = this.incomingSnapshot;
    if (inc === null || inc.meta.index !== m.meta.index || inc.meta.term !== m.meta.term) {
      if (m.offset !== 0) return respond(0, false);
      inc = { meta: m.meta, totalBytes: m.totalBytes, chunks: [], received: 0 };
      this.incomingSnapshot = inc;
    }
    if (m.offset !== inc.received) return respond(inc.received, false);
    inc.chunks.push(m.data);
    inc.received += m.data.byteLength;
    if (!m.done) return respond(inc.received, false);

    this.incomingSnapshot = null;
    const data = concat(inc.chunks, inc.received);
    if (this.log.matchTerm(m.meta.index, m.meta.term)) {
      // [Raft §7] we have the snapshot's last entry: keep the log, just commit up to it.
      this.log.commitTo(m.meta.index);
    } else {
      this.log.restore(m.meta.index, m.meta.term);
      const snap = { meta: m.meta, data };
      this.snapshotToPersist = snap;
      this.currentSnapshot = snap;
      this.recomputeConfig();
    }
    respond(inc.received, true);
  }

  // ─── Replication: leader side ───────────────────────────────────────────────────

  private appendOwn(kind: Entry['kind'], data: Uint8Array): ProposeResult & { ok: true } {
    const entry: Entry = { term: this.term, index: this.log.lastIndex() + 1, kind, data };
    this.log.append(entry);
    if (kind === 'config') this.recomputeConfig();
    this.broadcastPending = true;
    return { ok: true, index: entry.index, term: entry.term };
  }

  private refuseProposal(): (ProposeResult & { ok: false }) | null {
    if (this.role !== 'leader') return { ok: false, reason: 'notLeader', leaderId: this.leaderId };
    if (this.transferTarget !== null) return { ok: false, reason: 'transferring', leaderId: this.id };
    return null;
  }

  private tickLeader(): void {
    if (this.transferTarget !== null && this.now >= this.transferDeadlineMs) this.transferTarget = null;
    // Check-quorum: count voters heard from recently (ourselves included).
    let active = 0;
    for (const v of this.config.voters) {
      if (v.nodeId === this.id) {
        if (v.directoryId === this.directoryId) active++;
        continue;
      }
      const pr = this.voterProgress(v);
      if (pr !== undefined && this.now - pr.lastHeardMs < this.cfg.checkQuorumTimeoutMs) active++;
    }
    if (active < quorum(this.config.voters.length)) {
      this.becomeFollower(this.term, null);
      return;
    }
    if (this.now - this.lastHeartbeatMs >= this.cfg.heartbeatIntervalMs) {
      this.lastHeartbeatMs = this.now;
      this.broadcastHeartbeat();
    }
  }

  private broadcastHeartbeat(): void {
    this.heartbeatPending = false;
    for (const pr of this.progress.values()) this.sendHeartbeat(pr);
  }

  private sendHeartbeat(pr: Progress): void {
    const commitIndex = Math.min(pr.match, this.log.committed);
    pr.commitSent = Math.max(pr.commitSent, commitIndex);
    this.send({ type: 'heartbeat', to: pr.nodeId, commitIndex, readContext: this.readSeq });
  }

  /** Sends the follower what it lacks, if flow control allows. */
  private sendAppend(pr: Progress): void {
    if (pr.state === 'snapshot') return this.sendSnapshotChunk(pr);
    if (pr.paused(this.cfg.maxInflightAppends)) return;
    const prevLogIndex = pr.next - 1;
    const prevLogTerm = this.log.term(prevLogIndex);
    if (prevLogTerm === undefined) {
      // The entries it needs were compacted away: send the snapshot [Raft §7].
      if (this.currentSnapshot === null) return;
      pr.becomeSnapshot(this.currentSnapshot.meta.index);
      return this.sendSnapshotChunk(pr);
    }
    const last = this.log.lastIndex();
    if (pr.state === 'replicate' && pr.next > last) return;
    const entries: Entry[] = [];
    let bytes = 0;
    for (let i = pr.next; i <= last; i++) {
      const e = this.log.entry(i)!;
      if (entries.length > 0 && bytes + e.data.byteLength > this.cfg.maxAppendBytes) break;
      entries.push(e);
      bytes += e.data.byteLength;
    }
    this.send({ type: 'append', to: pr.nodeId, prevLogIndex, prevLogTerm, entries, leaderCommit: this.log.committed });
    pr.commitSent = Math.max(pr.commitSent, Math.min(this.log.committed, prevLogIndex + entries.length));
    if (pr.state === 'replicate') {
      const sentLast = prevLogIndex + entries.length;
      pr.next = sentLast + 1;
      pr.inflight.push({ lastIndex: sentLast, sentMs: this.now });
    } else {
      pr.probeSent = true;
    }
  }

  /** Sends appends until the follower has everything or its in-flight window is full. */
  private fillPipeline(pr: Progress): void {
    if (pr.state !== 'replicate') return this.sendAppend(pr);
    while (pr.state === 'replicate' && !pr.paused(this.cfg.maxInflightAppends) && pr.next <= this.log.lastIndex()) {
      this.sendAppend(pr);
    }
  }

  private sendSnapshotChunk(pr: Progress): void {
    const snap = this.currentSnapshot;
    const t = pr.snapshot;
    if (snap === null || t === null) return;
    if (t.index !== snap.meta.index) {
      // We compacted again: send the newer snapshot from the start.
      t.index = snap.meta.index;
      t.offset = 0;
      t.sentMs = null;
    }
    if (t.sentMs !== null) return;
    const end = Math.min(snap.data.byteLength, t.offset + this.cfg.snapshotChunkBytes);
    this.send({
      type: 'installSnapshot',
      to: pr.nodeId,
      meta: snap.meta,
      offset: t.offset,
      totalBytes: snap.data.byteLength,
      data: snap.data.subarray(t.offset, end),
      done: end >= snap.data.byteLength,
    });
    t.sentMs = this.now;
  }

  private handleAppendResponse(m: AppendResponse): void {
    const pr = this.progressFor(m);
    if (pr === undefined) return;
    // An acknowledgement beyond our log cannot be true in our term: a peer bug.
    if (m.success && m.matchIndex > this.log.lastIndex()) return this.reject(m, 'malformed');
    if (m.success) {
      const advanced = pr.maybeUpdate(m.matchIndex);
      if (pr.state === 'probe' && pr.match >= pr.next - 1) pr.becomeReplicate();
      if (advanced) {
        this.maybeCommit();
        if (this.transferTarget === m.from && pr.match === this.log.lastIndex()) this.send({ type: 'timeoutNow', to: m.from });
      }
      this.fillPipeline(pr);
    } else if (m.rejectedIndex > 0 || m.conflictIndex > 0) {
      let hinted = m.conflictIndex;
      if (m.conflictTerm > 0) {
        const idx = this.log.lastIndexOfTerm(m.conflictTerm, m.rejectedIndex);
        if (idx > 0) hinted = idx + 1;
      }
      if (pr.maybeDecrTo(m.rejectedIndex, hinted)) this.sendAppend(pr);
    }
  }

  private handleHeartbeatResponse(m: HeartbeatResponse): void {
    const pr = this.progressFor(m);
    if (pr === undefined) return;
    if (m.readContext > pr.readAck) pr.readAck = m.readContext;
    // A follower never loses entries it acknowledged, unless its disk was lost. Two reports
    // in a row, so a heartbeat response overtaken by a later append ack does not count.
    if (m.lastLogIndex < pr.match) {
      pr.shortLogReports += 1;
      if (pr.shortLogReports >= 2) pr.resetAfterLostLog(m.lastLogIndex);
    } else {
      pr.shortLogReports = 0;
    }
    // Flow-control recovery after lost messages: a probe is re-sent once per heartbeat;
    // appends in flight longer than a heartbeat interval are presumed lost.
    if (pr.state === 'probe') pr.probeSent = false;
    if (pr.state === 'replicate' && pr.inflight.length > 0 && this.now - pr.inflight[0]!.sentMs >= this.cfg.heartbeatIntervalMs) {
      pr.becomeProbe();
    }
    if (pr.state === 'snapshot' && pr.snapshot?.sentMs !== null && pr.snapshot !== null) {
      if (this.now - pr.snapshot.sentMs >= this.cfg.heartbeatIntervalMs) pr.snapshot.sentMs = null;
    }
    if (pr.match < this.log.lastIndex() || pr.state === 'snapshot') this.fillPipeline(pr);
    this.releaseConfirmedReads();
  }

  private handleInstallSnapshotResponse(m: InstallSnapshotResponse): void {
    const pr = this.progressFor(m);
    if (pr === undefined) return;
    if (m.done) {
      if (m.snapshotIndex > pr.match) pr.match = m.snapshotIndex;
      if (pr.state === 'snapshot') {
        pr.becomeProbe();
        this.sendAppend(pr);
      }
      this.maybeCommit();
      return;
    }
    const t = pr.snapshot;
    if (pr.state !== 'snapshot' || t === null || t.index !== m.snapshotIndex) return;
    t.offset = m.nextOffset;
    t.sentMs = null;
    this.sendSnapshotChunk(pr);
  }

  /** [Raft §5.3, §5.4.2] commit the highest index on a majority, if it is of our term. */
  private maybeCommit(): void {
    const matches: number[] = [];
    for (const v of this.config.voters) {
      if (v.nodeId === this.id) {
        if (v.directoryId === this.directoryId) matches.push(this.log.persistedIndex);
        continue;
      }
      matches.push(this.voterProgress(v)?.match ?? 0);
    }
    if (matches.length === 0) return;
    matches.sort((a, b) => b - a);
    const n = matches[quorum(this.config.voters.length) - 1]!;
    if (n <= this.log.committed || this.log.term(n) !== this.term) return;
    this.log.commitTo(n);
    // Followers learn the new commit index from the next append or heartbeat.
    this.broadcastPending = true;
    if (this.log.committed >= this.termStartIndex && this.readsAwaitingTermCommit.length > 0) {
      const waiting = this.readsAwaitingTermCommit;
      this.readsAwaitingTermCommit = [];
      for (const r of waiting) this.leaderReadIndex(r.context, r.from);
    }
    // A leader removed from the voters leads until that change commits, then steps down
    // [dissertation §4.2.2].
    if (!this.isVoter() && this.log.committed >= this.configIndex) this.becomeFollower(this.term, null);
  }

  // ─── Read index ─────────────────────────────────────────────────────────────────

  private leaderReadIndex(context: string, from: NodeId | null): void {
    if (this.log.term(this.log.committed) !== this.term) {
      // Until our noop commits we do not know the true commit index [dissertation §6.4].
      if (this.readsAwaitingTermCommit.length >= this.cfg.maxPendingReads) return this.answerRead(context, from, -1);
      this.readsAwaitingTermCommit.push({ context, from });
      return;
    }
    if (this.pendingReads.length >= this.cfg.maxPendingReads) return this.answerRead(context, from, -1);
    this.readSeq += 1;
    this.pendingReads.push({ seq: this.readSeq, index: this.log.committed, context, from });
    this.heartbeatPending = true;
    this.releaseConfirmedReads();
  }

  private releaseConfirmedReads(): void {
    if (this.pendingReads.length === 0) return;
    // The newest seq acknowledged by a quorum confirms every read issued up to it.
    const acks: number[] = [];
    for (const v of this.config.voters) {
      if (v.nodeId === this.id) {
        if (v.directoryId === this.directoryId) acks.push(Number.MAX_SAFE_INTEGER);
        continue;
      }
      acks.push(this.voterProgress(v)?.readAck ?? 0);
    }
    acks.sort((a, b) => b - a);
    const confirmed = acks[quorum(this.config.voters.length) - 1] ?? 0;
    let k = 0;
    while (k < this.pendingReads.length && this.pendingReads[k]!.seq <= confirmed) {
      const r = this.pendingReads[k]!;
      this.answerRead(r.context, r.from, r.index);
      k++;
    }
    if (k > 0) this.pendingReads.splice(0, k);
  }

  private answerRead(context: string, from: NodeId | null, index: number): void {
    if (from === null || from === this.id) this.readStates.push({ context, index });
    else this.send({ type: 'readIndexResponse', to: from, context, index });
  }

  private failPendingReads(): void {
    for (const r of this.pendingReads) this.answerRead(r.context, r.from, -1);
    for (const r of this.readsAwaitingTermCommit) this.answerRead(r.context, r.from, -1);
    this.pendingReads = [];
    this.readsAwaitingTermCommit = [];
  }

  // ─── Configuration ──────────────────────────────────────────────────────────────

  private isMember(id: NodeId): boolean {
    return this.config.voters.some((v) => v.nodeId === id) || this.config.observers.includes(id);
  }

  private memberIds(): NodeId[] {
    return [...this.config.voters.map((v) => v.nodeId), ...this.config.observers];
  }

  /** The configuration in effect at `index`: the last config entry at or before it. */
  private configAt(index: number): ClusterConfig {
    for (let i = Math.min(index, this.log.lastIndex()); i > this.log.snapshotIndex; i--) {
      const e = this.log.entry(i)!;
      if (e.kind === 'config') return decodeConfig(e.data);
    }
    return this.currentSnapshot?.meta.config ?? this.bootstrapConfig;
  }

  /** Re-derives the config after the log changed: the latest config entry wins, committed or not. */
  private recomputeConfig(): void {
    let idx = 0;
    let next: ClusterConfig | null = null;
    for (let i = this.log.lastIndex(); i > this.log.snapshotIndex; i--) {
      const e = this.log.entry(i)!;
      if (e.kind === 'config') {
        idx = i;
        next = decodeConfig(e.data);
        break;
      }
    }
    if (next === null) {
      idx = this.log.snapshotIndex;
      next = this.currentSnapshot?.meta.config ?? this.bootstrapConfig;
    }
    if (idx === this.configIndex && next === this.config) return;
    this.configIndex = idx;
    if (sameConfig(next, this.config)) return;
    this.config = next;
    this.configChanged = true;
    if (this.role === 'leader') {
      for (const id of this.memberIds()) {
        if (id !== this.id && !this.progress.has(id)) this.progress.set(id, new Progress(id, this.log.lastIndex() + 1, this.now));
      }
      for (const id of [...this.progress.keys()]) if (!this.isMember(id)) this.progress.delete(id);
      if (this.transferTarget !== null && !this.progress.has(this.transferTarget)) this.transferTarget = null;
    } else if (!this.canCampaign() && this.role !== 'follower') {
      this.becomeFollower(this.term, null);
    }
  }

  // ─── Plumbing ───────────────────────────────────────────────────────────────────

  private send(m: Outgoing): void {
    const replicaResponse = m.type === 'appendResponse' || m.type === 'heartbeatResponse' || m.type === 'installSnapshotResponse';
    this.msgs.push({
      term: this.term,
      ...m,
      ...(replicaResponse ? { voterDirectoryId: this.directoryId } : {}),
      clusterId: this.clusterId,
      from: this.id,
    } as Message);
  }

  /**
   * The leader's progress for a replication response, after checking which disk sent it
   * [KIP-853]. A new directory id means the follower's log was lost: what it acknowledged
   * is forgotten and replication starts over from its (empty) log.
   */
  private progressFor(m: AppendResponse | HeartbeatResponse | InstallSnapshotResponse): Progress | undefined {
    if (this.role !== 'leader') return undefined;
    const pr = this.progress.get(m.from);
    if (pr === undefined) return undefined;
    const dir = m.voterDirectoryId;
    if (dir !== undefined && dir !== pr.directoryId) {
      if (pr.directoryId !== null) pr.resetAfterLostLog(m.type === 'heartbeatResponse' ? m.lastLogIndex : 0);
      pr.directoryId = dir;
    }
    pr.lastHeardMs = this.now;
    return pr;
  }

  /**
   * A voter's progress if its responses come from the disk the config names (or the
   * directory is unknown): only those count toward commit, check-quorum and reads.
   */
  private voterProgress(v: VoterKey): Progress | undefined {
    const pr = this.progress.get(v.nodeId);
    return pr !== undefined && (pr.directoryId === null || pr.directoryId === v.directoryId) ? pr : undefined;
  }

  private reject(m: Message, reason: RejectedMessage['reason']): void {
    this.rejected.push({ from: m.from, type: m.type, reason });
  }
}

/**
 * Structural checks on a peer's message, so a buggy peer is refused at the door rather
 * than tripping an assertion deep in the log code.
 */
function wellFormed(m: Message): boolean {
  const idx = (n: number): boolean => Number.isSafeInteger(n) && n >= 0;
  if (!idx(m.term)) return false;
  switch (m.type) {
    case 'append': {
      if (!idx(m.prevLogIndex) || !idx(m.prevLogTerm) || !idx(m.leaderCommit) || m.prevLogTerm > m.term) return false;
      let prevTerm = m.prevLogTerm;
      for (let i = 0; i < m.entries.length; i++) {
        const e = m.entries[i]!;
        if (e.index !== m.prevLogIndex + 1 + i || !idx(e.term) || e.term < prevTerm || e.term > m.term) return false;
        prevTerm = e.term;
      }
      return true;
    }
    case 'appendResponse':
      return idx(m.matchIndex) && idx(m.rejectedIndex) && idx(m.conflictTerm) && idx(m.conflictIndex);
    case 'installSnapshot':
      return (
        idx(m.meta.index) && idx(m.meta.term) && m.meta.term <= m.term && idx(m.offset) && idx(m.totalBytes) &&
        m.offset + m.data.byteLength <= m.totalBytes && (!m.done || m.offset + m.data.byteLength === m.totalBytes)
      );
    case 'installSnapshotResponse':
      return idx(m.snapshotIndex) && idx(m.nextOffset);
    case 'heartbeat':
      return idx(m.commitIndex) && idx(m.readContext);
    case 'heartbeatResponse':
      return idx(m.readContext) && idx(m.lastLogIndex);
    case 'preVote':
    case 'vote':
      return idx(m.lastLogIndex) && idx(m.lastLogTerm);
    case 'preVoteResponse':
    case 'voteResponse':
    case 'timeoutNow':
    case 'readIndex':
    case 'readIndexResponse':
      return true;
    default:
      return unreachable(m);
  }
}

export function quorum(voters: number): number {
  return Math.floor(voters / 2) + 1;
}

/** Applies a change to a config; null if it is a no-op or would leave no voter. */
export function applyChange(c: ClusterConfig, change: ConfigChange): ClusterConfig | null {
  const voters = [...c.voters];
  switch (change.type) {
    case 'addVoter': {
      if (c.voters.some((v) => sameVoter(v, change.voter))) return null;
      if (c.voters.some((v) => v.nodeId === change.voter.nodeId)) return null;
      return { voters: [...voters, change.voter], observers: c.observers.filter((o) => o !== change.voter.nodeId) };
    }
    case 'removeVoter': {
      if (!c.voters.some((v) => v.nodeId === change.nodeId) || c.voters.length <= 1) return null;
      return { voters: voters.filter((v) => v.nodeId !== change.nodeId), observers: [...c.observers, change.nodeId] };
    }
    case 'addObserver': {
      if (c.observers.includes(change.nodeId) || c.voters.some((v) => v.nodeId === change.nodeId)) return null;
      return { voters, observers: [...c.observers, change.nodeId] };
    }
    case 'removeObserver': {
      if (!c.observers.includes(change.nodeId)) return null;
      return { voters, observers: c.observers.filter((o) => o !== change.nodeId) };
    }
    default:
      return unreachable(change);
  }
}

function sameConfig(a: ClusterConfig, b: ClusterConfig): boolean {
  return (
    a.voters.length === b.voters.length &&
    a.observers.length === b.observers.length &&
    a.voters.every((v, i) => sameVoter(v, b.voters[i]!)) &&
    a.observers.every((o, i) => o === b.observers[i])
  );
}

function sameHard(a: HardState, b: HardState): boolean {
  return (
    a.term === b.term &&
    a.commitIndex === b.commitIndex &&
    (a.votedFor === b.votedFor || sameVoter(a.votedFor, b.votedFor))
  );
}

function sameSoft(a: SoftState, b: SoftState): boolean {
  return a.leaderId === b.leaderId && a.role === b.role && a.term === b.term && a.voter === b.voter;
}

function concat(chunks: Uint8Array[], total: number): Uint8Array {
  const out = new Uint8Array(total);
  let off = 0;
  for (const c of chunks) {
    out.set(c, off);
    off += c.byteLength;
  }
  return out;
}
