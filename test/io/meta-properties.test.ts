import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { isRaftkaError } from '../../src/common/errors.ts';
import { isUuid } from '../../src/common/ids.ts';
import { checkMetaProperties, formatDir, metaPropertiesPath, readMetaProperties } from '../../src/io/meta-properties.ts';
import { runFormat } from '../../src/cli/storage.ts';
import { tempDir } from '../support/tmp.ts';

void test('format writes cluster.id, node.id and a fresh directory.id that read back', (t) => {
  const dir = join(tempDir(t), 'data');
  const r = formatDir({ dir, clusterId: 'clusterA', nodeId: 3 });
  assert.equal(r.formatted, true);
  assert.ok(isUuid(r.meta.directoryId));
  const text = readFileSync(metaPropertiesPath(dir), 'utf8');
  assert.match(text, /^cluster\.id=clusterA$/m);
  assert.match(text, /^node\.id=3$/m);
  assert.match(text, /^version=1$/m);
  assert.deepEqual(readMetaProperties(dir), r.meta);
  assert.deepEqual(checkMetaProperties(dir, { nodeId: 3, clusterId: 'clusterA' }), r.meta);
  // Two formats of different dirs mint different directory ids.
  const other = formatDir({ dir: join(dir, '..', 'other'), clusterId: 'clusterA', nodeId: 3 });
  assert.notEqual(other.meta.directoryId, r.meta.directoryId);
});

void test('formatting an already formatted dir fails unless ignoreFormatted, which keeps it as it was', (t) => {
  const dir = tempDir(t);
  const first = formatDir({ dir, clusterId: 'c1', nodeId: 1 });
  assert.throws(() => formatDir({ dir, clusterId: 'c2', nodeId: 1 }), (e) => isRaftkaError(e, 'INVALID_CONFIG') && /already exists/.test(e.message));
  const again = formatDir({ dir, clusterId: 'c2', nodeId: 1, ignoreFormatted: true });
  assert.equal(again.formatted, false);
  assert.deepEqual(again.meta, first.meta);
  assert.equal(readMetaProperties(dir)?.clusterId, 'c1');
});

void test('start-up check refuses an unformatted dir, another cluster id and another node id', (t) => {
  const dir = tempDir(t);
  assert.equal(readMetaProperties(dir), undefined);
  assert.throws(() => checkMetaProperties(dir, { nodeId: 1 }), (e) => isRaftkaError(e, 'INVALID_CONFIG') && /not formatted/.test(e.message));
  formatDir({ dir, clusterId: 'c1', nodeId: 1 });
  assert.throws(() => checkMetaProperties(dir, { nodeId: 1, clusterId: 'c2' }), (e) => isRaftkaError(e, 'INCONSISTENT_CLUSTER_ID'));
  assert.throws(() => checkMetaProperties(dir, { nodeId: 2, clusterId: 'c1' }), (e) => isRaftkaError(e, 'INVALID_CONFIG') && /node\.id=1/.test(e.message));
});

void test('a damaged meta.properties is CORRUPT_STORAGE naming the file', (t) => {
  const dir = tempDir(t);
  formatDir({ dir, clusterId: 'c1', nodeId: 1 });
  const path = metaPropertiesPath(dir);
  writeFileSync(path, readFileSync(path, 'utf8').replace(/directory\.id=.*/, 'directory.id=nope'));
  assert.throws(() => readMetaProperties(dir), (e) => isRaftkaError(e, 'CORRUPT_STORAGE') && e.message.includes(path));
  writeFileSync(path, 'garbage without equals\n');
  assert.throws(() => checkMetaProperties(dir, { nodeId: 1 }), (e) => isRaftkaError(e, 'CORRUPT_STORAGE') && e.message.includes(path));
});

void test('invalid cluster and node ids are rejected before anything is written', (t) => {
  const dir = tempDir(t);
  assert.throws(() => formatDir({ dir, clusterId: 'has space', nodeId: 1 }), (e) => isRaftkaError(e, 'INVALID_CONFIG'));
  assert.throws(() => formatDir({ dir, clusterId: 'ok', nodeId: -1 }), (e) => isRaftkaError(e, 'INVALID_CONFIG'));
  assert.equal(readMetaProperties(dir), undefined);
});

void test('storage format CLI reads node.id and log dirs from a config file', (t) => {
  const root = tempDir(t);
  const cfg = join(root, 'server.properties');
  writeFileSync(cfg, `node.id=7\nlog.dirs=${join(root, 'a')},${join(root, 'b')}\nmetadata.log.dir=${join(root, 'meta')}\n`);
  const lines = runFormat({ config: cfg, clusterId: 'cli', dir: [] });
  assert.equal(lines.length, 3);
  for (const d of ['a', 'b', 'meta']) assert.equal(readMetaProperties(join(root, d))?.nodeId, 7);
  assert.throws(() => runFormat({ config: cfg, clusterId: 'cli', dir: [] }), (e) => isRaftkaError(e, 'INVALID_CONFIG'));
  const skipped = runFormat({ config: cfg, clusterId: 'cli', dir: [], ignoreFormatted: true });
  assert.ok(skipped.every((l) => l.startsWith('Skipped')));
  mkdirSync(join(root, 'flags'));
  runFormat({ clusterId: 'cli', nodeId: '2', dir: [join(root, 'flags')] });
  assert.equal(readMetaProperties(join(root, 'flags'))?.nodeId, 2);
  assert.throws(() => runFormat({ clusterId: 'cli', nodeId: 'x', dir: [join(root, 'x')] }), (e) => isRaftkaError(e, 'INVALID_CONFIG'));
});
