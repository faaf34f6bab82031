// The consumer, shaped like KafkaJS: `subscribe` + `run` in a group (consumer-group.ts
// does the protocol), or group-less `assign` of explicit partitions.
//
// Fetching: one loop per partition leader. Each loop keeps the next fetch in flight
// while the handler works through the current response (pipelining), so at most two
// responses per broker are held: memory is bounded by 2 × maxBytes per broker. Fetch
// positions advance when data arrives; the processed position (`position`) and the
// committable offset (`resolved`) advance only after eachMessage / eachBatch for a
// record resolved, and only `resolved` is ever committed (at-least-once).
//
// Every partition state has an `epoch`, bumped on seek, pause, revoke and offset reset:
// data fetched under an older epoch is dropped unprocessed, so a seek or a revoke never
// races a response already in flight.
//
// Rebalances: EAGER assignors (range, roundrobin) give up every partition before
// rejoining. COOPERATIVE (cooperative-sticky) members rejoin with what they own and keep
// fetching and processing it during the rebalance; after SyncGroup they stop only the
// partitions taken from them (waiting for their handler, committing them) and, when
// something was taken, rejoin once more so it can be handed on [KIP-429].
import { errorByCode, isRetriable, type ErrorName } from '../common/errors.ts';
import type { Logger } from '../common/logger.ts';
import { iterateBatches, type LogRecord } from '../log/batch.ts';
import { isServiceError } from '../proto/rpc.ts';
import { EARLIEST_TIMESTAMP, LATEST_TIMESTAMP, type FetchResponse } from '../proto/raftka.ts';
import { DEADLINE_SLACK_MS, fetchStreams } from './raw-client.ts';
import { CooperativeStickyAssigner, RangeAssigner, RoundRobinAssigner, type PartitionAssigner, type TopicPartitions } from './assignors.ts';
import type { Cluster } from './cluster.ts';
import { decodeBatch } from './codecs.ts';
import { delay, fetchCommitted, GroupRpc, Membership } from './consumer-group.ts';
import { RaftkaClientError, RaftkaProtocolError } from './errors.ts';

// ─── public shapes ───

export interface ConsumerOptions {
  /** Needed for subscribe/run in a group and for commits; optional with assign(). */
  groupId?: string;
  /** ms without a heartbeat before the coordinator removes the member. Default 30000. */
  sessionTimeout?: number;
  /** ms the coordinator waits for members to rejoin. Default 60000. */
  rebalanceTimeout?: number;
  /** ms between heartbeats. Default 3000. */
  heartbeatInterval?: number;
  /** In order of preference, all of one rebalance protocol. Default [cooperativeSticky]. */
  partitionAssigners?: PartitionAssigner[];
  /** Static membership [KIP-345]. */
  groupInstanceId?: string;
  /** Bound on one fetch response (bytes). Default 10 MiB (KafkaJS). */
  maxBytes?: number;
  /** Bound per partition in one fetch (bytes). Default 1 MiB. */
  maxBytesPerPartition?: number;
  /** Long-poll wait of a fetch (ms). Default 5000 (KafkaJS). */
  maxWaitTimeInMs?: number;
  /** Bytes a fetch waits for. Default 1. */
  minBytes?: number;
  /** Where to start without a committed offset, or after OFFSET_OUT_OF_RANGE. Default 'latest'. */
  autoOffsetReset?: 'earliest' | 'latest';
  retry?: { initialRetryTime?: number; maxRetryTime?: number; retries?: number };
}

export type IHeaders = Record<string, Buffer | string | undefined>;

export interface KafkaMessage {
  key: Buffer | null;
  value: Buffer | null;
  /** Create (or append) time in ms, a string as in KafkaJS. */
  timestamp: string;
  /** A string as in KafkaJS. */
  offset: string;
  headers: IHeaders;
  size: number;
  attributes: number;
}

export interface EachMessagePayload {
  topic: string;
  partition: number;
  message: KafkaMessage;
  heartbeat(): Promise<void>;
  pause(): () => void;
}

export interface Batch {
  topic: string;
  partition: number;
  highWatermark: string;
  messages: KafkaMessage[];
  isEmpty(): boolean;
  firstOffset(): string | null;
  lastOffset(): string;
  offsetLag(): string;
}

export interface EachBatchPayload {
  batch: Batch;
  resolveOffset(offset: string | number): void;
  heartbeat(): Promise<void>;
  pause(): () => void;
  commitOffsetsIfNecessary(): Promise<void>;
  uncommittedOffsets(): TopicPartitionOffset[];
  isRunning(): boolean;
  isStale(): boolean;
}

export interface RunOptions {
  eachMessage?: (p: EachMessagePayload) => Promise<void>;
  eachBatch?: (p: EachBatchPayload) => Promise<void>;
  /** Resolve every message of a batch when eachBatch resolves. Default true. */
  eachBatchAutoResolve?: boolean;
  /** Default true. */
  autoCommit?: boolean;
  /** ms between automatic commits. Default 5000. */
  autoCommitInterval?: number | null;
  /** Commit after this many resolved messages. Default none. */
  autoCommitThreshold?: number | null;
  /** Partitions whose handlers may run at once. Default 1. */
  partitionsConsumedConcurrently?: number;
}

export interface TopicPartitionOffset {
  topic: string;
  partition: number;
  offset: string;
}

export interface AssignedPartition {
  topic: string;
  partition: number;
  /** Where to start; default: the committed offset (with a groupId), else autoOffsetReset. */
  offset?: number | string;
}

export type ConsumerEventName =
  | 'consumer.connect'
  | 'consumer.disconnect'
  | 'consumer.stop'
  | 'consumer.crash'
  | 'consumer.group_join'
  | 'consumer.rebalancing'
  | 'consumer.heartbeat'
  | 'consumer.commit_offsets'
  | 'consumer.fetch'
  | 'consumer.partitions_assigned'
  | 'consumer.partitions_revoked';

export interface ConsumerEvent<P = Record<string, unknown>> {
  id: number;
  type: ConsumerEventName;
  timestamp: number;
  payload: P;
}

// ─── internals ───

interface PartitionState {
  readonly topic: string;
  readonly partition: number;
  readonly key: string;
  /** Next offset to fetch; undefined until resolved (committed offset or reset policy). */
  fetchOffset: number | undefined;
  /** Next offset to hand to the handler. */
  position: number | undefined;
  /** Next offset after the last record whose handler resolved: what a commit stores. */
  resolved: number | undefined;
  committed: number;
  /** Where to start when fetchOffset is undefined. */
  resetTo: 'committed' | 'earliest' | 'latest';
  paused: boolean;
  epoch: number;
  notBeforeMs: number;
  failures: number;
  /** The handler's current work on this partition. */
  busy: Promise<void> | undefined;
  removed: boolean;
}

interface FetchedPartition {
  p: PartitionState;
  epoch: number;
  highWatermark: number;
  records: LogRecord[];
}

type State = 'new' | 'connected' | 'running' | 'stopping' | 'disconnected';

const LEADER_ERRORS: ReadonlySet<ErrorName> = new Set(['NOT_LEADER_OR_FOLLOWER', 'LEADER_NOT_AVAILABLE', 'FENCED_LEADER_EPOCH', 'UNKNOWN_LEADER_EPOCH', 'UNKNOWN_TOPIC_OR_PARTITION', 'REPLICA_NOT_AVAILABLE', 'KAFKA_STORAGE_ERROR', 'OFFSET_NOT_AVAILABLE', 'NETWORK_EXCEPTION', 'UNKNOWN_TOPIC_ID']);

export interface ConsumerContext {
  cluster: Cluster;
  logger: Logger;
  requestTimeoutMs: number;
  onDisconnect?: () => void;
}

const tpKey = (topic: string, partition: number) => `${topic}:${partition}`;

function toOffset(v: number | string, what: string): number {
  const n = typeof v === 'number' ? v : /^-?\d+$/.test(v) ? Number(v) : NaN;
  if (!Number.isSafeInteger(n)) throw new RaftkaClientError('INVALID_ARGUMENT', `${what} must be an integer offset, got ${JSON.stringify(v)}`);
  return n;
}

export class Consumer {
  private state: State = 'new';
  private readonly parts = new Map<string, PartitionState>();
  private readonly loops = new Set<number>();
  private retryTimer: NodeJS.Timeout | undefined;
  private stopper = new AbortController();
  /** Fetches go over one FetchStream per broker (a unary call each cost ten times the CPU). */
  private readonly fetchStreams = fetchStreams((address) => this.ctx.cluster.connection(address));
  private readonly listeners = new Map<ConsumerEventName, Set<(e: ConsumerEvent) => void>>();
  private eventId = 0;
  private subscriptions: Array<string | RegExp> = [];
  private fromBeginning = false;
  private mode: 'none' | 'subscribe' | 'assign' = 'none';
  private runOpts: Required<Pick<RunOptions, 'autoCommit' | 'eachBatchAutoResolve' | 'partitionsConsumedConcurrently'>> & RunOptions = { autoCommit: true, eachBatchAutoResolve: true, partitionsConsumedConcurrently: 1 };
  private uncommittedCount = 0;
  private lastCommitMs = Date.now();
  private commitTimer: NodeJS.Timeout | undefined;
  private committing: Promise<void> | undefined;
  private readonly rpc: GroupRpc | undefined;
  private readonly membership: Membership | undefined;
  private rejoinNeeded = false;
  private rejoinReason = 'first join';
  private wakeGroup: (() => void) | undefined;
  private groupLoopDone: Promise<void> | undefined;
  private heartbeatLoopDone: Promise<void> | undefined;
  private joined = false;
  /** A JoinGroup/SyncGroup is under way: heartbeats would only answer REBALANCE_IN_PROGRESS. */
  private joining = false;
  private readonly inProcess = new Set<Promise<void>>();

  readonly groupId: string | undefined;
  readonly groupInstanceId: string | undefined;
  readonly sessionTimeout: number;
  readonly rebalanceTimeout: number;
  readonly heartbeatInterval: number;
  readonly assigners: PartitionAssigner[];
  readonly maxBytes: number;
  readonly maxBytesPerPartition: number;
  readonly maxWaitTimeInMs: number;
  readonly minBytes: number;
  readonly autoOffsetReset: 'earliest' | 'latest';
  private readonly retryMinMs: number;
  private readonly retryMaxMs: number;
  private readonly log: Logger;

  constructor(
    private readonly ctx: ConsumerContext,
    opts: ConsumerOptions = {},
  ) {
    this.log = ctx.logger;
    this.groupId = opts.groupId;
    this.groupInstanceId = opts.groupInstanceId;
    this.sessionTimeout = opts.sessionTimeout ?? 30_000;
    this.rebalanceTimeout = opts.rebalanceTimeout ?? 60_000;
    this.heartbeatInterval = opts.heartbeatInterval ?? 3_000;
    this.assigners = opts.partitionAssigners ?? [CooperativeStickyAssigner];
    this.maxBytes = opts.maxBytes ?? 10 * 1024 * 1024;
    this.maxBytesPerPartition = opts.maxBytesPerPartition ?? 1024 * 1024;
    this.maxWaitTimeInMs = opts.maxWaitTimeInMs ?? 5_000;
    this.minBytes = opts.minBytes ?? 1;
    this.autoOffsetReset = opts.autoOffsetReset ?? 'latest';
    this.retryMinMs = opts.retry?.initialRetryTime ?? 100;
    this.retryMaxMs = opts.retry?.maxRetryTime ?? 1_000;
    if (this.groupId !== undefined && (typeof this.groupId !== 'string' || this.groupId === '')) throw new RaftkaClientError('INVALID_ARGUMENT', 'groupId must be a non-empty string');
    for (const [name, v, min] of [
      ['sessionTimeout', this.sessionTimeout, 1],
      ['rebalanceTimeout', this.rebalanceTimeout, 1],
      ['heartbeatInterval', this.heartbeatInterval, 1],
      ['maxBytes', this.maxBytes, 1],
      ['maxBytesPerPartition', this.maxBytesPerPartition, 1],
      ['maxWaitTimeInMs', this.maxWaitTimeInMs, 0],
      ['minBytes', this.minBytes, 0],
    ] as const) {
      if (!Number.isFinite(v) || v < min) throw new RaftkaClientError('INVALID_ARGUMENT', `${name} must be a number >= ${min}, got ${v}`);
    }
    if (this.heartbeatInterval >= this.sessionTimeout) throw new RaftkaClientError('INVALID_ARGUMENT', `heartbeatInterval (${this.heartbeatInterval}) must be below sessionTimeout (${this.sessionTimeout})`);
    if (this.autoOffsetReset !== 'earliest' && this.autoOffsetReset !== 'latest') throw new RaftkaClientError('INVALID_ARGUMENT', `autoOffsetReset must be 'earliest' or 'latest', got ${JSON.stringify(this.autoOffsetReset)}`);
    if (this.assigners.length === 0 || new Set(this.assigners.map((a) => a.protocol)).size > 1) {
      throw new RaftkaClientError('INVALID_ARGUMENT', 'partitionAssigners must be non-empty and all EAGER or all COOPERATIVE (a group cannot mix rebalance protocols)');
    }
    if (this.groupId !== undefined) {
      this.rpc = new GroupRpc(ctx.cluster, this.groupId, ctx.requestTimeoutMs, this.log);
      this.membership = new Membership(this.rpc, ctx.cluster, { sessionTimeoutMs: this.sessionTimeout, rebalanceTimeoutMs: this.rebalanceTimeout, groupInstanceId: opts.groupInstanceId, assigners: this.assigners }, this.log);
    }
  }

  // ─── events ───

  on<P = Record<string, unknown>>(type: ConsumerEventName, listener: (e: ConsumerEvent<P>) => void): () => void {
    let set = this.listeners.get(type);
    if (!set) this.listeners.set(type, (set = new Set()));
    const l = listener as (e: ConsumerEvent) => void;
    set.add(l);
    return () => set.delete(l);
  }

  private emit(type: ConsumerEventName, payload: Record<string, unknown>): void {
    const set = this.listeners.get(type);
    if (!set) return;
    const e: ConsumerEvent = { id: ++this.eventId, type, timestamp: Date.now(), payload };
    for (const l of set) {
      try {
        l(e);
      } catch (err) {
        this.log.warn({ event: type, err: (err as Error).message }, 'event listener threw');
      }
    }
  }

  /** Current assignment, by topic (KafkaJS's consumer.assignment() shape is a list). */
  assignment(): TopicPartitions[] {
    return groupByTopic([...this.parts.values()].filter((p) => !p.removed));
  }

  get memberId(): string {
    return this.membership?.memberId ?? '';
  }

  get generationId(): number {
    return this.membership?.generationId ?? -1;
  }

  // ─── lifecycle ───

  async connect(): Promise<void> {
    if (this.state === 'connected' || this.state === 'running') return;
    if (this.state !== 'new') throw new RaftkaClientError('NOT_CONNECTED', 'a disconnected consumer cannot reconnect; create a new one');
    await this.ctx.cluster.refresh();
    this.state = 'connected';
    this.emit('consumer.connect', {});
  }

  private checkConnected(what: string): void {
    if (this.state !== 'connected' && this.state !== 'running') throw new RaftkaClientError('NOT_CONNECTED', `${what}: call consumer.connect() first`);
  }

  /** Topics by name or RegExp (matched against the cluster's topics when the group joins). */
  async subscribe(args: { topics?: Array<string | RegExp>; topic?: string | RegExp; fromBeginning?: boolean }): Promise<void> {
    this.checkConnected('subscribe');
    if (this.groupId === undefined) throw new RaftkaClientError('INVALID_ARGUMENT', 'subscribe needs a groupId (use assign() without one)');
    if (this.mode === 'assign') throw new RaftkaClientError('INVALID_ARGUMENT', 'this consumer uses assign(); subscribe and assign exclude each other');
    const list = [...(args.topics ?? []), ...(args.topic !== undefined ? [args.topic] : [])];
    if (list.length === 0) throw new RaftkaClientError('INVALID_ARGUMENT', 'subscribe needs topic or topics');
    for (const t of list) {
      if (!(t instanceof RegExp) && (typeof t !== 'string' || t === '')) throw new RaftkaClientError('INVALID_ARGUMENT', `subscribe: ${JSON.stringify(t)} is neither a topic name nor a RegExp`);
    }
    const names = list.filter((t): t is string => typeof t === 'string');
    if (names.length > 0) await this.ctx.cluster.ensure(names);
    this.subscriptions.push(...list);
    this.fromBeginning = args.fromBeginning ?? this.fromBeginning;
    this.mode = 'subscribe';
    if (this.state === 'running') this.requestRejoin('subscription changed');
  }

  /** Group-less consumption of explicit partitions (replaces the previous assignment). */
  assign(partitions: AssignedPartition[]): void {
    this.checkConnected('assign');
    if (this.mode === 'subscribe') throw new RaftkaClientError('INVALID_ARGUMENT', 'this consumer uses subscribe(); subscribe and assign exclude each other');
    const wanted = new Map<string, AssignedPartition>();
    for (const a of partitions) {
      if (typeof a.topic !== 'string' || !Number.isInteger(a.partition) || a.partition < 0) throw new RaftkaClientError('INVALID_ARGUMENT', `assign: bad partition ${JSON.stringify(a)}`);
      wanted.set(tpKey(a.topic, a.partition), a);
    }
    this.mode = 'assign';
    for (const [k, p] of this.parts) if (!wanted.has(k)) this.dropPartition(p);
    for (const [k, a] of wanted) {
      const existing = this.parts.get(k);
      const p = existing ?? this.addPartition(a.topic, a.partition);
      if (a.offset !== undefined) this.setPosition(p, toOffset(a.offset, 'assign offset'));
      else if (!existing) p.resetTo = this.groupId !== undefined ? 'committed' : this.autoOffsetReset;
    }
    this.ctx.cluster.addTopics(partitions.map((p) => p.topic));
    this.emit('consumer.partitions_assigned', { partitions: partitions.map((p) => ({ topic: p.topic, partition: p.partition })) });
    if (this.state === 'running') this.ensureLoops();
  }

  async run(opts: RunOptions = {}): Promise<void> {
    this.checkConnected('run');
    if (this.state === 'running') throw new RaftkaClientError('INVALID_ARGUMENT', 'the consumer is already running');
    if (!opts.eachMessage === !opts.eachBatch) throw new RaftkaClientError('INVALID_ARGUMENT', 'run needs exactly one of eachMessage and eachBatch');
    if (this.mode === 'none') throw new RaftkaClientError('INVALID_ARGUMENT', 'call subscribe() or assign() before run()');
    const conc = opts.partitionsConsumedConcurrently ?? 1;
    if (!Number.isInteger(conc) || conc < 1) throw new RaftkaClientError('INVALID_ARGUMENT', `partitionsConsumedConcurrently must be an integer >= 1, got ${conc}`);
    this.runOpts = { ...opts, autoCommit: opts.autoCommit ?? true, eachBatchAutoResolve: opts.eachBatchAutoResolve ?? true, partitionsConsumedConcurrently: conc };
    this.state = 'running';
    this.stopper = new AbortController();
    const interval = opts.autoCommitInterval === undefined ? 5_000 : opts.autoCommitInterval;
    if (this.runOpts.autoCommit && interval !== null && this.groupId !== undefined) {
      this.commitTimer = setInterval(() => void this.autoCommit(true), Math.max(1, interval));
      this.commitTimer.unref();
    }
    if (this.mode === 'subscribe') {
      this.rejoinNeeded = true;
      this.groupLoopDone = this.groupLoop();
    } else this.ensureLoops();
  }

  /** Stops consuming, commits what was processed (autoCommit), leaves the group, closes. */
  async disconnect(): Promise<void> {
    if (this.state === 'disconnected' || this.state === 'stopping') return;
    const wasRunning = this.state === 'running';
    this.state = 'stopping';
    await this.stop();
    if (wasRunning && this.runOpts.autoCommit && this.groupId !== undefined) await this.commitResolved().catch((e: unknown) => this.log.warn({ err: (e as Error).message }, 'final commit failed'));
    // Static members do not leave: a restart within the session timeout keeps their
    // partitions without a rebalance [KIP-345].
    if (this.membership && this.joined && this.groupInstanceId === undefined) await this.membership.leave('the consumer is shutting down').catch((e: unknown) => this.log.warn({ err: (e as Error).message }, 'leave failed'));
    this.rpc?.close();
    this.state = 'disconnected';
    this.ctx.onDisconnect?.();
    this.emit('consumer.disconnect', {});
  }

  private async stop(): Promise<void> {
    this.stopper.abort();
    void this.fetchStreams.close(false);
    if (this.commitTimer) clearInterval(this.commitTimer);
    if (this.retryTimer) clearTimeout(this.retryTimer);
    this.wakeGroup?.();
    await Promise.all([...this.inProcess]);
    await this.groupLoopDone?.catch(() => undefined);
    await this.heartbeatLoopDone?.catch(() => undefined);
    this.emit('consumer.stop', {});
  }

  /** Leaves the group without committing or leaving (as if the process died): for tests. */
  async abandon(): Promise<void> {
    this.state = 'stopping';
    await this.stop();
    this.rpc?.close();
    this.state = 'disconnected';
    this.ctx.onDisconnect?.();
  }

  // ─── positions ───

  private addPartition(topic: string, partition: number): PartitionState {
    const p: PartitionState = { topic, partition, key: tpKey(topic, partition), fetchOffset: undefined, position: undefined, resolved: undefined, committed: -1, resetTo: 'committed', paused: false, epoch: 0, notBeforeMs: 0, failures: 0, busy: undefined, removed: false };
    this.parts.set(p.key, p);
    return p;
  }

  private dropPartition(p: PartitionState): void {
    p.removed = true;
    p.epoch++;
    this.parts.delete(p.key);
  }

  private setPosition(p: PartitionState, offset: number): void {
    p.epoch++;
    p.fetchOffset = offset;
    p.position = offset;
    p.resolved = undefined;
  }

  seek({ topic, partition, offset }: { topic: string; partition: number; offset: number | string }): void {
    const p = this.parts.get(tpKey(topic, partition));
    if (!p) throw new RaftkaClientError('INVALID_ARGUMENT', `seek: ${topic}-${partition} is not assigned to this consumer`);
    const o = toOffset(offset, 'seek offset');
    if (o === -2 || o === -1) {
      p.epoch++;
      p.fetchOffset = undefined;
      p.position = undefined;
      p.resetTo = o === -2 ? 'earliest' : 'latest';
    } else if (o < 0) throw new RaftkaClientError('INVALID_ARGUMENT', `seek offset must be >= 0 (or -2 earliest, -1 latest), got ${o}`);
    else this.setPosition(p, o);
    if (this.state === 'running') this.ensureLoops();
  }

  pause(topics: Array<{ topic: string; partitions?: number[] }>): void {
    for (const p of this.match(topics)) {
      if (p.paused) continue;
      p.paused = true;
      // Data fetched past the processed position is dropped and fetched again on resume.
      p.epoch++;
      if (p.position !== undefined) p.fetchOffset = p.position;
    }
  }

  resume(topics: Array<{ topic: string; partitions?: number[] }>): void {
    for (const p of this.match(topics)) p.paused = false;
    if (this.state === 'running') this.ensureLoops();
  }

  paused(): TopicPartitions[] {
    return groupByTopic([...this.parts.values()].filter((p) => p.paused));
  }

  private match(topics: Array<{ topic: string; partitions?: number[] }>): PartitionState[] {
    const out: PartitionState[] = [];
    for (const t of topics) for (const p of this.parts.values()) if (p.topic === t.topic && (!t.partitions || t.partitions.includes(p.partition))) out.push(p);
    return out;
  }

  // ─── commits ───

  /**
   * Commits explicit offsets (the next offset to read), or with no argument everything
   * resolved and not yet committed. Committing a partition this member does not own is
   * refused before anything is sent.
   */
  async commitOffsets(offsets?: TopicPartitionOffset[]): Promise<void> {
    if (!this.membership) throw new RaftkaClientError('INVALID_ARGUMENT', 'commitOffsets needs a groupId');
    if (offsets === undefined) return this.commitResolved();
    const list = offsets.map((o) => {
      const off = toOffset(o.offset, 'commit offset');
      if (off < 0) throw new RaftkaClientError('INVALID_ARGUMENT', `commit offset must be >= 0, got ${off}`);
      const p = this.parts.get(tpKey(o.topic, o.partition));
      if (!p) throw new RaftkaClientError('INVALID_ARGUMENT', `commitOffsets: ${o.topic}-${o.partition} is not assigned to this consumer (member ${this.memberId || '-'}); nothing was committed`);
      return { p, offset: off };
    });
    await this.sendCommit(list);
  }

  private async commitResolved(): Promise<void> {
    const list = [...this.parts.values()].filter((p) => p.resolved !== undefined && p.resolved > p.committed).map((p) => ({ p, offset: p.resolved! }));
    if (list.length === 0) return;
    await this.sendCommit(list);
  }

  private async sendCommit(list: Array<{ p: PartitionState; offset: number }>): Promise<void> {
    // One commit at a time: a later one must not be overtaken by an earlier one.
    while (this.committing) await this.committing.catch(() => undefined);
    const run = (async () => {
      const byTopic = new Map<string, Array<{ partition: number; committedOffset: number; committedLeaderEpoch: number; committedMetadata: string }>>();
      for (const { p, offset } of list) {
        let arr = byTopic.get(p.topic);
        if (!arr) byTopic.set(p.topic, (arr = []));
        arr.push({ partition: p.partition, committedOffset: offset, committedLeaderEpoch: -1, committedMetadata: '' });
      }
      const topics = [...byTopic].map(([name, partitions]) => ({ name, partitions }));
      const uncommittedBefore = this.uncommittedCount;
      try {
        await this.membership!.commit(topics, this.ctx.requestTimeoutMs);
      } catch (e) {
        // A commit that lands while this member is joining says nothing new; rejoining
        // again after the join would only start one more rebalance for everyone.
        if (e instanceof RaftkaProtocolError && ['REBALANCE_IN_PROGRESS', 'ILLEGAL_GENERATION', 'UNKNOWN_MEMBER_ID'].includes(e.errorName) && this.mode === 'subscribe' && !this.joining) this.requestRejoin(`commit answered ${e.errorName}`);
        throw e;
      }
      for (const { p, offset } of list) p.committed = Math.max(p.committed, offset);
      this.uncommittedCount = Math.max(0, this.uncommittedCount - uncommittedBefore);
      this.lastCommitMs = Date.now();
      this.emit('consumer.commit_offsets', { groupId: this.groupId, memberId: this.memberId, groupGenerationId: this.generationId, topics: topics.map((t) => ({ topic: t.name, partitions: t.partitions.map((x) => ({ partition: x.partition, offset: String(x.committedOffset) })) })) });
    })();
    this.committing = run;
    try {
      await run;
    } finally {
      if (this.committing === run) this.committing = undefined;
    }
  }

  private async autoCommit(byTimer: boolean): Promise<void> {
    if (!this.runOpts.autoCommit || this.groupId === undefined || this.state !== 'running') return;
    const threshold = this.runOpts.autoCommitThreshold;
    const due = byTimer || (threshold != null && this.uncommittedCount >= threshold);
    if (!due) return;
    try {
      await this.commitResolved();
    } catch (e) {
      this.log.debug({ err: (e as Error).message }, 'auto-commit failed; retried with the next one');
    }
  }

  // ─── group membership ───

  private requestRejoin(reason: string): void {
    this.rejoinNeeded = true;
    this.rejoinReason = reason;
    this.wakeGroup?.();
  }

  private async subscribedTopics(): Promise<string[]> {
    const names = new Set(this.subscriptions.filter((t): t is string => typeof t === 'string'));
    const patterns = this.subscriptions.filter((t): t is RegExp => t instanceof RegExp);
    if (patterns.length > 0) {
      const md = await this.ctx.cluster.anyBroker((c) => c.metadata({}, { timeoutMs: this.ctx.requestTimeoutMs }));
      for (const t of md.topics) if (!t.name.startsWith('__') && patterns.some((re) => re.test(t.name))) names.add(t.name);
    }
    return [...names].sort();
  }

  private async groupLoop(): Promise<void> {
    const m = this.membership!;
    let failures = 0;
    while (this.state === 'running') {
      if (!this.rejoinNeeded) {
        await new Promise<void>((r) => (this.wakeGroup = r));
        this.wakeGroup = undefined;
        continue;
      }
      this.rejoinNeeded = false;
      try {
        await this.rebalance(m);
        failures = 0;
        this.heartbeatLoopDone ??= this.heartbeatLoop(m);
      } catch (e) {
        if (this.state !== 'running') return;
        const retriable = (e instanceof RaftkaProtocolError && (isRetriable(e.errorName) || e.errorName === 'COORDINATOR_NOT_AVAILABLE')) || (e instanceof RaftkaClientError && e.type === 'BROKERS_UNREACHABLE') || isServiceError(e);
        if (!retriable) {
          this.crash(e);
          return;
        }
        failures++;
        this.log.warn({ err: (e as Error).message, failures }, 'rebalance failed; retrying');
        this.rejoinNeeded = true;
        await delay(Math.min(this.retryMaxMs, this.retryMinMs * 2 ** Math.min(failures, 6)), this.stopper.signal);
      }
    }
  }

  private crash(e: unknown): void {
    this.log.error({ err: (e as Error).message }, 'consumer crashed');
    this.emit('consumer.crash', { error: e, groupId: this.groupId, restart: false });
    void this.abandonAfterCrash();
  }

  private async abandonAfterCrash(): Promise<void> {
    if (this.state !== 'running') return;
    this.state = 'stopping';
    this.stopper.abort();
    void this.fetchStreams.close(false);
    if (this.commitTimer) clearInterval(this.commitTimer);
    await Promise.all([...this.inProcess]);
    if (this.membership && this.joined) await this.membership.leave('the consumer crashed').catch(() => undefined);
    this.rpc?.close();
    this.state = 'disconnected';
    this.ctx.onDisconnect?.();
  }

  private async rebalance(m: Membership): Promise<void> {
    const cooperative = this.assigners[0]!.protocol === 'COOPERATIVE';
    this.emit('consumer.rebalancing', { groupId: this.groupId, memberId: m.memberId, reason: this.rejoinReason });
    if (!cooperative) await this.revoke([...this.parts.values()], true);
    // A pattern that matches nothing yet joins with no topics (it may match later, as Kafka).
    const topics = await this.subscribedTopics();
    this.ctx.cluster.addTopics(topics);
    const owned = this.assignment();
    this.joining = true;
    let r: Awaited<ReturnType<Membership['join']>>;
    try {
      r = await m.join(topics, owned, this.rejoinReason, this.stopper.signal);
    } finally {
      this.joining = false;
    }
    this.joined = true;
    const next = new Set(r.assignment.flatMap((tp) => tp.partitions.map((p) => tpKey(tp.topic, p))));
    const revoked = [...this.parts.values()].filter((p) => !next.has(p.key));
    if (revoked.length > 0) await this.revoke(revoked, true);
    const added: Array<{ topic: string; partition: number }> = [];
    for (const tp of r.assignment) {
      for (const partition of tp.partitions) {
        if (this.parts.has(tpKey(tp.topic, partition))) continue;
        const p = this.addPartition(tp.topic, partition);
        p.resetTo = 'committed';
        added.push({ topic: tp.topic, partition });
      }
    }
    this.emit('consumer.group_join', { groupId: this.groupId, memberId: r.memberId, leaderId: r.leaderId, isLeader: r.isLeader, generationId: r.generationId, groupProtocol: r.protocolName, memberAssignment: Object.fromEntries(r.assignment.map((tp) => [tp.topic, tp.partitions])) });
    if (added.length > 0) this.emit('consumer.partitions_assigned', { generationId: r.generationId, partitions: added });
    this.ensureLoops();
    // KIP-429: what was taken from us is handed on in a follow-up rebalance.
    if (cooperative && revoked.length > 0) this.requestRejoin('partitions revoked');
  }

  /** Stops partitions: drops their fetched data, waits for their handler, commits them. */
  private async revoke(list: PartitionState[], commit: boolean): Promise<void> {
    if (list.length === 0) return;
    for (const p of list) {
      p.removed = true;
      p.epoch++;
    }
    await Promise.all(list.map((p) => p.busy ?? Promise.resolve()));
    if (commit && this.runOpts.autoCommit) {
      const toCommit = list.filter((p) => p.resolved !== undefined && p.resolved > p.committed).map((p) => ({ p, offset: p.resolved! }));
      if (toCommit.length > 0) await this.sendCommit(toCommit).catch((e: unknown) => this.log.warn({ err: (e as Error).message }, 'commit of revoked partitions failed (they will be read again from the last commit)'));
    }
    for (const p of list) this.parts.delete(p.key);
    this.emit('consumer.partitions_revoked', { generationId: this.generationId, partitions: list.map((p) => ({ topic: p.topic, partition: p.partition })) });
  }

  private lostPartitions(): void {
    // The coordinator dropped us: our partitions may already be someone else's, so they
    // stop without a commit [KIP-429 onPartitionsLost].
    const list = [...this.parts.values()];
    for (const p of list) {
      p.removed = true;
      p.epoch++;
      this.parts.delete(p.key);
    }
    if (list.length > 0) this.emit('consumer.partitions_revoked', { generationId: this.generationId, lost: true, partitions: list.map((p) => ({ topic: p.topic, partition: p.partition })) });
  }

  private async heartbeatLoop(m: Membership): Promise<void> {
    while (this.state === 'running') {
      await delay(this.heartbeatInterval, this.stopper.signal);
      if (this.state !== 'running') return;
      if (this.rejoinNeeded || this.joining) continue;
      try {
        const err = await m.heartbeat(this.stopper.signal);
        if (err === undefined) this.emit('consumer.heartbeat', { groupId: this.groupId, memberId: m.memberId, groupGenerationId: m.generationId });
        else if (err === 'REBALANCE_IN_PROGRESS') this.requestRejoin('the coordinator started a rebalance');
        else if (err === 'UNKNOWN_MEMBER_ID' || err === 'ILLEGAL_GENERATION') {
          if (err === 'UNKNOWN_MEMBER_ID') m.memberId = '';
          this.lostPartitions();
          this.requestRejoin(`heartbeat answered ${err}`);
        } else if (err === 'FENCED_INSTANCE_ID') {
          this.crash(new RaftkaProtocolError(err, `another consumer joined with groupInstanceId of this one`));
          return;
        }
      } catch (e) {
        this.log.debug({ err: (e as Error).message }, 'heartbeat failed');
      }
    }
  }

  // ─── fetching ───

  private ensureLoops(): void {
    if (this.state !== 'running') return;
    const now = Date.now();
    let nextRetry = Infinity;
    let refresh = false;
    for (const p of this.parts.values()) {
      if (p.paused || p.removed) continue;
      if (p.notBeforeMs > now) {
        nextRetry = Math.min(nextRetry, p.notBeforeMs);
        continue;
      }
      const leader = this.ctx.cluster.leaderOf(p.topic, p.partition);
      if (leader < 0 || !this.ctx.cluster.brokerAddress(leader)) {
        refresh = true;
        p.notBeforeMs = now + this.retryMinMs;
        nextRetry = Math.min(nextRetry, p.notBeforeMs);
        continue;
      }
      if (!this.loops.has(leader)) {
        this.loops.add(leader);
        const done = this.fetchLoop(leader).finally(() => {
          this.loops.delete(leader);
          this.inProcess.delete(done);
          this.ensureLoops();
        });
        this.inProcess.add(done);
      }
    }
    if (refresh) this.refreshMetadata();
    if (nextRetry !== Infinity && !this.retryTimer) {
      this.retryTimer = setTimeout(() => {
        this.retryTimer = undefined;
        this.ensureLoops();
      }, Math.max(1, nextRetry - now));
    }
  }

  private refreshMetadata(): void {
    this.ctx.cluster.refresh().then(
      () => this.ensureLoops(),
      (e: unknown) => this.log.debug({ err: (e as Error).message }, 'metadata refresh failed'),
    );
  }

  private backoff(p: PartitionState): void {
    p.failures++;
    p.notBeforeMs = Date.now() + Math.min(this.retryMaxMs, this.retryMinMs * 2 ** Math.min(p.failures - 1, 5));
  }

  private mine(broker: number): PartitionState[] {
    const now = Date.now();
    return [...this.parts.values()].filter((p) => !p.paused && !p.removed && p.notBeforeMs <= now && this.ctx.cluster.leaderOf(p.topic, p.partition) === broker);
  }

  private async fetchLoop(broker: number): Promise<void> {
    let next: Promise<FetchedPartition[] | undefined> | undefined;
    while (this.state === 'running') {
      const current = next ?? this.fetchOnce(broker);
      const data = await current;
      if (data === undefined || this.state !== 'running') return;
      // Pipelining: positions already advanced past this response, so the next fetch can
      // go out while the handler works on this one.
      next = this.fetchOnce(broker);
      await this.process(data);
    }
    await next;
  }

  /** One fetch from `broker` (after resolving start offsets); undefined when it leads nothing of ours now. */
  private async fetchOnce(broker: number): Promise<FetchedPartition[] | undefined> {
    const mine = this.mine(broker);
    if (mine.length === 0) return undefined;
    const address = this.ctx.cluster.brokerAddress(broker);
    if (!address) return undefined;
    try {
      await this.resolveOffsets(broker, mine);
    } catch (e) {
      if (this.state !== 'running') return undefined;
      if (e instanceof RaftkaClientError || (e instanceof RaftkaProtocolError && !isRetriable(e.errorName) && e.errorName !== 'COORDINATOR_NOT_AVAILABLE')) {
        this.crash(e);
        return undefined;
      }
      for (const p of mine) this.backoff(p);
      this.refreshMetadata();
      return [];
    }
    const ready = mine.filter((p) => p.fetchOffset !== undefined && !p.removed && !p.paused);
    if (ready.length === 0) return [];
    const epochs = new Map(ready.map((p) => [p, p.epoch]));
    const offsets = new Map(ready.map((p) => [p, p.fetchOffset!]));
    const byTopic = new Map<string, PartitionState[]>();
    for (const p of ready) byTopic.set(p.topic, [...(byTopic.get(p.topic) ?? []), p]);
    let r: FetchResponse;
    try {
      r = await this.fetchStreams.send(
        address,
        { maxWaitMs: this.maxWaitTimeInMs, minBytes: this.minBytes, maxBytes: this.maxBytes, topics: [...byTopic].map(([name, ps]) => ({ name, partitions: ps.map((p) => ({ partition: p.partition, fetchOffset: offsets.get(p)!, partitionMaxBytes: this.maxBytesPerPartition })) })) },
        this.maxWaitTimeInMs + DEADLINE_SLACK_MS,
        this.stopper.signal,
      );
    } catch (e) {
      if (this.state !== 'running') return undefined;
      this.log.debug({ broker, err: (e as Error).message }, 'fetch failed in transport');
      for (const p of ready) this.backoff(p);
      this.refreshMetadata();
      return [];
    }
    if (r.errorCode !== 0) {
      for (const p of ready) this.backoff(p);
      return [];
    }
    const out: FetchedPartition[] = [];
    let bytes = 0;
    for (const t of r.responses) {
      for (const a of t.partitions) {
        const p = ready.find((x) => x.topic === t.name && x.partition === a.partition);
        if (!p || p.epoch !== epochs.get(p)) continue;
        const name = errorByCode(a.errorCode);
        if (a.errorCode !== 0) {
          if (name === 'OFFSET_OUT_OF_RANGE') {
            this.log.info({ topic: p.topic, partition: p.partition, offset: offsets.get(p), reset: this.autoOffsetReset }, 'offset out of range; resetting');
            p.epoch++;
            p.fetchOffset = undefined;
            p.position = undefined;
            p.resetTo = this.autoOffsetReset;
          } else if (LEADER_ERRORS.has(name) || isRetriable(name)) {
            if (a.currentLeader) this.ctx.cluster.applyLeaderHint(p.topic, p.partition, a.currentLeader);
            this.backoff(p);
            this.refreshMetadata();
          } else {
            this.crash(RaftkaProtocolError.fromCode(a.errorCode, a.errorMessage, { topic: p.topic, partition: p.partition, brokerId: broker }));
            return undefined;
          }
          continue;
        }
        p.failures = 0;
        bytes += a.records.length;
        const from = offsets.get(p)!;
        const records: LogRecord[] = [];
        let end = from;
        try {
          for (const { header, bytes: b } of iterateBatches(a.records)) {
            if (header.lastOffset < from) continue;
            if (!header.isControl) for (const rec of await decodeBatch(b)) if (rec.offset >= from) records.push(rec);
            end = header.lastOffset + 1;
          }
        } catch (e) {
          this.crash(new RaftkaProtocolError('CORRUPT_MESSAGE', `${p.topic}-${p.partition} at offset ${from}: ${(e as Error).message}`, { topic: p.topic, partition: p.partition, brokerId: broker }));
          return undefined;
        }
        if (p.epoch !== epochs.get(p)) continue;
        p.fetchOffset = end;
        if (records.length > 0 || end > from) out.push({ p, epoch: p.epoch, highWatermark: a.highWatermark, records });
      }
    }
    this.emit('consumer.fetch', { broker, numberOfBatches: out.length, bytes });
    return out;
  }

  private async resolveOffsets(broker: number, mine: PartitionState[]): Promise<void> {
    const todo = mine.filter((p) => p.fetchOffset === undefined);
    if (todo.length === 0) return;
    const committedTodo = todo.filter((p) => p.resetTo === 'committed');
    if (committedTodo.length > 0 && this.rpc) {
      const epochs = new Map(committedTodo.map((p) => [p, p.epoch]));
      const committed = await fetchCommitted(this.rpc, groupByTopic(committedTodo), this.ctx.requestTimeoutMs, this.stopper.signal);
      for (const p of committedTodo) {
        if (p.epoch !== epochs.get(p)) continue;
        const c = committed.get(p.key) ?? -1;
        if (c >= 0) {
          p.committed = c;
          this.setPosition(p, c);
        } else p.resetTo = this.fromBeginning ? 'earliest' : this.autoOffsetReset;
      }
    } else for (const p of committedTodo) p.resetTo = this.fromBeginning ? 'earliest' : this.autoOffsetReset;
    const byTime = todo.filter((p) => p.fetchOffset === undefined && p.resetTo !== 'committed');
    if (byTime.length === 0) return;
    const address = this.ctx.cluster.brokerAddress(broker)!;
    const epochs = new Map(byTime.map((p) => [p, p.epoch]));
    const r = await this.ctx.cluster.connection(address).listOffsets(
      { topics: groupByTopic(byTime).map((t) => ({ name: t.topic, partitions: t.partitions.map((partition) => ({ partition, timestamp: this.parts.get(tpKey(t.topic, partition))?.resetTo === 'earliest' ? EARLIEST_TIMESTAMP : LATEST_TIMESTAMP })) })) },
      { timeoutMs: this.ctx.requestTimeoutMs, signal: this.stopper.signal },
    );
    for (const t of r.topics) {
      for (const a of t.partitions) {
        const p = byTime.find((x) => x.topic === t.name && x.partition === a.partition);
        if (!p || p.epoch !== epochs.get(p)) continue;
        if (a.errorCode === 0) this.setPosition(p, a.offset);
        else {
          if (a.currentLeader) this.ctx.cluster.applyLeaderHint(p.topic, p.partition, a.currentLeader);
          this.backoff(p);
          this.refreshMetadata();
        }
      }
    }
  }

  // ─── processing ───

  /**
   * Hands a response's partitions to the handler. `partitionsConsumedConcurrently` bounds
   * the handlers running at once across every fetch loop (as KafkaJS: 1 means one at a
   * time, whichever broker the data came from).
   */
  private async process(data: FetchedPartition[]): Promise<void> {
    await Promise.all(
      data.map(async (d) => {
        const p = d.p;
        if (p.epoch !== d.epoch || p.removed) return;
        // Claim the partition before waiting for a slot, so a revoke waits for it too.
        let release!: () => void;
        const work = new Promise<void>((r) => (release = r));
        const prev = p.busy;
        p.busy = work;
        try {
          await prev;
          await this.acquireSlot();
          try {
            if (p.epoch === d.epoch && !p.removed) await this.processPartition(d);
          } finally {
            this.releaseSlot();
          }
        } finally {
          release();
          if (p.busy === work) p.busy = undefined;
        }
      }),
    );
  }

  private slotsInUse = 0;
  private readonly slotWaiters: Array<() => void> = [];

  private async acquireSlot(): Promise<void> {
    while (this.slotsInUse >= this.runOpts.partitionsConsumedConcurrently) await new Promise<void>((r) => this.slotWaiters.push(r));
    this.slotsInUse++;
  }

  private releaseSlot(): void {
    this.slotsInUse--;
    this.slotWaiters.shift()?.();
  }

  private async processPartition(d: FetchedPartition): Promise<void> {
    const p = d.p;
    const live = () => p.epoch === d.epoch && !p.removed && this.state === 'running';
    const heartbeat = async () => undefined;
    const pause = () => {
      this.pause([{ topic: p.topic, partitions: [p.partition] }]);
      return () => this.resume([{ topic: p.topic, partitions: [p.partition] }]);
    };
    try {
      if (this.runOpts.eachMessage) {
        for (const rec of d.records) {
          if (!live()) return;
          if (p.position !== undefined && rec.offset < p.position) continue;
          await this.runOpts.eachMessage({ topic: p.topic, partition: p.partition, message: toMessage(rec), heartbeat, pause });
          // The handler resolved: this record may be committed. A seek or revoke meanwhile
          // bumped the epoch and the rest of this data is dropped; a pause from inside the
          // handler (as KafkaJS) still counts this record as processed.
          if (p.epoch !== d.epoch) {
            if (p.paused && !p.removed && p.position === rec.offset && p.fetchOffset === rec.offset) {
              p.position = p.resolved = p.fetchOffset = rec.offset + 1;
              this.uncommittedCount++;
            }
            return;
          }
          p.position = rec.offset + 1;
          p.resolved = rec.offset + 1;
          this.uncommittedCount++;
          void this.autoCommit(false);
        }
      } else if (this.runOpts.eachBatch) {
        const messages = d.records.filter((r) => p.position === undefined || r.offset >= p.position).map(toMessage);
        if (messages.length === 0 || !live()) return;
        const resolveOffset = (o: string | number) => {
          if (p.epoch !== d.epoch) return;
          const n = toOffset(o, 'resolveOffset') + 1;
          if (p.resolved === undefined || n > p.resolved) {
            this.uncommittedCount += n - (p.resolved ?? Number(messages[0]!.offset));
            p.resolved = n;
            p.position = n;
          }
        };
        const batch: Batch = {
          topic: p.topic,
          partition: p.partition,
          highWatermark: String(d.highWatermark),
          messages,
          isEmpty: () => messages.length === 0,
          firstOffset: () => messages[0]?.offset ?? null,
          lastOffset: () => messages[messages.length - 1]!.offset,
          offsetLag: () => String(Math.max(0, d.highWatermark - 1 - Number(messages[messages.length - 1]!.offset))),
        };
        await this.runOpts.eachBatch({
          batch,
          resolveOffset,
          heartbeat,
          pause,
          commitOffsetsIfNecessary: () => this.autoCommit(true),
          uncommittedOffsets: () => [...this.parts.values()].filter((x) => x.resolved !== undefined && x.resolved > x.committed).map((x) => ({ topic: x.topic, partition: x.partition, offset: String(x.resolved) })),
          isRunning: () => this.state === 'running',
          isStale: () => !live(),
        });
        if (this.runOpts.eachBatchAutoResolve) resolveOffset(batch.lastOffset());
        void this.autoCommit(false);
      }
    } catch (e) {
      // A handler that throws: the partition goes back to the first unprocessed record
      // and is retried after a backoff (KafkaJS retries, then crashes; here it retries).
      this.log.warn({ topic: p.topic, partition: p.partition, err: (e as Error).message }, 'handler failed; retrying from the first unprocessed record');
      if (p.epoch === d.epoch && p.position !== undefined) {
        p.epoch++;
        p.fetchOffset = p.position;
        this.backoff(p);
        this.ensureLoops();
      }
    }
  }
}

function toMessage(r: LogRecord): KafkaMessage {
  const headers: IHeaders = {};
  for (const h of r.headers) headers[h.key] = h.value ?? undefined;
  return { key: r.key, value: r.value, timestamp: String(r.timestamp), offset: String(r.offset), headers, size: (r.key?.length ?? 0) + (r.value?.length ?? 0), attributes: 0 };
}

function groupByTopic(list: Array<{ topic: string; partition: number }>): TopicPartitions[] {
  const m = new Map<string, number[]>();
  for (const p of list) m.set(p.topic, [...(m.get(p.topic) ?? []), p.partition]);
  return [...m].map(([topic, partitions]) => ({ topic, partitions: partitions.sort((a, b) => a - b) }));
}

export const PartitionAssignersByName: Record<string, PartitionAssigner> = { range: RangeAssigner, roundrobin: RoundRobinAssigner, 'cooperative-sticky': CooperativeStickyAssigner };
