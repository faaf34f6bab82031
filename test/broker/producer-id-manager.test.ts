// ProducerIdManager: ids come from controller blocks in order, concurrent callers share
// one block request, the next block is prefetched before the current one runs out, and
// failures are retried until the deadline (then REQUEST_TIMED_OUT).
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { ProducerIdManager, type ProducerIdBlock } from '../../src/broker/producer-id-manager.ts';
import { RaftkaError, isRaftkaError } from '../../src/common/errors.ts';
import { silentLogger } from '../../src/common/logger.ts';
import { waitFor } from '../support/tmp.ts';

test('ids from consecutive blocks, one block request at a time, prefetched at 90%', async () => {
  const requests: number[] = [];
  let next = 0;
  const m = new ProducerIdManager({
    allocate: async (): Promise<ProducerIdBlock> => {
      requests.push(next);
      const block = { start: next, len: 10 };
      next += 10;
      return block;
    },
    logger: silentLogger(),
  });
  // Concurrent first callers share the single block request.
  const first = await Promise.all(Array.from({ length: 5 }, () => m.nextProducerId()));
  assert.deepEqual(first.sort((a, b) => a - b), [0, 1, 2, 3, 4]);
  assert.deepEqual(requests, [0]);
  const more: number[] = [];
  for (let i = 0; i < 4; i++) more.push(await m.nextProducerId());
  assert.deepEqual(more, [5, 6, 7, 8]);
  // Id 8 left one id in the block: the next block was requested in the background.
  await waitFor('prefetch', () => requests.length === 2);
  const rest: number[] = [];
  for (let i = 0; i < 12; i++) rest.push(await m.nextProducerId());
  assert.deepEqual(rest, Array.from({ length: 12 }, (_, i) => 9 + i));
  assert.equal(new Set([...first, ...more, ...rest]).size, 21);
  m.close();
  await assert.rejects(m.nextProducerId(), (e: unknown) => isRaftkaError(e, 'BROKER_NOT_AVAILABLE'));
});

test('controller failures are retried until the deadline, then REQUEST_TIMED_OUT', async () => {
  let calls = 0;
  let down = true;
  const m = new ProducerIdManager({
    allocate: async () => {
      calls++;
      if (down) throw new RaftkaError('NOT_CONTROLLER', 'controller moving');
      return { start: 1000, len: 1000 };
    },
    timeoutMs: 300,
    retryBackoffMs: 10,
    logger: silentLogger(),
  });
  await assert.rejects(m.nextProducerId(), (e: unknown) => isRaftkaError(e, 'REQUEST_TIMED_OUT') && /controller moving/.test((e as Error).message));
  assert.ok(calls > 3, `retried (${calls} calls)`);
  // The controller comes back while a caller is waiting: it gets an id.
  const pending = m.nextProducerId();
  down = false;
  assert.equal(await pending, 1000);
  // A nonsensical block is not used.
  const bad = new ProducerIdManager({ allocate: async () => ({ start: -1, len: 0 }), timeoutMs: 50, retryBackoffMs: 10, logger: silentLogger() });
  await assert.rejects(bad.nextProducerId(), (e: unknown) => isRaftkaError(e, 'REQUEST_TIMED_OUT'));
});
