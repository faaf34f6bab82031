// `raftka perf produce|consume|e2e` as a user runs them, against a real three-node
// cluster: every record sent is acknowledged and read back, --messages stops at exactly
// that many, the rate limiter holds a set rate, e2e sees every stamped record, and bad
// input is one line with exit code 1.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { DEV_OVERRIDES, ProcessCluster, freePorts } from '../../src/node/process-cluster.ts';
import { defer, tempDir } from '../support/tmp.ts';

const bin = new URL('../../bin/raftka.mjs', import.meta.url).pathname;

interface Run {
  code: number | null;
  stdout: string;
  stderr: string;
}

function raftka(args: string[], env: NodeJS.ProcessEnv, timeoutMs = 60_000): Promise<Run> {
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, [bin, ...args], { env: { ...process.env, ...env }, stdio: ['ignore', 'pipe', 'pipe'] });
    const out: Buffer[] = [];
    const err: Buffer[] = [];
    child.stdout.on('data', (b: Buffer) => out.push(b));
    child.stderr.on('data', (b: Buffer) => err.push(b));
    const timer = setTimeout(() => child.kill('SIGKILL'), timeoutMs);
    child.on('error', reject);
    child.on('close', (code) => {
      clearTimeout(timer);
      resolve({ code, stdout: Buffer.concat(out).toString(), stderr: Buffer.concat(err).toString() });
    });
  });
}

function lastJson<T>(r: Run): T {
  assert.equal(r.code, 0, `exit code; stderr:\n${r.stderr}`);
  const lines = r.stdout.trim().split('\n');
  return JSON.parse(lines[lines.length - 1]!) as T;
}

test('raftka perf against a three-node cluster', { timeout: 240_000 }, async (t) => {
  const root = tempDir(t, 'raftka-perf-');
  const ports = await freePorts(6);
  const cluster = ProcessCluster.prepare({ root, nodeIds: [1, 2, 3], clientPorts: ports.slice(0, 3), controllerPorts: ports.slice(3), overrides: DEV_OVERRIDES });
  defer(t, () => cluster.killAll());
  cluster.startAll();
  await cluster.waitReady(60_000);
  const env = { RAFTKA_BOOTSTRAP: cluster.bootstrap };
  for (const topic of ['perf', 'paced', 'e2e']) {
    const r = await raftka(['topics', 'create', topic, '--partitions', '4', '--replication-factor', '3'], env);
    assert.equal(r.code, 0, r.stderr);
  }

  // Two producers in worker threads, lz4 on JSON values.
  const p = lastJson<{ records: number; errors: number; recordsPerSec: number; mbPerSec: number; p50Ms: number; p99Ms: number; p999Ms: number; maxMs: number; avgMs: number }>(
    await raftka(['perf', 'produce', '--topic', 'perf', '--num-records', '20000', '--record-size', '200', '--producers', '2', '--compression', 'lz4', '--payload-json', '--json'], env),
  );
  assert.equal(p.records, 20_000);
  assert.equal(p.errors, 0);
  assert.ok(p.recordsPerSec > 0 && Math.abs(p.mbPerSec - (p.recordsPerSec * 200) / 1e6) < 1e-6, JSON.stringify(p));
  assert.ok(p.p50Ms > 0 && p.p50Ms <= p.p99Ms && p.p99Ms <= p.p999Ms && p.p999Ms <= p.maxMs * 1.001, JSON.stringify(p));

  // Everything back: the default reads what the topic holds.
  const all = lastJson<{ records: number; mb: number; timeToFirstRecordMs: number; timedOut: boolean }>(await raftka(['perf', 'consume', '--topic', 'perf', '--json'], env));
  assert.equal(all.records, 20_000);
  assert.equal(all.timedOut, false);
  assert.ok(all.mb > 0 && all.timeToFirstRecordMs >= 0, JSON.stringify(all));
  const some = lastJson<{ records: number; members: number }>(await raftka(['perf', 'consume', '--topic', 'perf', '--messages', '5001', '--members', '3', '--json'], env));
  assert.deepEqual([some.records, some.members], [5001, 3]);

  // Group mode: two SDK consumers in one group share the partitions and read it all.
  const grouped = lastJson<{ records: number; members: number; mode: string; timeToFirstRecordMs: number }>(
    await raftka(['perf', 'consume', '--topic', 'perf', '--group', 'perf-g', '--members', '2', '--json'], env, 90_000),
  );
  assert.equal(grouped.mode, 'group');
  assert.ok(grouped.records >= 20_000, `group mode read ${grouped.records} of 20000`);
  assert.ok(grouped.timeToFirstRecordMs >= 0);

  // The rate limiter holds the rate: 3,000 records at 1,000/s take about 3 s. The 500
  // warm-up records go first, unmeasured: the topic holds 3,500.
  const paced = lastJson<{ records: number; recordsPerSec: number; seconds: number }>(
    await raftka(['perf', 'produce', '--topic', 'paced', '--num-records', '3000', '--record-size', '100', '--throughput', '1000', '--warmup-records', '500', '--json'], env),
  );
  assert.equal(paced.records, 3000);
  assert.ok(paced.seconds >= 2.9, `3000 records at 1000/s took ${paced.seconds} s`);
  assert.ok(paced.recordsPerSec <= 1030, `rate ${paced.recordsPerSec}`);
  assert.equal(lastJson<{ records: number }>(await raftka(['perf', 'consume', '--topic', 'paced', '--json'], env)).records, 3500);

  // End to end: every stamped record arrives, latencies are positive and ordered.
  const e = lastJson<{ records: number; missing: number; p50Ms: number; p99Ms: number; maxMs: number }>(
    await raftka(['perf', 'e2e', '--topic', 'e2e', '--num-records', '2000', '--throughput', '1000', '--record-size', '256', '--warmup-records', '300', '--json'], env),
  );
  // The warm-up's records are not read: exactly the measured ones are.
  assert.equal(e.records, 2000);
  assert.equal(e.missing, 0);
  assert.ok(e.p50Ms > 0 && e.p50Ms <= e.p99Ms && e.p99Ms <= e.maxMs * 1.001, JSON.stringify(e));

  // Bad input: one line, exit code 1.
  for (const [args, pattern] of [
    [['perf', 'produce', '--topic', 'missing', '--num-records', '10', '--record-size', '10'], /^raftka perf produce: topic "missing" does not exist$/],
    [['perf', 'consume', '--topic', 'perf', '--members', '9'], /^raftka perf consume: --members 9 is more than the 4 partitions of perf/],
    [['perf', 'consume', '--topic', 'perf', '--group', ' '], /^raftka perf consume: --group must not be empty/],
    [['perf', 'e2e', '--topic', 'e2e', '--record-size', '4'], /^raftka perf e2e: .*--record-size/],
    [['perf', 'produce', '--topic', 'perf', '--num-records', 'x', '--record-size', '10'], /^raftka perf produce: .*--num-records/],
  ] as const) {
    const r = await raftka([...args], env, 15_000);
    assert.equal(r.code, 1, `${args.join(' ')}: ${r.stderr}`);
    const lines = r.stderr.trim().split('\n');
    assert.equal(lines.length, 1, `${args.join(' ')}: one line, got:\n${r.stderr}`);
    assert.match(lines[0]!, pattern);
  }
});
