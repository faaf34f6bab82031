import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { existsSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { createServer } from 'node:net';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { PORT_RESERVATIONS_DIR, freePorts, listenPortRange } from '../../src/node/process-cluster.ts';

const PROCESS_CLUSTER = fileURLToPath(new URL('../../src/node/process-cluster.ts', import.meta.url));

test('freePorts: distinct, bindable ports below the kernel ephemeral range (outgoing connections never take them)', async () => {
  const ephemeralLow = Number(readFileSync('/proc/sys/net/ipv4/ip_local_port_range', 'utf8').trim().split(/\s+/)[0]);
  const ports = await freePorts(12);
  assert.equal(new Set(ports).size, 12);
  for (const p of ports) assert.ok(p >= 10_000 && p < ephemeralLow, `port ${p} outside [10000, ${ephemeralLow})`);
  for (const p of ports) {
    const s = createServer();
    await new Promise<void>((resolve, reject) => s.once('error', reject).listen(p, '127.0.0.1', resolve));
    await new Promise((r) => s.close(r));
  }
});

test('freePorts skips a port something already listens on', async () => {
  const [taken] = await freePorts(1);
  const s = createServer();
  await new Promise<void>((resolve) => s.listen(taken, '127.0.0.1', resolve));
  try {
    const [low, high] = listenPortRange();
    // The first draw lands on the taken port, the next ones elsewhere.
    const draws = [(taken! - low + 0.5) / (high - low), 0.25, 0.5, 0.75];
    const got = await freePorts(2, () => draws.shift() ?? Math.random());
    assert.ok(!got.includes(taken!), `port ${taken} is in use and must not be offered (got ${got.join(', ')})`);
    assert.equal(got.length, 2);
  } finally {
    await new Promise((r) => s.close(r));
  }
});

test('freePorts reserves what it hands out: a later call in this process, or another process, never gets the same port', async () => {
  const first = await freePorts(4);
  for (const p of first) assert.equal(readFileSync(join(PORT_RESERVATIONS_DIR, String(p)), 'utf8'), `${process.pid}\n`);
  const [low, high] = listenPortRange();
  // Every draw first lands on a port this process already holds (nobody listens on it yet).
  const draws = [...first.map((p) => (p - low + 0.5) / (high - low)), 0.2, 0.4, 0.6, 0.8];
  const again = await freePorts(2, () => draws.shift() ?? Math.random());
  assert.deepEqual(again.filter((p) => first.includes(p)), [], `reserved ports ${first.join(', ')} handed out again: ${again.join(', ')}`);

  // Another process's reservations are skipped too, and released when it exits.
  const child = spawnSync(process.execPath, ['--import', 'tsx', '-e', `import(${JSON.stringify(PROCESS_CLUSTER)}).then(async (m) => { const ports = await m.freePorts(3); console.log(JSON.stringify(ports)); })`], { encoding: 'utf8' });
  assert.equal(child.status, 0, child.stderr);
  const theirs = JSON.parse(child.stdout.trim()) as number[];
  assert.equal(theirs.length, 3);
  assert.deepEqual(theirs.filter((p) => first.includes(p) || again.includes(p)), []);
  for (const p of theirs) assert.ok(!existsSync(join(PORT_RESERVATIONS_DIR, String(p))), `port ${p} still reserved after its process exited`);
});

test('a port another live process has reserved is not handed out', async () => {
  const [low, high] = listenPortRange();
  // Stand in for another process's reservation: a reservation file this process did not make.
  const [probe] = await freePorts(1);
  const other = probe! + 1 < high ? probe! + 1 : probe! - 1;
  const file = join(PORT_RESERVATIONS_DIR, String(other));
  let made = false;
  try {
    writeFileSync(file, '1\n', { flag: 'wx' });
    made = true;
  } catch {
    // Reserved already by someone: just as good for this test.
  }
  try {
    const draws = [(other - low + 0.5) / (high - low), 0.3, 0.7];
    const got = await freePorts(2, () => draws.shift() ?? Math.random());
    assert.ok(!got.includes(other), `reserved port ${other} handed out (got ${got.join(', ')})`);
  } finally {
    if (made) rmSync(file, { force: true });
  }
});
