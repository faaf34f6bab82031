import { test } from 'node:test';
import assert from 'node:assert/strict';
import { appendFileSync, existsSync, mkdirSync, statSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import {
  cutToFsyncedLengths,
  installTestHooks,
  openFsyncLedger,
  parsePeerAddresses,
  readClockAck,
  readFsyncLedger,
  writeClockControl,
} from '../../src/node/test-hooks.ts';
import { parseConfig } from '../../src/common/config.ts';
import { ManualClock } from '../../src/common/clock.ts';
import { silentLogger } from '../../src/common/logger.ts';
import { NODE_CONFIG_DEFS } from '../../src/node-config.ts';
import { RaftkaError } from '../../src/common/errors.ts';
import { tempDir, waitFor } from '../support/tmp.ts';

const seg = (n: number) => `${String(n).padStart(20, '0')}.log`;

test('fsync ledger: the last length per file wins; a torn last line is ignored', (t) => {
  const dir = tempDir(t);
  const path = join(dir, 'ledger');
  const l = openFsyncLedger(path);
  l.record('/d/a b/x.log', 10);
  l.record('/d/y.log', 5);
  l.record('/d/a b/x.log', 3);
  l.close();
  l.record('/d/y.log', 99); // after close: ignored, no throw
  appendFileSync(path, '12');
  assert.deepEqual([...readFsyncLedger(path)], [['/d/a b/x.log', 3], ['/d/y.log', 5]]);
  assert.equal(readFsyncLedger(join(dir, 'missing')).size, 0);
});

test('power loss cuts segment files to the ledger, removes never-synced ones, and leaves other files alone', (t) => {
  const data = tempDir(t);
  const part = join(data, 'orders-0');
  mkdirSync(part);
  mkdirSync(join(data, 'raft-log'));
  writeFileSync(join(part, seg(0)), Buffer.alloc(100, 1));
  writeFileSync(join(part, seg(40)), Buffer.alloc(50, 2));
  writeFileSync(join(part, seg(90)), Buffer.alloc(30, 3)); // never fsynced
  writeFileSync(join(part, `${seg(0)}.index`), Buffer.alloc(8));
  writeFileSync(join(data, 'raft-log', '000003.log'), Buffer.alloc(64));
  const ledgerPath = join(tempDir(t), 'ledger');
  writeFileSync(ledgerPath, `100 ${join(part, seg(0))}\n20 ${join(part, seg(40))}\n`);
  const cuts = cutToFsyncedLengths(data, ledgerPath);
  assert.deepEqual(
    cuts.map((c) => [c.file.split('/').pop(), c.from, c.to]).sort(),
    [
      [seg(40), 50, 20],
      [seg(90), 30, -1],
    ],
  );
  assert.equal(statSync(join(part, seg(0))).size, 100, 'fully synced: untouched');
  assert.equal(statSync(join(part, seg(40))).size, 20);
  assert.equal(existsSync(join(part, seg(90))), false);
  assert.equal(statSync(join(data, 'raft-log', '000003.log')).size, 64, "LevelDB's own .log files are not partition segments");
  assert.equal(statSync(join(part, `${seg(0)}.index`)).size, 8);
});

test('peer address overrides parse, and a bad one is an INVALID_CONFIG error naming the key', () => {
  assert.deepEqual([...parsePeerAddresses(' 2@127.0.0.1:9001, 3@localhost:9002 ')], [[2, '127.0.0.1:9001'], [3, 'localhost:9002']]);
  assert.equal(parsePeerAddresses('').size, 0);
  assert.throws(
    () => parsePeerAddresses('2=127.0.0.1:9001'),
    (e: unknown) => e instanceof RaftkaError && e.errorName === 'INVALID_CONFIG' && /test\.replication\.peer\.addresses/.test(e.message),
  );
});

test('clock control: the node re-reads the skew at run time and acknowledges each write', async (t) => {
  const dir = tempDir(t);
  const control = join(dir, 'clock');
  const base = new ManualClock(1_000_000);
  writeClockControl(control, 500, 1);
  const cfg = parseConfig(NODE_CONFIG_DEFS, { 'node.id': '1', 'test.clock.control': control, 'test.replication.peer.addresses': '2@127.0.0.1:1' });
  const hooks = installTestHooks(cfg, { clock: base, logger: silentLogger() });
  t.after(() => hooks.close());
  assert.equal(hooks.clock.nowMs(), 1_000_500, 'applied at start');
  assert.equal(readClockAck(control), 1);
  assert.equal(hooks.replicationAddress(2), '127.0.0.1:1');
  assert.equal(hooks.replicationAddress(3), undefined);
  writeClockControl(control, -2000, 2);
  await waitFor('the new skew acknowledged', () => readClockAck(control) === 2, 5000);
  assert.equal(hooks.clock.nowMs(), 998_000);
  assert.equal(hooks.clock.monotonicMs(), base.monotonicMs(), 'monotonic time is never skewed');
});

test('without test keys the hooks change nothing', () => {
  const base = new ManualClock();
  const cfg = parseConfig(NODE_CONFIG_DEFS, { 'node.id': '1' });
  const hooks = installTestHooks(cfg, { clock: base, logger: silentLogger() });
  assert.equal(hooks.clock, base);
  assert.equal(hooks.onSync, undefined);
  hooks.close();
});
