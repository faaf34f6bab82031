import { test } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync, spawnSync } from 'node:child_process';
import { openSync, readdirSync, writeSync, closeSync } from 'node:fs';
import { join } from 'node:path';
import { PartitionLog } from '../../src/log/partition-log.ts';
import { logConfig } from '../../src/log/config.ts';
import { buildBatch } from '../../src/log/batch.ts';
import { tempDir } from '../support/tmp.ts';

const bin = new URL('../../bin/raftka.mjs', import.meta.url).pathname;

test('raftka log dump prints batches and records, and reports a corrupt batch with exit code 3', async (t) => {
  const dir = tempDir(t);
  const log = await PartitionLog.open(dir, { config: logConfig({ 'flush.before.ack': false }) });
  await log.appendAsLeader(buildBatch([{ key: 'k1', value: 'hello' }, { key: 'k2', value: 'world' }]), 3);
  await log.appendAsLeader(buildBatch([{ key: 'k3', value: 'again' }]), 3);
  await log.close();
  const out = execFileSync(process.execPath, [bin, 'log', 'dump', dir, '--records'], { encoding: 'utf8' });
  assert.match(out, /baseOffset: 0 lastOffset: 1 count: 2 .* leaderEpoch: 3 .*crc: ok/);
  assert.match(out, /offset: 2 .*key: "k3" value: "again"/);
  assert.match(out, /2 batches, 0 defects/);
  const file = join(dir, readdirSync(dir).find((f) => f.endsWith('.log'))!);
  const fd = openSync(file, 'r+');
  writeSync(fd, Buffer.from('X'), 0, 1, 70);
  closeSync(fd);
  const bad = spawnSync(process.execPath, [bin, 'log', 'dump', dir], { encoding: 'utf8' });
  assert.equal(bad.status, 3);
  assert.match(bad.stdout, /DEFECT in 00000000000000000000\.log at position 0: .*CRC/);
});
