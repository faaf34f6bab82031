/**
 * The group coordinator of one broker: it serves the groups whose `__consumer_offsets`
 * partition this broker leads. On gaining a partition it replays the partition (group
 * metadata and offset commits, last record per key wins) before answering for its
 * groups (COORDINATOR_LOAD_IN_PROGRESS until then); on losing it, it fails waiting calls
 * with NOT_COORDINATOR and forgets the groups. Every state change is written to the
 * partition with acks=all (through `OffsetsLog`) before it is answered, so a new leader
 * rebuilds exactly what clients were told.
 */
import { ERRORS, isRaftkaError, type ErrorName } from '../common/errors.ts';
import type { Clock } from '../common/clock.ts';
import { componentLogger, type Logger } from '../common/logger.ts';
import { decodeRecords, iterateBatches } from '../log/batch.ts';
import type {
  DeleteGroupsResponse,
  DescribeGroupsResponse,
  HeartbeatRequest,
  HeartbeatResponse,
  JoinGroupRequest,
  JoinGroupResponse,
  LeaveGroupRequest,
  LeaveGroupResponse,
  ListGroupsResponse,
  OffsetCommitRequest,
  OffsetCommitResponse,
  OffsetFetchRequest,
  OffsetFetchResponse,
  Status,
  SyncGroupRequest,
  SyncGroupResponse,
} from '../proto/group.ts';
import { Group, type GroupConfig, type GroupRecord, type CommittedOffset } from './group.ts';
import { decodeGroupValue, decodeKey, decodeOffsetValue, encodeKey, groupPartition } from './records.ts';

export const OFFSETS_TOPIC = '__consumer_offsets';
const OFFSET_METADATA_MAX_BYTES = 4096;
const LOAD_READ_BYTES = 1024 * 1024;

/** The coordinator's view of the `__consumer_offsets` partitions (node.ts: the replica manager). */
export interface OffsetsLog {
  /** Appends records as one batch with acks=all; rejects when not committed. */
  append(partition: number, records: GroupRecord[]): Promise<void>;
  /** Raw batches from `fromOffset` (at most about `maxBytes`) and the log end offset. */
  read(partition: number, fromOffset: number, maxBytes: number): Promise<{ records: Buffer; logStartOffset: number; logEndOffset: number }>;
}

export interface GroupCoordinatorOptions {
  brokerId: number;
  clock: Clock;
  logger: Logger;
  log: OffsetsLog;
  config: GroupConfig;
  /** Whether a topic-partition exists (OffsetCommit refuses unknown ones). */
  partitionExists: (topic: string, partition: number) => boolean;
  tickIntervalMs?: number;
}

interface OwnedPartition {
  epoch: number;
  loaded: boolean;
  groups: Map<string, Group>;
}

function status(name: ErrorName, message: string): Status {
  return { errorCode: ERRORS[name].code, errorMessage: message };
}

const NO_ERROR: Status = { errorCode: 0, errorMessage: '' };

export class GroupCoordinator {
  private readonly owned = new Map<number, OwnedPartition>();
  private partitionCount = 0;
  private readonly log: Logger;
  private timer: NodeJS.Timeout | undefined;

  constructor(private readonly opts: GroupCoordinatorOptions) {
    this.log = componentLogger(opts.logger, 'group-coordinator', { brokerId: opts.brokerId });
  }

  start(): void {
    this.timer = setInterval(() => this.tick(), this.opts.tickIntervalMs ?? 200);
    this.timer.unref();
  }

  stop(): void {
    clearInterval(this.timer);
    for (const p of this.owned.values()) for (const g of p.groups.values()) g.unload();
    this.owned.clear();
  }

  partitionFor(groupId: string): number {
    return groupPartition(groupId, this.partitionCount);
  }

  /**
   * Applies leadership of `__consumer_offsets` partitions: `led` maps each partition this
   * broker leads to its leader epoch. New ones are loaded, lost ones unloaded.
   */
  onLeadership(partitionCount: number, led: ReadonlyMap<number, number>): void {
    this.partitionCount = partitionCount;
    for (const [p, owned] of this.owned) {
      if (led.get(p) !== owned.epoch) {
        for (const g of owned.groups.values()) g.unload();
        this.owned.delete(p);
        this.log.info({ partition: p }, 'unloaded groups of a __consumer_offsets partition');
      }
    }
    for (const [p, epoch] of led) {
      if (this.owned.has(p)) continue;
      const owned: OwnedPartition = { epoch, loaded: false, groups: new Map() };
      this.owned.set(p, owned);
      void this.load(p, owned);
    }
  }

  private async load(p: number, owned: OwnedPartition): Promise<void> {
    const started = this.opts.clock.nowMs();
    try {
      let offset = 0;
      let records = 0;
      for (;;) {
        if (this.owned.get(p) !== owned) return;
        const r = await this.opts.log.read(p, offset, LOAD_READ_BYTES);
        if (offset < r.logStartOffset) offset = r.logStartOffset;
        let advanced = false;
        for (const { header, bytes } of iterateBatches(r.records)) {
          if (header.lastOffset < offset) continue;
          for (const rec of decodeRecords(bytes)) {
            if (rec.offset < offset || !rec.key) continue;
            this.replay(owned, rec.key, rec.value);
            records++;
          }
          offset = header.lastOffset + 1;
          advanced = true;
        }
        if (offset >= r.logEndOffset || !advanced) break;
      }
      if (this.owned.get(p) !== owned) return;
      // A group whose metadata and offsets all ended in tombstones was deleted: the old
      // coordinator answered Dead for it, and so must this one.
      for (const [id, g] of owned.groups) {
        if (g.isGarbage && g.generation === 0) owned.groups.delete(id);
        // Offsets committed from outside any membership (no group record) expire by their
        // commit time alone, not from this load (which would restart the retention).
        else if (g.generation === 0 && g.protocolType === null) g.stateSinceMs = 0;
      }
      owned.loaded = true;
      this.log.info({ partition: p, records, groups: owned.groups.size, ms: this.opts.clock.nowMs() - started }, 'loaded groups of a __consumer_offsets partition');
    } catch (e) {
      this.log.error({ err: e, partition: p }, 'loading groups failed; retrying');
      if (this.owned.get(p) === owned) {
        owned.groups.clear();
        setTimeout(() => void this.load(p, owned), 500).unref();
      }
    }
  }

  private replay(owned: OwnedPartition, keyBytes: Buffer, value: Buffer | null): void {
    const key = decodeKey(keyBytes);
    if (!key) return;
    const g = this.groupIn(owned, key.group, true)!;
    if (key.kind === 'offset') g.restoreOffset(key.topic, key.partition, value === null ? null : decodeOffsetValue(value));
    else g.restore(value === null ? null : decodeGroupValue(value));
  }

  private groupIn(owned: OwnedPartition, groupId: string, create: boolean): Group | undefined {
    let g = owned.groups.get(groupId);
    if (!g && create) {
      const p = this.partitionFor(groupId);
      g = new Group(groupId, this.opts.clock, this.opts.config, (records) => this.opts.log.append(p, records), (why) => this.log.info({ group: groupId, why }, 'rebalance'));
      owned.groups.set(groupId, g);
    }
    return g;
  }

  /** The group if this broker serves it now, else the error to answer. */
  private route(groupId: string, create: boolean): { group?: Group; error?: Status } {
    if (groupId === '') return { error: status('INVALID_GROUP_ID', 'the group id is empty') };
    if (this.partitionCount === 0) return { error: status('NOT_COORDINATOR', `broker ${this.opts.brokerId} does not coordinate any group yet`) };
    const p = this.partitionFor(groupId);
    const owned = this.owned.get(p);
    if (!owned) return { error: status('NOT_COORDINATOR', `broker ${this.opts.brokerId} does not lead ${OFFSETS_TOPIC}-${p}`) };
    if (!owned.loaded) return { error: status('COORDINATOR_LOAD_IN_PROGRESS', `${OFFSETS_TOPIC}-${p} is loading`) };
    const group = this.groupIn(owned, groupId, create);
    return group ? { group } : {};
  }

  // ─── requests ───

  async joinGroup(req: JoinGroupRequest, clientId: string, clientHost: string): Promise<JoinGroupResponse> {
    const { group, error } = this.route(req.groupId, true);
    if (error) return { ...error, generationId: -1, protocolType: '', protocolName: '', leader: '', memberId: req.memberId ?? '', members: [], skipAssignment: false };
    return group!.join(req, clientId, clientHost);
  }

  async syncGroup(req: SyncGroupRequest): Promise<SyncGroupResponse> {
    const { group, error } = this.route(req.groupId, false);
    const empty = { protocolType: '', protocolName: '', assignment: Buffer.alloc(0) };
    if (error) return { ...error, ...empty };
    if (!group) return { ...status('UNKNOWN_MEMBER_ID', `group ${req.groupId} does not exist`), ...empty };
    return group.sync(req);
  }

  heartbeat(req: HeartbeatRequest): HeartbeatResponse {
    const { group, error } = this.route(req.groupId, false);
    if (error) return error;
    if (!group) return status('UNKNOWN_MEMBER_ID', `group ${req.groupId} does not exist`);
    return group.heartbeat(req);
  }

  leaveGroup(req: LeaveGroupRequest): LeaveGroupResponse {
    const { group, error } = this.route(req.groupId, false);
    if (error) return { ...error, members: [] };
    if (!group) {
      return { ...NO_ERROR, members: req.members.map((m) => ({ memberId: m.memberId, groupInstanceId: m.groupInstanceId ?? '', ...status('UNKNOWN_MEMBER_ID', `group ${req.groupId} does not exist`) })) };
    }
    return { ...NO_ERROR, members: group.leave(req.members) };
  }

  async offsetCommit(req: OffsetCommitRequest): Promise<OffsetCommitResponse> {
    const answerAll = (s: Status): OffsetCommitResponse => ({ ...s, topics: req.topics.map((t) => ({ name: t.name, partitions: t.partitions.map((p) => ({ partition: p.partition, ...s })) })) });
    const { group, error } = this.route(req.groupId, true);
    if (error) return answerAll(error);
    const allowed = group!.commitAllowed(req.generationId, req.memberId ?? '', req.groupInstanceId || undefined);
    if (allowed.errorCode !== 0) return answerAll(allowed);
    const now = this.opts.clock.nowMs();
    const valid: CommittedOffset[] = [];
    const results = req.topics.map((t) => ({
      name: t.name,
      partitions: t.partitions.map((p) => {
        let s: Status = NO_ERROR;
        if (!this.opts.partitionExists(t.name, p.partition)) s = status('UNKNOWN_TOPIC_OR_PARTITION', `${t.name}-${p.partition} does not exist`);
        else if (!Number.isSafeInteger(p.committedOffset) || p.committedOffset < 0) s = status('INVALID_COMMIT_OFFSET_SIZE', `offset ${p.committedOffset} is not a valid position`);
        else if (Buffer.byteLength(p.committedMetadata ?? '') > OFFSET_METADATA_MAX_BYTES) s = status('OFFSET_METADATA_TOO_LARGE', `metadata is over ${OFFSET_METADATA_MAX_BYTES} bytes`);
        else valid.push({ topic: t.name, partition: p.partition, offset: p.committedOffset, leaderEpoch: p.committedLeaderEpoch ?? -1, metadata: p.committedMetadata ?? '', commitTimestamp: now });
        return { partition: p.partition, ...s };
      }),
    }));
    if (valid.length > 0) {
      try {
        await group!.commit(valid);
      } catch (e) {
        const s = status('COORDINATOR_NOT_AVAILABLE', `the commit was not stored: ${(e as Error).message}`);
        for (const t of results) for (const p of t.partitions) if (p.errorCode === 0) Object.assign(p, s);
      }
    }
    return { ...NO_ERROR, topics: results };
  }

  offsetFetch(req: OffsetFetchRequest): OffsetFetchResponse {
    const { group, error } = this.route(req.groupId, false);
    if (error) return { ...error, topics: [] };
    const asked = req.topics ?? [];
    const byTopic = new Map<string, CommittedOffset[]>();
    for (const o of group?.offsets.values() ?? []) {
      const list = byTopic.get(o.topic) ?? [];
      list.push(o);
      byTopic.set(o.topic, list);
    }
    const one = (topic: string, partition: number) => {
      const o = group?.committed(topic, partition);
      return { partition, committedOffset: o?.offset ?? -1, committedLeaderEpoch: o?.leaderEpoch ?? -1, metadata: o?.metadata ?? '', ...NO_ERROR };
    };
    const topics =
      asked.length === 0
        ? [...byTopic].map(([name, list]) => ({ name, partitions: list.sort((a, b) => a.partition - b.partition).map((o) => one(name, o.partition)) }))
        : asked.map((t) => ({
            name: t.name,
            partitions: (t.partitions && t.partitions.length > 0 ? t.partitions : (byTopic.get(t.name) ?? []).map((o) => o.partition).sort((a, b) => a - b)).map((p) => one(t.name, p)),
          }));
    return { ...NO_ERROR, topics };
  }

  describeGroups(groups: readonly string[]): DescribeGroupsResponse {
    return {
      ...NO_ERROR,
      groups: groups.map((id) => {
        const { group, error } = this.route(id, false);
        const dead = { groupId: id, groupState: 'Dead', protocolType: '', protocolData: '', members: [], generationId: -1, leader: '' };
        if (error) return { ...dead, ...error };
        return group && group.state !== 'Dead' ? group.describe() : { ...dead, ...NO_ERROR };
      }),
    };
  }

  listGroups(states: readonly string[]): ListGroupsResponse {
    const out: ListGroupsResponse['groups'] = [];
    for (const owned of this.owned.values()) {
      if (!owned.loaded) continue;
      for (const g of owned.groups.values()) {
        if (g.state === 'Dead' || (g.isGarbage && g.generation === 0)) continue;
        if (states.length > 0 && !states.includes(g.state)) continue;
        out.push({ groupId: g.groupId, protocolType: g.protocolType ?? '', groupState: g.state });
      }
    }
    return { ...NO_ERROR, groups: out.sort((a, b) => a.groupId.localeCompare(b.groupId)) };
  }

  async deleteGroups(groups: readonly string[]): Promise<DeleteGroupsResponse> {
    const results = await Promise.all(
      groups.map(async (id) => {
        const { group, error } = this.route(id, false);
        if (error) return { groupId: id, ...error };
        if (!group || group.state === 'Dead' || (group.isGarbage && group.generation === 0)) return { groupId: id, ...status('GROUP_ID_NOT_FOUND', `group ${id} does not exist`) };
        try {
          await group.delete();
          return { groupId: id, ...NO_ERROR };
        } catch (e) {
          if (isRaftkaError(e) && e.errorName === 'NON_EMPTY_GROUP') return { groupId: id, ...status('NON_EMPTY_GROUP', (e as Error).message) };
          return { groupId: id, ...status('COORDINATOR_NOT_AVAILABLE', `deleting failed: ${(e as Error).message}`) };
        }
      }),
    );
    return { ...NO_ERROR, results };
  }

  private tick(): void {
    for (const [p, owned] of this.owned) {
      if (!owned.loaded) continue;
      for (const [id, g] of owned.groups) {
        const records = g.tick();
        const gone = g.state === 'Dead' || (g.isGarbage && g.state === 'Empty');
        // An empty group with nothing left is removed, in the log too (as Kafka's
        // cleanupGroupMetadata does), so the next leader does not list it again.
        if (gone && g.state === 'Empty' && g.generation > 0) records.push({ key: encodeKey({ kind: 'group', group: id }), value: null });
        if (records.length > 0) {
          this.opts.log.append(p, records).catch((e: unknown) => this.log.warn({ err: (e as Error).message, group: id }, 'writing expired offsets failed'));
        }
        if (gone) owned.groups.delete(id);
      }
    }
  }
}
