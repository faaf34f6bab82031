// The consumer's side of the classic group protocol (proto/group.proto): finding the
// coordinator, JoinGroup/SyncGroup (the leader runs the assignor), Heartbeat,
// LeaveGroup, OffsetCommit and OffsetFetch, each retried across coordinator moves
// (NOT_COORDINATOR, COORDINATOR_NOT_AVAILABLE, COORDINATOR_LOAD_IN_PROGRESS, a broken
// connection) until a deadline. It owns the member id and generation; what to do with
// an assignment is the consumer's business.
import * as grpc from '@grpc/grpc-js';
import { errorByCode, type ErrorName } from '../common/errors.ts';
import type { Logger } from '../common/logger.ts';
import { CHANNEL_OPTIONS, callUnary, type RpcMethod } from '../proto/rpc.ts';
import { GroupsRpc, type GroupsService, type JoinGroupResponse, type OffsetCommitTopic } from '../proto/group.ts';
import type { Cluster } from './cluster.ts';
import type { PartitionAssigner, TopicPartitions } from './assignors.ts';
import { decodeAssignment, decodeSubscription, encodeAssignment, encodeSubscription } from './consumer-protocol.ts';
import { RaftkaProtocolError } from './errors.ts';

const COORDINATOR_ERRORS: ReadonlySet<ErrorName> = new Set(['NOT_COORDINATOR', 'COORDINATOR_NOT_AVAILABLE', 'COORDINATOR_LOAD_IN_PROGRESS']);
const RETRY_MS = 100;
const SLACK_MS = 5_000;

type Req<K extends keyof GroupsService> = GroupsService[K][0];
type Res<K extends keyof GroupsService> = GroupsService[K][1];

/** Group rpcs to whichever broker coordinates a group, one channel per broker address. */
export class GroupRpc {
  private readonly channels = new Map<string, grpc.Client>();
  private coordinator: string | undefined;

  constructor(
    private readonly cluster: Cluster,
    readonly groupId: string,
    private readonly requestTimeoutMs: number,
    private readonly log: Logger,
  ) {}

  private channel(address: string): grpc.Client {
    let c = this.channels.get(address);
    if (!c) this.channels.set(address, (c = new grpc.Client(address, grpc.credentials.createInsecure(), CHANNEL_OPTIONS)));
    return c;
  }

  /** One call to one broker, no retries. */
  callAt<K extends keyof GroupsService>(address: string, name: K, req: Req<K>, timeoutMs = this.requestTimeoutMs, signal?: AbortSignal): Promise<Res<K>> {
    const m = GroupsRpc[name] as unknown as RpcMethod<Req<K>, Res<K>>;
    return callUnary(this.channel(address), m, req, { timeoutMs, ...(signal ? { signal } : {}) });
  }

  /** Asks any broker which one coordinates the group, until one answers or `deadline`. */
  async findCoordinator(deadline: number, signal?: AbortSignal): Promise<string> {
    for (;;) {
      let code = 0;
      let message: string;
      try {
        const r = await this.cluster.anyBroker((c) => this.callAt(c.address, 'FindCoordinator', { key: this.groupId, keyType: 0 }, this.requestTimeoutMs, signal));
        if (r.errorCode === 0) return (this.coordinator = `${r.host}:${r.port}`);
        code = r.errorCode;
        message = r.errorMessage;
        if (!COORDINATOR_ERRORS.has(errorByCode(code))) throw RaftkaProtocolError.fromCode(code, message);
      } catch (e) {
        if (e instanceof RaftkaProtocolError || signal?.aborted) throw e;
        message = (e as Error).message;
      }
      if (Date.now() > deadline) throw new RaftkaProtocolError(code ? errorByCode(code) : 'COORDINATOR_NOT_AVAILABLE', `group ${this.groupId}: no coordinator found: ${message}`);
      await delay(RETRY_MS, signal);
    }
  }

  /**
   * Calls the group's coordinator, finding it again after a coordinator error or a broken
   * connection, until `deadlineMs` from now. Other errors come back in the response.
   */
  async call<K extends keyof GroupsService>(name: K, req: Req<K>, opts: { timeoutMs?: number; deadlineMs?: number; signal?: AbortSignal } = {}): Promise<Res<K>> {
    const deadline = Date.now() + (opts.deadlineMs ?? this.requestTimeoutMs);
    for (;;) {
      const address = this.coordinator ?? (await this.findCoordinator(deadline, opts.signal));
      let failure: string;
      try {
        const r = await this.callAt(address, name, req, opts.timeoutMs ?? this.requestTimeoutMs, opts.signal);
        const code = (r as { errorCode: number }).errorCode;
        if (!COORDINATOR_ERRORS.has(errorByCode(code))) return r;
        failure = errorByCode(code);
      } catch (e) {
        if (opts.signal?.aborted) throw e;
        failure = (e as Error).message;
      }
      this.coordinator = undefined;
      this.log.debug({ rpc: name, coordinator: address, failure }, 'coordinator call failed; finding the coordinator again');
      if (Date.now() > deadline) throw new RaftkaProtocolError('COORDINATOR_NOT_AVAILABLE', `group ${this.groupId}: ${String(name)} failed: ${failure}`);
      await delay(RETRY_MS, opts.signal);
    }
  }

  close(): void {
    for (const c of this.channels.values()) c.close();
    this.channels.clear();
  }
}

export function delay(ms: number, signal?: AbortSignal): Promise<void> {
  return new Promise((resolve) => {
    if (signal?.aborted) return resolve();
    const t = setTimeout(done, ms);
    function done() {
      clearTimeout(t);
      signal?.removeEventListener('abort', done);
      resolve();
    }
    signal?.addEventListener('abort', done, { once: true });
  });
}

export interface MembershipOptions {
  sessionTimeoutMs: number;
  rebalanceTimeoutMs: number;
  groupInstanceId: string | undefined;
  assigners: PartitionAssigner[];
}

export interface JoinResult {
  generationId: number;
  memberId: string;
  leaderId: string;
  isLeader: boolean;
  protocolName: string;
  assignment: TopicPartitions[];
}

/** The member id, generation and join/sync/heartbeat/leave of one consumer. */
export class Membership {
  memberId = '';
  generationId = -1;
  protocolName = '';

  constructor(
    readonly rpc: GroupRpc,
    private readonly cluster: Cluster,
    private readonly opts: MembershipOptions,
    private readonly log: Logger,
  ) {}

  get groupId(): string {
    return this.rpc.groupId;
  }

  /** Joins (or rejoins) and syncs; loops on the answers that only mean "join again". */
  async join(topics: string[], owned: TopicPartitions[], reason: string, signal: AbortSignal): Promise<JoinResult> {
    const joinTimeout = this.opts.rebalanceTimeoutMs + SLACK_MS;
    for (;;) {
      const protocols = this.opts.assigners.map((a) => ({ name: a.name, metadata: encodeSubscription({ topics, userData: null, ownedPartitions: a.protocol === 'COOPERATIVE' ? owned : [] }) }));
      const r = await this.rpc.call(
        'JoinGroup',
        {
          groupId: this.groupId,
          sessionTimeoutMs: this.opts.sessionTimeoutMs,
          rebalanceTimeoutMs: this.opts.rebalanceTimeoutMs,
          memberId: this.memberId,
          groupInstanceId: this.opts.groupInstanceId ?? '',
          protocolType: 'consumer',
          protocols,
          reason,
        },
        { timeoutMs: joinTimeout, deadlineMs: joinTimeout, signal },
      );
      const err = errorByCode(r.errorCode);
      if (err === 'MEMBER_ID_REQUIRED') {
        this.memberId = r.memberId;
        continue;
      }
      if (err === 'UNKNOWN_MEMBER_ID') {
        this.memberId = '';
        this.generationId = -1;
        continue;
      }
      if (err === 'REBALANCE_IN_PROGRESS') continue;
      if (r.errorCode !== 0) throw RaftkaProtocolError.fromCode(r.errorCode, `JoinGroup ${this.groupId}: ${r.errorMessage}`);
      this.memberId = r.memberId;
      this.generationId = r.generationId;
      this.protocolName = r.protocolName;
      const isLeader = r.leader === r.memberId;
      const assignments = isLeader && !r.skipAssignment ? await this.assign(r) : [];
      const s = await this.rpc.call(
        'SyncGroup',
        { groupId: this.groupId, generationId: r.generationId, memberId: r.memberId, groupInstanceId: this.opts.groupInstanceId ?? '', protocolType: 'consumer', protocolName: r.protocolName, assignments },
        { timeoutMs: joinTimeout, deadlineMs: joinTimeout, signal },
      );
      const serr = errorByCode(s.errorCode);
      if (serr === 'REBALANCE_IN_PROGRESS' || serr === 'ILLEGAL_GENERATION') continue;
      if (serr === 'UNKNOWN_MEMBER_ID') {
        this.memberId = '';
        this.generationId = -1;
        continue;
      }
      if (s.errorCode !== 0) throw RaftkaProtocolError.fromCode(s.errorCode, `SyncGroup ${this.groupId}: ${s.errorMessage}`);
      const a = decodeAssignment(s.assignment);
      return { generationId: r.generationId, memberId: r.memberId, leaderId: r.leader, isLeader, protocolName: r.protocolName, assignment: a.assignment.filter((tp) => tp.partitions.length > 0) };
    }
  }

  /** The leader's part: every member's assignment from the chosen assignor. */
  private async assign(r: JoinGroupResponse): Promise<Array<{ memberId: string; assignment: Buffer }>> {
    const assigner = this.opts.assigners.find((a) => a.name === r.protocolName);
    if (!assigner) throw new RaftkaProtocolError('INCONSISTENT_GROUP_PROTOCOL', `the group chose assignor ${r.protocolName}, which this consumer does not have`);
    const members = r.members.map((m) => {
      const s = decodeSubscription(m.metadata);
      return { memberId: m.memberId, topics: s.topics, ownedPartitions: s.ownedPartitions };
    });
    const topics = [...new Set(members.flatMap((m) => m.topics))];
    await this.cluster.refresh(topics).catch((e: unknown) => this.log.warn({ err: (e as Error).message }, 'metadata refresh before assigning failed'));
    const partitionsPerTopic: Record<string, number> = {};
    for (const t of topics) {
      const view = this.cluster.topic(t);
      if (view && view.partitions.length > 0) partitionsPerTopic[t] = view.partitions.length;
    }
    const out = assigner.assign({ members, partitionsPerTopic });
    this.log.info({ generationId: r.generationId, assignor: assigner.name, assignment: out }, 'computed the group assignment');
    return members.map((m) => ({
      memberId: m.memberId,
      assignment: encodeAssignment({ assignment: Object.entries(out[m.memberId] ?? {}).map(([topic, partitions]) => ({ topic, partitions })), userData: null }),
    }));
  }

  /** One heartbeat; returns the error name (undefined when fine). */
  async heartbeat(signal: AbortSignal): Promise<ErrorName | undefined> {
    const r = await this.rpc.call('Heartbeat', { groupId: this.groupId, generationId: this.generationId, memberId: this.memberId, groupInstanceId: this.opts.groupInstanceId ?? '' }, { deadlineMs: this.opts.sessionTimeoutMs, signal });
    return r.errorCode === 0 ? undefined : errorByCode(r.errorCode);
  }

  async leave(reason: string): Promise<void> {
    if (this.memberId === '') return;
    const r = await this.rpc.call('LeaveGroup', { groupId: this.groupId, members: [{ memberId: this.memberId, groupInstanceId: this.opts.groupInstanceId ?? '', reason }] }, { deadlineMs: 5_000 });
    if (r.errorCode !== 0) this.log.warn({ error: errorByCode(r.errorCode), message: r.errorMessage }, 'LeaveGroup failed');
    this.memberId = '';
    this.generationId = -1;
  }

  /** Commits as this member (or as an outsider before joining: generation -1). */
  async commit(topics: OffsetCommitTopic[], deadlineMs: number): Promise<void> {
    const r = await this.rpc.call('OffsetCommit', { groupId: this.groupId, generationId: this.generationId, memberId: this.memberId, groupInstanceId: this.opts.groupInstanceId ?? '', topics }, { deadlineMs });
    if (r.errorCode !== 0) throw RaftkaProtocolError.fromCode(r.errorCode, `OffsetCommit ${this.groupId}: ${r.errorMessage}`);
    for (const t of r.topics) for (const p of t.partitions) if (p.errorCode !== 0) throw RaftkaProtocolError.fromCode(p.errorCode, p.errorMessage, { topic: t.name, partition: p.partition });
  }
}

/** Committed offsets of a group for some partitions (-1: none). */
export async function fetchCommitted(rpc: GroupRpc, topics: TopicPartitions[], deadlineMs: number, signal?: AbortSignal): Promise<Map<string, number>> {
  const r = await rpc.call('OffsetFetch', { groupId: rpc.groupId, topics: topics.map((t) => ({ name: t.topic, partitions: t.partitions })) }, { deadlineMs, ...(signal ? { signal } : {}) });
  if (r.errorCode !== 0) throw RaftkaProtocolError.fromCode(r.errorCode, `OffsetFetch ${rpc.groupId}: ${r.errorMessage}`);
  const out = new Map<string, number>();
  for (const t of r.topics) {
    for (const p of t.partitions) {
      if (p.errorCode !== 0) throw RaftkaProtocolError.fromCode(p.errorCode, p.errorMessage, { topic: t.name, partition: p.partition });
      out.set(`${t.name}:${p.partition}`, p.committedOffset);
    }
  }
  return out;
}
