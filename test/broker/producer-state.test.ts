// Idempotent producer state [KIP-98]: the pure checks (duplicates among the last 5
// batches, gaps, epochs, unknown producers, sequence wraparound, expiry), snapshots, the
// rebuild from snapshot + log at open, after truncation and after a failed write, and a
// fast-check property that drives a real partition (log on disk) with concurrent sends,
// retries, lost responses, reorderings and restarts against a model of well-behaved
// producers.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import fc from 'fast-check';
import {
  addSequence,
  parseProducerSnapshot,
  ProducerStateManager,
  SEQUENCE_MAX,
  type LeaderAdmission,
  type ProducerBatch,
} from '../../src/broker/producer-state.ts';
import { Partition } from '../../src/broker/partition.ts';
import type { PartitionAssignment } from '../../src/broker/types.ts';
import { PartitionLog } from '../../src/log/partition-log.ts';
import { logConfig } from '../../src/log/config.ts';
import { buildBatch, decodeRecords, iterateBatches, readBatchHeader } from '../../src/log/batch.ts';
import { RaftkaError, isRaftkaError, type ErrorName } from '../../src/common/errors.ts';
import { silentLogger } from '../../src/common/logger.ts';
import type { Clock } from '../../src/common/clock.ts';
import { assertProperty } from '../support/property.ts';
import { tempDir, waitFor } from '../support/tmp.ts';

const DAY_MS = 24 * 60 * 60 * 1000;

/** A batch header as the pure state sees it: `count` records from sequence `seq`. */
function hdr(producerId: number, producerEpoch: number, seq: number, count = 1): ProducerBatch {
  return {
    producerId,
    producerEpoch,
    baseSequence: seq,
    lastSequence: addSequence(seq, count - 1),
    baseOffset: 0,
    lastOffset: count - 1,
    maxTimestamp: 1_000,
    isTransactional: false,
    isControl: false,
  };
}

/** Admits `b` at the state's end offset (as the log would place it). */
function admit(s: ProducerStateManager, b: ProducerBatch, nowMs = 0): LeaderAdmission {
  return s.admitAsLeader([b], s.appliedEndOffset, nowMs, -1);
}

function errorOf(v: LeaderAdmission): ErrorName | 'append' | 'duplicate' {
  return v.kind === 'error' ? v.error : v.kind;
}

test('duplicates of the last 5 batches get their original offsets; older retries and gaps are out of order', () => {
  const s = new ProducerStateManager();
  const offsets: number[] = [];
  for (let i = 0; i < 8; i++) {
    offsets.push(s.appliedEndOffset);
    assert.equal(admit(s, hdr(7, 0, i * 2, 2)).kind, 'append');
  }
  assert.equal(s.appliedEndOffset, 16);
  // The last 5 batches (sequences 6..15) are remembered.
  for (let i = 3; i < 8; i++) {
    const v = admit(s, hdr(7, 0, i * 2, 2));
    assert.deepEqual(v, { kind: 'duplicate', firstOffset: offsets[i], lastOffset: offsets[i]! + 1, timestamp: 1_000 });
  }
  assert.equal(s.appliedEndOffset, 16, 'a duplicate changes nothing');
  // A retry older than the window cannot be told from a bug: out of order.
  assert.equal(errorOf(admit(s, hdr(7, 0, 4, 2))), 'OUT_OF_ORDER_SEQUENCE_NUMBER');
  // A gap, and a batch overlapping the last one with other bounds.
  assert.equal(errorOf(admit(s, hdr(7, 0, 17))), 'OUT_OF_ORDER_SEQUENCE_NUMBER');
  assert.equal(errorOf(admit(s, hdr(7, 0, 15, 3))), 'OUT_OF_ORDER_SEQUENCE_NUMBER');
  assert.equal(s.appliedEndOffset, 16, 'refused batches change nothing');
  assert.equal(admit(s, hdr(7, 0, 16)).kind, 'append');
  assert.equal(s.entry(7)!.batches.length, 5);
});

test('unknown producers start at 0; epochs fence zombies and restart sequences', () => {
  const s = new ProducerStateManager();
  assert.equal(errorOf(admit(s, hdr(1, 0, 5))), 'UNKNOWN_PRODUCER_ID');
  assert.equal(admit(s, hdr(1, 0, 0)).kind, 'append');
  assert.equal(admit(s, hdr(1, 0, 1)).kind, 'append');
  // A newer epoch must start at 0 [KIP-360]; then the old epoch is fenced.
  assert.equal(errorOf(admit(s, hdr(1, 1, 2))), 'OUT_OF_ORDER_SEQUENCE_NUMBER');
  assert.equal(admit(s, hdr(1, 1, 0)).kind, 'append');
  assert.deepEqual(s.entry(1)!.batches.map((b) => b.firstSeq), [0], 'the old epoch batches are forgotten');
  assert.equal(errorOf(admit(s, hdr(1, 0, 2))), 'INVALID_PRODUCER_EPOCH');
  // Not even a retry of an old-epoch batch is a duplicate any more.
  assert.equal(errorOf(admit(s, hdr(1, 0, 1))), 'INVALID_PRODUCER_EPOCH');
  // Producers are independent.
  assert.equal(admit(s, hdr(2, 0, 0)).kind, 'append');
  // Malformed idempotent batches.
  assert.equal(errorOf(admit(s, { ...hdr(3, 0, 0), isTransactional: true })), 'INVALID_RECORD');
  assert.equal(errorOf(admit(s, hdr(3, -1, 0))), 'INVALID_RECORD');
  assert.equal(errorOf(admit(s, hdr(3, 0, -4))), 'INVALID_RECORD');
});

test('several batches in one append: all new, all duplicates, or refused as a whole', () => {
  const s = new ProducerStateManager();
  const plain: ProducerBatch = { ...hdr(-1, -1, -1), lastSequence: -1 };
  assert.equal(s.admitAsLeader([hdr(4, 0, 0, 2), plain, hdr(4, 0, 2, 3)], 0, 0, -1).kind, 'append');
  assert.equal(s.appliedEndOffset, 6);
  assert.deepEqual(
    s.entry(4)!.batches.map((b) => [b.firstSeq, b.lastSeq, b.firstOffset, b.lastOffset]),
    [
      [0, 1, 0, 1],
      [2, 4, 3, 5],
    ],
  );
  assert.deepEqual(s.admitAsLeader([hdr(4, 0, 0, 2), hdr(4, 0, 2, 3)], 6, 0, -1), { kind: 'duplicate', firstOffset: 0, lastOffset: 5, timestamp: 1_000 });
  // A retry glued to a new batch, or a new batch with a gap after a good one: nothing changes.
  assert.equal(errorOf(s.admitAsLeader([hdr(4, 0, 2, 3), hdr(4, 0, 5)], 6, 0, -1)), 'INVALID_RECORD');
  assert.equal(errorOf(s.admitAsLeader([hdr(4, 0, 5), hdr(4, 0, 9)], 6, 0, -1)), 'OUT_OF_ORDER_SEQUENCE_NUMBER');
  assert.equal(s.entry(4)!.batches.length, 2);
  assert.equal(s.appliedEndOffset, 6);
});

test('sequences wrap after 2^31-1 to 0, as in Kafka', () => {
  assert.equal(addSequence(SEQUENCE_MAX, 1), 0);
  assert.equal(addSequence(SEQUENCE_MAX - 1, 3), 1);
  // Three records from 2^31-2 take sequences 2^31-2, 2^31-1 and 0; the batch codec agrees.
  const wrapped = readBatchHeader(buildBatch([{ value: 'a' }, { value: 'b' }, { value: 'c' }], { producerId: 9, producerEpoch: 0, baseSequence: SEQUENCE_MAX - 1 }));
  assert.equal(wrapped.lastSequence, 0);
  assert.equal(addSequence(SEQUENCE_MAX - 1, 2), 0);
  // A producer that got that far (restored from a snapshot) goes on across the wrap.
  const s = ProducerStateManager.restore({
    version: 1,
    offset: 10,
    producers: [{ producerId: 9, producerEpoch: 0, lastSeenMs: 0, batches: [{ firstSeq: SEQUENCE_MAX - 4, lastSeq: SEQUENCE_MAX - 2, firstOffset: 7, lastOffset: 9, timestamp: 0 }] }],
  });
  assert.equal(errorOf(admit(s, hdr(9, 0, 0))), 'OUT_OF_ORDER_SEQUENCE_NUMBER', 'no wrap before 2^31-1');
  assert.equal(s.admitAsLeader([wrapped], 10, 0, -1).kind, 'append');
  assert.equal(admit(s, hdr(9, 0, 1, 2)).kind, 'append');
  assert.equal(admit(s, hdr(9, 0, SEQUENCE_MAX - 1, 3)).kind, 'duplicate');
  assert.equal(errorOf(admit(s, hdr(9, 0, 5))), 'OUT_OF_ORDER_SEQUENCE_NUMBER');
  assert.equal(admit(s, hdr(9, 0, 3)).kind, 'append');
});

test('idle producers expire after producer.id.expiration.ms and must start over', () => {
  const s = new ProducerStateManager(DAY_MS);
  admit(s, hdr(1, 0, 0), 0);
  admit(s, hdr(2, 0, 0), 0);
  admit(s, hdr(2, 0, 1), DAY_MS / 2);
  assert.equal(s.expire(DAY_MS - 1), 0);
  assert.equal(s.expire(DAY_MS), 1);
  assert.equal(s.entry(1), undefined);
  assert.ok(s.entry(2));
  assert.equal(errorOf(admit(s, hdr(1, 0, 1), DAY_MS)), 'UNKNOWN_PRODUCER_ID');
  assert.equal(admit(s, hdr(2, 0, 2), DAY_MS).kind, 'append');
});

test('snapshots round-trip through JSON; malformed ones are refused', () => {
  const s = new ProducerStateManager();
  for (let i = 0; i < 7; i++) admit(s, hdr(i % 3, 0, Math.floor(i / 3)), i);
  const text = JSON.stringify(s.snapshot());
  const back = ProducerStateManager.restore(parseProducerSnapshot(text));
  assert.deepEqual(back.snapshot(), s.snapshot());
  assert.throws(() => parseProducerSnapshot('{"version":2}'));
  assert.throws(() => parseProducerSnapshot(text.replace('"firstSeq":0', '"firstSeq":"x"')));
  assert.throws(() => parseProducerSnapshot(text.slice(0, 40)));
});

// ─── a real partition: log on disk, leader appends, snapshots, rebuild ───

const TOPIC_ID = 'AAAAAAAAAAAAAAAAAAAAAA';

function assignment(leader: number, leaderEpoch = 1): PartitionAssignment {
  return { topicId: TOPIC_ID, topic: 't', partition: 0, replicas: [1], isr: [1], leader, leaderEpoch, partitionEpoch: leaderEpoch, config: {} };
}

class ManualClock implements Clock {
  constructor(public now = 1_700_000_000_000) {}
  nowMs(): number {
    return this.now;
  }
  monotonicMs(): number {
    return this.now;
  }
}

async function openPartition(dir: string, clock: Clock, segmentBytes = 1024 * 1024): Promise<Partition> {
  const log = await PartitionLog.open(dir, { config: logConfig({ 'segment.bytes': String(segmentBytes) }), clock });
  const p = new Partition(assignment(1), log, 1, { minInsyncReplicas: 1, replicaLagTimeMaxMs: 10_000 }, silentLogger(), { clock, expirationMs: DAY_MS });
  await p.loadProducerState();
  p.reconcile(assignment(1), clock.monotonicMs());
  return p;
}

function idem(producerId: number, seq: number, values: string[], producerEpoch = 0): Buffer {
  return buildBatch(
    values.map((v) => ({ key: v, value: v })),
    { producerId, producerEpoch, baseSequence: seq },
  );
}

/** Every record in the log as `producerId:value`, in offset order. */
async function logContents(log: PartitionLog): Promise<string[]> {
  const out: string[] = [];
  let offset = log.logStartOffset;
  while (offset < log.logEndOffset) {
    const r = await log.read(offset, 1 << 20);
    for (const { header, bytes } of iterateBatches(r.records)) {
      for (const rec of decodeRecords(bytes)) out.push(`${header.producerId}:${rec.value!.toString()}`);
      offset = header.lastOffset + 1;
    }
  }
  return out;
}

const snapshotFiles = (dir: string) => readdirSync(dir).filter((f) => f.endsWith('.producer-snapshot')).sort();

test('producer state is rebuilt from the snapshot and the log after a crash and after a clean close', async (t) => {
  const dir = tempDir(t);
  const clock = new ManualClock();
  let p = await openPartition(dir, clock, 400);
  const first: number[] = [];
  for (let i = 0; i < 12; i++) first.push((await p.appendAsLeader(idem(5, i * 2, [`a${i}`, `b${i}`]), 1)).firstOffset);
  await p.appendAsLeader(idem(6, 0, ['other']), 1);
  assert.ok(p.log.segmentCount > 2, 'small segments: the log rolled and snapshots were written');
  await p.snapshotProducerState();
  assert.ok(snapshotFiles(dir).length >= 1 && snapshotFiles(dir).length <= 2, snapshotFiles(dir).join());
  // More batches after the newest snapshot: a crash must replay them from the log.
  for (let i = 12; i < 14; i++) first.push((await p.appendAsLeader(idem(5, i * 2, [`a${i}`, `b${i}`]), 1)).firstOffset);
  const before = p.producers.snapshot();
  await p.log.abandon();

  p = await openPartition(dir, clock, 400);
  assert.deepEqual(p.producers.snapshot(), before, 'rebuilt state equals the state before the crash');
  const retry = await p.appendAsLeader(idem(5, 26, ['a13', 'b13']), 1);
  assert.equal(retry.duplicate, true);
  assert.equal(retry.firstOffset, first[13]);
  await assert.rejects(p.appendAsLeader(idem(5, 30, ['gap']), 1), (e: unknown) => isRaftkaError(e, 'OUT_OF_ORDER_SEQUENCE_NUMBER'));
  await p.appendAsLeader(idem(5, 28, ['a14']), 1);
  const end = p.log.logEndOffset;
  await p.close();
  assert.ok(snapshotFiles(dir).includes(`${String(end).padStart(20, '0')}.producer-snapshot`), 'clean close snapshots at the log end');

  p = await openPartition(dir, clock, 400);
  assert.equal((await p.appendAsLeader(idem(5, 28, ['a14']), 1)).duplicate, true);
  assert.equal((await p.appendAsLeader(idem(6, 0, ['other']), 1)).duplicate, true);
  const values = await logContents(p.log);
  assert.equal(values.filter((v) => v === '5:a14').length, 1);
  assert.equal(values.filter((v) => v === '6:other').length, 1);
  await p.close();
});

test('a snapshot past the log end is discarded; truncation rebuilds the state without the cut batches', async (t) => {
  const dir = tempDir(t);
  const clock = new ManualClock();
  let p = await openPartition(dir, clock);
  for (let i = 0; i < 4; i++) await p.appendAsLeader(idem(1, i, [`v${i}`]), 1);
  await p.close();
  // A stray snapshot claiming batches beyond the log end (as a crash after a snapshot but
  // before its batches reached the disk could leave): it must not be trusted.
  const bogus = { version: 1, offset: 99, producers: [{ producerId: 1, producerEpoch: 0, lastSeenMs: clock.now, batches: [{ firstSeq: 50, lastSeq: 50, firstOffset: 98, lastOffset: 98, timestamp: 0 }] }] };
  writeFileSync(join(dir, `${String(99).padStart(20, '0')}.producer-snapshot`), JSON.stringify(bogus));
  p = await openPartition(dir, clock);
  assert.ok(!snapshotFiles(dir).includes(`${String(99).padStart(20, '0')}.producer-snapshot`));
  assert.equal((await p.appendAsLeader(idem(1, 3, ['v3']), 1)).duplicate, true);
  // As a follower cutting a divergent tail: the batches with sequences 2 and 3 are gone,
  // so 2 is the next sequence again (a retry of it is appended, not answered as a duplicate).
  p.reconcile({ ...assignment(2, 2) }, clock.monotonicMs());
  await p.truncateTo(2);
  assert.deepEqual(p.producers.entry(1)!.batches.map((b) => b.lastSeq), [0, 1]);
  p.reconcile({ ...assignment(1, 3) }, clock.monotonicMs());
  const again = await p.appendAsLeader(idem(1, 2, ['v2']), 1);
  assert.ok(!again.duplicate);
  assert.equal(again.firstOffset, 2);
  await p.truncateFullyAndStartAt(10);
  assert.equal(p.producers.size, 0);
  assert.deepEqual(snapshotFiles(dir), []);
  await p.close();
});

test('expired producers are forgotten by the partition and get UNKNOWN_PRODUCER_ID', async (t) => {
  const dir = tempDir(t);
  const clock = new ManualClock();
  const p = await openPartition(dir, clock);
  await p.appendAsLeader(idem(3, 0, ['x']), 1);
  clock.now += DAY_MS;
  assert.equal(p.expireProducers(), 1);
  await assert.rejects(p.appendAsLeader(idem(3, 1, ['y']), 1), (e: unknown) => isRaftkaError(e, 'UNKNOWN_PRODUCER_ID'));
  await p.close();
});

// ─── the property ───

/**
 * One well-behaved idempotent producer: batches 0..n-1 (batch i has `sizes[i]` records),
 * at most 5 unacknowledged batches in flight (sends only inside [firstUnacked,
 * firstUnacked + 5)), retries any unacknowledged one at any time.
 */
interface ProducerModel {
  id: number;
  sizes: number[];
  seqs: number[];
  acked: Map<number, number>;
}

const firstUnacked = (m: ProducerModel) => {
  let i = 0;
  while (m.acked.has(i)) i++;
  return i;
};

type Step =
  | { kind: 'send'; attempts: Array<{ producer: number; ahead: number; lost: boolean }> }
  | { kind: 'restart'; crash: boolean };

const stepArb = (producers: number): fc.Arbitrary<Step> =>
  fc.oneof(
    { weight: 12, arbitrary: fc.record({ kind: fc.constant('send' as const), attempts: fc.array(fc.record({ producer: fc.nat(producers - 1), ahead: fc.nat(4), lost: fc.boolean() }), { minLength: 1, maxLength: 6 }) }) },
    { weight: 1, arbitrary: fc.record({ kind: fc.constant('restart' as const), crash: fc.boolean() }) },
  );

const scenarioArb = fc.integer({ min: 1, max: 3 }).chain((producers) =>
  fc.record({
    sizes: fc.array(fc.array(fc.integer({ min: 1, max: 3 }), { minLength: 1, maxLength: 12 }), { minLength: producers, maxLength: producers }),
    steps: fc.array(stepArb(producers), { minLength: 1, maxLength: 30 }),
  }),
);

test('property: concurrent sends, retries, lost responses and restarts leave every batch in the log exactly once, in sequence order', async (t) => {
  const root = tempDir(t);
  let run = 0;
  await assertProperty(
    'idempotent produce exactly once',
    fc.asyncProperty(scenarioArb, async ({ sizes, steps }) => {
      const dir = join(root, `run-${run++}`);
      const clock = new ManualClock();
      let p = await openPartition(dir, clock, 600);
      try {
        const models: ProducerModel[] = sizes.map((sz, i) => {
          const seqs: number[] = [];
          let next = 0;
          for (const n of sz) {
            seqs.push(next);
            next += n;
          }
          return { id: 1000 + i, sizes: sz, seqs, acked: new Map() };
        });
        const send = async (m: ProducerModel, i: number, lost: boolean, strict = false) => {
          const values = Array.from({ length: m.sizes[i]! }, (_, k) => `b${i}r${k}`);
          try {
            const info = await p.appendAsLeader(idem(m.id, m.seqs[i]!, values), 1);
            if (lost) return;
            const prev = m.acked.get(i);
            assert.ok(prev === undefined || prev === info.firstOffset, `batch ${i} of ${m.id} acknowledged at ${prev} and again at ${info.firstOffset}`);
            m.acked.set(i, info.firstOffset);
          } catch (e) {
            // In order, with everything before acknowledged, a batch is new or a retry: never refused.
            if (strict) throw e;
            // The only refusals a well-behaved producer can meet: it ran ahead of a batch
            // that has not been appended yet (a gap), which before its very first batch
            // lands reads UNKNOWN_PRODUCER_ID (Kafka 2.x); both are retried later.
            const gap = isRaftkaError(e, 'OUT_OF_ORDER_SEQUENCE_NUMBER') || (i > 0 && isRaftkaError(e, 'UNKNOWN_PRODUCER_ID'));
            assert.ok(gap, `batch ${i} of ${m.id}: ${(e as Error).message}`);
          }
        };
        for (const step of steps) {
          if (step.kind === 'restart') {
            if (step.crash) await p.log.abandon();
            else await p.close();
            p = await openPartition(dir, clock, 600);
            continue;
          }
          // Attempts in one step are in flight together: their appends interleave in the log's queue.
          await Promise.all(
            step.attempts.map((a) => {
              const m = models[a.producer]!;
              const i = firstUnacked(m) + a.ahead;
              return i < m.sizes.length ? send(m, i, a.lost) : Promise.resolve();
            }),
          );
        }
        // Drain: each producer retries its unacknowledged batches in order until all are acknowledged.
        for (const m of models) {
          for (let i = firstUnacked(m); i < m.sizes.length; i = firstUnacked(m)) await send(m, i, false, true);
        }
        // Every batch exactly once, in sequence order per producer, at the offsets acknowledged.
        const contents = await logContents(p.log);
        for (const m of models) {
          const expected = m.sizes.flatMap((n, i) => Array.from({ length: n }, (_, k) => `${m.id}:b${i}r${k}`));
          assert.deepEqual(contents.filter((v) => v.startsWith(`${m.id}:`)), expected);
        }
        const byOffset = new Map<number, string>();
        let offset = 0;
        for (const v of contents) byOffset.set(offset++, v);
        for (const m of models) for (const [i, o] of m.acked) assert.equal(byOffset.get(o), `${m.id}:b${i}r0`, `batch ${i} of ${m.id} acknowledged at offset ${o}`);
      } finally {
        await p.close().catch(() => undefined);
      }
    }),
    { numRuns: 40 },
  );
});

test('a write that fails after admission rebuilds the state from the log: the retry is appended, not a phantom duplicate', async (t) => {
  const dir = tempDir(t);
  const clock = new ManualClock();
  const p = await openPartition(dir, clock);
  await p.appendAsLeader(idem(8, 0, ['a']), 1);
  // The disk fails the write after the sequence check admitted the batch (the state now
  // claims sequence 1 at offset 1, which the log does not hold).
  const log = p.log as unknown as { appendAsLeader: PartitionLog['appendAsLeader'] };
  const real = log.appendAsLeader.bind(p.log);
  log.appendAsLeader = async (records, leaderEpoch, admitFn) => {
    admitFn!([readBatchHeader(records)], p.log.logEndOffset, clock.nowMs(), -1);
    throw new RaftkaError('KAFKA_STORAGE_ERROR', 'disk gone');
  };
  await assert.rejects(p.appendAsLeader(idem(8, 1, ['b']), 1), (e: unknown) => isRaftkaError(e, 'KAFKA_STORAGE_ERROR'));
  log.appendAsLeader = real;
  // Once rebuilt, the producer's retry of sequence 1 is written at offset 1.
  const retry = await waitFor('the rebuilt state accepts the retry', async () => {
    try {
      return await p.appendAsLeader(idem(8, 1, ['b']), 1);
    } catch (e) {
      if (isRaftkaError(e, 'NOT_LEADER_OR_FOLLOWER')) return undefined; // still rebuilding
      throw e;
    }
  });
  assert.ok(!retry.duplicate);
  assert.equal(retry.firstOffset, 1);
  assert.deepEqual(await logContents(p.log), ['8:a', '8:b']);
  await p.close();
});
