import { test } from 'node:test';
import assert from 'node:assert/strict';
import { rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { isRaftkaError } from '../../src/common/errors.ts';
import { RAFT_DB_DIR, RaftStorage, entryKey, openRawRaftDb } from '../../src/io/raft-storage.ts';
import type { Entry, Snapshot } from '../../src/raft/types.ts';
import { tempDir } from '../support/tmp.ts';
import { crc32c } from '@node-rs/crc32';

const DIR_ID = 'AAAAAAAAAAAAAAAAAAAAAA';
const enc = (s: string) => new TextEncoder().encode(s);
const ent = (index: number, term: number, data = `e${index}t${term}`): Entry => ({ index, term, kind: 'normal', data: enc(data) });
const view = (es: readonly Entry[]) => es.map((e) => `${e.index}:${e.term}:${e.kind}:${new TextDecoder().decode(e.data)}`);

async function open(dir: string, directoryId = DIR_ID): Promise<RaftStorage> {
  return RaftStorage.open({ dir, directoryId });
}

void test('a fresh log loads empty; persisted entries and hard state reload after reopen', async (t) => {
  const dir = tempDir(t);
  let s = await open(dir);
  assert.deepEqual(s.loaded(), { hardState: { term: 0, votedFor: null, commitIndex: 0 }, snapshot: null, entries: [] });
  const hs = { term: 3, votedFor: { nodeId: 2, directoryId: 'BBBBBBBBBBBBBBBBBBBBBB' }, commitIndex: 2 };
  await s.persist({ entries: [ent(1, 1), { index: 2, term: 2, kind: 'noop', data: new Uint8Array(0) }, { index: 3, term: 3, kind: 'config', data: enc('{}') }], hardState: hs });
  await s.persist({ entries: [ent(4, 3)] });
  assert.equal(s.lastIndex(), 4);
  await s.close();
  s = await open(dir);
  t.after(() => s.close());
  const l = s.loaded();
  assert.deepEqual(l.hardState, hs);
  assert.deepEqual(view(l.entries), ['1:1:normal:e1t1', '2:2:noop:', '3:3:config:{}', '4:3:normal:e4t3']);
  assert.equal(s.firstIndex(), 1);
  assert.equal(s.lastIndex(), 4);
});

void test('truncateFrom deletes the conflicting tail atomically with the new entries', async (t) => {
  const dir = tempDir(t);
  let s = await open(dir);
  await s.persist({ entries: [1, 2, 3, 4, 5].map((i) => ent(i, 1)) });
  // A follower learns that entries 3.. conflict with a new leader's log of term 2.
  await s.persist({ truncateFrom: 3, entries: [ent(3, 2)], hardState: { term: 2, votedFor: null, commitIndex: 2 } });
  assert.equal(s.lastIndex(), 3);
  // An overlapping append without truncateFrom replaces the tail too.
  await s.persist({ entries: [ent(3, 2, 'again'), ent(4, 2)] });
  // Truncation alone, no entries.
  await s.persist({ entries: [ent(5, 2), ent(6, 2)] });
  await s.persist({ truncateFrom: 6, entries: [] });
  await s.close();
  s = await open(dir);
  t.after(() => s.close());
  assert.deepEqual(view(s.loaded().entries), ['1:1:normal:e1t1', '2:1:normal:e2t1', '3:2:normal:again', '4:2:normal:e4t2', '5:2:normal:e5t2']);
  assert.equal(s.lastIndex(), 5);
});

void test('snapshots persist with their configuration and compact the log behind them', async (t) => {
  const dir = tempDir(t);
  let s = await open(dir);
  await s.persist({ entries: [1, 2, 3, 4, 5, 6].map((i) => ent(i, 1)) });
  const config = { voters: [{ nodeId: 1, directoryId: DIR_ID }], observers: [5] };
  const local: Snapshot = { meta: { index: 4, term: 1, config }, data: enc('state@4') };
  await s.saveSnapshot(local);
  assert.equal(s.firstIndex(), 5);
  await s.close();
  s = await open(dir);
  let l = s.loaded();
  assert.deepEqual(l.snapshot?.meta, local.meta);
  assert.equal(new TextDecoder().decode(l.snapshot?.data), 'state@4');
  assert.deepEqual(view(l.entries), ['5:1:normal:e5t1', '6:1:normal:e6t1']);
  // A snapshot from the leader, past our log: every entry it covers goes.
  const installed: Snapshot = { meta: { index: 10, term: 3, config }, data: enc('state@10') };
  await s.persist({ snapshot: installed, entries: [], hardState: { term: 3, votedFor: null, commitIndex: 10 } });
  assert.equal(s.lastIndex(), 10);
  await s.persist({ entries: [ent(11, 3)] });
  await s.close();
  s = await open(dir);
  t.after(() => s.close());
  l = s.loaded();
  assert.equal(l.snapshot?.meta.index, 10);
  assert.deepEqual(view(l.entries), ['11:3:normal:e11t3']);
  assert.equal(l.hardState.commitIndex, 10);
});

void test('entries a crashed compaction left behind the snapshot are skipped on load', async (t) => {
  const dir = tempDir(t);
  let s = await open(dir);
  for (const i of [1, 2, 3]) await s.persist({ entries: [ent(i, 1)] });
  await s.saveSnapshot({ meta: { index: 2, term: 1, config: { voters: [], observers: [] } }, data: new Uint8Array(0) });
  await s.close();
  // Put back a run the snapshot covers, as if the deletion after it never ran.
  const raw = openRawRaftDb(dir);
  await raw.open();
  await raw.put(entryKey(1), Buffer.from((await raw.get(entryKey(3)))!));
  await raw.close();
  s = await open(dir);
  t.after(() => s.close());
  assert.deepEqual(view(s.loaded().entries), ['3:1:normal:e3t1']);
});

async function damage(dir: string, key: Buffer, f: (v: Buffer) => Buffer | undefined): Promise<void> {
  const raw = openRawRaftDb(dir);
  await raw.open();
  const v = await raw.get(key);
  const nv = f(Buffer.from(v!));
  if (nv === undefined) await raw.del(key);
  else await raw.put(key, nv);
  await raw.close();
}

void test('a flipped byte in an entry, the hard state or the snapshot refuses to load, naming the key', async (t) => {
  for (const [name, key, pattern] of [
    ['entry', entryKey(2), /entry run @2 is unreadable: CRC32C mismatch/],
    ['hard state', Buffer.from('h'), /key "h" is unreadable/],
    ['snapshot', Buffer.from('s'), /key "s" is unreadable/],
  ] as const) {
    const dir = tempDir(t);
    const s = await open(dir);
    for (const i of [1, 2, 3]) await s.persist({ entries: [ent(i, 1)], hardState: { term: 1, votedFor: null, commitIndex: i } });
    await s.saveSnapshot({ meta: { index: 1, term: 1, config: { voters: [], observers: [] } }, data: enc('snap') });
    await s.close();
    await damage(dir, key, (v) => {
      v[v.length - 1]! ^= 0xff;
      return v;
    });
    await assert.rejects(open(dir), (e) => {
      assert.ok(isRaftkaError(e, 'CORRUPT_STORAGE'), name);
      assert.match(e.message, pattern);
      assert.ok(e.message.includes(join(dir, RAFT_DB_DIR)), 'names the database directory');
      return true;
    });
  }
});

void test('a hole in the log and a truncated value are CORRUPT_STORAGE', async (t) => {
  const dir = tempDir(t);
  let s = await open(dir);
  for (const i of [1, 2, 3]) await s.persist({ entries: [ent(i, 1)] });
  await s.close();
  await damage(dir, entryKey(2), () => undefined);
  await assert.rejects(open(dir), (e) => isRaftkaError(e, 'CORRUPT_STORAGE') && /entry run @3 is unreadable: log has a hole/.test(e.message));

  const dir2 = tempDir(t);
  s = await open(dir2);
  await s.persist({ entries: [ent(1, 1)] });
  await s.close();
  await damage(dir2, entryKey(1), (v) => v.subarray(0, 3));
  await assert.rejects(open(dir2), (e) => isRaftkaError(e, 'CORRUPT_STORAGE') && /entry run @1 .*too short/.test(e.message));
  // A run whose length field promises more than it holds (CRC recomputed, so only the
  // structure check can catch it).
  const dir3 = tempDir(t);
  s = await open(dir3);
  await s.persist({ entries: [ent(1, 1), ent(2, 1)] });
  await s.close();
  await damage(dir3, entryKey(1), (v) => {
    v.writeUInt32BE(3, 4);
    v.writeUInt32BE(crc32c(v.subarray(4)), 0);
    return v;
  });
  await assert.rejects(open(dir3), (e) => isRaftkaError(e, 'CORRUPT_STORAGE') && /entry run @1 .*entry 3 header truncated/.test(e.message));
});

void test('a log that belongs to another directory id, or a damaged LevelDB, refuses to open', async (t) => {
  const dir = tempDir(t);
  const s = await open(dir);
  await s.persist({ entries: [ent(1, 1)] });
  await s.close();
  await assert.rejects(open(dir, 'CCCCCCCCCCCCCCCCCCCCCC'), (e) => isRaftkaError(e, 'CORRUPT_STORAGE') && /belongs to directory/.test(e.message));
  writeFileSync(join(dir, RAFT_DB_DIR, 'CURRENT'), 'MANIFEST-999999\n');
  await assert.rejects(open(dir), (e) => isRaftkaError(e, 'CORRUPT_STORAGE') && e.message.includes(join(dir, RAFT_DB_DIR)));
  rmSync(join(dir, RAFT_DB_DIR), { recursive: true });
});

void test('a log held open by another user is a storage error, not corruption', async (t) => {
  const dir = tempDir(t);
  const s = await open(dir);
  t.after(() => s.close());
  await assert.rejects(open(dir), (e) => isRaftkaError(e, 'KAFKA_STORAGE_ERROR') && /in use/.test(e.message));
});

void test('truncation across several runs and compaction through a run keep exactly the surviving entries', async (t) => {
  const dir = tempDir(t);
  let s = await open(dir);
  await s.persist({ entries: [1, 2, 3].map((i) => ent(i, 1)) });
  await s.persist({ entries: [4, 5, 6].map((i) => ent(i, 1)) });
  await s.persist({ entries: [7, 8].map((i) => ent(i, 1)) });
  // Cut inside the second run: it is rewritten, the third deleted.
  await s.persist({ truncateFrom: 5, entries: [ent(5, 2), ent(6, 2)] });
  const config = { voters: [], observers: [] };
  // A local snapshot at 4 covers runs [1-3] and the rewritten [4]: both go.
  await s.saveSnapshot({ meta: { index: 4, term: 1, config }, data: enc('s4') });
  await s.persist({ entries: [ent(7, 2)] });
  await s.close();
  s = await open(dir);
  assert.deepEqual(view(s.loaded().entries), ['5:2:normal:e5t2', '6:2:normal:e6t2', '7:2:normal:e7t2']);
  assert.equal(s.loaded().snapshot?.meta.index, 4);
  // Truncate back to the snapshot boundary and append afresh.
  await s.persist({ truncateFrom: 5, entries: [ent(5, 3)] });
  await s.close();
  s = await open(dir);
  t.after(() => s.close());
  assert.deepEqual(view(s.loaded().entries), ['5:3:normal:e5t3']);
  const raw = openRawRaftDb(dir);
  await s.close();
  await raw.open();
  const keys: string[] = [];
  for await (const k of raw.keys()) if (k[0] === 0x65) keys.push(String(k.readBigUInt64BE(1)));
  await raw.close();
  // Only the run appended after the truncation is left.
  assert.deepEqual(keys, ['5']);
});
