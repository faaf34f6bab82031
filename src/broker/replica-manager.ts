// The replica manager owns every partition replica hosted by this broker: it opens and
// deletes their logs, applies roles from the metadata image, answers produce, consumer
// fetch and replica fetch, parks acks=all produces and long-poll fetches, shrinks and
// expands ISRs through the controller, and runs retention and compaction.
import { mkdir, readdir, readFile, rm, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { RaftkaError, ERRORS, isRaftkaError, errorByCode } from '../common/errors.ts';
import { componentLogger, type Logger } from '../common/logger.ts';
import type { Clock } from '../common/clock.ts';
import { PartitionLog } from '../log/partition-log.ts';
import { LOG_CONFIG_DEFS, logConfig } from '../log/config.ts';
import type { IsrChange } from '../replication/leader-state.ts';
import { DelayedOperations } from './delayed.ts';
import { FetchSessionCache, markSent, worthSending, type LeaderFetchSession, type SessionPartition } from './fetch-session.ts';
import { Partition } from './partition.ts';
import { ReplicaFetcherManager } from './replica-fetcher.ts';
import {
  tpKey,
  type ControllerClient,
  type LeaderlessReplica,
  type PartitionAssignment,
  type ReplicaFetchClient,
  type ReplicaFetchPartitionResponse,
  type ReplicaFetchRequest,
  type ReplicaFetchResponse,
} from './types.ts';

export interface ReplicaManagerOptions {
  brokerId: number;
  brokerEpoch: () => number;
  dataDir: string;
  clock: Clock;
  logger: Logger;
  fetchClient: ReplicaFetchClient;
  controller: ControllerClient;
  /** Broker-level defaults for topic configs (log.* keys without the prefix, min.insync.replicas). */
  topicDefaults?: Record<string, string>;
  defaultMinInsyncReplicas?: number;
  replicaLagTimeMaxMs?: number;
  replicaFetchWaitMaxMs?: number;
  replicaFetchMaxBytes?: number;
  replicaFetchBackoffMs?: number;
  /** How often ISR shrink is checked. */
  isrCheckIntervalMs?: number;
  /** How often retention and compaction run (log.retention.check.interval.ms). */
  retentionCheckIntervalMs?: number;
  /** producer.id.expiration.ms: idle idempotent producers are forgotten after this long (default 1 day). */
  producerIdExpirationMs?: number;
  /** producer.id.expiration.check.interval.ms (default 10 minutes, as Kafka). */
  producerIdExpirationCheckIntervalMs?: number;
  /** Bytes appended to a partition between producer state snapshots, besides one per segment roll (default 64 MiB). */
  producerSnapshotIntervalBytes?: number;
  /** Test-only: fsync observer handed to every log (power-loss simulation). */
  onSync?: (path: string, length: number) => void;
}

export interface ProduceResult {
  baseOffset: number;
  logAppendTimeMs: number;
  logStartOffset: number;
}

export interface FetchPartitionRequest {
  topicId: string;
  partition: number;
  fetchOffset: number;
  maxBytes: number;
}

export interface FetchPartitionResult {
  topicId: string;
  partition: number;
  errorCode: number;
  errorMessage?: string;
  highWatermark: number;
  logStartOffset: number;
  lastStableOffset: number;
  records: Buffer;
}

const PARTITION_METADATA = 'partition.metadata';

function partitionDirName(topic: string, partition: number): string {
  return `${topic}-${partition}`;
}

/** How often idle partitions' tail caches are swept. */
const TAIL_CACHE_SWEEP_MS = 500;
/** How often fetch sessions of followers gone away are looked for. */
const FETCH_SESSION_SWEEP_MS = 10_000;
const EMPTY = Buffer.alloc(0);

export class ReplicaManager {
  private readonly partitions = new Map<string, Partition>();
  /** Per partition: the topic config (fingerprint) its open log runs with. */
  private readonly appliedConfig = new Map<string, string>();
  private readonly opening = new Map<string, Promise<Partition>>();
  private readonly delayed = new DelayedOperations();
  private readonly fetchSessions = new FetchSessionCache();
  private readonly fetchers: ReplicaFetcherManager;
  private readonly logger: Logger;
  private timers: NodeJS.Timeout[] = [];
  private closed = false;

  constructor(private readonly opts: ReplicaManagerOptions) {
    this.logger = componentLogger(opts.logger, 'replica-manager', { brokerId: opts.brokerId });
    this.fetchers = new ReplicaFetcherManager({
      brokerId: opts.brokerId,
      brokerEpoch: opts.brokerEpoch,
      client: opts.fetchClient,
      clock: opts.clock,
      logger: componentLogger(opts.logger, 'replica-fetcher', { brokerId: opts.brokerId }),
      maxWaitMs: opts.replicaFetchWaitMaxMs ?? 500,
      maxBytesPerPartition: opts.replicaFetchMaxBytes ?? 1024 * 1024,
      maxBytes: 10 * 1024 * 1024,
      backoffMs: opts.replicaFetchBackoffMs ?? 100,
      onProgress: (p) => this.delayed.touch(`leo:${tpKey(p.tp.topicId, p.tp.partition)}`),
    });
  }

  start(): void {
    this.timers.push(setInterval(() => this.checkIsr(), this.opts.isrCheckIntervalMs ?? 250));
    this.timers.push(setInterval(() => this.expireTailCaches(), TAIL_CACHE_SWEEP_MS));
    this.timers.push(setInterval(() => this.fetchSessions.evictIdle(this.opts.clock.monotonicMs()), FETCH_SESSION_SWEEP_MS));
    this.timers.push(setInterval(() => void this.runRetention(), this.opts.retentionCheckIntervalMs ?? 300_000));
    this.timers.push(setInterval(() => this.expireProducers(), this.opts.producerIdExpirationCheckIntervalMs ?? 600_000));
    for (const t of this.timers) t.unref();
  }

  /** Idle partitions' tail caches give their memory back (see log/tail-cache.ts). */
  private expireTailCaches(): void {
    for (const p of this.partitions.values()) p.log.expireTailCache();
  }

  partition(topicId: string, partition: number): Partition | undefined {
    return this.partitions.get(tpKey(topicId, partition));
  }

  allPartitions(): Partition[] {
    return [...this.partitions.values()];
  }

  /**
   * Where the log of every hosted replica whose partition has no leader ends (at most
   * `max` of them), for the controller's unclean elections [KIP-966 unclean recovery].
   * Nothing appends to such a log until a leader is elected.
   */
  leaderlessReplicas(max: number): LeaderlessReplica[] {
    const out: LeaderlessReplica[] = [];
    for (const p of this.partitions.values()) {
      if (out.length >= max) break;
      if (p.role.kind !== 'follower' || p.role.leaderId >= 0) continue;
      out.push({ topicId: p.tp.topicId, partition: p.tp.partition, leaderEpoch: p.leaderEpoch, lastWrittenEpoch: p.lastFetchedEpoch(), logEndOffset: p.log.logEndOffset });
    }
    return out;
  }

  // ---- reconciliation with the metadata image ----

  /**
   * Brings hosted replicas in line with `assignments` (every partition whose replica set
   * holds this broker). Replicas no longer assigned are stopped and their data deleted.
   */
  async reconcile(assignments: readonly PartitionAssignment[]): Promise<void> {
    if (this.closed) return;
    const now = this.opts.clock.monotonicMs();
    const wanted = new Set<string>();
    // Assignments of one topic share one config object: fingerprint it once.
    const fingerprints = new Map<Readonly<Record<string, string>>, string>();
    const fingerprint = (c: Readonly<Record<string, string>>): string => {
      let f = fingerprints.get(c);
      if (f === undefined) fingerprints.set(c, (f = JSON.stringify(Object.entries(c).sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0)))));
      return f;
    };
    for (const a of assignments) {
      const key = tpKey(a.topicId, a.partition);
      wanted.add(key);
      let p: Partition;
      try {
        p = this.partitions.get(key) ?? (await this.openPartition(a));
      } catch (e) {
        this.logger.error({ err: e, tp: key }, 'cannot open partition log');
        continue;
      }
      p.updateSettings(this.settingsFor(a));
      // Topic configs changed (IncrementalAlterConfigs): the open log takes the new values.
      const f = fingerprint(a.config);
      const applied = this.appliedConfig.get(key);
      if (applied === undefined) this.appliedConfig.set(key, f);
      else if (applied !== f) {
        try {
          p.log.updateConfig(this.logConfigFor(a));
          this.appliedConfig.set(key, f);
          this.logger.info({ tp: key, config: a.config }, 'topic config changed');
        } catch (e) {
          this.logger.error({ err: e, tp: key }, 'cannot apply the new topic config');
        }
      }
      const change = p.reconcile(a, now);
      if (change === 'becameLeader') {
        this.fetchers.unfollow(key);
        this.flushNewLeader(p, key);
      } else if (change === 'becameFollower') {
        this.fetchers.follow(p);
      }
      if (change !== 'unchanged') {
        this.delayed.touch(`hw:${key}`);
        this.delayed.touch(`leo:${key}`);
      }
    }
    for (const [key, p] of this.partitions) {
      if (wanted.has(key)) continue;
      this.partitions.delete(key);
      this.appliedConfig.delete(key);
      this.fetchers.unfollow(key);
      this.delayed.touch(`hw:${key}`);
      this.delayed.touch(`leo:${key}`);
      this.logger.info({ tp: key, dir: p.log.dir }, 'replica removed; deleting its data');
      p.stopProducerSnapshots();
      try {
        await p.log.deleteAll();
        await rm(p.log.dir, { recursive: true, force: true });
      } catch (e) {
        this.logger.error({ err: e, tp: key }, 'deleting partition data failed');
      }
    }
  }

  /**
   * A new leader's own flushed offset counts toward its durable HW, which must reach the
   * epoch start before consumers are served. Its log end may not be fsynced yet (a
   * follower append still flushing when leadership arrived), and only a produce would
   * report later progress: flush now and report it, so an idle partition gets there too.
   */
  private flushNewLeader(p: Partition, key: string): void {
    if (!p.durable || p.log.flushedOffset >= p.log.logEndOffset) return;
    void p.log.flush().then(
      () => {
        if (p.onLocalProgress()) this.delayed.touch(`hw:${key}`);
      },
      (e: unknown) => this.logger.warn({ tp: key, err: (e as Error).message }, 'flushing the new leader log failed'),
    );
  }

  private settingsFor(a: PartitionAssignment) {
    const min = Number(a.config['min.insync.replicas'] ?? this.opts.defaultMinInsyncReplicas ?? 1);
    return { minInsyncReplicas: min, replicaLagTimeMaxMs: this.opts.replicaLagTimeMaxMs ?? 10_000 };
  }

  private logConfigFor(a: PartitionAssignment) {
    const input: Record<string, string> = {};
    for (const [k, v] of Object.entries({ ...this.opts.topicDefaults, ...a.config })) {
      if (Object.hasOwn(LOG_CONFIG_DEFS, k)) input[k] = v;
    }
    return logConfig(input);
  }

  private openPartition(a: PartitionAssignment): Promise<Partition> {
    const key = tpKey(a.topicId, a.partition);
    let p = this.opening.get(key);
    if (!p) {
      p = this.doOpen(a).finally(() => this.opening.delete(key));
      this.opening.set(key, p);
    }
    return p;
  }

  private async doOpen(a: PartitionAssignment): Promise<Partition> {
    const dir = join(this.opts.dataDir, partitionDirName(a.topic, a.partition));
    await mkdir(dir, { recursive: true });
    // A directory left by a deleted topic of the same name holds another topic's data.
    const metaPath = join(dir, PARTITION_METADATA);
    const existing = await readFile(metaPath, 'utf8').catch(() => undefined);
    const id = existing?.match(/topic_id: (\S+)/)?.[1];
    if (id !== undefined && id !== a.topicId) {
      this.logger.warn({ dir, onDisk: id, expected: a.topicId }, 'partition directory belongs to an older topic id; deleting it');
      await rm(dir, { recursive: true, force: true });
      await mkdir(dir, { recursive: true });
    }
    if (id !== a.topicId) await writeFile(metaPath, `version: 0\ntopic_id: ${a.topicId}\n`);
    const log = await PartitionLog.open(dir, {
      config: this.logConfigFor(a),
      clock: this.opts.clock,
      logger: this.opts.logger,
      ...(this.opts.onSync ? { onSync: this.opts.onSync } : {}),
    });
    const p = new Partition(a, log, this.opts.brokerId, this.settingsFor(a), componentLogger(this.opts.logger, 'partition', { tp: `${a.topic}-${a.partition}` }), {
      ...(this.opts.producerIdExpirationMs !== undefined ? { expirationMs: this.opts.producerIdExpirationMs } : {}),
      ...(this.opts.producerSnapshotIntervalBytes !== undefined ? { snapshotIntervalBytes: this.opts.producerSnapshotIntervalBytes } : {}),
      clock: this.opts.clock,
    });
    try {
      // Idempotent producer state: the newest snapshot plus the batches after it [KIP-98].
      await p.loadProducerState();
    } catch (e) {
      await log.close().catch(() => undefined);
      throw e;
    }
    this.partitions.set(tpKey(a.topicId, a.partition), p);
    return p;
  }

  /** Partition directories on disk that no assignment names (for start-up cleanup by the node). */
  async strayDirectories(): Promise<string[]> {
    const names = await readdir(this.opts.dataDir).catch(() => [] as string[]);
    const known = new Set([...this.partitions.values()].map((p) => p.log.dir));
    return names.map((n) => join(this.opts.dataDir, n)).filter((d) => /-\d+$/.test(d) && !known.has(d));
  }

  private requirePartition(topicId: string, partition: number): Partition {
    const p = this.partitions.get(tpKey(topicId, partition));
    if (!p) throw new RaftkaError('UNKNOWN_TOPIC_OR_PARTITION', `broker ${this.opts.brokerId} hosts no replica of ${topicId}-${partition}`);
    return p;
  }

  // ---- produce ----

  async produce(topicId: string, partition: number, records: Buffer, acks: number, timeoutMs: number): Promise<ProduceResult> {
    if (acks !== -1 && acks !== 0 && acks !== 1) throw new RaftkaError('INVALID_REQUIRED_ACKS', `acks must be -1 (all), 0 or 1, got ${acks}`);
    const p = this.requirePartition(topicId, partition);
    const epoch = p.leaderEpoch;
    const key = tpKey(topicId, partition);
    // Followers parked on this partition's log end fetch as soon as the batch is written.
    const info = await p.appendAsLeader(records, acks, () => this.delayed.touch(`leo:${key}`));
    // Partition.appendAsLeader has already applied the local progress, so a second
    // onLocalProgress() reports no change even when the append moved the HW (a
    // single-replica ISR): wake HW waiters (parked consumer fetches) unconditionally.
    p.onLocalProgress();
    this.delayed.touch(`hw:${key}`);
    const result = { baseOffset: info.firstOffset, logAppendTimeMs: info.logAppendTimeMs, logStartOffset: p.log.logStartOffset };
    if (acks !== -1) return result;
    const end = info.lastOffset + 1;
    return new Promise<ProduceResult>((resolve, reject) => {
      const check = (): boolean => {
        switch (p.ackState(end, epoch)) {
          case 'committed':
            resolve(result);
            return true;
          case 'notLeader':
            reject(new RaftkaError('NOT_LEADER_OR_FOLLOWER', `leadership of ${p.tp.topic}-${partition} moved before the write was replicated`));
            return true;
          case 'waiting':
          case 'notEnoughReplicas':
            return false;
        }
      };
      this.delayed.park([`hw:${key}`], timeoutMs, check, () => {
        const state = p.ackState(end, epoch);
        if (state === 'committed') resolve(result);
        else if (state === 'notEnoughReplicas') reject(new RaftkaError('NOT_ENOUGH_REPLICAS_AFTER_APPEND', `written at offset ${info.firstOffset}, but the ISR fell below min.insync.replicas`));
        else if (state === 'notLeader') reject(new RaftkaError('NOT_LEADER_OR_FOLLOWER', 'leadership moved'));
        else reject(new RaftkaError('REQUEST_TIMED_OUT', `not replicated to the ISR within ${timeoutMs} ms`));
      });
    });
  }

  // ---- consumer fetch ----

  private async readOne(r: FetchPartitionRequest): Promise<FetchPartitionResult> {
    const base = { topicId: r.topicId, partition: r.partition, lastStableOffset: -1 };
    try {
      const p = this.requirePartition(r.topicId, r.partition);
      const out = await p.readForConsumer(r.fetchOffset, r.maxBytes);
      return { ...base, errorCode: 0, highWatermark: out.highWatermark, logStartOffset: out.logStartOffset, lastStableOffset: out.highWatermark, records: out.records };
    } catch (e) {
      const err = isRaftkaError(e) ? e : new RaftkaError('UNKNOWN_SERVER_ERROR', (e as Error).message);
      if (!isRaftkaError(e)) this.logger.error({ err: e }, 'fetch failed');
      const p = this.partitions.get(tpKey(r.topicId, r.partition));
      return { ...base, errorCode: err.code, errorMessage: err.message, highWatermark: p?.highWatermark ?? -1, logStartOffset: p?.log.logStartOffset ?? -1, records: Buffer.alloc(0) };
    }
  }

  /** Long-poll fetch: answers when `minBytes` are available, on an error, or after `maxWaitMs`. */
  async fetch(partitions: readonly FetchPartitionRequest[], maxWaitMs: number, minBytes: number): Promise<FetchPartitionResult[]> {
    const first = await Promise.all(partitions.map((r) => this.readOne(r)));
    const bytes = first.reduce((n, r) => n + r.records.length, 0);
    if (maxWaitMs <= 0 || bytes >= Math.max(1, minBytes) || first.some((r) => r.errorCode !== 0) || partitions.length === 0) return first;
    return new Promise<FetchPartitionResult[]>((resolve) => {
      const ready = () =>
        partitions.some((r) => {
          const p = this.partitions.get(tpKey(r.topicId, r.partition));
          return !p || p.role.kind !== 'leader' || p.highWatermark > r.fetchOffset;
        });
      const finish = () => {
        void Promise.all(partitions.map((r) => this.readOne(r))).then(resolve);
      };
      this.delayed.park(
        partitions.map((r) => `hw:${tpKey(r.topicId, r.partition)}`),
        maxWaitMs,
        () => {
          if (!ready()) return false;
          finish();
          return true;
        },
        finish,
      );
    });
  }

  // ---- replica fetch (this broker as leader) ----

  async handleReplicaFetch(req: ReplicaFetchRequest): Promise<ReplicaFetchResponse> {
    // The fetch time: a follower is caught up if it asked for the log end as of now.
    const now = this.opts.clock.monotonicMs();
    const resolved = this.fetchSessions.resolve(req, now);
    if ('errorCode' in resolved) {
      this.logger.debug({ replicaId: req.replicaId, why: resolved.message }, 'replica fetch session refused');
      return { errorCode: resolved.errorCode, sessionId: 0, partitions: [] };
    }
    const session = resolved.session;
    const first = await this.answerFollower(session, now);
    if (first.bytes > 0 || first.urgent || req.maxWaitMs <= 0) return this.toFollower(session, first.sent);
    // Nothing new: park until any of the session's partitions gets data (or the wait
    // ends), so an acks=all produce reaches followers without a polling delay.
    return new Promise<ReplicaFetchResponse>((resolve) => {
      const finish = () => {
        void this.answerFollower(session, now).then((r) => resolve(this.toFollower(session, r.sent)));
      };
      this.delayed.park(
        session.parkKeys(),
        req.maxWaitMs,
        () => {
          if (!this.followerHasNews(session)) return false;
          finish();
          return true;
        },
        finish,
      );
    });
  }

  /**
   * Serves every partition of a follower's session (each one's fetch also reports the
   * follower's progress: HW, ISR); keeps only the answers worth sending. A method rather
   * than closures: it runs for every partition of every replica fetch.
   */
  private async answerFollower(session: LeaderFetchSession, now: number): Promise<{ sent: Array<[SessionPartition, ReplicaFetchPartitionResponse]>; bytes: number; urgent: boolean }> {
    const sent: Array<[SessionPartition, ReplicaFetchPartitionResponse]> = [];
    let bytes = 0;
    let urgent = false;
    for (const sp of session.partitions.values()) {
      const p = this.partitions.get(sp.key);
      let response: ReplicaFetchPartitionResponse;
      if (!p) {
        response = { topicId: sp.fetch.topicId, partition: sp.fetch.partition, errorCode: ERRORS.UNKNOWN_TOPIC_OR_PARTITION.code, highWatermark: -1, logStartOffset: -1, logEndOffset: -1, records: EMPTY };
      } else {
        const out = await p.readForFollower(session.replicaId, sp.fetch, now);
        if (out.hwAdvanced) this.delayed.touch(`hw:${sp.key}`);
        if (out.isrChange) this.alterIsr(p, out.isrChange);
        response = out.response;
      }
      sp.answeredHighWatermark = response.highWatermark;
      if (!worthSending(sp, response)) continue;
      if (response.errorCode !== 0 || response.divergingEpoch) urgent = true;
      bytes += response.records.length;
      sent.push([sp, response]);
    }
    return { sent, bytes, urgent };
  }

  private toFollower(session: LeaderFetchSession, sent: ReadonlyArray<[SessionPartition, ReplicaFetchPartitionResponse]>): ReplicaFetchResponse {
    const partitions: ReplicaFetchPartitionResponse[] = [];
    for (const [sp, r] of sent) {
      markSent(sp, r);
      partitions.push(r);
    }
    return { errorCode: 0, sessionId: session.id, partitions };
  }

  /** A parked follower fetch has something to carry: data, a new HW, or a partition that moved. */
  private followerHasNews(session: LeaderFetchSession): boolean {
    for (const sp of session.partitions.values()) {
      const p = this.partitions.get(sp.key);
      if (!p || p.role.kind !== 'leader' || p.log.logEndOffset > sp.fetch.fetchOffset || p.highWatermark > sp.answeredHighWatermark) return true;
    }
    return false;
  }

  // ---- list offsets ----

  /** Kafka ListOffsets: -1 latest (the HW), -2 earliest, otherwise the first offset at or after the timestamp. */
  async listOffset(topicId: string, partition: number, timestamp: number): Promise<{ offset: number; timestamp: number }> {
    const p = this.requirePartition(topicId, partition);
    if (p.role.kind !== 'leader') throw new RaftkaError('NOT_LEADER_OR_FOLLOWER', `broker ${this.opts.brokerId} is not the leader; leader is ${p.leaderId}`);
    if (!p.role.state.readyForConsumers) throw new RaftkaError('OFFSET_NOT_AVAILABLE', 'the new leader has not caught up its high watermark yet');
    if (timestamp === -1) return { offset: p.highWatermark, timestamp: -1 };
    if (timestamp === -2) return { offset: p.log.logStartOffset, timestamp: -1 };
    if (timestamp < 0) throw new RaftkaError('INVALID_REQUEST', `timestamp ${timestamp} is neither -1 (latest), -2 (earliest) nor a time`);
    const found = await p.log.offsetForTimestamp(timestamp);
    if (found === undefined || found >= p.highWatermark) return { offset: -1, timestamp: -1 };
    return { offset: found, timestamp };
  }

  // ---- idempotent producers ----

  /** Forgets producers idle past producer.id.expiration.ms on every hosted replica. */
  expireProducers(nowMs: number = this.opts.clock.nowMs()): number {
    let n = 0;
    for (const p of this.partitions.values()) n += p.expireProducers(nowMs);
    if (n > 0) this.logger.info({ expired: n }, 'expired idle producer ids');
    return n;
  }

  // ---- ISR maintenance ----

  private checkIsr(): void {
    const now = this.opts.clock.monotonicMs();
    for (const p of this.partitions.values()) {
      if (p.role.kind !== 'leader') continue;
      const change = p.role.state.maybeShrink(now);
      if (change) this.alterIsr(p, change);
    }
  }

  private alterIsr(p: Partition, change: IsrChange): void {
    if (p.role.kind !== 'leader') return;
    const state = p.role.state;
    const key = tpKey(p.tp.topicId, p.tp.partition);
    this.logger.info({ tp: key, reason: change.reason, from: state.isr, to: change.isr }, 'proposing ISR change');
    this.opts.controller
      .alterPartition({
        brokerId: this.opts.brokerId,
        topicId: p.tp.topicId,
        partition: p.tp.partition,
        leaderEpoch: state.leaderEpoch,
        partitionEpoch: state.partitionEpoch,
        newIsr: change.isr,
      })
      .then((resp) => {
        if (p.role.kind !== 'leader' || p.role.state !== state) return;
        if (resp.errorCode === 0 && resp.isr && resp.partitionEpoch !== undefined) {
          if (state.onIsrCommitted(resp.isr, resp.partitionEpoch)) this.delayed.touch(`hw:${key}`);
        } else {
          this.logger.info({ tp: key, error: errorByCode(resp.errorCode) }, 'ISR change rejected');
          state.onIsrRejected();
        }
        this.delayed.touch(`hw:${key}`);
      })
      .catch((e: unknown) => {
        this.logger.warn({ tp: key, err: (e as Error).message }, 'AlterPartition failed; will retry');
        state.onIsrRejected();
      });
  }

  // ---- retention and compaction ----

  async runRetention(): Promise<void> {
    for (const p of this.partitions.values()) {
      try {
        const bound = p.role.kind === 'leader' ? p.highWatermark : Math.min(p.highWatermark, p.log.logEndOffset);
        await p.log.deleteOldSegments(bound);
        await p.log.compact(bound);
      } catch (e) {
        if (!this.closed) this.logger.warn({ err: (e as Error).message, dir: p.log.dir }, 'retention or compaction failed');
      }
    }
  }

  /** Closes every replica; resolves true when every log closed cleanly (flushed and sealed). */
  async close(): Promise<boolean> {
    this.closed = true;
    for (const t of this.timers) clearInterval(t);
    await this.fetchers.close();
    this.delayed.expireAll();
    let clean = true;
    for (const p of this.partitions.values()) {
      await p.close().catch((e: unknown) => {
        clean = false;
        this.logger.warn({ tp: `${p.tp.topic}-${p.tp.partition}`, err: (e as Error).message }, 'replica did not close cleanly');
      });
    }
    this.partitions.clear();
    return clean;
  }
}
