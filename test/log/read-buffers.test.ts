import { test } from 'node:test';
import assert from 'node:assert/strict';
import { PartitionLog } from '../../src/log/partition-log.ts';
import { logConfig } from '../../src/log/config.ts';
import { buildBatch, decodeRecords, iterateBatches } from '../../src/log/batch.ts';
import { READ_BUFFERS_KEPT, ReadBufferPool, readBuffers } from '../../src/log/read-buffers.ts';
import { defer, tempDir } from '../support/tmp.ts';

test('the pool lends whole buffers for large reads only, takes back only its own, once, and keeps a bounded number', () => {
  const pool = new ReadBufferPool(256 * 1024, 2);
  const small = pool.acquire(1000);
  const huge = pool.acquire(300 * 1024);
  assert.deepEqual([small.length, huge.length], [1000, 300 * 1024], 'small and oversize reads get exact, ordinary buffers');
  pool.release(small);
  pool.release(huge);
  assert.equal(pool.idleCount, 0, 'buffers the pool did not lend are not taken');

  const a = pool.acquire(100 * 1024);
  assert.equal(a.length, 256 * 1024, 'a pooled buffer has the pool size');
  pool.release(a.subarray(10, 20));
  assert.equal(pool.idleCount, 1, 'any view gives back the buffer under it');
  pool.release(a);
  assert.equal(pool.idleCount, 1, 'a second give-back is ignored');
  assert.equal(pool.acquire(70 * 1024).buffer, a.buffer, 'the idle buffer is lent again');

  const lent = [pool.acquire(80 * 1024), pool.acquire(80 * 1024), pool.acquire(80 * 1024), a];
  assert.equal(new Set(lent.map((b) => b.buffer)).size, 4, 'a buffer is never lent twice at once');
  for (const b of lent) pool.release(b);
  assert.equal(pool.idleCount, 2, 'at most `kept` idle buffers stay');
});

test('segment reads into lent buffers: given back and reused, every read still returns its own records', async (t) => {
  const dir = tempDir(t);
  const config = logConfig({ 'segment.bytes': 8 * 1024 * 1024, 'flush.before.ack': false });
  const value = (i: number) => `record-${i}-`.padEnd(1000, String.fromCharCode(97 + (i % 26)));
  const written = await PartitionLog.open(dir, { config });
  for (let b = 0; b < 40; b++) await written.appendAsLeader(buildBatch(Array.from({ length: 10 }, (_, i) => ({ value: value(b * 10 + i) }))), 0);
  await written.close();
  // Reopened, so reads come from the segment file, not the tail cache of recent appends.
  const log = await PartitionLog.open(dir, { config });
  defer(t, () => log.close());
  const before = readBuffers.idleCount;
  const seen = new Set<ArrayBufferLike>();
  for (const from of [0, 150, 300, 0, 250]) {
    const { records } = await log.read(from, 100 * 1024);
    seen.add(records.buffer);
    const got = [...iterateBatches(records)].flatMap(({ bytes }) => decodeRecords(bytes));
    assert.ok(got.length > 0 && got[0]!.offset <= from, `read(${from}) starts at the batch holding it`);
    for (const r of got) assert.equal(r.value!.toString(), value(r.offset), `offset ${r.offset} read back intact`);
    readBuffers.release(records);
  }
  assert.equal(seen.size, 1, 'each read reused the buffer the one before gave back');
  assert.ok(readBuffers.idleCount >= Math.min(before + 1, READ_BUFFERS_KEPT));
});

test('a read joining several recently appended batches answers them in one lent buffer', async (t) => {
  const log = await PartitionLog.open(tempDir(t), { config: logConfig({ 'segment.bytes': 8 * 1024 * 1024, 'flush.before.ack': false }) });
  defer(t, () => log.close());
  const batches = [0, 1, 2].map((b) => buildBatch(Array.from({ length: 30 }, (_, i) => ({ value: `${b}-${i}-`.padEnd(1000, 'z') }))));
  for (const b of batches) await log.appendAsLeader(b, 0);
  const { records } = await log.read(0, 1 << 20);
  const got = [...iterateBatches(records)].flatMap(({ bytes }) => decodeRecords(bytes)).map((r) => r.value!.toString());
  assert.deepEqual(got, [0, 1, 2].flatMap((b) => Array.from({ length: 30 }, (_, i) => `${b}-${i}-`.padEnd(1000, 'z'))));
  const idle = readBuffers.idleCount;
  readBuffers.release(records);
  assert.equal(readBuffers.idleCount, Math.min(idle + 1, READ_BUFFERS_KEPT), 'the joined batches sat in a lent buffer');
});
