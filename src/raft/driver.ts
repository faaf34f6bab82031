// The thin driver around the pure Raft core: it turns time into ticks, received
// messages into `step`s, and each Ready into effects, in the order the persistence rule
// fixes (types.ts): persist (one synced batch), then send, then apply, then `advance`.
// Proposals return a promise settled when their entry commits (or is overwritten);
// linearizable reads go through read-index.
//
// Batching: the driver processes one Ready at a time. While a Ready's synced write is in
// flight, proposals and received messages accumulate in the core, so the next Ready
// carries all of them: one LevelDB batch and one append message per follower for many
// proposals (group commit). A run is scheduled with setImmediate, so everything that
// arrived in the same turn of the event loop lands in one Ready.
//
// Failure: a storage write that fails is fatal. The node may have told no one about the
// Ready yet, but the core believes it was handed off; continuing would break the
// persistence rule. The driver stops, fails every pending promise and emits 'fatal';
// the process owner exits (fail-stop, as Kafka does on a log-dir failure of the
// metadata log).
//
// Storage, transport and the clock are injected, so this module does no I/O itself.
import { EventEmitter } from 'node:events';
import { RaftkaError, assert } from '../common/errors.ts';
import { systemClock, type Clock } from '../common/clock.ts';
import { componentLogger, silentLogger, type Logger } from '../common/logger.ts';
import type {
  ClusterConfig,
  Message,
  NodeId,
  PersistedState,
  ProposeResult,
  RaftNode,
  Ready,
  Role,
  Snapshot,
  SnapshotMeta,
  SoftState,
  StateMachine,
} from './types.ts';

/** Durable storage of the Raft log (src/io/raft-storage.ts in production). */
export interface RaftLogStore {
  /** One synced write of the Ready's snapshot, truncation, entries and hard state. */
  persist(ready: Ready): Promise<void>;
  /** Durably stores a locally taken snapshot, then drops the entries it covers. */
  saveSnapshot(snapshot: Snapshot): Promise<void>;
}

/** Sends messages to a peer; may drop them (Raft resends). */
export interface RaftMessageSender {
  send(to: NodeId, messages: readonly Message[]): void;
}

export interface RaftDriverOptions {
  core: RaftNode;
  /** What `core` was built from: the snapshot (if any) is restored into the state machine at start. */
  persisted: PersistedState;
  store: RaftLogStore;
  transport: RaftMessageSender;
  stateMachine: StateMachine;
  clock?: Clock;
  /** How often the core's clock advances; elections and heartbeats fire at tick granularity. */
  tickIntervalMs?: number;
  /** A proposal or read not settled by then fails with REQUEST_TIMED_OUT. */
  requestTimeoutMs?: number;
  /** Take a snapshot and compact the log once this many entries were applied since the last. 0: never. */
  snapshotIntervalEntries?: number;
  /** Bound on proposals waiting for commit; past it `propose` fails fast. */
  maxPendingProposals?: number;
  logger?: Logger;
}

export interface LeaderChange {
  readonly leaderId: NodeId | null;
  readonly term: number;
  readonly role: Role;
}

export interface Committed {
  readonly index: number;
  readonly term: number;
}

interface PendingProposal {
  readonly term: number;
  readonly deadlineMs: number;
  resolve(c: Committed): void;
  reject(e: Error): void;
}

interface PendingRead {
  readonly context: string;
  readonly deadlineMs: number;
  /** Set once the leader confirmed the read point. */
  index: number | undefined;
  resolve(index: number): void;
  reject(e: Error): void;
}

type DriverEvents = {
  leaderChange: [LeaderChange];
  configChange: [ClusterConfig];
  /** A snapshot from the leader replaced this node's state (not one restored from its own disk). */
  snapshotInstalled: [SnapshotMeta];
  fatal: [Error];
};

function notLeader(leaderId: NodeId | null, why: string): RaftkaError {
  return new RaftkaError(
    'NOT_CONTROLLER',
    `${why}; ${leaderId === null ? 'no leader is known' : `the leader is node ${leaderId}`}`,
  );
}

export class RaftDriver extends EventEmitter<DriverEvents> {
  private readonly core: RaftNode;
  private readonly store: RaftLogStore;
  private readonly transport: RaftMessageSender;
  private readonly sm: StateMachine;
  private readonly clock: Clock;
  private readonly log: Logger;
  private readonly tickIntervalMs: number;
  private readonly requestTimeoutMs: number;
  private readonly snapshotIntervalEntries: number;
  private readonly maxPendingProposals: number;
  private readonly persisted: PersistedState;

  /** Keyed by log index; Map order is insertion order, which is index order within a term. */
  private readonly proposals = new Map<number, PendingProposal>();
  private readonly reads = new Map<string, PendingRead>();
  private readSeq = 0;
  private soft: SoftState;
  private timer: NodeJS.Timeout | undefined;
  private scheduled = false;
  private running: Promise<void> | undefined;
  private stopped = false;
  private started = false;
  private lastSnapshotIndex: number;

  constructor(opts: RaftDriverOptions) {
    super();
    this.core = opts.core;
    this.store = opts.store;
    this.transport = opts.transport;
    this.sm = opts.stateMachine;
    this.persisted = opts.persisted;
    this.clock = opts.clock ?? systemClock;
    this.log = componentLogger(opts.logger ?? silentLogger(), 'raft-driver');
    this.tickIntervalMs = opts.tickIntervalMs ?? 10;
    this.requestTimeoutMs = opts.requestTimeoutMs ?? 10_000;
    this.snapshotIntervalEntries = opts.snapshotIntervalEntries ?? 50_000;
    this.maxPendingProposals = opts.maxPendingProposals ?? 100_000;
    this.soft = this.core.softState();
    this.lastSnapshotIndex = opts.persisted.snapshot?.meta.index ?? 0;
  }

  /** Restores the stored snapshot (if any) into the state machine and starts ticking. */
  start(): void {
    assert(!this.started, 'RaftDriver.start called twice');
    this.started = true;
    if (this.persisted.snapshot !== null) this.sm.restore(this.persisted.snapshot);
    this.timer = setInterval(() => this.onTick(), this.tickIntervalMs);
    this.schedule();
  }

  // ─── Inspection ──────────────────────────────────────────────────────────────────

  get leaderId(): NodeId | null {
    return this.soft.leaderId;
  }
  /** The current term: the controller's epoch. */
  get term(): number {
    return this.soft.term;
  }
  get role(): Role {
    return this.soft.role;
  }
  get isLeader(): boolean {
    return this.soft.role === 'leader';
  }
  /** The membership in effect (voters with directory ids, observers). */
  clusterConfig(): ClusterConfig {
    return this.core.clusterConfig();
  }

  /**
   * On the leader: entries each voter's log is behind the leader's (DescribeCluster's
   * voter lag); an empty map elsewhere.
   */
  voterLag(): Map<NodeId, number> {
    const out = new Map<NodeId, number>();
    if (!this.isLeader) return out;
    const last = this.core.lastIndex();
    for (const v of this.core.clusterConfig().voters) {
      const pr = this.core.progressOf(v.nodeId);
      out.set(v.nodeId, pr === undefined ? 0 : Math.max(0, last - pr.match));
    }
    return out;
  }

  get commitIndex(): number {
    return this.core.commitIndex;
  }
  get appliedIndex(): number {
    return this.core.appliedIndex;
  }
  get pendingProposals(): number {
    return this.proposals.size;
  }

  // ─── Inputs ──────────────────────────────────────────────────────────────────────

  /** Messages from the transport, in arrival order. */
  receive(messages: readonly Message[]): void {
    if (this.stopped) return;
    this.core.tick(this.clock.monotonicMs());
    for (const m of messages) this.core.step(m);
    this.schedule();
  }

  /**
   * Appends `data` on the leader; resolves with its index and term once committed.
   * Rejects with NOT_CONTROLLER (retriable) when this node is not the leader or loses
   * leadership before the entry commits, MESSAGE_TOO_LARGE when over maxEntryBytes,
   * REQUEST_TIMED_OUT after requestTimeoutMs.
   */
  propose(data: Uint8Array): Promise<Committed> {
    if (this.stopped) return Promise.reject(new RaftkaError('NOT_CONTROLLER', 'the raft driver is stopped'));
    if (this.proposals.size >= this.maxPendingProposals) {
      return Promise.reject(new RaftkaError('REQUEST_TIMED_OUT', `${this.proposals.size} proposals are already waiting for commit`));
    }
    return this.settle(this.core.propose(data));
  }

  /** Like `propose`, for a voter or observer change (one at a time). */
  proposeConfigChange(change: Parameters<RaftNode['proposeConfigChange']>[0]): Promise<Committed> {
    if (this.stopped) return Promise.reject(new RaftkaError('NOT_CONTROLLER', 'the raft driver is stopped'));
    return this.settle(this.core.proposeConfigChange(change));
  }

  private settle(r: ProposeResult): Promise<Committed> {
    if (!r.ok) {
      switch (r.reason) {
        case 'tooLarge':
          return Promise.reject(new RaftkaError('MESSAGE_TOO_LARGE', 'the proposal is larger than maxEntryBytes'));
        case 'invalidConfigChange':
          return Promise.reject(new RaftkaError('INVALID_REQUEST', 'the configuration change would change nothing or remove the last voter'));
        case 'notLeader':
        case 'transferring':
        case 'leaderNotReady':
        case 'configChangePending':
          return Promise.reject(notLeader(r.leaderId, `proposal refused (${r.reason})`));
      }
    }
    const { index, term } = r;
    return new Promise<Committed>((resolve, reject) => {
      // An older proposal at the same index was overwritten by a new leader: it lost.
      this.proposals.get(index)?.reject(notLeader(this.soft.leaderId, `entry ${index} was overwritten`));
      this.proposals.delete(index);
      this.proposals.set(index, { term, deadlineMs: this.clock.monotonicMs() + this.requestTimeoutMs, resolve, reject });
      this.schedule();
    });
  }

  /**
   * A linearizable read point [Raft dissertation §6.4]: resolves with an index once the
   * leader confirmed it still leads and this node applied up to that index. Read the
   * state machine right after it resolves.
   */
  readIndex(): Promise<number> {
    if (this.stopped) return Promise.reject(new RaftkaError('NOT_CONTROLLER', 'the raft driver is stopped'));
    const context = `r${++this.readSeq}`;
    return new Promise<number>((resolve, reject) => {
      this.reads.set(context, {
        context,
        deadlineMs: this.clock.monotonicMs() + this.requestTimeoutMs,
        index: undefined,
        resolve,
        reject,
      });
      this.core.readIndex(context);
      this.schedule();
    });
  }

  transferLeadership(to: NodeId): boolean {
    const ok = this.core.transferLeadership(to);
    this.schedule();
    return ok;
  }

  // ─── The loop ────────────────────────────────────────────────────────────────────

  private onTick(): void {
    if (this.stopped) return;
    const now = this.clock.monotonicMs();
    this.core.tick(now);
    this.expire(now);
    // Most ticks change nothing (no timeout due, no heartbeat to send): scheduling a
    // run for them anyway cost an immediate, a promise and its settling 100 times a
    // second on every node of an idle cluster.
    if (this.core.hasReady()) this.schedule();
  }

  private expire(now: number): void {
    for (const [index, p] of this.proposals) {
      if (p.deadlineMs > now) break;
      this.proposals.delete(index);
      p.reject(new RaftkaError('REQUEST_TIMED_OUT', `entry ${index} did not commit within ${this.requestTimeoutMs} ms`));
    }
    for (const [ctx, r] of this.reads) {
      if (r.deadlineMs > now) break;
      this.reads.delete(ctx);
      r.reject(new RaftkaError('REQUEST_TIMED_OUT', `read index not confirmed within ${this.requestTimeoutMs} ms`));
    }
  }

  private schedule(): void {
    if (this.scheduled || this.stopped || !this.started) return;
    this.scheduled = true;
    setImmediate(() => {
      this.scheduled = false;
      if (this.running === undefined && !this.stopped) {
        this.running = this.run().finally(() => {
          this.running = undefined;
          if (this.core.hasReady()) this.schedule();
        });
      }
    });
  }

  private async run(): Promise<void> {
    try {
      while (!this.stopped && this.core.hasReady()) {
        const rd = this.core.ready();
        await this.store.persist(rd);
        if (this.stopped) return; // never act on a Ready after stop: the process is going away
        this.handleSoft(rd);
        this.sendAll(rd.messages);
        this.applyAll(rd);
        this.core.advance(rd);
        this.afterAdvance(rd);
        await this.maybeSnapshot();
      }
    } catch (e) {
      this.fail(e as Error);
    }
  }

  private handleSoft(rd: Ready): void {
    for (const r of rd.rejected) this.log.warn({ from: r.from, type: r.type, reason: r.reason }, 'rejected raft message');
    if (rd.config !== undefined) this.emit('configChange', rd.config);
    if (rd.softState === undefined) return;
    const prev = this.soft;
    this.soft = rd.softState;
    if (prev.leaderId !== rd.softState.leaderId || prev.term !== rd.softState.term || prev.role !== rd.softState.role) {
      this.log.info({ leaderId: rd.softState.leaderId, term: rd.softState.term, role: rd.softState.role }, 'raft leadership changed');
      this.emit('leaderChange', { leaderId: rd.softState.leaderId, term: rd.softState.term, role: rd.softState.role });
    }
  }

  private sendAll(messages: readonly Message[]): void {
    if (messages.length === 0) return;
    // One batch per peer per Ready.
    const byPeer = new Map<NodeId, Message[]>();
    for (const m of messages) {
      const list = byPeer.get(m.to);
      if (list === undefined) byPeer.set(m.to, [m]);
      else list.push(m);
    }
    for (const [to, list] of byPeer) this.transport.send(to, list);
  }

  private applyAll(rd: Ready): void {
    if (rd.snapshot !== undefined) {
      this.log.info({ index: rd.snapshot.meta.index, term: rd.snapshot.meta.term, bytes: rd.snapshot.data.byteLength }, 'raft snapshot installed from the leader');
      this.sm.restore(rd.snapshot);
      this.lastSnapshotIndex = rd.snapshot.meta.index;
      this.emit('snapshotInstalled', rd.snapshot.meta);
      // Proposals the snapshot covers can no longer be matched by term; the leader that
      // sent it had them committed or overwritten — we cannot tell which.
      for (const [index, p] of this.proposals) {
        if (index > rd.snapshot.meta.index) break;
        this.proposals.delete(index);
        p.reject(notLeader(this.soft.leaderId, `entry ${index} was replaced by a snapshot`));
      }
    }
    for (const e of rd.committedEntries) {
      this.sm.apply(e.index, e);
      const p = this.proposals.get(e.index);
      if (p === undefined) continue;
      this.proposals.delete(e.index);
      if (p.term === e.term) p.resolve({ index: e.index, term: e.term });
      else p.reject(notLeader(this.soft.leaderId, `entry ${e.index} was overwritten by term ${e.term}`));
    }
  }

  private afterAdvance(rd: Ready): void {
    for (const rs of rd.readStates) {
      const r = this.reads.get(rs.context);
      if (r === undefined) continue;
      if (rs.index < 0) {
        this.reads.delete(rs.context);
        r.reject(notLeader(this.soft.leaderId, 'read index refused'));
      } else {
        r.index = rs.index;
      }
    }
    const applied = this.core.appliedIndex;
    for (const [ctx, r] of this.reads) {
      if (r.index !== undefined && r.index <= applied) {
        this.reads.delete(ctx);
        r.resolve(r.index);
      }
    }
  }

  private async maybeSnapshot(): Promise<void> {
    if (this.snapshotIntervalEntries <= 0) return;
    const applied = this.core.appliedIndex;
    if (applied - this.lastSnapshotIndex < this.snapshotIntervalEntries) return;
    const data = this.sm.snapshot();
    const meta = this.core.compact(applied, data);
    this.lastSnapshotIndex = applied;
    await this.store.saveSnapshot({ meta, data });
    this.log.info({ index: meta.index, term: meta.term, bytes: data.byteLength }, 'raft snapshot taken');
  }

  private fail(e: Error): void {
    if (this.stopped) return;
    this.log.error({ err: e }, 'raft driver failed; stopping');
    this.halt(new RaftkaError('KAFKA_STORAGE_ERROR', `raft driver stopped: ${e.message}`, { cause: e }));
    this.emit('fatal', e);
  }

  private halt(reason: Error): void {
    this.stopped = true;
    if (this.timer !== undefined) clearInterval(this.timer);
    this.timer = undefined;
    for (const p of this.proposals.values()) p.reject(reason);
    this.proposals.clear();
    for (const r of this.reads.values()) r.reject(reason);
    this.reads.clear();
  }

  /**
   * Stops ticking, waits (at most `waitMs`) for the write in progress, and fails what is
   * still pending. A write that outlives the wait is abandoned: its Ready is never acted on.
   */
  async stop(waitMs = 5_000): Promise<void> {
    if (this.stopped) return;
    this.halt(new RaftkaError('NOT_CONTROLLER', 'the raft driver is stopping'));
    if (this.running === undefined) return;
    let timer: NodeJS.Timeout | undefined;
    await Promise.race([this.running, new Promise<void>((resolve) => (timer = setTimeout(resolve, waitMs)))]);
    clearTimeout(timer);
  }
}
