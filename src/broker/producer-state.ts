// Idempotent producer state of one partition replica [KIP-98]: per producer id, its
// current producer epoch and the metadata of its last 5 appended batches. Pure: no I/O,
// time comes in as arguments. The partition leader checks every batch that carries a
// producer id against it before assigning offsets; followers and log replay apply the
// batches they find in the log, so a new leader after failover deduplicates retries of
// batches its predecessor appended.
//
// Rules for a batch with producerId >= 0 on the leader (Kafka 2.x, ProducerStateManager /
// ProducerAppendInfo.checkSequence):
//   1. Same epoch and (firstSeq, lastSeq) equal to one of the 5 cached batches: a retry
//      of a batch already appended. Nothing is written; the original offsets are the
//      answer, so the client resolves its send with them.
//   2. Unknown producer: the batch must start at sequence 0, else UNKNOWN_PRODUCER_ID
//      (the producer's earlier batches are gone, e.g. it expired; it must reset).
//   3. An epoch older than the current one: INVALID_PRODUCER_EPOCH (a zombie, fenced).
//   4. A newer epoch must start at sequence 0 (a bumped producer restarts its sequences
//      [KIP-360]), else OUT_OF_ORDER_SEQUENCE_NUMBER.
//   5. Same epoch: the batch must start right after the last one, else
//      OUT_OF_ORDER_SEQUENCE_NUMBER (a gap, or a retry older than the 5 cached batches).
// Sequences are int32 and wrap after 2^31-1 back to 0, as Kafka's
// DefaultRecordBatch.incrementSequence does.
//
// Why 5: a producer keeps at most 5 requests in flight per partition
// (max.in.flight.requests.per.connection <= 5 with idempotence), so any retry it can
// send is among its last 5 batches.
//
// Idle producers expire after producer.id.expiration.ms (Kafka's default: 1 day) without
// a batch, which bounds memory; their next batch (sequence != 0) gets UNKNOWN_PRODUCER_ID.
import type { ErrorName } from '../common/errors.ts';

/** Batches remembered per producer for duplicate detection (Kafka's NUM_BATCHES_TO_RETAIN). */
export const PRODUCER_BATCHES_RETAINED = 5;
/** The largest sequence number; the next one is 0. */
export const SEQUENCE_MAX = 0x7fffffff;
/** producer.id.expiration.ms default: 1 day. */
export const PRODUCER_ID_EXPIRATION_MS_DEFAULT = 24 * 60 * 60 * 1000;

export interface BatchMetadata {
  readonly firstSeq: number;
  readonly lastSeq: number;
  readonly firstOffset: number;
  readonly lastOffset: number;
  /** The batch's max timestamp as stored (the append time under LogAppendTime). */
  readonly timestamp: number;
}

export interface ProducerEntry {
  readonly producerId: number;
  readonly producerEpoch: number;
  /** Oldest first, at most PRODUCER_BATCHES_RETAINED. */
  readonly batches: readonly BatchMetadata[];
  /** Broker wall-clock ms when this replica last applied a batch of the producer (expiry). */
  readonly lastSeenMs: number;
}

/** The fields of a stored batch header the state needs (src/log/batch.ts BatchHeader). */
export interface ProducerBatch {
  readonly producerId: number;
  readonly producerEpoch: number;
  readonly baseSequence: number;
  readonly lastSequence: number;
  readonly baseOffset: number;
  readonly lastOffset: number;
  readonly maxTimestamp: number;
  readonly isTransactional: boolean;
  readonly isControl: boolean;
}

export type LeaderAdmission =
  | { readonly kind: 'append' }
  | { readonly kind: 'duplicate'; readonly firstOffset: number; readonly lastOffset: number; readonly timestamp: number }
  | { readonly kind: 'error'; readonly error: ErrorName; readonly message: string };

/** The sequence after `seq`, wrapping at SEQUENCE_MAX. */
export function nextSequence(seq: number): number {
  return seq === SEQUENCE_MAX ? 0 : seq + 1;
}

/** `seq + delta` with Kafka's wraparound (DefaultRecordBatch.incrementSequence). */
export function addSequence(seq: number, delta: number): number {
  return seq > SEQUENCE_MAX - delta ? delta - (SEQUENCE_MAX - seq) - 1 : seq + delta;
}

const APPEND: LeaderAdmission = { kind: 'append' };

export interface ProducerStateSnapshot {
  readonly version: 1;
  /** Every batch below this offset is reflected; replay resumes here. */
  readonly offset: number;
  readonly producers: readonly ProducerEntry[];
}

export class ProducerStateManager {
  private readonly entries = new Map<number, ProducerEntry>();
  private _appliedEndOffset: number;

  constructor(
    private readonly expirationMs: number = PRODUCER_ID_EXPIRATION_MS_DEFAULT,
    appliedEndOffset = 0,
  ) {
    this._appliedEndOffset = appliedEndOffset;
  }

  /** The offset after the last batch applied (leader admission, follower append or replay). */
  get appliedEndOffset(): number {
    return this._appliedEndOffset;
  }

  get size(): number {
    return this.entries.size;
  }

  entry(producerId: number): ProducerEntry | undefined {
    return this.entries.get(producerId);
  }

  producers(): ProducerEntry[] {
    return [...this.entries.values()];
  }

  /**
   * The leader's check of one append (one or more batches; the first gets `firstOffset`,
   * each next one follows the previous batch's last offset). On 'append' the state is
   * updated as if the batches were written at those offsets; otherwise nothing changes.
   * The caller must run check and offset assignment as one step per partition (the log
   * calls this from its serialized append path), or two in-flight requests of a producer
   * could both pass.
   *
   * Several batches in one append are checked in order against the state the earlier
   * ones leave. All duplicates: answered with the offsets of the first and last. Mixed
   * duplicates and new batches: INVALID_RECORD (no well-behaved client retries part of a
   * request merged into a new one).
   */
  admitAsLeader(batches: readonly ProducerBatch[], firstOffset: number, nowMs: number, appendTimeMs: number): LeaderAdmission {
    // The common case, a single plain batch: nothing to check or allocate.
    if (batches.length === 1 && batches[0]!.producerId < 0) {
      const end = firstOffset + batches[0]!.lastOffset - batches[0]!.baseOffset + 1;
      if (end > this._appliedEndOffset) this._appliedEndOffset = end;
      return APPEND;
    }
    const pending = new Map<number, ProducerEntry>();
    const dups: BatchMetadata[] = [];
    let appends = 0;
    let offset = firstOffset;
    for (const b of batches) {
      const lastOffset = offset + (b.lastOffset - b.baseOffset);
      const placed = { firstOffset: offset, lastOffset };
      offset = lastOffset + 1;
      if (b.producerId < 0) {
        appends++;
        continue;
      }
      const current = pending.get(b.producerId) ?? this.entries.get(b.producerId);
      const v = checkBatch(current, b);
      if (v.kind === 'error') return v;
      if (v.kind === 'duplicate') {
        dups.push(v.batch);
        continue;
      }
      appends++;
      pending.set(b.producerId, withBatch(current, b, placed.firstOffset, placed.lastOffset, appendTimeMs >= 0 ? appendTimeMs : b.maxTimestamp, nowMs));
    }
    if (dups.length > 0) {
      if (appends > 0) return { kind: 'error', error: 'INVALID_RECORD', message: 'the request mixes batches already appended (retries) with new ones; retry the original request as it was' };
      return { kind: 'duplicate', firstOffset: dups[0]!.firstOffset, lastOffset: dups[dups.length - 1]!.lastOffset, timestamp: dups[dups.length - 1]!.timestamp };
    }
    for (const [id, e] of pending) this.entries.set(id, e);
    if (offset > this._appliedEndOffset) this._appliedEndOffset = offset;
    return APPEND;
  }

  /**
   * A batch as stored in the log (follower append, replay at open): applied without
   * checks, since the leader checked it. Batches must come in offset order.
   */
  applyFromLog(b: ProducerBatch, nowMs: number): void {
    // Already reflected (a replay overlapping what a snapshot or the leader path applied).
    if (b.lastOffset < this._appliedEndOffset) return;
    this._appliedEndOffset = b.lastOffset + 1;
    if (b.producerId < 0 || b.isControl) return;
    const current = this.entries.get(b.producerId);
    this.entries.set(b.producerId, withBatch(current, b, b.baseOffset, b.lastOffset, b.maxTimestamp, nowMs));
  }

  /** Marks everything below `offset` as applied (a replay that found no more batches). */
  advanceTo(offset: number): void {
    if (offset > this._appliedEndOffset) this._appliedEndOffset = offset;
  }

  /** Drops producers idle for producer.id.expiration.ms; returns how many. */
  expire(nowMs: number): number {
    let n = 0;
    for (const [id, e] of this.entries) {
      if (nowMs - e.lastSeenMs >= this.expirationMs) {
        this.entries.delete(id);
        n++;
      }
    }
    return n;
  }

  snapshot(): ProducerStateSnapshot {
    return { version: 1, offset: this._appliedEndOffset, producers: this.producers() };
  }

  static restore(s: ProducerStateSnapshot, expirationMs?: number): ProducerStateManager {
    const m = new ProducerStateManager(expirationMs, s.offset);
    for (const e of s.producers) m.entries.set(e.producerId, e);
    return m;
  }
}

type BatchCheck = { kind: 'append' } | { kind: 'duplicate'; batch: BatchMetadata } | { kind: 'error'; error: ErrorName; message: string };

function checkBatch(e: ProducerEntry | undefined, b: ProducerBatch): BatchCheck {
  const err = (error: ErrorName, message: string): BatchCheck => ({ kind: 'error', error, message });
  if (b.isTransactional || b.isControl) return err('INVALID_RECORD', 'transactional and control batches are not supported yet');
  if (b.producerEpoch < 0) return err('INVALID_RECORD', `producer ${b.producerId} sent producer epoch ${b.producerEpoch}`);
  if (b.baseSequence < 0 || b.baseSequence > SEQUENCE_MAX) return err('INVALID_RECORD', `producer ${b.producerId} sent base sequence ${b.baseSequence}`);
  if (e === undefined) {
    if (b.baseSequence !== 0) {
      return err('UNKNOWN_PRODUCER_ID', `producer ${b.producerId} is not known to this partition (expired or never seen) and sent sequence ${b.baseSequence}, not 0; it must reset its sequences`);
    }
    return { kind: 'append' };
  }
  if (b.producerEpoch === e.producerEpoch) {
    const dup = e.batches.find((x) => x.firstSeq === b.baseSequence && x.lastSeq === b.lastSequence);
    if (dup) return { kind: 'duplicate', batch: dup };
  }
  if (b.producerEpoch < e.producerEpoch) {
    return err('INVALID_PRODUCER_EPOCH', `producer ${b.producerId} epoch ${b.producerEpoch} is older than the current epoch ${e.producerEpoch}`);
  }
  if (b.producerEpoch > e.producerEpoch) {
    if (b.baseSequence !== 0) return err('OUT_OF_ORDER_SEQUENCE_NUMBER', `producer ${b.producerId} began epoch ${b.producerEpoch} at sequence ${b.baseSequence}; a new epoch starts at 0`);
    return { kind: 'append' };
  }
  const last = e.batches[e.batches.length - 1];
  const expected = last === undefined ? 0 : nextSequence(last.lastSeq);
  if (b.baseSequence !== expected) {
    return err('OUT_OF_ORDER_SEQUENCE_NUMBER', `producer ${b.producerId} epoch ${b.producerEpoch} sent sequence ${b.baseSequence}; expected ${expected}`);
  }
  return { kind: 'append' };
}

function withBatch(e: ProducerEntry | undefined, b: ProducerBatch, firstOffset: number, lastOffset: number, timestamp: number, nowMs: number): ProducerEntry {
  const meta: BatchMetadata = { firstSeq: b.baseSequence, lastSeq: b.lastSequence, firstOffset, lastOffset, timestamp };
  // A new epoch forgets the old epoch's batches: they can no longer be retried.
  const kept = e !== undefined && e.producerEpoch === b.producerEpoch ? e.batches.slice(-(PRODUCER_BATCHES_RETAINED - 1)) : [];
  return { producerId: b.producerId, producerEpoch: b.producerEpoch, batches: [...kept, meta], lastSeenMs: Math.max(nowMs, e?.lastSeenMs ?? nowMs) };
}

/** Reads a snapshot written by `JSON.stringify(manager.snapshot())`; throws on anything malformed. */
export function parseProducerSnapshot(text: string): ProducerStateSnapshot {
  const v = JSON.parse(text) as Partial<ProducerStateSnapshot>;
  const int = (x: unknown) => typeof x === 'number' && Number.isSafeInteger(x);
  if (v.version !== 1 || !int(v.offset) || !Array.isArray(v.producers)) throw new Error('not a version 1 producer snapshot');
  for (const e of v.producers) {
    if (!int(e.producerId) || !int(e.producerEpoch) || !int(e.lastSeenMs) || !Array.isArray(e.batches) || e.batches.length > PRODUCER_BATCHES_RETAINED) {
      throw new Error(`bad producer entry ${JSON.stringify(e).slice(0, 200)}`);
    }
    for (const b of e.batches) {
      if (!int(b.firstSeq) || !int(b.lastSeq) || !int(b.firstOffset) || !int(b.lastOffset) || !int(b.timestamp)) throw new Error(`bad batch ${JSON.stringify(b)}`);
    }
  }
  return v as ProducerStateSnapshot;
}
