// Followers pull from partition leaders: one fetch loop per leader broker, carrying every
// partition this broker follows from it. Each response is appended as is; a diverging
// epoch truncates the log first [KIP-320]; epoch errors pause a partition until the
// metadata image moves it on. Long-polling on the leader keeps idle loops cheap.
import type { Logger } from '../common/logger.ts';
import type { Clock } from '../common/clock.ts';
import { ERRORS, errorByCode } from '../common/errors.ts';
import { divergenceTruncationOffset } from '../replication/truncation.ts';
import { FollowerFetchSession } from './fetch-session.ts';
import type { Partition } from './partition.ts';
import { tpKey, type ReplicaFetchClient, type ReplicaFetchPartition, type ReplicaFetchPartitionResponse } from './types.ts';

export interface FetcherOptions {
  brokerId: number;
  brokerEpoch: () => number;
  client: ReplicaFetchClient;
  clock: Clock;
  logger: Logger;
  maxWaitMs: number;
  maxBytesPerPartition: number;
  maxBytes: number;
  backoffMs: number;
  /** Told after a follower appended (e.g. to answer parked fetches). */
  onProgress?: (p: Partition) => void;
}

class LeaderFetcher {
  readonly partitions = new Map<string, Partition>();
  /** Partitions held back after an error, until this time. */
  private readonly pausedUntil = new Map<string, number>();
  private readonly abort = new AbortController();
  private running: Promise<void> | undefined;
  private readonly session = new FollowerFetchSession();
  private wake: (() => void) | undefined;

  constructor(
    readonly leaderId: number,
    private readonly opts: FetcherOptions,
  ) {}

  start(): void {
    this.running ??= this.loop().catch((e: unknown) => this.opts.logger.error({ err: e, leader: this.leaderId }, 'fetcher stopped'));
  }

  add(p: Partition): void {
    this.partitions.set(tpKey(p.tp.topicId, p.tp.partition), p);
    this.pausedUntil.delete(tpKey(p.tp.topicId, p.tp.partition));
    this.wake?.();
  }

  remove(key: string): void {
    this.partitions.delete(key);
  }

  async stop(): Promise<void> {
    this.abort.abort();
    this.wake?.();
    await this.running;
  }

  private sleep(ms: number): Promise<void> {
    return new Promise((resolve) => {
      const done = () => {
        clearTimeout(timer);
        this.wake = undefined;
        resolve();
      };
      const timer = setTimeout(done, ms);
      this.wake = done;
    });
  }

  private async loop(): Promise<void> {
    const { logger } = this.opts;
    while (!this.abort.signal.aborted) {
      const now = this.opts.clock.monotonicMs();
      const wanted = new Map<string, ReplicaFetchPartition>();
      for (const [key, p] of this.partitions) {
        if ((this.pausedUntil.get(key) ?? 0) > now) continue;
        if (p.role.kind !== 'follower' || p.role.leaderId !== this.leaderId) continue;
        wanted.set(key, {
          topicId: p.tp.topicId,
          partition: p.tp.partition,
          currentLeaderEpoch: p.leaderEpoch,
          fetchOffset: p.log.logEndOffset,
          lastFetchedEpoch: p.lastFetchedEpoch(),
          flushedOffset: p.log.flushedOffset,
          maxBytes: this.opts.maxBytesPerPartition,
        });
      }
      if (wanted.size === 0) {
        await this.sleep(this.opts.backoffMs);
        continue;
      }
      const part = this.session.build(wanted);
      let resp;
      try {
        resp = await this.opts.client.fetch(
          this.leaderId,
          {
            replicaId: this.opts.brokerId,
            brokerEpoch: this.opts.brokerEpoch(),
            maxWaitMs: this.opts.maxWaitMs,
            minBytes: 1,
            maxBytes: this.opts.maxBytes,
            ...part,
          },
          this.abort.signal,
        );
      } catch (e) {
        this.session.reset();
        if (this.abort.signal.aborted) return;
        logger.debug({ err: (e as Error).message, leader: this.leaderId }, 'replica fetch failed; backing off');
        await this.sleep(this.opts.backoffMs);
        continue;
      }
      if (resp.errorCode !== 0) {
        this.session.reset();
        // A lost session (leader restarted, a response lost) is not a reason to wait.
        if (resp.errorCode === ERRORS.FETCH_SESSION_ID_NOT_FOUND.code || resp.errorCode === ERRORS.INVALID_FETCH_SESSION_EPOCH.code) {
          logger.debug({ error: errorByCode(resp.errorCode), leader: this.leaderId }, 'fetch session lost; starting a new one');
          continue;
        }
        logger.debug({ error: errorByCode(resp.errorCode), leader: this.leaderId }, 'replica fetch refused');
        await this.sleep(this.opts.backoffMs);
        continue;
      }
      this.session.answered(resp.sessionId);
      // Partitions are applied concurrently: each append ends with its own fdatasync
      // (flush.before.ack), and one after the other those would add up on every round,
      // delaying the next fetch that reports them (and with it the leader's HW).
      await Promise.all(resp.partitions.map((r) => this.apply(r, wanted)));
      // Every append has completed (apply awaits it) and nothing keeps a view of the bytes.
      this.opts.client.release?.(resp);
    }
  }

  /** Applies one partition's part of a fetch response (errors pause the partition). */
  private async apply(r: ReplicaFetchPartitionResponse, wanted: ReadonlyMap<string, ReplicaFetchPartition>): Promise<void> {
    const { logger } = this.opts;
    const key = tpKey(r.topicId, r.partition);
    const req = wanted.get(key);
    const p = this.partitions.get(key);
    if (!req || !p) return;
    // The partition may have changed role while the fetch was in flight.
    if (p.role.kind !== 'follower' || p.role.leaderId !== this.leaderId || p.leaderEpoch !== req.currentLeaderEpoch) return;
    try {
      if (r.errorCode !== 0) {
        if (r.errorCode === ERRORS.OFFSET_OUT_OF_RANGE.code && r.logStartOffset > p.log.logEndOffset) {
          // The leader deleted what we would need next: start over at its log start.
          logger.warn({ tp: key, leaderLogStart: r.logStartOffset }, 'follower is behind the leader log start; resetting');
          await p.truncateFullyAndStartAt(r.logStartOffset);
          return;
        }
        logger.debug({ tp: key, error: errorByCode(r.errorCode) }, 'partition fetch error; pausing');
        this.pausedUntil.set(key, this.opts.clock.monotonicMs() + this.opts.backoffMs);
        return;
      }
      if (r.divergingEpoch) {
        const offset = divergenceTruncationOffset(
          { endOffsetFor: (e) => p.log.endOffsetForEpoch(e) },
          p.log.logEndOffset,
          r.divergingEpoch,
        );
        logger.info({ tp: key, diverging: r.divergingEpoch, truncateTo: offset }, 'truncating divergent log tail');
        if (offset < p.log.logStartOffset) await p.truncateFullyAndStartAt(Math.max(offset, r.logStartOffset));
        else await p.truncateTo(offset);
        return;
      }
      await p.appendFromLeader(r);
      this.opts.onProgress?.(p);
    } catch (e) {
      logger.warn({ tp: key, err: (e as Error).message }, 'applying fetched data failed; pausing partition');
      this.pausedUntil.set(key, this.opts.clock.monotonicMs() + this.opts.backoffMs);
    }
  }
}

/** Owns the per-leader fetchers; a partition follows at most one leader at a time. */
export class ReplicaFetcherManager {
  private readonly fetchers = new Map<number, LeaderFetcher>();
  private readonly assigned = new Map<string, number>();

  constructor(private readonly opts: FetcherOptions) {}

  /** Makes `p` fetch from its current leader (or from no one when the leader is unknown). */
  follow(p: Partition): void {
    const key = tpKey(p.tp.topicId, p.tp.partition);
    this.unfollow(key);
    if (p.role.kind !== 'follower' || p.role.leaderId < 0) return;
    const leader = p.role.leaderId;
    let f = this.fetchers.get(leader);
    if (!f) {
      f = new LeaderFetcher(leader, this.opts);
      this.fetchers.set(leader, f);
      f.start();
    }
    f.add(p);
    this.assigned.set(key, leader);
  }

  unfollow(key: string): void {
    const leader = this.assigned.get(key);
    if (leader === undefined) return;
    this.assigned.delete(key);
    const f = this.fetchers.get(leader);
    f?.remove(key);
    if (f && f.partitions.size === 0) {
      this.fetchers.delete(leader);
      void f.stop();
    }
  }

  async close(): Promise<void> {
    const all = [...this.fetchers.values()];
    this.fetchers.clear();
    this.assigned.clear();
    await Promise.all(all.map((f) => f.stop()));
  }
}
