/**
 * The Jepsen queue/kafka workload against a live cluster: producer clients sending
 * unique increasing integers per key through the SDK producer, and consumer clients
 * reading by `assign` with raw Fetch calls, every operation recorded in a
 * HistoryRecorder (history.ts states the rules). Then, once the runner has healed the
 * cluster and stopped the clients, `finalReads` reads every key from the beginning to
 * its end offset as a process used for nothing else.
 *
 * Half of the consumers (by index and seed) read by `assign` with raw Fetch calls; the
 * others are SDK group consumers (`subscribe` in one group, cooperative-sticky), whose
 * every `eachBatch` is recorded as a poll (with the partitions rebalances gave it since
 * its previous op as `rebalanceLog`) followed by a commit of the next offset; now and
 * then one is torn down without leaving (a crash) and replaced.
 *
 * What is recorded, and why it is truthful:
 * - send ok: the broker acknowledged these offsets. send info: anything else, because a
 *   producer that retried may have had an earlier attempt appended even when the last
 *   attempt failed; a producer that answered info is torn down (recorded as `crash`) and
 *   replaced, so no later send rides on sequence numbers of an unknown outcome. send fail:
 *   only errors raised before any request could leave the client (a bad argument).
 * - poll: a consumer's positions live in this process, so a Fetch that errors consumed
 *   nothing; a poll is ok with what the leaders that answered returned, fail when none
 *   did. A partition answering OFFSET_OUT_OF_RANGE is moved to its log start offset,
 *   recorded as a seek.
 */
import type { Logger } from '../common/logger.ts';
import { ERRORS } from '../common/errors.ts';
import { RawClient } from '../client/raw-client.ts';
import { decodeBatch } from '../client/codecs.ts';
import { readBatchHeader, BATCH_OVERHEAD } from '../log/batch.ts';
import { Raftka, RaftkaClientError, type Producer } from '../client/index.ts';
import type { FetchResponse, MetadataResponse } from '../proto/raftka.ts';
import type { HistoryRecorder, Key, Offset, PollResult, SendRequest, Value } from './history.ts';

/** A small seeded PRNG (mulberry32): the workload's choices replay with the run's seed. */
export function prng(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

export function splitKey(key: Key): { topic: string; partition: number } {
  const i = key.lastIndexOf('-');
  return { topic: key.slice(0, i), partition: Number(key.slice(i + 1)) };
}

export interface WorkloadOptions {
  readonly bootstrap: readonly string[];
  readonly keys: readonly Key[];
  readonly producers: number;
  readonly consumers: number;
  readonly recorder: HistoryRecorder;
  readonly seed: number;
  /** -1 (all in-sync replicas, with idempotence) or 1 (leader only: --unsafe). */
  readonly acks: -1 | 1;
  readonly logger: Logger;
  /** Pause between one client's operations (ms): leaves CPU to the nodes on small machines. */
  readonly pacingMs?: number;
  /** Bound on one send (ms) before it is recorded info. Default 8000. */
  readonly sendTimeoutMs?: number;
}

const sleep = (ms: number) => new Promise<void>((r) => setTimeout(r, ms));

function errorJson(e: unknown): string {
  if (e instanceof Error) return `${e.name}: ${e.message}`.slice(0, 300);
  return String(e).slice(0, 300);
}

/** Rejects after `ms` so that no client op hangs past the run. */
function withDeadline<T>(p: Promise<T>, ms: number, what: string): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  const t = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new Error(`${what} did not complete within ${ms} ms`)), ms);
  });
  return Promise.race([p, t]).finally(() => clearTimeout(timer));
}

/** Leaders and broker addresses, refreshed from any broker that answers. */
class LeaderCache {
  private readonly clients = new Map<string, RawClient>();
  private leaders = new Map<Key, string>();
  private refreshedAt = 0;

  constructor(
    private readonly bootstrap: readonly string[],
    private readonly timeoutMs: number,
  ) {}

  client(address: string): RawClient {
    let c = this.clients.get(address);
    if (!c) this.clients.set(address, (c = new RawClient(address, { timeoutMs: this.timeoutMs })));
    return c;
  }

  leaderAddress(key: Key): string | undefined {
    return this.leaders.get(key);
  }

  forget(key: Key): void {
    this.leaders.delete(key);
  }

  /** Asks brokers in turn (bootstrap first) for metadata; at most every 200 ms. */
  async refresh(topics: readonly string[], force = false): Promise<void> {
    if (!force && Date.now() - this.refreshedAt < 200) return;
    this.refreshedAt = Date.now();
    for (const address of [...this.bootstrap]) {
      let m: MetadataResponse;
      try {
        m = await this.client(address).metadata({ topics: [...topics] }, { timeoutMs: this.timeoutMs });
      } catch {
        continue;
      }
      if (m.errorCode !== 0) continue;
      const brokers = new Map(m.brokers.map((b) => [b.id, `${b.host}:${b.port}`]));
      const leaders = new Map<Key, string>();
      for (const t of m.topics) {
        for (const p of t.partitions) {
          const addr = brokers.get(p.leaderId);
          if (p.errorCode === 0 && addr !== undefined) leaders.set(`${t.name}-${p.partition}`, addr);
        }
      }
      this.leaders = leaders;
      return;
    }
  }

  close(): void {
    for (const c of this.clients.values()) c.close();
    this.clients.clear();
  }
}

/** Record values are decimal integers; anything else is reported as the string read. */
function decodeValue(b: Buffer | null): Value {
  const s = b === null ? 'null' : b.toString('utf8');
  return /^(0|-?[1-9][0-9]{0,14})$/.test(s) ? Number(s) : s;
}

async function decodeRecordSet(records: Buffer, from: Offset): Promise<[Offset, Value][]> {
  const out: [Offset, Value][] = [];
  let pos = 0;
  while (pos + BATCH_OVERHEAD <= records.length) {
    const h = readBatchHeader(records.subarray(pos));
    if (pos + h.sizeInBytes > records.length) break; // a partial batch at the end of a fetch
    if (!h.isControl) {
      for (const r of await decodeBatch(records.subarray(pos, pos + h.sizeInBytes))) {
        if (r.offset >= from) out.push([r.offset, decodeValue(r.value)]);
      }
    }
    pos += h.sizeInBytes;
  }
  return out;
}

export interface FetchOutcome {
  /** Records per key at or after the position asked for, in offset order. */
  readonly records: Map<Key, [Offset, Value][]>;
  /** Keys whose position is past the log: their log start offset, to seek to. */
  readonly outOfRange: Map<Key, Offset>;
  /** Keys answered without error (with or without records), and their high watermarks. */
  readonly answered: Map<Key, Offset>;
  readonly errors: string[];
}

/** One Fetch per leader for the given positions; never throws. */
async function fetchFrom(cache: LeaderCache, positions: ReadonlyMap<Key, Offset>, maxWaitMs: number): Promise<FetchOutcome> {
  const byLeader = new Map<string, Key[]>();
  const errors: string[] = [];
  for (const key of positions.keys()) {
    const addr = cache.leaderAddress(key);
    if (addr === undefined) {
      errors.push(`${key}: no leader known`);
      continue;
    }
    let ks = byLeader.get(addr);
    if (!ks) byLeader.set(addr, (ks = []));
    ks.push(key);
  }
  const records = new Map<Key, [Offset, Value][]>();
  const outOfRange = new Map<Key, Offset>();
  const answered = new Map<Key, Offset>();
  await Promise.all(
    [...byLeader].map(async ([addr, keys]) => {
      const topics = new Map<string, { partition: number; fetchOffset: number; partitionMaxBytes: number }[]>();
      for (const k of keys) {
        const { topic, partition } = splitKey(k);
        let ps = topics.get(topic);
        if (!ps) topics.set(topic, (ps = []));
        ps.push({ partition, fetchOffset: positions.get(k)!, partitionMaxBytes: 64 * 1024 });
      }
      let res: FetchResponse;
      try {
        res = await cache.client(addr).fetch({ maxWaitMs, minBytes: 1, maxBytes: 1024 * 1024, topics: [...topics].map(([name, partitions]) => ({ name, partitions })) });
      } catch (e) {
        for (const k of keys) cache.forget(k);
        errors.push(`${addr}: ${errorJson(e)}`);
        return;
      }
      if (res.errorCode !== 0) {
        for (const k of keys) cache.forget(k);
        errors.push(`${addr}: error ${res.errorCode} ${res.errorMessage}`);
        return;
      }
      for (const t of res.responses) {
        for (const p of t.partitions) {
          const key = `${t.name}-${p.partition}`;
          if (!positions.has(key)) continue;
          if (p.errorCode === ERRORS.OFFSET_OUT_OF_RANGE.code) {
            outOfRange.set(key, p.logStartOffset);
            continue;
          }
          if (p.errorCode !== 0) {
            cache.forget(key);
            errors.push(`${key}: error ${p.errorCode} ${p.errorMessage}`);
            continue;
          }
          try {
            records.set(key, await decodeRecordSet(p.records, positions.get(key)!));
            answered.set(key, p.highWatermark);
          } catch (e) {
            errors.push(`${key}: ${errorJson(e)}`);
          }
        }
      }
    }),
  );
  return { records, outOfRange, answered, errors };
}

/** The values each key's producers send next: unique per key, increasing, never reused. */
class ValueSource {
  private readonly next = new Map<Key, number>();
  take(key: Key): number {
    const v = this.next.get(key) ?? 0;
    this.next.set(key, v + 1);
    return v;
  }
}

export class Workload {
  private stopping = false;
  private loops: Promise<void>[] = [];
  private readonly values = new ValueSource();
  private readonly topics: string[];

  constructor(private readonly opts: WorkloadOptions) {
    this.topics = [...new Set(opts.keys.map((k) => splitKey(k).topic))];
  }

  /** Process ids: producers 0..P-1, consumers P..P+C-1, the final reader P+C. */
  get finalReaderProcess(): number {
    return this.opts.producers + this.opts.consumers;
  }

  start(): void {
    for (let p = 0; p < this.opts.producers; p++) this.loops.push(this.producerLoop(p));
    for (let c = 0; c < this.opts.consumers; c++) {
      const process = this.opts.producers + c;
      this.loops.push((c + this.opts.seed) % 2 === 1 ? this.groupConsumerLoop(process) : this.consumerLoop(process));
    }
  }

  /** Asks every client to finish its current op and waits until all have. */
  async stop(): Promise<void> {
    this.stopping = true;
    await Promise.all(this.loops);
    this.loops = [];
  }

  // ---- producers ----

  private newProducer(): Producer {
    const raftka = new Raftka({ brokers: [...this.opts.bootstrap], clientId: 'jepsen', requestTimeout: 4000, connectionTimeout: 1000, metadataMaxAge: 2000 });
    const timeout = this.opts.sendTimeoutMs ?? 8000;
    return raftka.producer({
      acks: this.opts.acks,
      // Idempotence needs acks=all (Kafka refuses it otherwise).
      idempotent: this.opts.acks === -1,
      lingerMs: 0,
      deliveryTimeoutMs: timeout,
      retry: { initialRetryTime: 50, maxRetryTime: 500 },
    });
  }

  private async connected(process: number): Promise<Producer | undefined> {
    while (!this.stopping) {
      const p = this.newProducer();
      try {
        await withDeadline(p.connect(), 5000, 'producer connect');
        return p;
      } catch (e) {
        this.opts.logger.debug({ process, err: errorJson(e) }, 'producer connect failed; retrying');
        void p.disconnect().catch(() => undefined);
        await sleep(200);
      }
    }
    return undefined;
  }

  private async producerLoop(process: number): Promise<void> {
    const { recorder, keys } = this.opts;
    const rnd = prng(this.opts.seed * 31 + process);
    const timeout = this.opts.sendTimeoutMs ?? 8000;
    let producer = await this.connected(process);
    while (!this.stopping && producer) {
      const key = keys[Math.floor(rnd() * keys.length)]!;
      const n = 1 + Math.floor(rnd() * 3);
      const request: [Key, Value][] = [];
      for (let i = 0; i < n; i++) request.push([key, this.values.take(key)]);
      const { topic, partition } = splitKey(key);
      recorder.invoke(process, 'send', request);
      try {
        const md = await withDeadline(
          producer.send({ topic, acks: this.opts.acks, timeout: Math.min(timeout, 5000), messages: request.map(([, v]) => ({ partition, value: String(v) })) }),
          timeout + 2000,
          'send',
        );
        recorder.complete(
          process,
          'ok',
          'send',
          request.map(([k, v], i) => [k, [md[i]!.offset, v]] as const),
        );
      } catch (e) {
        const certain = e instanceof RaftkaClientError && (e.type === 'INVALID_ARGUMENT' || e.type === 'NOT_CONNECTED');
        recorder.complete(process, certain ? 'fail' : 'info', 'send', request as SendRequest, { error: errorJson(e) });
        if (!certain) {
          // Unknown outcome: later sends must not share its producer id and sequences.
          recorder.invoke(process, 'crash', null);
          const old = producer;
          void withDeadline(old.disconnect(), 5000, 'producer disconnect').catch(() => undefined);
          recorder.complete(process, 'ok', 'crash', null);
          producer = await this.connected(process);
        }
      }
      await this.pace(rnd);
    }
    if (producer) await withDeadline(producer.disconnect(), 5000, 'producer disconnect').catch(() => undefined);
  }

  private async pace(rnd: () => number): Promise<void> {
    const ms = this.opts.pacingMs ?? 10;
    if (ms > 0) await sleep(ms * (0.5 + rnd()));
  }

  // ---- consumers ----

  private async consumerLoop(process: number): Promise<void> {
    const { recorder, keys } = this.opts;
    const rnd = prng(this.opts.seed * 37 + process);
    const cache = new LeaderCache(this.opts.bootstrap, 3000);
    let positions: Map<Key, Offset> | undefined;
    try {
      while (!this.stopping) {
        const r = rnd();
        if (positions === undefined || r < 0.03) {
          // A new assignment: kept keys keep their positions, new ones start at 0 (no
          // retention, so 0 is the log start); now and then everything starts over.
          const chosen = keys.filter(() => rnd() < 0.6);
          const assigned = chosen.length > 0 ? chosen : [keys[Math.floor(rnd() * keys.length)]!];
          const fromStart = positions === undefined || rnd() < 0.3;
          recorder.invoke(process, 'assign', assigned, fromStart ? { seekToBeginning: true } : {});
          const next = new Map<Key, Offset>();
          for (const k of assigned) next.set(k, fromStart ? 0 : (positions?.get(k) ?? 0));
          positions = next;
          recorder.complete(process, 'ok', 'assign', assigned, fromStart ? { seekToBeginning: true } : {});
        } else if (r < 0.04) {
          recorder.invoke(process, 'crash', null);
          positions = undefined;
          recorder.complete(process, 'ok', 'crash', null);
        } else if (r < 0.05) {
          const ks = [...positions.keys()];
          const k = ks[Math.floor(rnd() * ks.length)]!;
          const to = Math.floor(rnd() * (positions.get(k)! + 1));
          recorder.invoke(process, 'seek', { [k]: to });
          positions.set(k, to);
          recorder.complete(process, 'ok', 'seek', { [k]: to });
        } else {
          await this.poll(process, cache, positions);
        }
        await this.pace(rnd);
      }
    } finally {
      cache.close();
    }
  }

  /**
   * A group member: subscribes to every topic, records each batch it is handed as a poll
   * and commits past it (at-least-once: the commit follows the processing). Lives a
   * random while, then crashes (abandon: no leave, no final commit) and is replaced.
   */
  private async groupConsumerLoop(process: number): Promise<void> {
    const { recorder, keys } = this.opts;
    const rnd = prng(this.opts.seed * 41 + process);
    const groupId = `jepsen-${this.opts.seed}`;
    while (!this.stopping) {
      const raftka = new Raftka({ brokers: [...this.opts.bootstrap], clientId: `jepsen-${process}`, requestTimeout: 4000, connectionTimeout: 1000, metadataMaxAge: 2000 });
      const consumer = raftka.consumer({ groupId, sessionTimeout: 6000, rebalanceTimeout: 6000, heartbeatInterval: 500, maxWaitTimeInMs: 200, autoOffsetReset: 'earliest', retry: { initialRetryTime: 50, maxRetryTime: 500 } });
      const assigned: Key[][] = [];
      consumer.on<{ partitions: { topic: string; partition: number }[] }>('consumer.partitions_assigned', (e) => {
        assigned.push(e.payload.partitions.map((p) => `${p.topic}-${p.partition}`));
      });
      // Polls are recorded only after the subscribe op completed (one op at a time).
      let subscribed!: () => void;
      const ready = new Promise<void>((resolve) => (subscribed = resolve));
      recorder.invoke(process, 'subscribe', keys);
      try {
        await withDeadline(consumer.connect(), 5000, 'consumer connect');
        await consumer.subscribe({ topics: this.topics, fromBeginning: true });
        await consumer.run({
          autoCommit: false,
          eachBatch: async ({ batch }) => {
            await ready;
            if (this.stopping) return;
            const key = `${batch.topic}-${batch.partition}`;
            const rebalanceLog = assigned.splice(0).map((ks) => ({ keys: ks }));
            const records: [Offset, Value][] = batch.messages.map((m) => [Number(m.offset), decodeValue(m.value)]);
            recorder.invoke(process, 'poll', null);
            recorder.complete(process, 'ok', 'poll', (records.length > 0 ? { [key]: records } : {}) as PollResult, rebalanceLog.length > 0 ? { rebalanceLog } : {});
            if (records.length === 0) return;
            const next = records[records.length - 1]![0] + 1;
            const value = { group: groupId, offsets: { [key]: next } };
            recorder.invoke(process, 'commit', value);
            try {
              await withDeadline(consumer.commitOffsets([{ topic: batch.topic, partition: batch.partition, offset: String(next) }]), 5000, 'commit');
              recorder.complete(process, 'ok', 'commit', value);
            } catch (e) {
              recorder.complete(process, 'info', 'commit', value, { error: errorJson(e) });
            }
          },
        });
        recorder.complete(process, 'ok', 'subscribe', keys);
      } catch (e) {
        recorder.complete(process, 'info', 'subscribe', keys, { error: errorJson(e) });
      }
      subscribed();
      // Live for a while, then crash (unless the run ends first).
      const lifeMs = 4000 + rnd() * 8000;
      const deadline = Date.now() + lifeMs;
      while (!this.stopping && Date.now() < deadline) await sleep(100);
      const crash = !this.stopping;
      if (crash) await withDeadline(consumer.abandon(), 10_000, 'consumer abandon').catch(() => undefined);
      else await withDeadline(consumer.disconnect(), 10_000, 'consumer disconnect').catch(() => undefined);
      recorder.invoke(process, 'crash', null);
      recorder.complete(process, 'ok', 'crash', null);
    }
  }

  private async poll(process: number, cache: LeaderCache, positions: Map<Key, Offset>): Promise<void> {
    const { recorder } = this.opts;
    await cache.refresh(this.topics);
    recorder.invoke(process, 'poll', null);
    const out = await fetchFrom(cache, positions, 200);
    const value: Record<Key, [Offset, Value][]> = {};
    for (const [k, rs] of out.records) {
      if (rs.length === 0) continue;
      value[k] = rs;
      positions.set(k, rs[rs.length - 1]![0] + 1);
    }
    const error = out.errors.length > 0 ? out.errors.slice(0, 5) : undefined;
    if (out.answered.size === 0 && out.outOfRange.size === 0) {
      recorder.complete(process, 'fail', 'poll', null, error ? { error } : {});
    } else {
      recorder.complete(process, 'ok', 'poll', value as PollResult, error ? { error } : {});
    }
    if (out.outOfRange.size > 0) {
      const seek = Object.fromEntries(out.outOfRange);
      recorder.invoke(process, 'seek', seek);
      for (const [k, o] of out.outOfRange) positions.set(k, o);
      recorder.complete(process, 'ok', 'seek', seek);
    }
  }

  // ---- final reads ----

  /**
   * Reads every key from offset 0 to its end offset (the high watermark once the
   * workload has stopped), as a process that does nothing else, then records
   * `final-reads` for the keys it covered. Keys it could not cover before `deadlineMs`
   * are left out (and returned), so the checker never treats an unread key as read.
   */
  async finalReads(deadlineMs: number): Promise<{ covered: Key[]; uncovered: Key[]; lastErrors: string[] }> {
    const { recorder, keys } = this.opts;
    const process = this.finalReaderProcess;
    const cache = new LeaderCache(this.opts.bootstrap, 3000);
    const deadline = Date.now() + deadlineMs;
    let lastErrors: string[] = [];
    try {
      recorder.invoke(process, 'assign', [...keys], { seekToBeginning: true });
      const positions = new Map<Key, Offset>(keys.map((k) => [k, 0]));
      recorder.complete(process, 'ok', 'assign', [...keys], { seekToBeginning: true });
      const ends = new Map<Key, Offset>();
      while (ends.size < keys.length && Date.now() < deadline) {
        await cache.refresh(this.topics, true);
        lastErrors = await this.endOffsets(cache, keys.filter((k) => !ends.has(k)), ends);
        if (ends.size < keys.length) await sleep(200);
      }
      const covered = new Set<Key>();
      const pending = () => new Map([...positions].filter(([k, o]) => ends.has(k) && !covered.has(k) && o < ends.get(k)!));
      for (const [k, o] of positions) if (ends.get(k) !== undefined && o >= ends.get(k)!) covered.add(k);
      while (Date.now() < deadline) {
        const want = pending();
        if (want.size === 0) break;
        await cache.refresh(this.topics);
        recorder.invoke(process, 'poll', null);
        const out = await fetchFrom(cache, want, 100);
        const value: Record<Key, [Offset, Value][]> = {};
        for (const [k, rs] of out.records) {
          if (rs.length === 0) continue;
          value[k] = rs;
          positions.set(k, rs[rs.length - 1]![0] + 1);
        }
        const error = out.errors.length > 0 ? { error: out.errors.slice(0, 5) } : {};
        if (out.errors.length > 0) lastErrors = out.errors.slice(0, 5);
        if (out.answered.size === 0) recorder.complete(process, 'fail', 'poll', null, error);
        else recorder.complete(process, 'ok', 'poll', value as PollResult, error);
        for (const [k, o] of positions) if (ends.has(k) && o >= ends.get(k)!) covered.add(k);
        // Below the log start there is nothing to read: the reader is done with that key
        // only if it read from 0, so an out-of-range key stays uncovered.
        if (out.errors.length > 0) await sleep(100);
      }
      const coveredKeys = keys.filter((k) => covered.has(k));
      recorder.invoke(process, 'final-reads', coveredKeys);
      recorder.complete(process, 'ok', 'final-reads', coveredKeys);
      const uncovered = keys.filter((k) => !covered.has(k));
      return { covered: coveredKeys, uncovered, lastErrors: uncovered.length > 0 ? lastErrors : [] };
    } finally {
      cache.close();
    }
  }

  /** Fills `into` with the end offsets it could learn; returns why the others failed. */
  private async endOffsets(cache: LeaderCache, keys: readonly Key[], into: Map<Key, Offset>): Promise<string[]> {
    const errors: string[] = [];
    await Promise.all(
      keys.map(async (k) => {
        const addr = cache.leaderAddress(k);
        if (addr === undefined) {
          errors.push(`${k}: no leader known`);
          return;
        }
        const { topic, partition } = splitKey(k);
        try {
          const r = await cache.client(addr).listOffsets({ topics: [{ name: topic, partitions: [{ partition, timestamp: -1 }] }] });
          const p = r.topics[0]?.partitions[0];
          if (r.errorCode === 0 && p && p.errorCode === 0) into.set(k, p.offset);
          else {
            errors.push(`${k}: list offsets error ${p?.errorCode ?? r.errorCode} ${p?.errorMessage ?? r.errorMessage}`);
            cache.forget(k);
          }
        } catch (e) {
          errors.push(`${k}: ${errorJson(e)}`);
          cache.forget(k);
        }
      }),
    );
    return errors;
  }
}
