import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readdirSync, writeFileSync, truncateSync, statSync, readFileSync, openSync, writeSync, closeSync, unlinkSync } from 'node:fs';
import { join } from 'node:path';
import { PartitionLog } from '../../src/log/partition-log.ts';
import { logConfig } from '../../src/log/config.ts';
import { buildBatch, decodeRecords, iterateBatches, readBatchHeader } from '../../src/log/batch.ts';
import { ManualClock } from '../../src/common/clock.ts';
import { isRaftkaError } from '../../src/common/errors.ts';
import { defer, tempDir, waitFor } from '../support/tmp.ts';

const small = (extra: Record<string, unknown> = {}) =>
  logConfig({ 'segment.bytes': 1024, 'index.interval.bytes': 128, 'flush.before.ack': false, ...extra });

function batchOf(n: number, tag: string, ts = 1000): Buffer {
  return buildBatch(Array.from({ length: n }, (_, i) => ({ key: `${tag}-${i}`, value: `${tag}-value-${i}`.padEnd(40, '.'), timestamp: ts + i })));
}

async function readAll(log: PartitionLog, from = log.logStartOffset): Promise<Array<{ offset: number; value: string }>> {
  const out: Array<{ offset: number; value: string }> = [];
  let offset = from;
  while (offset < log.logEndOffset) {
    const { records } = await log.read(offset, 1 << 20);
    if (records.length === 0) break;
    for (const { bytes } of iterateBatches(records)) {
      for (const r of decodeRecords(bytes)) if (r.offset >= offset) out.push({ offset: r.offset, value: r.value!.toString() });
      offset = readBatchHeader(bytes).lastOffset + 1;
    }
  }
  return out;
}

test('append assigns consecutive offsets, rolls segments, and reads back across them', async (t) => {
  const log = await PartitionLog.open(tempDir(t), { config: small() });
  defer(t, () => log.close());
  const infos = [];
  for (let i = 0; i < 20; i++) infos.push(await log.appendAsLeader(batchOf(3, `b${i}`), 5));
  assert.deepEqual(infos.map((x) => x.firstOffset), Array.from({ length: 20 }, (_, i) => i * 3));
  assert.equal(log.logEndOffset, 60);
  assert.ok(log.segmentCount > 3, `expected several segments, got ${log.segmentCount}`);
  const all = await readAll(log);
  assert.deepEqual(all.map((r) => r.offset), Array.from({ length: 60 }, (_, i) => i));
  // Every offset, including each segment's first and last, reads from the right batch.
  for (const base of log.segmentBaseOffsets()) {
    for (const o of [base - 1, base, base + 1]) {
      if (o < 0 || o >= 60) continue;
      const { records } = await log.read(o, 1);
      const h = readBatchHeader(records);
      assert.ok(h.baseOffset <= o && o <= h.lastOffset, `read(${o}) returned batch ${h.baseOffset}..${h.lastOffset}`);
    }
  }
  assert.equal(log.leaderEpochCache.latestEpoch(), 5);
});

test('read honours maxBytes, minOneBatch, the upper bound and the log range', async (t) => {
  const log = await PartitionLog.open(tempDir(t), { config: small() });
  defer(t, () => log.close());
  for (let i = 0; i < 5; i++) await log.appendAsLeader(batchOf(2, `x${i}`), 0);
  const one = (await log.read(0, 1)).records;
  assert.equal([...iterateBatches(one)].length, 1, 'one whole batch even when maxBytes is smaller');
  assert.equal((await log.read(0, 1, { minOneBatch: false })).records.length, 0);
  const bounded = (await log.read(0, 1 << 20, { upperBoundOffset: 4 })).records;
  assert.deepEqual([...iterateBatches(bounded)].map((b) => b.header.baseOffset), [0, 2]);
  assert.equal((await log.read(10, 100)).records.length, 0, 'reading at the log end returns nothing');
  await assert.rejects(log.read(11, 100), (e: unknown) => isRaftkaError(e, 'OFFSET_OUT_OF_RANGE'));
  await assert.rejects(log.read(-1, 100), (e: unknown) => isRaftkaError(e, 'OFFSET_OUT_OF_RANGE'));
});

test('a corrupt or oversize batch is rejected and nothing is written', async (t) => {
  const log = await PartitionLog.open(tempDir(t), { config: small({ 'max.message.bytes': 600 }) });
  defer(t, () => log.close());
  await log.appendAsLeader(batchOf(1, 'ok'), 0);
  const good = batchOf(2, 'good');
  const bad = Buffer.from(good);
  bad[bad.length - 1] = bad[bad.length - 1]! ^ 0xff;
  await assert.rejects(log.appendAsLeader(Buffer.concat([good, bad]), 0), (e: unknown) => isRaftkaError(e, 'CORRUPT_MESSAGE'));
  await assert.rejects(log.appendAsLeader(Buffer.from('not a batch at all, not even close.....................................'), 0), (e: unknown) => isRaftkaError(e, 'CORRUPT_MESSAGE'));
  await assert.rejects(log.appendAsLeader(batchOf(20, 'big'), 0), (e: unknown) => isRaftkaError(e, 'MESSAGE_TOO_LARGE'));
  assert.equal(log.logEndOffset, 1);
  assert.deepEqual((await readAll(log)).map((r) => r.offset), [0]);
});

test('the largest allowed batch and an empty batch are accepted', async (t) => {
  const log = await PartitionLog.open(tempDir(t), { config: small({ 'max.message.bytes': 5000 }) });
  defer(t, () => log.close());
  const big = buildBatch([{ value: Buffer.alloc(5000 - 61 - 10, 1) }]);
  assert.ok(big.length <= 5000);
  const info = await log.appendAsLeader(big, 0);
  assert.equal(info.firstOffset, 0);
  const { records } = await log.read(0, 10);
  assert.equal(records.length, big.length);
  await log.appendAsLeader(batchOf(1, 'after'), 0);
  assert.equal(log.logEndOffset, 2);
});

test('offsetForTimestamp finds the first record at or after a time, with out-of-order timestamps', async (t) => {
  const log = await PartitionLog.open(tempDir(t), { config: small() });
  defer(t, () => log.close());
  const times = [100, 50, 300, 200, 400, 350, 600, 500];
  for (const ts of times) await log.appendAsLeader(buildBatch([{ key: 'k', value: 'v'.repeat(100), timestamp: ts }]), 0);
  for (const target of [0, 50, 51, 100, 150, 300, 301, 400, 450, 600]) {
    const expected = times.findIndex((ts) => ts >= target);
    assert.equal(await log.offsetForTimestamp(target), expected, `timestamp ${target}`);
  }
  assert.equal(await log.offsetForTimestamp(601), undefined);
});

test('truncateTo removes the tail across segments and the leader epochs with it', async (t) => {
  const dir = tempDir(t);
  let log = await PartitionLog.open(dir, { config: small() });
  for (let i = 0; i < 10; i++) await log.appendAsLeader(batchOf(2, `e${i}`), i < 5 ? 1 : 2);
  assert.deepEqual(log.endOffsetForEpoch(1), { epoch: 1, endOffset: 10 });
  const end = await log.truncateTo(7);
  assert.equal(end, 6, 'a batch straddling the cut is removed whole');
  assert.deepEqual(log.leaderEpochCache.all(), [{ epoch: 1, startOffset: 0 }]);
  assert.deepEqual(log.endOffsetForEpoch(2), { epoch: 1, endOffset: 6 });
  await log.appendAsLeader(batchOf(1, 'new'), 3);
  assert.equal(log.logEndOffset, 7);
  await log.close();
  log = await PartitionLog.open(dir, { config: small() });
  defer(t, () => log.close());
  assert.equal(log.logEndOffset, 7);
  assert.deepEqual(log.leaderEpochCache.all(), [{ epoch: 1, startOffset: 0 }, { epoch: 3, startOffset: 6 }]);
  assert.equal((await readAll(log)).at(-1)!.value.startsWith('new-value-0'), true);
});

test('follower appends keep leader offsets and refuse to go back', async (t) => {
  const log = await PartitionLog.open(tempDir(t), { config: small() });
  defer(t, () => log.close());
  await log.appendAsFollower(buildBatch([{ value: 'a' }, { value: 'b' }], { baseOffset: 0, partitionLeaderEpoch: 4 }));
  await log.appendAsFollower(buildBatch([{ value: 'c' }], { baseOffset: 5, partitionLeaderEpoch: 6 }));
  assert.equal(log.logEndOffset, 6);
  assert.deepEqual(log.leaderEpochCache.all(), [{ epoch: 4, startOffset: 0 }, { epoch: 6, startOffset: 5 }]);
  await assert.rejects(log.appendAsFollower(buildBatch([{ value: 'd' }], { baseOffset: 3 })), (e: unknown) => isRaftkaError(e, 'OFFSET_OUT_OF_RANGE'));
  await log.truncateFullyAndStartAt(100);
  assert.equal(log.logStartOffset, 100);
  assert.equal(log.logEndOffset, 100);
});

test('a follower copies a batch over its max.message.bytes (the leader accepted it, maybe under an older limit); a leader refuses it', async (t) => {
  const log = await PartitionLog.open(tempDir(t), { config: small({ 'max.message.bytes': 200 }) });
  defer(t, () => log.close());
  const big = buildBatch([{ value: 'x'.repeat(500) }], { baseOffset: 0, partitionLeaderEpoch: 1 });
  await assert.rejects(log.appendAsLeader(big, 1), (e: unknown) => isRaftkaError(e, 'MESSAGE_TOO_LARGE'));
  assert.equal(log.logEndOffset, 0);
  await log.appendAsFollower(big);
  assert.equal(log.logEndOffset, 1);
});

test('retention deletes whole old segments by bytes and by time, never the active one', async (t) => {
  const clock = new ManualClock(10_000);
  const log = await PartitionLog.open(tempDir(t), { config: small({ 'retention.bytes': 2048, 'retention.ms': 5000 }), clock });
  defer(t, () => log.close());
  for (let i = 0; i < 30; i++) await log.appendAsLeader(batchOf(2, `r${i}`, 10_000 + i), 0);
  const before = log.segmentCount;
  const deleted = await log.deleteOldSegments();
  assert.ok(deleted > 0 && log.sizeInBytes - 1024 < 2048, `size ${log.sizeInBytes} after deleting ${deleted} of ${before}`);
  assert.equal(log.logStartOffset, log.segmentBaseOffsets()[0]);
  await assert.rejects(log.read(0, 100), (e: unknown) => isRaftkaError(e, 'OFFSET_OUT_OF_RANGE'));
  clock.advance(60_000);
  await log.deleteOldSegments(log.logEndOffset);
  assert.equal(log.segmentCount, 1, 'only the active segment is left');
  const hw = log.logEndOffset;
  for (let i = 0; i < 10; i++) await log.appendAsLeader(batchOf(2, `s${i}`, 10), 0);
  await log.deleteOldSegments(hw);
  assert.ok(log.logStartOffset <= hw, `log start ${log.logStartOffset} must not pass the upper bound ${hw}`);
  assert.deepEqual((await readAll(log, hw)).length, 20, 'nothing at or above the upper bound is deleted');
});

test('compaction keeps the latest value per key, keeps offsets, and drops old tombstones', async (t) => {
  const clock = new ManualClock(1_000_000);
  const dir = tempDir(t);
  const log = await PartitionLog.open(dir, { config: small({ 'cleanup.policy': 'compact', 'delete.retention.ms': 1000 }), clock });
  defer(t, () => log.close());
  const latest = new Map<string, { offset: number; value: string | null }>();
  for (let i = 0; i < 60; i++) {
    const key = `k${i % 7}`;
    const value = i % 13 === 12 ? null : `v${i}`;
    const info = await log.appendAsLeader(buildBatch([{ key, value, timestamp: clock.nowMs() }]), 0);
    latest.set(key, { offset: info.firstOffset, value });
  }
  await assert.rejects(log.appendAsLeader(buildBatch([{ value: 'no key' }]), 0), (e: unknown) => isRaftkaError(e, 'INVALID_RECORD'));
  await log.forceRoll();
  // Appends go on while the cleaner runs.
  const [stats, appended] = await Promise.all([log.compact(), log.appendAsLeader(buildBatch([{ key: 'k0', value: 'during' }]), 0)]);
  assert.ok(stats.segmentsCleaned > 0);
  assert.equal(appended.firstOffset, 60);
  const after = new Map<string, { offset: number; value: string | null }>();
  let offset = 0;
  while (offset < 60) {
    const { records } = await log.read(offset, 1 << 20, { upperBoundOffset: 60 });
    if (records.length === 0) break;
    for (const { bytes } of iterateBatches(records)) {
      for (const r of decodeRecords(bytes)) after.set(r.key!.toString(), { offset: r.offset, value: r.value?.toString() ?? null });
      offset = readBatchHeader(bytes).lastOffset + 1;
    }
  }
  assert.deepEqual(after, latest, 'exactly the latest record per key, at its original offset');
  clock.advance(5000);
  await log.compact();
  const tombstones = [...latest].filter(([, v]) => v.value === null).map(([k]) => k);
  const left = await readAll(log);
  assert.equal(left.length, 8 - tombstones.length - (tombstones.includes('k0') ? 0 : 0), `tombstones dropped: ${JSON.stringify(left)}`);
});

test('recovery rebuilds leader epochs the checkpoint missed (crash between the write and the epoch checkpoint)', async (t) => {
  const dir = tempDir(t);
  let log = await PartitionLog.open(dir, { config: small() });
  await log.appendAsLeader(batchOf(2, 'a'), 0);
  await log.appendAsLeader(batchOf(2, 'b'), 2);
  await log.flush();
  await log.abandon();
  // The crash came before the epoch checkpoint was written: it lists nothing.
  writeFileSync(join(dir, 'leader-epoch-checkpoint'), '0\n0\n');
  log = await PartitionLog.open(dir, { config: small() });
  defer(t, () => log.close());
  assert.deepEqual(log.leaderEpochCache.all(), [{ epoch: 0, startOffset: 0 }, { epoch: 2, startOffset: 2 }]);
  // A follower with this log reports epoch 2 as its last fetched epoch, so a leader can
  // find where the logs diverge.
  assert.deepEqual(log.endOffsetForEpoch(0), { epoch: 0, endOffset: 2 });
  assert.equal(log.leaderEpochCache.latestEpoch(), 2);
});

test('recovery after a crash cuts a torn tail and a corrupt batch, logs it, and never serves it', async (t) => {
  const dir = tempDir(t);
  let log = await PartitionLog.open(dir, { config: small() });
  for (let i = 0; i < 6; i++) await log.appendAsLeader(batchOf(2, `c${i}`), 0);
  await log.flush();
  await log.abandon();
  const active = readdirSync(dir).filter((f) => f.endsWith('.log')).sort().at(-1)!;
  const path = join(dir, active);
  truncateSync(path, statSync(path).size - 7);
  log = await PartitionLog.open(dir, { config: small() });
  const end = log.logEndOffset;
  assert.ok(end < 12 && end % 2 === 0, `torn batch cut, log end ${end}`);
  assert.deepEqual((await readAll(log)).map((r) => r.offset), Array.from({ length: end }, (_, i) => i));
  // Flip a byte inside the first batch of the last segment: it and everything after go.
  for (let i = 0; i < 6; i++) await log.appendAsLeader(batchOf(2, `d${i}`), 0);
  await log.abandon();
  const segs = readdirSync(dir).filter((f) => f.endsWith('.log')).sort();
  const victim = join(dir, segs[segs.length - 2]!);
  const firstBase = Number(segs[segs.length - 2]!.slice(0, 20));
  const fd = openSync(victim, 'r+');
  writeSync(fd, Buffer.from([0xee]), 0, 1, 70);
  closeSync(fd);
  writeFileSync(join(dir, 'partition.checkpoint'), JSON.stringify({ version: 1, recoveryPoint: 0, logStartOffset: 0, cleanShutdown: false }));
  log = await PartitionLog.open(dir, { config: small() });
  defer(t, () => log.close());
  assert.equal(log.logEndOffset, firstBase);
  assert.deepEqual((await readAll(log)).map((r) => r.offset), Array.from({ length: firstBase }, (_, i) => i));
});

// A roll syncs the old segment before the new one exists. A power loss may keep the new,
// empty segment file and cut every other file to its fsynced length; without that sync
// the log reopened with its end at the new base offset and nothing readable below it
// (the log model property found it: Append, Roll, Crash on a flush.before.ack=false log).
test('a power loss after a roll leaves no hole: the rolled segment was synced before the next one was created', async (t) => {
  const dir = tempDir(t);
  const synced = new Map<string, number>();
  const opts = { config: small(), onSync: (path: string, len: number) => synced.set(path, len) };
  let log = await PartitionLog.open(dir, opts);
  await log.appendAsLeader(batchOf(3, 'a'), 0);
  await log.forceRoll();
  await log.abandon();
  for (const f of readdirSync(dir).filter((n) => n.endsWith('.log'))) truncateSync(join(dir, f), synced.get(join(dir, f)) ?? 0);
  log = await PartitionLog.open(dir, opts);
  defer(t, () => log.close());
  assert.equal(log.logEndOffset, 3);
  assert.deepEqual((await readAll(log)).map((r) => r.offset), [0, 1, 2]);
});

test('a log reopens correctly with missing or corrupt index files', async (t) => {
  const dir = tempDir(t);
  let log = await PartitionLog.open(dir, { config: small() });
  for (let i = 0; i < 20; i++) await log.appendAsLeader(batchOf(3, `i${i}`, 1000 + i * 10), 0);
  const expected = await readAll(log);
  await log.close();
  const indexes = readdirSync(dir).filter((f) => f.endsWith('.index'));
  unlinkSync(join(dir, indexes[0]!));
  writeFileSync(join(dir, indexes[1]!), Buffer.from('garbage!garbage!xyz'));
  const t2 = readdirSync(dir).filter((f) => f.endsWith('.timeindex'))[2]!;
  writeFileSync(join(dir, t2), readFileSync(join(dir, t2)).subarray(0, 5));
  log = await PartitionLog.open(dir, { config: small() });
  defer(t, () => log.close());
  assert.deepEqual(await readAll(log), expected);
  for (let o = 0; o < 60; o += 7) {
    const { records } = await log.read(o, 1);
    const h = readBatchHeader(records);
    assert.ok(h.baseOffset <= o && o <= h.lastOffset);
  }
  assert.equal(await log.offsetForTimestamp(1000 + 55), 18);
  assert.equal(await log.offsetForTimestamp(1000 + 51), 16);
});

test('concurrent durable appends share fsyncs (group commit)', async (t) => {
  let syncs = 0;
  const log = await PartitionLog.open(tempDir(t), {
    config: logConfig({ 'flush.before.ack': true }),
    onSync: () => syncs++,
  });
  defer(t, () => log.close());
  const writers = Array.from({ length: 64 }, (_, i) => log.appendAsLeader(batchOf(1, `g${i}`), 0));
  const infos = await Promise.all(writers);
  assert.equal(new Set(infos.map((i) => i.firstOffset)).size, 64);
  assert.equal(log.flushedOffset, 64, 'every acknowledged append is durable');
  assert.ok(syncs < 16, `64 durable appends took ${syncs} fsyncs`);
});

test('segment.ms rolls the active segment by age; flush.messages and flush.ms flush by policy', async (t) => {
  const clock = new ManualClock(0);
  let syncs = 0;
  const log = await PartitionLog.open(tempDir(t), {
    config: logConfig({ 'segment.ms': 1000, 'flush.before.ack': false, 'flush.messages': 3 }),
    clock,
    onSync: () => syncs++,
  });
  defer(t, () => log.close());
  await log.appendAsLeader(batchOf(1, 'a'), 0);
  clock.advance(999);
  await log.appendAsLeader(batchOf(1, 'b'), 0);
  assert.equal(log.segmentCount, 1);
  clock.advance(1);
  await log.appendAsLeader(batchOf(1, 'c'), 0);
  assert.deepEqual(log.segmentBaseOffsets(), [0, 2]);
  // The third unflushed record triggered a flush by flush.messages.
  await waitFor('flush.messages flush', () => log.flushedOffset === 3);
  assert.ok(syncs > 0);

  const timed = await PartitionLog.open(tempDir(t), { config: logConfig({ 'flush.before.ack': false, 'flush.ms': 20 }) });
  defer(t, () => timed.close());
  await timed.appendAsLeader(batchOf(2, 'x'), 0);
  assert.equal(timed.flushedOffset, 0, 'not flushed at once');
  await waitFor('flush.ms flush', () => timed.flushedOffset === 2, 5000);
});

test('a durable leader append tells onWritten once the batch is written, before its fsync', async (t) => {
  const log = await PartitionLog.open(tempDir(t), { config: small({ 'flush.before.ack': true }) });
  defer(t, () => log.close());
  let seen: { logEnd: number; flushed: number } | undefined;
  const info = await log.appendAsLeader(batchOf(3, 'w'), 0, undefined, () => {
    seen = { logEnd: log.logEndOffset, flushed: log.flushedOffset };
  });
  // A leader wakes its followers at that point, so their fetch overlaps its own fsync.
  assert.deepEqual(seen, { logEnd: 3, flushed: 0 });
  assert.equal(info.lastOffset, 2);
  assert.equal(log.flushedOffset, 3, 'the append itself still resolves only once durable');
});

test('expireTailCache releases what the tail cache pins once the batches are a second old; reads still answer', async (t) => {
  const clock = new ManualClock(50_000);
  const log = await PartitionLog.open(tempDir(t), { config: logConfig({ 'flush.before.ack': false }), clock });
  defer(t, () => log.close());
  await log.appendAsLeader(batchOf(3, 'old'), 0);
  clock.advance(600);
  await log.appendAsLeader(batchOf(3, 'new'), 0);
  const both = log.tailCacheBytes;
  assert.ok(both > 0);
  clock.advance(500);
  log.expireTailCache();
  assert.ok(log.tailCacheBytes > 0 && log.tailCacheBytes < both, `only the first batch expired (${log.tailCacheBytes} of ${both} bytes left)`);
  clock.advance(1000);
  log.expireTailCache();
  assert.equal(log.tailCacheBytes, 0);
  assert.deepEqual((await readAll(log)).map((r) => r.value.replace(/\.+$/, '')), ['old-value-0', 'old-value-1', 'old-value-2', 'new-value-0', 'new-value-1', 'new-value-2']);
});
