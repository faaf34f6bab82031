// Producer behaviour against a broker whose answers the test controls (test/client/
// fake-broker.ts): bounded buffer memory, send after disconnect, retries that resend the
// same bytes in order, non-retriable errors, and batching many partitions per request.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { Raftka, RaftkaClientError, RaftkaProtocolError, type Producer } from '../../src/client/index.ts';
import { decodeRecords, readBatchHeader, validateBatchAt } from '../../src/log/batch.ts';
import { decodeBatch } from '../../src/client/codecs.ts';
import type { ProduceRequest, ProduceResponse } from '../../src/proto/raftka.ts';
import { defer, waitFor } from '../support/tmp.ts';
import { FakeBroker } from './fake-broker.ts';
import { ERRORS } from '../../src/common/errors.ts';

const ERR = Object.fromEntries(Object.entries(ERRORS).map(([k, v]) => [k, v.code])) as Record<keyof typeof ERRORS, number>;

async function setup(t: { after(fn: () => unknown): void }, topics: Record<string, number>, opts: Parameters<Raftka['producer']>[0] = {}): Promise<{ broker: FakeBroker; producer: Producer }> {
  const broker = new FakeBroker(topics);
  await broker.start();
  defer(t, () => broker.stop());
  const producer = new Raftka({ brokers: [broker.address], clientId: 'test', requestTimeout: 5000 }).producer(opts);
  await producer.connect();
  defer(t, () => producer.disconnect().catch(() => undefined));
  return { broker, producer };
}

function errorAnswer(req: ProduceRequest, code: number): ProduceResponse {
  return {
    correlationId: req.correlationId ?? 0,
    errorCode: 0,
    errorMessage: '',
    responses: req.topicData.map((td) => ({ name: td.name ?? '', topicId: '', partitions: td.partitions.map((p) => ({ partition: p.partition, errorCode: code, errorMessage: 'injected', baseOffset: -1, logAppendTimeMs: -1, logStartOffset: -1, currentLeader: null })) })),
  };
}

test('send waits while bufferMemory is full, memory stays bounded, and everything is delivered once answers flow', async (t) => {
  const bufferMemory = 64 * 1024;
  const { broker, producer } = await setup(t, { t: 1 }, { bufferMemory, batchSize: 16 * 1024, lingerMs: 1 });
  const held: Array<() => void> = [];
  broker.handler = (req) => new Promise((resolve) => held.push(() => resolve(broker.appendAll(req))));
  const value = Buffer.alloc(1000, 0x61);
  let peak = 0;
  let resolved = 0;
  const sends = Array.from({ length: 300 }, (_, i) =>
    producer.send({ topic: 't', messages: [{ value, key: `k${i}` }] }).then((r) => {
      resolved++;
      return r;
    }),
  );
  const watch = setInterval(() => (peak = Math.max(peak, producer.bufferedBytesNow)), 1);
  defer(t, () => clearInterval(watch));
  // The broker holds every answer: the buffer fills and the remaining sends wait.
  await waitFor('the buffer to fill', () => producer.bufferedBytesNow >= bufferMemory, 5000, 5);
  await waitFor('requests to reach the broker', () => held.length > 0, 5000, 5);
  assert.equal(resolved, 0);
  const pendingBefore = held.length;
  // Nothing more is accepted while nothing is released.
  assert.ok(producer.bufferedBytesNow < bufferMemory + 2 * 1100, `buffered ${producer.bufferedBytesNow}`);
  broker.handler = (req) => Promise.resolve(broker.appendAll(req));
  for (const release of held.splice(0)) release();
  const results = await Promise.all(sends);
  clearInterval(watch);
  assert.ok(pendingBefore > 0);
  assert.ok(peak <= bufferMemory + 1100, `peak buffered ${peak} exceeds bufferMemory + one record`);
  assert.equal(producer.bufferedBytesNow, 0);
  const offsets = results.map((r) => r[0]!.offset).sort((a, b) => a - b);
  assert.deepEqual(offsets, Array.from({ length: 300 }, (_, i) => i));
  const stored = broker.batches('t', 0).flatMap((b) => decodeRecords(b.bytes));
  assert.equal(stored.length, 300);
});

test('send after disconnect fails with a typed error; disconnect drains what was queued', async (t) => {
  const { broker, producer } = await setup(t, { t: 3 }, { lingerMs: 50 });
  const pending = producer.send({ topic: 't', messages: [{ value: 'queued-1' }, { value: 'queued-2', partition: 2 }] });
  await producer.disconnect();
  const r = await pending;
  assert.equal(r.length, 2);
  assert.equal(r[1]!.partition, 2);
  assert.equal(broker.batches('t', 2).length, 1);
  await assert.rejects(producer.send({ topic: 't', messages: [{ value: 'late' }] }), (e) => e instanceof RaftkaClientError && e.type === 'PRODUCER_DISCONNECTED');
  await assert.rejects(
    new Raftka({ brokers: [broker.address] }).producer().send({ topic: 't', messages: [{ value: 'x' }] }),
    (e) => e instanceof RaftkaClientError && e.type === 'NOT_CONNECTED',
  );
});

test('retriable errors resend the same bytes (same producer id and sequence) and keep per-partition order', async (t) => {
  const { broker, producer } = await setup(t, { t: 1 }, { lingerMs: 0, batchSize: 1, maxInFlightRequests: 5, retry: { initialRetryTime: 5, maxRetryTime: 20 } });
  // The first two requests fail with NOT_LEADER_OR_FOLLOWER, later ones succeed; the
  // broker checks sequences like a partition leader would.
  let failures = 2;
  let expectedSeq = 0;
  broker.handler = (req) => {
    const batch = req.topicData[0]!.partitions[0]!.records;
    const h = readBatchHeader(batch);
    if (failures > 0) {
      failures--;
      return Promise.resolve(errorAnswer(req, 6));
    }
    if (h.baseSequence !== expectedSeq) return Promise.resolve(errorAnswer(req, 45)); // OUT_OF_ORDER_SEQUENCE_NUMBER
    expectedSeq = h.baseSequence + h.recordCount;
    return Promise.resolve(broker.appendAll(req));
  };
  const results = await Promise.all(Array.from({ length: 20 }, (_, i) => producer.send({ topic: 't', messages: [{ value: `v${i}` }] })));
  assert.deepEqual(results.map((r) => r[0]!.offset), Array.from({ length: 20 }, (_, i) => i), 'acknowledged in send order');
  const values = broker.batches('t', 0).flatMap((b) => decodeRecords(b.bytes).map((r) => r.value!.toString()));
  assert.deepEqual(values, Array.from({ length: 20 }, (_, i) => `v${i}`), 'written once each, in order');
  const pid = producer.producerIdentity.producerId;
  assert.ok(pid >= 1000);
  const sent = broker.requests.map((r) => readBatchHeader(r.topicData[0]!.partitions[0]!.records));
  assert.ok(sent.every((h) => h.producerId === pid && h.producerEpoch === 0));
  // The failed first attempts were resent with their original sequence.
  assert.equal(sent[0]!.baseSequence, 0);
  assert.ok(sent.filter((h) => h.baseSequence === 0).length >= 2);
});

test('an OUT_OF_ORDER refusal that arrives after its predecessor was acknowledged is retried, not taken for a gap', async (t) => {
  // The leader sees batch 1 before batch 0 (as a retry of 0 on a new stream can overtake
  // it) and refuses it, but the refusal reaches the producer after 0's acknowledgement:
  // nothing is in flight before 1 any more, yet 1 was sent behind an unacknowledged 0.
  const { broker, producer } = await setup(t, { t: 1 }, { lingerMs: 0, batchSize: 1, maxInFlightRequests: 5, retry: { initialRetryTime: 5, maxRetryTime: 20 } });
  let expectedSeq = 0;
  let arrivals = 0;
  let letZeroIn!: () => void;
  const oneRefused = new Promise<void>((r) => (letZeroIn = r));
  let zeroAnswered: Promise<ProduceResponse> | undefined;
  broker.handler = (req) => {
    const h = readBatchHeader(req.topicData[0]!.partitions[0]!.records);
    const append = (): ProduceResponse => {
      if (h.baseSequence !== expectedSeq) return errorAnswer(req, ERR.OUT_OF_ORDER_SEQUENCE_NUMBER);
      expectedSeq = h.baseSequence + h.recordCount;
      return broker.appendAll(req);
    };
    if (arrivals++ === 0) {
      // Batch 0 reaches the "leader" only once batch 1 has been refused.
      zeroAnswered = oneRefused.then(append);
      return zeroAnswered;
    }
    const answer = append();
    if (h.baseSequence !== 1 || answer.responses[0]!.partitions[0]!.errorCode === 0) return Promise.resolve(answer);
    letZeroIn();
    // Answered after batch 0's answer is written (then-callbacks run in registration order,
    // and the fake broker registered its write on zeroAnswered first).
    return zeroAnswered!.then(() => answer);
  };
  const results = await Promise.all([producer.send({ topic: 't', messages: [{ value: 'v0' }] }), producer.send({ topic: 't', messages: [{ value: 'v1' }] })]);
  assert.deepEqual(results.map((r) => r[0]!.offset), [0, 1]);
  const values = broker.batches('t', 0).flatMap((b) => decodeRecords(b.bytes).map((r) => r.value!.toString()));
  assert.deepEqual(values, ['v0', 'v1'], 'written once each, in order');
  assert.equal(producer.producerIdentity.producerEpoch, 0, 'no epoch bump: nothing failed');
  const sequences = broker.requests.map((r) => readBatchHeader(r.topicData[0]!.partitions[0]!.records).baseSequence);
  assert.deepEqual(sequences, [0, 1, 1], 'batch 1 refused once, then resent with its sequence');
});

test('a non-retriable error fails the affected send with a typed error naming the code', async (t) => {
  const { broker, producer } = await setup(t, { t: 2 }, { lingerMs: 0 });
  broker.handler = (req) => Promise.resolve(req.topicData[0]!.partitions.some((p) => p.partition === 1) ? errorAnswer(req, 10) : broker.appendAll(req));
  await assert.rejects(producer.send({ topic: 't', messages: [{ value: 'big', partition: 1 }] }), (e) => e instanceof RaftkaProtocolError && e.errorName === 'MESSAGE_TOO_LARGE' && e.code === 10 && !e.retriable && e.partition === 1);
  const ok = await producer.send({ topic: 't', messages: [{ value: 'fine', partition: 0 }] });
  assert.equal(ok[0]!.offset, 0);
  await assert.rejects(producer.send({ topic: 'nope', messages: [{ value: 'x' }] }), (e) => e instanceof RaftkaProtocolError && e.errorName === 'UNKNOWN_TOPIC_OR_PARTITION');
  await assert.rejects(producer.send({ topic: 't', messages: [{ value: 'x', partition: 7 }] }), (e) => e instanceof RaftkaProtocolError && e.errorName === 'UNKNOWN_TOPIC_OR_PARTITION');
  await assert.rejects(producer.send({ topic: 't', acks: 1, messages: [{ value: 'x' }] }), (e) => e instanceof RaftkaClientError && e.type === 'INVALID_ARGUMENT');
});

test('a deliveryTimeoutMs bound fails sends the broker keeps refusing', async (t) => {
  const { broker, producer } = await setup(t, { t: 1 }, { lingerMs: 0, deliveryTimeoutMs: 300, retry: { initialRetryTime: 10, maxRetryTime: 50 } });
  broker.handler = (req) => Promise.resolve(errorAnswer(req, 19)); // NOT_ENOUGH_REPLICAS
  const t0 = Date.now();
  await assert.rejects(producer.send({ topic: 't', messages: [{ value: 'x' }] }), (e) => e instanceof RaftkaProtocolError && e.errorName === 'REQUEST_TIMED_OUT' && /NOT_ENOUGH_REPLICAS/.test(e.message));
  assert.ok(Date.now() - t0 < 3000);
  assert.ok(broker.requests.length >= 2, 'retried before giving up');
});

test('one request carries many partitions, one batch each, and records per message come back in order', async (t) => {
  // Only flush seals: with a short linger, a stall of the append loop on a loaded machine
  // let the linger timer seal the first partitions' batches before the last ones existed.
  const { broker, producer } = await setup(t, { t: 6 }, { lingerMs: 10_000 });
  const messages = Array.from({ length: 600 }, (_, i) => ({ key: `key-${i}`, value: `value-${i}` }));
  const sent = producer.send({ topic: 't', messages });
  // One synchronous loop appends the whole send, so any buffered bytes mean all of it.
  await waitFor('records buffered', () => producer.bufferedBytesNow > 0, 5000, 5);
  await producer.flush();
  const r = await sent;
  assert.equal(r.length, 600);
  assert.ok(broker.requests.length <= 2, `${broker.requests.length} requests for 600 small records`);
  assert.ok(broker.requests[0]!.topicData[0]!.partitions.length > 1);
  for (let i = 0; i < 600; i++) {
    const md = r[i]!;
    const batch = broker.batches('t', md.partition).find((b) => b.baseOffset === md.baseOffset)!;
    const rec = decodeRecords(batch.bytes)[md.offset - md.baseOffset]!;
    assert.equal(rec.value!.toString(), `value-${i}`);
  }
});

test('sendBatch spans topics; a custom partitioner is used for records without a partition; flush waits for delivery', async (t) => {
  const { broker } = await setup(t, { a: 3, b: 2 });
  const seen: string[] = [];
  const producer = new Raftka({ brokers: [broker.address] }).producer({
    lingerMs: 10_000, // only flush seals
    partitioner: ({ topic, key, numPartitions }) => {
      seen.push(`${topic}:${key?.toString() ?? 'null'}:${numPartitions}`);
      return numPartitions - 1;
    },
  });
  await producer.connect();
  defer(t, () => producer.disconnect());
  const pending = producer.sendBatch({
    topicMessages: [
      { topic: 'a', messages: [{ key: 'x', value: '1' }, { value: '2', partition: 0 }] },
      { topic: 'b', messages: [{ key: 'y', value: '3' }] },
    ],
  });
  await waitFor('records buffered', () => producer.bufferedBytesNow > 0, 5000, 5);
  assert.equal(broker.requests.length, 0, 'nothing sent before linger or flush');
  await producer.flush();
  const r = await pending;
  assert.deepEqual(seen, ['a:x:3', 'b:y:2']);
  assert.deepEqual(r.map((m) => [m.topicName, m.partition, m.offset]), [['a', 2, 0], ['a', 0, 0], ['b', 1, 0]]);
  assert.equal(broker.requests.length, 1, 'both topics in one request');
});

test('acks=0 and 1 need idempotent: false; an explicit idempotent: true with them is rejected up front', async (t) => {
  const broker = new FakeBroker({ t: 1 });
  await broker.start();
  defer(t, () => broker.stop());
  const raftka = new Raftka({ brokers: [broker.address] });
  assert.throws(() => raftka.producer({ idempotent: true, acks: 1 }), (e) => e instanceof RaftkaClientError && e.type === 'INVALID_ARGUMENT');
  assert.throws(() => raftka.producer({ idempotent: true, maxInFlightRequests: 6 }), (e) => e instanceof RaftkaClientError && e.type === 'INVALID_ARGUMENT');
  // acks set explicitly without `idempotent`: idempotence is off (as in Kafka 3.2+).
  const p = raftka.producer({ acks: 0 });
  assert.equal(p.idempotent, false);
  await p.connect();
  defer(t, () => p.disconnect());
  assert.equal(p.producerIdentity.producerId, -1);
  const r = await p.send({ topic: 't', messages: [{ value: 'fire and forget' }] });
  assert.equal(r.length, 1);
  assert.equal(broker.requests[0]!.acks, 0);
  assert.equal(readBatchHeader(broker.requests[0]!.topicData[0]!.partitions[0]!.records).producerId, -1);
});

test('every batch sent carries a valid CRC and its producer id and sequence, idempotent or not, compressed or not', async (t) => {
  for (const idempotent of [true, false]) {
    for (const compression of ['none', 'gzip'] as const) {
      const { broker, producer } = await setup(t, { t: 2 }, { idempotent, compression, lingerMs: 5, batchSize: 4096 });
      // Enough records for several batches per partition, so later batches reuse the partition's last size.
      const values = Array.from({ length: 40 }, (_, i) => `record ${i} `.repeat(30));
      for (let i = 0; i < values.length; i += 10) await producer.send({ topic: 't', messages: values.slice(i, i + 10).map((value, j) => ({ value, partition: (i + j) % 2 })) });
      const got: string[] = [];
      for (const partition of [0, 1]) {
        let sequence = 0;
        for (const { bytes } of broker.batches('t', partition)) {
          const what = `idempotent=${idempotent} compression=${compression} partition ${partition}`;
          assert.equal(validateBatchAt(bytes, 0), bytes.length, what);
          const h = readBatchHeader(bytes);
          assert.equal(h.producerId, idempotent ? producer.producerIdentity.producerId : -1, what);
          assert.equal(h.baseSequence, idempotent ? sequence : -1, what);
          sequence += h.lastOffset - h.baseOffset + 1;
          for (const r of await decodeBatch(bytes)) got.push(r.value!.toString());
        }
      }
      assert.deepEqual(got.sort(), [...values].sort());
    }
  }
});

test('a record larger than maxRequestSize fails send with MESSAGE_TOO_LARGE naming size and limit; nothing of the send goes out', async (t) => {
  const { broker, producer } = await setup(t, { t: 1 }, { lingerMs: 0, maxRequestSize: 1000 });
  await assert.rejects(
    producer.send({ topic: 't', messages: [{ value: 'small' }, { value: 'x'.repeat(2000) }] }),
    (e) => e instanceof RaftkaProtocolError && e.errorName === 'MESSAGE_TOO_LARGE' && /message 1 for t is 20\d\d bytes when encoded, larger than maxRequestSize \(1000 bytes\)/.test(e.message),
  );
  // Multi-byte characters count by their UTF-8 size, headers too.
  await assert.rejects(producer.send({ topic: 't', messages: [{ value: 'é'.repeat(600) }] }), (e) => e instanceof RaftkaProtocolError && e.errorName === 'MESSAGE_TOO_LARGE');
  await assert.rejects(producer.send({ topic: 't', messages: [{ value: 'v', headers: { h: 'y'.repeat(1000) } }] }), (e) => e instanceof RaftkaProtocolError && e.errorName === 'MESSAGE_TOO_LARGE');
  assert.equal(broker.requests.length, 0, 'nothing was sent');
  const ok = await producer.send({ topic: 't', messages: [{ value: 'a'.repeat(800) }] });
  assert.equal(ok[0]!.offset, 0);
  assert.deepEqual(broker.batches('t', 0).flatMap((b) => decodeRecords(b.bytes).map((r) => r.value!.length)), [800]);
});

test('after a batch is refused for good, the producer bumps its epoch and renumbers the partition: later sends succeed, each record once, in order', async (t) => {
  const { broker, producer } = await setup(t, { t: 2 }, { lingerMs: 0, batchSize: 1 });
  const { producerId } = producer.producerIdentity;
  // The leader's sequence rules (src/broker/producer-state.ts), plus a record the topic
  // refuses (MESSAGE_TOO_LARGE): decided in arrival order, as the leader appends.
  const state = new Map<number, { epoch: number; next: number }>();
  const decide = (req: ProduceRequest): ProduceResponse => {
    const pd = req.topicData[0]!.partitions[0]!;
    const h = readBatchHeader(pd.records);
    const count = h.lastOffset - h.baseOffset + 1;
    if (decodeRecords(pd.records)[0]!.value!.toString().startsWith('big')) return errorAnswer(req, ERR.MESSAGE_TOO_LARGE);
    const st = state.get(pd.partition);
    let code = 0;
    if (st === undefined || h.producerEpoch > st.epoch) code = h.baseSequence === 0 ? 0 : st === undefined ? ERR.UNKNOWN_PRODUCER_ID : ERR.OUT_OF_ORDER_SEQUENCE_NUMBER;
    else if (h.producerEpoch < st.epoch) code = ERR.INVALID_PRODUCER_EPOCH;
    else if (h.baseSequence !== st.next) code = ERR.OUT_OF_ORDER_SEQUENCE_NUMBER;
    if (code !== 0) return errorAnswer(req, code);
    state.set(pd.partition, { epoch: h.producerEpoch, next: h.baseSequence + count });
    return broker.appendAll(req);
  };
  // The first three requests are answered together, the refused one first, so the two
  // batches stamped after it are still in flight when the refusal arrives.
  const held: Array<() => void> = [];
  broker.handler = async (req) => {
    const res = decide(req);
    if (held.length < 3) {
      await new Promise<void>((resolve) => {
        held.push(resolve);
        if (held.length === 3) for (const f of held) f();
      });
    }
    return res;
  };
  const big = producer.send({ topic: 't', messages: [{ value: 'big-1', partition: 0 }] });
  const after = [producer.send({ topic: 't', messages: [{ value: 'a', partition: 0 }] }), producer.send({ topic: 't', messages: [{ value: 'b', partition: 0 }] })];
  await assert.rejects(big, (e) => e instanceof RaftkaProtocolError && e.errorName === 'MESSAGE_TOO_LARGE' && e.partition === 0);
  assert.deepEqual((await Promise.all(after)).map((r) => r[0]!.offset), [0, 1], 'the batches sent behind it were renumbered and written');
  // Later sends, another refusal, and another partition all keep working.
  assert.equal((await producer.send({ topic: 't', messages: [{ value: 'c', partition: 0 }] }))[0]!.offset, 2);
  await assert.rejects(producer.send({ topic: 't', messages: [{ value: 'big-2', partition: 0 }] }), (e) => e instanceof RaftkaProtocolError && e.errorName === 'MESSAGE_TOO_LARGE');
  assert.equal((await producer.send({ topic: 't', messages: [{ value: 'd', partition: 0 }] }))[0]!.offset, 3);
  assert.equal((await producer.send({ topic: 't', messages: [{ value: 'e', partition: 1 }] }))[0]!.offset, 0);
  const values = broker.batches('t', 0).flatMap((b) => decodeRecords(b.bytes).map((r) => r.value!.toString()));
  assert.deepEqual(values, ['a', 'b', 'c', 'd'], 'each record once, in send order');
  const headers = broker.batches('t', 0).map((b) => readBatchHeader(b.bytes));
  assert.deepEqual(headers.map((h) => [h.producerId, h.producerEpoch, h.baseSequence]), [
    [producerId, 1, 0],
    [producerId, 1, 1],
    [producerId, 1, 2],
    [producerId, 2, 0],
  ]);
  assert.deepEqual(producer.producerIdentity, { producerId, producerEpoch: 2 }, 'same producer id: the epoch was bumped locally');
});

test('lingerMs 0 ships at the end of the current turn (no timer): sends of one tick share a batch', { timeout: 10_000 }, async (t) => {
  const { broker, producer } = await setup(t, { t: 1 }, { lingerMs: 0 });
  // Timers frozen: a linger built on setTimeout would never fire.
  t.mock.timers.enable({ apis: ['setTimeout'] });
  const sends = [producer.send({ topic: 't', messages: [{ value: 'a' }] }), producer.send({ topic: 't', messages: [{ value: 'b' }, { value: 'c' }] })];
  const results = await Promise.all(sends);
  t.mock.timers.reset();
  assert.deepEqual(results.flat().map((r) => r.offset), [0, 1, 2]);
  const batches = broker.batches('t', 0);
  assert.equal(batches.length, 1, 'one batch for the whole tick');
  assert.deepEqual(decodeRecords(batches[0]!.bytes).map((r) => r.value!.toString()), ['a', 'b', 'c']);
});
