/**
 * The consumer groups of one `__consumer_offsets` partition: membership (Kafka's classic
 * group protocol), generations, static members [KIP-345] and committed offsets. No I/O:
 * time comes from the injected clock, durable writes go through `append` (the
 * coordinator writes them to the partition with acks=all), and waiting RPCs (JoinGroup,
 * SyncGroup) are callbacks this class resolves. `tick()` runs the timers: session
 * expiry, rebalance deadlines, offset retention.
 *
 * States (Kafka's names): Empty (no members; offsets may remain), PreparingRebalance
 * (waiting for members to (re)join), CompletingRebalance (joined; waiting for the
 * leader's assignment), Stable, Dead (deleted or unloaded).
 */
import { randomUUID } from 'node:crypto';
import { ERRORS, RaftkaError, type ErrorName } from '../common/errors.ts';
import type { Clock } from '../common/clock.ts';
import type {
  JoinGroupProtocol,
  JoinGroupRequest,
  JoinGroupResponse,
  SyncGroupRequest,
  SyncGroupResponse,
  HeartbeatRequest,
  LeaveGroupMember,
  LeaveGroupMemberResponse,
  Status,
  DescribedGroup,
} from '../proto/group.ts';
import { encodeGroupValue, encodeKey, encodeOffsetValue, type GroupValue, type OffsetValue } from './records.ts';

export type GroupState = 'Empty' | 'PreparingRebalance' | 'CompletingRebalance' | 'Stable' | 'Dead';

export interface GroupConfig {
  minSessionTimeoutMs: number;
  maxSessionTimeoutMs: number;
  /** How long a rebalance of an empty group waits for more members [KIP-134]. */
  initialRebalanceDelayMs: number;
  maxSize: number;
  /** Committed offsets of an empty group expire this long after it became empty [KIP-211]. */
  offsetsRetentionMs: number;
}

export interface GroupRecord {
  key: Buffer;
  value: Buffer | null;
}

export interface CommittedOffset extends OffsetValue {
  topic: string;
  partition: number;
}

interface Member {
  memberId: string;
  groupInstanceId: string | null;
  clientId: string;
  clientHost: string;
  sessionTimeoutMs: number;
  rebalanceTimeoutMs: number;
  protocols: JoinGroupProtocol[];
  assignment: Buffer;
  lastHeartbeatMs: number;
  joinWaiter?: (r: JoinGroupResponse) => void;
  syncWaiter?: (r: SyncGroupResponse) => void;
}

const NO_ERROR: Status = { errorCode: 0, errorMessage: '' };

function status(name: ErrorName, message: string): Status {
  return { errorCode: ERRORS[name].code, errorMessage: message };
}

function joinError(name: ErrorName, message: string, memberId = ''): JoinGroupResponse {
  return { ...status(name, message), generationId: -1, protocolType: '', protocolName: '', leader: '', memberId, members: [], skipAssignment: false };
}

function syncError(name: ErrorName, message: string): SyncGroupResponse {
  return { ...status(name, message), protocolType: '', protocolName: '', assignment: Buffer.alloc(0) };
}

function sameProtocols(a: readonly JoinGroupProtocol[], b: readonly JoinGroupProtocol[]): boolean {
  return a.length === b.length && a.every((p, i) => p.name === b[i]!.name && p.metadata.equals(b[i]!.metadata));
}

export class Group {
  state: GroupState = 'Empty';
  generation = 0;
  protocolType: string | null = null;
  protocol: string | null = null;
  leader: string | null = null;
  /** When the group entered its current state (epoch ms): offset retention counts from Empty. */
  stateSinceMs: number;
  readonly members = new Map<string, Member>();
  /** group.instance.id → member id of static members. */
  private readonly instances = new Map<string, string>();
  /** Member ids handed out with MEMBER_ID_REQUIRED, with when they expire. */
  private readonly pending = new Map<string, number>();
  private rebalanceDeadlineMs = 0;
  private joinNotBeforeMs = 0;
  readonly offsets = new Map<string, CommittedOffset>();

  constructor(
    readonly groupId: string,
    private readonly clock: Clock,
    private readonly config: GroupConfig,
    private readonly append: (records: GroupRecord[]) => Promise<void>,
    /** Told why each rebalance starts (the coordinator logs it). */
    private readonly onRebalance?: (why: string) => void,
  ) {
    this.stateSinceMs = clock.nowMs();
  }

  // ─── load ───

  /** Replays a group metadata record (null: the group was deleted). */
  restore(v: GroupValue | null): void {
    this.members.clear();
    this.instances.clear();
    if (v === null) {
      this.state = 'Empty';
      this.generation = 0;
      this.protocolType = this.protocol = this.leader = null;
      return;
    }
    this.generation = v.generation;
    this.protocolType = v.protocolType;
    this.protocol = v.protocol;
    this.leader = v.leader;
    this.stateSinceMs = v.stateTimestamp;
    const now = this.clock.nowMs();
    for (const m of v.members) {
      this.members.set(m.memberId, {
        memberId: m.memberId,
        groupInstanceId: m.groupInstanceId,
        clientId: m.clientId,
        clientHost: m.clientHost,
        sessionTimeoutMs: m.sessionTimeoutMs,
        rebalanceTimeoutMs: m.rebalanceTimeoutMs,
        protocols: v.protocol ? [{ name: v.protocol, metadata: m.subscription }] : [],
        assignment: m.assignment,
        // A loaded member gets a full session to find the new coordinator.
        lastHeartbeatMs: now,
      });
      if (m.groupInstanceId) this.instances.set(m.groupInstanceId, m.memberId);
    }
    this.state = this.members.size > 0 ? 'Stable' : 'Empty';
  }

  restoreOffset(topic: string, partition: number, v: OffsetValue | null): void {
    const k = `${topic}\u0000${partition}`;
    if (v === null) this.offsets.delete(k);
    else this.offsets.set(k, { topic, partition, ...v });
  }

  // ─── membership ───

  join(req: JoinGroupRequest, clientId: string, clientHost: string): Promise<JoinGroupResponse> {
    const now = this.clock.nowMs();
    const sessionTimeoutMs = req.sessionTimeoutMs;
    const rebalanceTimeoutMs = req.rebalanceTimeoutMs && req.rebalanceTimeoutMs > 0 ? req.rebalanceTimeoutMs : sessionTimeoutMs;
    const memberId = req.memberId ?? '';
    const instanceId = req.groupInstanceId ? req.groupInstanceId : null;
    if (this.state === 'Dead') return Promise.resolve(joinError('COORDINATOR_NOT_AVAILABLE', `group ${this.groupId} is being removed; retry`, memberId));
    if (sessionTimeoutMs < this.config.minSessionTimeoutMs || sessionTimeoutMs > this.config.maxSessionTimeoutMs) {
      return Promise.resolve(joinError('INVALID_SESSION_TIMEOUT', `session timeout ${sessionTimeoutMs} ms is outside [${this.config.minSessionTimeoutMs}, ${this.config.maxSessionTimeoutMs}]`, memberId));
    }
    if (req.protocolType === '' || req.protocols.length === 0) return Promise.resolve(joinError('INCONSISTENT_GROUP_PROTOCOL', 'a join names a protocol type and at least one protocol', memberId));
    if (!this.supports(req.protocolType, req.protocols)) {
      return Promise.resolve(joinError('INCONSISTENT_GROUP_PROTOCOL', `the group uses protocol type ${this.protocolType} with protocols its members share; this member offers ${req.protocolType} ${req.protocols.map((p) => p.name).join(',')}`, memberId));
    }
    // The first member sets the group's protocol type; the rest must match it.
    if (this.members.size === 0) this.protocolType = req.protocolType;
    const fields = { clientId, clientHost, sessionTimeoutMs, rebalanceTimeoutMs, protocols: req.protocols };

    if (memberId === '') {
      if (instanceId !== null) {
        const oldId = this.instances.get(instanceId);
        if (oldId !== undefined && this.members.has(oldId)) return this.rejoinStatic(oldId, instanceId, fields, now);
        return this.addMember(`${instanceId}-${randomUUID()}`, instanceId, fields, now);
      }
      if (this.members.size + this.pending.size >= this.config.maxSize) return Promise.resolve(joinError('GROUP_MAX_SIZE_REACHED', `group ${this.groupId} has ${this.config.maxSize} members`));
      const newId = `${clientId || 'member'}-${randomUUID()}`;
      this.pending.set(newId, now + sessionTimeoutMs);
      return Promise.resolve({ ...joinError('MEMBER_ID_REQUIRED', 'join again with the member id given', newId) });
    }
    if (this.pending.has(memberId)) {
      this.pending.delete(memberId);
      return this.addMember(memberId, instanceId, fields, now);
    }
    const m = this.members.get(memberId);
    if (!m) return Promise.resolve(joinError('UNKNOWN_MEMBER_ID', `member ${memberId} is not in group ${this.groupId}`, memberId));
    if (instanceId !== null && this.instances.get(instanceId) !== memberId) return Promise.resolve(joinError('FENCED_INSTANCE_ID', `instance ${instanceId} is held by another member`, memberId));
    const changed = !sameProtocols(m.protocols, req.protocols);
    Object.assign(m, fields, { lastHeartbeatMs: now });
    return new Promise((resolve) => {
      if (this.state === 'PreparingRebalance') {
        m.joinWaiter?.(joinError('REBALANCE_IN_PROGRESS', 'superseded by a newer join of the same member', memberId));
        m.joinWaiter = resolve;
        this.maybeCompleteJoin();
      } else if (!changed && (this.state === 'CompletingRebalance' || (this.state === 'Stable' && memberId !== this.leader))) {
        // Rejoining with what it had (e.g. its JoinGroup answer was lost): the current
        // generation again, no rebalance; in Stable only for a follower, since a leader
        // rejoins to have the assignment computed again [Kafka's handleJoinGroup].
        resolve(this.joinResponse(m, false));
      } else {
        m.joinWaiter = resolve;
        this.prepareRebalance(`member ${memberId} rejoined${changed ? ' with new metadata' : ''}`);
      }
    });
  }

  sync(req: SyncGroupRequest): Promise<SyncGroupResponse> {
    const fenced = this.checkMember(req.memberId, req.groupInstanceId, req.generationId);
    if (fenced) return Promise.resolve({ ...syncError('UNKNOWN_MEMBER_ID', ''), ...fenced });
    if ((req.protocolType && req.protocolType !== this.protocolType) || (req.protocolName && req.protocolName !== this.protocol)) {
      return Promise.resolve(syncError('INCONSISTENT_GROUP_PROTOCOL', `the group's protocol is ${this.protocolType}/${this.protocol}`));
    }
    const m = this.members.get(req.memberId)!;
    m.lastHeartbeatMs = this.clock.nowMs();
    if (this.state === 'PreparingRebalance') return Promise.resolve(syncError('REBALANCE_IN_PROGRESS', 'the group is rebalancing; rejoin'));
    if (this.state === 'Stable') return Promise.resolve(this.syncResponse(m));
    return new Promise((resolve) => {
      m.syncWaiter = resolve;
      if (req.memberId !== this.leader) return;
      const assignments = new Map((req.assignments ?? []).map((a) => [a.memberId, a.assignment]));
      const generation = this.generation;
      const snapshot = this.valueWith(assignments);
      this.append([{ key: encodeKey({ kind: 'group', group: this.groupId }), value: encodeGroupValue(snapshot) }]).then(
        () => {
          if (this.generation !== generation || this.state !== 'CompletingRebalance') return;
          for (const mem of this.members.values()) mem.assignment = assignments.get(mem.memberId) ?? Buffer.alloc(0);
          this.setState('Stable');
          for (const mem of this.members.values()) {
            mem.syncWaiter?.(this.syncResponse(mem));
            mem.syncWaiter = undefined;
          }
        },
        (e: unknown) => {
          if (this.generation !== generation) return;
          const err = syncError('COORDINATOR_NOT_AVAILABLE', `storing the assignment failed: ${(e as Error).message}`);
          for (const mem of this.members.values()) {
            mem.syncWaiter?.(err);
            mem.syncWaiter = undefined;
          }
          this.prepareRebalance('storing the assignment failed');
        },
      );
    });
  }

  heartbeat(req: HeartbeatRequest): Status {
    if (this.state === 'Dead') return status('COORDINATOR_NOT_AVAILABLE', `group ${this.groupId} is being removed`);
    const fenced = this.checkMember(req.memberId, req.groupInstanceId, req.generationId);
    if (fenced) return fenced;
    this.members.get(req.memberId)!.lastHeartbeatMs = this.clock.nowMs();
    if (this.state === 'PreparingRebalance') return status('REBALANCE_IN_PROGRESS', 'the group is rebalancing; rejoin');
    return NO_ERROR;
  }

  leave(members: readonly LeaveGroupMember[]): LeaveGroupMemberResponse[] {
    const out: LeaveGroupMemberResponse[] = [];
    for (const lm of members) {
      const instanceId = lm.groupInstanceId || null;
      const id = lm.memberId || (instanceId !== null ? this.instances.get(instanceId) : undefined) || '';
      const base = { memberId: lm.memberId, groupInstanceId: lm.groupInstanceId ?? '' };
      const m = this.members.get(id);
      if (!m) {
        out.push({ ...base, ...status('UNKNOWN_MEMBER_ID', `member ${id || instanceId} is not in group ${this.groupId}`) });
        continue;
      }
      if (instanceId !== null && m.groupInstanceId !== instanceId) {
        out.push({ ...base, ...status('FENCED_INSTANCE_ID', `member ${id} does not hold instance ${instanceId}`) });
        continue;
      }
      this.removeMember(m, `member ${id} left${lm.reason ? `: ${lm.reason}` : ''}`);
      out.push({ ...base, ...NO_ERROR });
    }
    return out;
  }

  // ─── offsets ───

  /**
   * Checks an OffsetCommit's membership: a member's commit needs its current generation;
   * generation -1 with no member id is a commit from outside the group, allowed while
   * the group has no members.
   */
  commitAllowed(generationId: number, memberId: string, instanceId: string | undefined): Status {
    if (this.state === 'Dead') return status('COORDINATOR_NOT_AVAILABLE', `group ${this.groupId} is being removed`);
    if (generationId < 0 && memberId === '') {
      return this.members.size === 0 ? NO_ERROR : status('UNKNOWN_MEMBER_ID', `group ${this.groupId} has members; only they commit`);
    }
    const fenced = this.checkMember(memberId, instanceId, generationId);
    if (fenced) return fenced;
    if (this.state === 'CompletingRebalance') return status('REBALANCE_IN_PROGRESS', 'the group is completing a rebalance; commit after SyncGroup');
    return NO_ERROR;
  }

  async commit(offsets: readonly CommittedOffset[]): Promise<void> {
    await this.append(offsets.map((o) => ({ key: encodeKey({ kind: 'offset', group: this.groupId, topic: o.topic, partition: o.partition }), value: encodeOffsetValue(o) })));
    for (const o of offsets) this.restoreOffset(o.topic, o.partition, o);
  }

  committed(topic: string, partition: number): CommittedOffset | undefined {
    return this.offsets.get(`${topic}\u0000${partition}`);
  }

  /** Deletes the group and its offsets (it must be empty). */
  async delete(): Promise<void> {
    if (this.members.size > 0 || this.state === 'PreparingRebalance') throw new RaftkaError('NON_EMPTY_GROUP', `group ${this.groupId} has members`);
    const records: GroupRecord[] = [...this.offsets.values()].map((o) => ({ key: encodeKey({ kind: 'offset', group: this.groupId, topic: o.topic, partition: o.partition }), value: null }));
    records.push({ key: encodeKey({ kind: 'group', group: this.groupId }), value: null });
    await this.append(records);
    this.offsets.clear();
    this.setState('Dead');
  }

  /** True when the group holds nothing worth keeping (no members, no offsets). */
  get isGarbage(): boolean {
    return this.members.size === 0 && this.pending.size === 0 && this.offsets.size === 0 && this.state !== 'PreparingRebalance';
  }

  // ─── timers ───

  /** Runs the timers; returns records to write (expired offsets) or nothing. */
  tick(): GroupRecord[] {
    const now = this.clock.nowMs();
    for (const [id, expiry] of this.pending) if (now >= expiry) this.pending.delete(id);
    for (const m of [...this.members.values()]) {
      // A member waiting in JoinGroup is alive: its deadline is the rebalance's.
      if (m.joinWaiter) continue;
      if (now - m.lastHeartbeatMs > m.sessionTimeoutMs) this.removeMember(m, `member ${m.memberId}'s session expired`);
    }
    if (this.state === 'PreparingRebalance') this.maybeCompleteJoin();
    const expired: GroupRecord[] = [];
    if (this.state === 'Empty' && this.offsets.size > 0) {
      for (const [k, o] of this.offsets) {
        if (Math.max(o.commitTimestamp, this.stateSinceMs) + this.config.offsetsRetentionMs <= now) {
          this.offsets.delete(k);
          expired.push({ key: encodeKey({ kind: 'offset', group: this.groupId, topic: o.topic, partition: o.partition }), value: null });
        }
      }
    }
    return expired;
  }

  /** Fails every waiting call (the coordinator lost the partition). */
  unload(): void {
    for (const m of this.members.values()) {
      m.joinWaiter?.(joinError('NOT_COORDINATOR', 'the coordinator moved', m.memberId));
      m.syncWaiter?.(syncError('NOT_COORDINATOR', 'the coordinator moved'));
      m.joinWaiter = m.syncWaiter = undefined;
    }
    this.state = 'Dead';
  }

  describe(): DescribedGroup {
    const showProtocol = this.state === 'Stable' || this.state === 'CompletingRebalance';
    return {
      ...NO_ERROR,
      groupId: this.groupId,
      groupState: this.state,
      protocolType: this.protocolType ?? '',
      protocolData: showProtocol ? (this.protocol ?? '') : '',
      generationId: this.generation,
      leader: this.leader ?? '',
      members: [...this.members.values()].map((m) => ({
        memberId: m.memberId,
        groupInstanceId: m.groupInstanceId ?? '',
        clientId: m.clientId,
        clientHost: m.clientHost,
        memberMetadata: this.metadataOf(m) ?? Buffer.alloc(0),
        memberAssignment: showProtocol ? m.assignment : Buffer.alloc(0),
      })),
    };
  }

  // ─── internals ───

  private supports(protocolType: string, protocols: readonly JoinGroupProtocol[]): boolean {
    if (this.members.size === 0) return true;
    if (protocolType !== this.protocolType) return false;
    const names = new Set(protocols.map((p) => p.name));
    return this.commonProtocols().some((n) => names.has(n));
  }

  private commonProtocols(except?: Member): string[] {
    let common: string[] | undefined;
    for (const m of this.members.values()) {
      if (m === except) continue;
      const names = m.protocols.map((p) => p.name);
      common = common === undefined ? names : common.filter((n) => names.includes(n));
    }
    return common ?? [];
  }

  private addMember(memberId: string, instanceId: string | null, fields: Omit<Member, 'memberId' | 'groupInstanceId' | 'assignment' | 'lastHeartbeatMs'>, now: number): Promise<JoinGroupResponse> {
    if (this.members.size >= this.config.maxSize) return Promise.resolve(joinError('GROUP_MAX_SIZE_REACHED', `group ${this.groupId} has ${this.config.maxSize} members`, memberId));
    return new Promise((resolve) => {
      const m: Member = { memberId, groupInstanceId: instanceId, assignment: Buffer.alloc(0), lastHeartbeatMs: now, ...fields, joinWaiter: resolve };
      this.members.set(memberId, m);
      if (instanceId !== null) this.instances.set(instanceId, memberId);
      if (this.state === 'PreparingRebalance') this.maybeCompleteJoin();
      else this.prepareRebalance(`member ${memberId} joined`);
    });
  }

  /** A static member came back with a new member id [KIP-345]. */
  private rejoinStatic(oldId: string, instanceId: string, fields: Omit<Member, 'memberId' | 'groupInstanceId' | 'assignment' | 'lastHeartbeatMs'>, now: number): Promise<JoinGroupResponse> {
    const old = this.members.get(oldId)!;
    old.joinWaiter?.(joinError('FENCED_INSTANCE_ID', `instance ${instanceId} rejoined as a new member`, oldId));
    old.syncWaiter?.(syncError('FENCED_INSTANCE_ID', `instance ${instanceId} rejoined as a new member`));
    const newId = `${instanceId}-${randomUUID()}`;
    const unchanged = sameProtocols(old.protocols, fields.protocols);
    const m: Member = { ...old, ...fields, memberId: newId, lastHeartbeatMs: now, joinWaiter: undefined, syncWaiter: undefined };
    this.members.delete(oldId);
    this.members.set(newId, m);
    this.instances.set(instanceId, newId);
    if (this.leader === oldId) this.leader = newId;
    if (this.state === 'Stable' && unchanged) {
      // Same subscription: the member gets its slot and assignment back, no rebalance.
      const generation = this.generation;
      return this.append([{ key: encodeKey({ kind: 'group', group: this.groupId }), value: encodeGroupValue(this.valueWith()) }]).then(
        () => ({ ...this.joinResponse(m, true), generationId: generation }),
        (e: unknown) => joinError('COORDINATOR_NOT_AVAILABLE', `storing the new member id failed: ${(e as Error).message}`, newId),
      );
    }
    return new Promise((resolve) => {
      m.joinWaiter = resolve;
      if (this.state === 'PreparingRebalance') this.maybeCompleteJoin();
      else this.prepareRebalance(`static member ${instanceId} rejoined${unchanged ? '' : ' with new metadata'}`);
    });
  }

  private removeMember(m: Member, why: string): void {
    m.joinWaiter?.(joinError('UNKNOWN_MEMBER_ID', why, m.memberId));
    m.syncWaiter?.(syncError('UNKNOWN_MEMBER_ID', why));
    this.members.delete(m.memberId);
    if (m.groupInstanceId !== null && this.instances.get(m.groupInstanceId) === m.memberId) this.instances.delete(m.groupInstanceId);
    if (this.state === 'PreparingRebalance') this.maybeCompleteJoin();
    else if (this.state === 'Stable' || this.state === 'CompletingRebalance') this.prepareRebalance(why);
  }

  private prepareRebalance(why: string): void {
    const now = this.clock.nowMs();
    this.onRebalance?.(why);
    // Members waiting for an assignment of the old generation must rejoin.
    for (const m of this.members.values()) {
      m.syncWaiter?.(syncError('REBALANCE_IN_PROGRESS', 'the group is rebalancing; rejoin'));
      m.syncWaiter = undefined;
    }
    const wasEmpty = this.state === 'Empty';
    this.setState('PreparingRebalance');
    const timeout = Math.max(0, ...[...this.members.values()].map((m) => m.rebalanceTimeoutMs));
    this.rebalanceDeadlineMs = now + timeout;
    this.joinNotBeforeMs = wasEmpty ? now + Math.min(this.config.initialRebalanceDelayMs, timeout) : now;
    this.maybeCompleteJoin();
  }

  private maybeCompleteJoin(): void {
    if (this.state !== 'PreparingRebalance') return;
    const now = this.clock.nowMs();
    const allJoined = [...this.members.values()].every((m) => m.joinWaiter !== undefined) && this.pending.size === 0;
    if ((allJoined && now >= this.joinNotBeforeMs) || now >= this.rebalanceDeadlineMs) this.completeJoin();
  }

  private completeJoin(): void {
    // Members that did not rejoin in time are out.
    for (const m of [...this.members.values()]) {
      if (!m.joinWaiter) {
        this.members.delete(m.memberId);
        if (m.groupInstanceId !== null && this.instances.get(m.groupInstanceId) === m.memberId) this.instances.delete(m.groupInstanceId);
      }
    }
    this.generation++;
    if (this.members.size === 0) {
      this.protocol = null;
      this.leader = null;
      this.setState('Empty');
      void this.append([{ key: encodeKey({ kind: 'group', group: this.groupId }), value: encodeGroupValue(this.valueWith()) }]).catch(() => {});
      return;
    }
    this.protocol = this.selectProtocol();
    if (this.leader === null || !this.members.has(this.leader)) this.leader = this.members.keys().next().value!;
    this.setState('CompletingRebalance');
    const now = this.clock.nowMs();
    for (const m of this.members.values()) {
      m.lastHeartbeatMs = now;
      const w = m.joinWaiter!;
      m.joinWaiter = undefined;
      w(this.joinResponse(m, false));
    }
  }

  /** Kafka's vote: each member votes for its most preferred protocol all members support. */
  private selectProtocol(): string {
    const candidates = this.commonProtocols();
    const votes = new Map<string, number>();
    for (const m of this.members.values()) {
      const choice = m.protocols.find((p) => candidates.includes(p.name))?.name;
      if (choice) votes.set(choice, (votes.get(choice) ?? 0) + 1);
    }
    let best = candidates[0]!;
    for (const c of candidates) if ((votes.get(c) ?? 0) > (votes.get(best) ?? 0)) best = c;
    return best;
  }

  private metadataOf(m: Member): Buffer | undefined {
    return m.protocols.find((p) => p.name === this.protocol)?.metadata ?? m.protocols[0]?.metadata;
  }

  private joinResponse(m: Member, skipAssignment: boolean): JoinGroupResponse {
    const isLeader = m.memberId === this.leader;
    return {
      ...NO_ERROR,
      generationId: this.generation,
      protocolType: this.protocolType ?? '',
      protocolName: this.protocol ?? '',
      leader: this.leader ?? '',
      memberId: m.memberId,
      members: isLeader ? [...this.members.values()].map((x) => ({ memberId: x.memberId, groupInstanceId: x.groupInstanceId ?? '', metadata: this.metadataOf(x) ?? Buffer.alloc(0) })) : [],
      skipAssignment,
    };
  }

  private syncResponse(m: Member): SyncGroupResponse {
    return { ...NO_ERROR, protocolType: this.protocolType ?? '', protocolName: this.protocol ?? '', assignment: m.assignment };
  }

  /** Fencing shared by SyncGroup, Heartbeat and OffsetCommit; undefined when the caller is current. */
  private checkMember(memberId: string, instanceId: string | undefined, generationId: number): Status | undefined {
    if (this.state === 'Dead' || this.state === 'Empty') return status('UNKNOWN_MEMBER_ID', `group ${this.groupId} has no member ${memberId}`);
    const m = this.members.get(memberId);
    if (!m) {
      if (instanceId && this.instances.has(instanceId)) return status('FENCED_INSTANCE_ID', `instance ${instanceId} belongs to a newer member`);
      return status('UNKNOWN_MEMBER_ID', `member ${memberId} is not in group ${this.groupId}`);
    }
    if (instanceId && m.groupInstanceId !== instanceId) return status('FENCED_INSTANCE_ID', `member ${memberId} does not hold instance ${instanceId}`);
    if (generationId !== this.generation) return status('ILLEGAL_GENERATION', `generation ${generationId} is not the group's current ${this.generation}`);
    return undefined;
  }

  private setState(s: GroupState): void {
    if (s !== this.state) this.stateSinceMs = this.clock.nowMs();
    this.state = s;
  }

  private valueWith(assignments?: Map<string, Buffer>): GroupValue {
    return {
      protocolType: this.protocolType ?? '',
      generation: this.generation,
      protocol: this.protocol,
      leader: this.leader,
      stateTimestamp: this.clock.nowMs(),
      members: [...this.members.values()].map((m) => ({
        memberId: m.memberId,
        groupInstanceId: m.groupInstanceId,
        clientId: m.clientId,
        clientHost: m.clientHost,
        rebalanceTimeoutMs: m.rebalanceTimeoutMs,
        sessionTimeoutMs: m.sessionTimeoutMs,
        subscription: this.metadataOf(m) ?? Buffer.alloc(0),
        assignment: assignments ? (assignments.get(m.memberId) ?? Buffer.alloc(0)) : m.assignment,
      })),
    };
  }
}
