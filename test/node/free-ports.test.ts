import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { createServer } from 'node:net';
import { freePorts, listenPortRange } from '../../src/node/process-cluster.ts';

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
