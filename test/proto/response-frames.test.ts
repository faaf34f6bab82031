import { test } from 'node:test';
import assert from 'node:assert/strict';
import type { FetchResponse } from '../../src/proto/raftka.ts';
import { FramePool, installPooledResponseFrames, responseFrames } from '../../src/proto/response-frames.ts';
import { fetchServer } from '../support/fetch-server.ts';

test('the pooled response frames are installed into the grpc-js this repository locks (an upgrade that drops them fails here)', () => {
  assert.equal(installPooledResponseFrames(), true);
});

test('FramePool lends power-of-two buffers in its range, takes back only its own, once, and bounds what it keeps', () => {
  const pool = new FramePool(1024, 8192, 8192);
  const small = pool.acquire(1000);
  assert.equal(small.length, 1000);
  pool.release(small); // not pooled: ignored
  assert.equal(pool.idleBytesNow, 0);
  const a = pool.acquire(3000);
  assert.equal(a.length, 3000);
  assert.equal(a.buffer.byteLength, 4096);
  pool.release(a);
  pool.release(a); // a second give-back is ignored
  assert.equal(pool.idleBytesNow, 4096);
  const b = pool.acquire(2049);
  assert.equal(b.buffer, a.buffer, 'the idle buffer of that size is lent again');
  assert.equal(pool.idleBytesNow, 0);
  pool.release(Buffer.alloc(4096)); // foreign memory: ignored
  assert.equal(pool.idleBytesNow, 0);
  const big = pool.acquire(8193);
  assert.equal(big.buffer.byteLength >= 8193, true);
  pool.release(big); // above the range: never pooled
  const c = pool.acquire(8192);
  const d = pool.acquire(8192);
  pool.release(b);
  pool.release(c);
  pool.release(d); // over the idle bound: dropped
  assert.equal(pool.idleBytesNow, 4096, 'b kept; c and d would pass the 8192-byte bound');
});

function response(tag: number, size: number): FetchResponse {
  return {
    correlationId: 0,
    errorCode: 0,
    errorMessage: '',
    responses: [{ name: `t${tag}`, topicId: '', partitions: [{ partition: 0, errorCode: 0, errorMessage: '', highWatermark: tag, lastStableOffset: -1, logStartOffset: 0, records: Buffer.alloc(size, tag % 251), currentLeader: null }] }],
  };
}

test('large responses framed in pooled buffers arrive intact while the buffers are given back and lent again', async (t) => {
  assert.equal(installPooledResponseFrames(), true);
  // Answered out of order, so frames are taken and given back interleaved.
  const size = (tag: number) => 200_000 + (tag % 5) * 150_000;
  const client = await fetchServer(t, (tag) => response(tag, size(tag)));
  const streams = [client.fetchStream(), client.fetchStream()];
  for (let round = 0; round < 3; round++) {
    const tags = Array.from({ length: 30 }, (_, i) => round * 100 + i + 1);
    const answers = await Promise.all(tags.map((tag, i) => streams[i % 2]!.send({ maxWaitMs: 0, minBytes: 0, maxBytes: tag, topics: [] })));
    answers.forEach((r, i) => {
      const tag = tags[i]!;
      const records = Buffer.from(r.responses[0]!.partitions[0]!.records);
      assert.equal(records.length, size(tag), `response ${tag} length`);
      assert.ok(records.every((b) => b === tag % 251), `response ${tag} intact (round ${round})`);
    });
    assert.ok(responseFrames.idleBytesNow > 0, `frames were given back after round ${round}`);
  }
  await Promise.all(streams.map((s) => s.close()));
});
