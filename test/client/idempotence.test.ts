// The idempotent producer under a hostile network, as a property: a broker that keeps
// Kafka's per-partition producer state (the next expected sequence and the last 5
// batches, answering a duplicate with its original offset, rejecting gaps with
// OUT_OF_ORDER_SEQUENCE_NUMBER) sits behind a fast-check schedule that delays requests
// (so they reach it out of order), loses them before or after the append, and appends
// some twice. Invariant 4 of DESIGN.md from the client side: every send resolves, and
// each partition holds every record exactly once, in send order.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import fc from 'fast-check';
import { Raftka } from '../../src/client/index.ts';
import { decodeRecords, readBatchHeader } from '../../src/log/batch.ts';
import type { PartitionProduceResponse, ProduceRequest, ProduceResponse } from '../../src/proto/raftka.ts';
import { assertProperty } from '../support/property.ts';
import { FakeBroker } from './fake-broker.ts';

type Action = { type: 'ok' } | { type: 'delay'; ms: number } | { type: 'loseRequest' } | { type: 'loseResponse' } | { type: 'duplicate' };

const actionArb: fc.Arbitrary<Action> = fc.oneof(
  { weight: 5, arbitrary: fc.constant({ type: 'ok' as const }) },
  { weight: 3, arbitrary: fc.integer({ min: 1, max: 25 }).map((ms) => ({ type: 'delay' as const, ms })) },
  { weight: 1, arbitrary: fc.constant({ type: 'loseRequest' as const }) },
  { weight: 1, arbitrary: fc.constant({ type: 'loseResponse' as const }) },
  { weight: 1, arbitrary: fc.constant({ type: 'duplicate' as const }) },
);

interface PState {
  producerId: number;
  nextSeq: number;
  recent: Array<{ seq: number; baseOffset: number }>;
  records: string[];
}

/** Kafka's leader-side sequence check for one batch [ProducerStateManager / ProducerAppendInfo]. */
function appendIdempotent(state: Map<number, PState>, partition: number, batch: Buffer): PartitionProduceResponse {
  const h = readBatchHeader(batch);
  let s = state.get(partition);
  if (!s) state.set(partition, (s = { producerId: -1, nextSeq: 0, recent: [], records: [] }));
  const answer = (errorCode: number, baseOffset = -1): PartitionProduceResponse => ({ partition, errorCode, errorMessage: '', baseOffset, logAppendTimeMs: -1, logStartOffset: 0, currentLeader: null });
  if (h.producerId !== s.producerId) {
    if (h.baseSequence !== 0) return answer(59); // UNKNOWN_PRODUCER_ID
    s.producerId = h.producerId;
    s.nextSeq = 0;
    s.recent = [];
  }
  const dup = s.recent.find((r) => r.seq === h.baseSequence);
  if (dup) return answer(0, dup.baseOffset);
  if (h.baseSequence !== s.nextSeq) return answer(45); // OUT_OF_ORDER_SEQUENCE_NUMBER
  const baseOffset = s.records.length;
  for (const r of decodeRecords(batch)) s.records.push(r.value!.toString());
  s.nextSeq = h.baseSequence + h.recordCount;
  s.recent.push({ seq: h.baseSequence, baseOffset });
  if (s.recent.length > 5) s.recent.shift();
  return answer(0, baseOffset);
}

test('idempotent producer: exactly once, in order, under delays, losses and duplicates', { timeout: 120_000 }, async () => {
  await assertProperty(
    'exactly once in order',
    fc.asyncProperty(
      fc.array(actionArb, { minLength: 1, maxLength: 40 }),
      fc.array(fc.record({ partition: fc.integer({ min: 0, max: 1 }), records: fc.integer({ min: 1, max: 3 }) }), { minLength: 1, maxLength: 40 }),
      fc.constantFrom('stream' as const, 'unary' as const),
      async (schedule, sends, transport) => {
        const broker = new FakeBroker({ t: 2 });
        await broker.start();
        const state = new Map<number, PState>();
        let n = 0;
        broker.handler = async (req: ProduceRequest): Promise<ProduceResponse> => {
          // The schedule plays twice over, then the network heals (a network that never
          // delivers anything can only end in deliveryTimeoutMs).
          const i = n++;
          const action: Action = i < 2 * schedule.length ? schedule[i % schedule.length]! : { type: 'ok' };
          if (action.type === 'delay') await new Promise((r) => setTimeout(r, action.ms)); // the reordering under test
          if (action.type === 'loseRequest') throw new Error('request lost');
          const td = req.topicData[0]!;
          const partitions = td.partitions.map((p) => appendIdempotent(state, p.partition, p.records));
          if (action.type === 'duplicate') td.partitions.forEach((p) => appendIdempotent(state, p.partition, p.records));
          if (action.type === 'loseResponse') throw new Error('response lost');
          return { correlationId: req.correlationId ?? 0, errorCode: 0, errorMessage: '', responses: [{ name: 't', topicId: '', partitions }] };
        };
        const producer = new Raftka({ brokers: [broker.address], requestTimeout: 200 }).producer({ transport, lingerMs: 0, batchSize: 64, retry: { initialRetryTime: 2, maxRetryTime: 10 }, deliveryTimeoutMs: 60_000 });
        try {
          await producer.connect();
          let k = 0;
          const expected = new Map<number, string[]>([[0, []], [1, []]]);
          const results = await Promise.all(
            sends.map(({ partition, records }) => {
              const messages = Array.from({ length: records }, () => ({ value: `r${k++}`, partition }));
              expected.get(partition)!.push(...messages.map((m) => m.value));
              return producer.send({ topic: 't', messages, timeout: 50 });
            }),
          );
          for (const p of [0, 1]) assert.deepEqual(state.get(p)?.records ?? [], expected.get(p), `partition ${p}`);
          // Each record's reported offset is where it really is.
          for (let i = 0, idx = 0; i < sends.length; i++) {
            for (const md of results[i]!) {
              assert.equal(state.get(md.partition)!.records[md.offset], `r${idx++}`);
            }
          }
          return true;
        } finally {
          await producer.disconnect();
          await broker.stop();
        }
      },
    ),
    { numRuns: 25 },
  );
});
