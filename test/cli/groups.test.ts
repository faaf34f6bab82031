// `raftka consume --group` and `raftka groups ...` end to end against a three-node
// cluster: a group consumes and commits, describe shows offsets, end offsets and lag,
// list finds it, reset-offsets works only without members and moves the group (the next
// consume starts there), delete; bad input is one line and exit 1 with no state change.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { DEV_OVERRIDES, ProcessCluster, freePorts } from '../../src/node/process-cluster.ts';
import { Raftka } from '../../src/client/index.ts';
import { defer, tempDir, waitFor } from '../support/tmp.ts';

const bin = new URL('../../bin/raftka.mjs', import.meta.url).pathname;

interface Run {
  code: number | null;
  stdout: string;
  stderr: string;
}

function start(args: string[], timeoutMs = 60_000): { done: Promise<Run>; stdout: () => string; kill: (s: NodeJS.Signals) => void } {
  const out: Buffer[] = [];
  const child = spawn(process.execPath, [bin, ...args], { stdio: ['ignore', 'pipe', 'pipe'] });
  const done = new Promise<Run>((resolve, reject) => {
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
  return { done, stdout: () => Buffer.concat(out).toString(), kill: (s) => child.kill(s) };
}

const raftka = (args: string[], timeoutMs?: number) => start(args, timeoutMs).done;

function assertOneLineError(r: Run, pattern: RegExp, what: string): void {
  assert.equal(r.code, 1, `${what}: exit code (stderr: ${r.stderr})`);
  const errLines = r.stderr.split('\n').filter((l) => l !== '');
  assert.equal(errLines.length, 1, `${what}: one line on stderr, got:\n${r.stderr}`);
  assert.match(errLines[0]!, pattern, what);
}

test('raftka groups and consume --group end to end', { timeout: 300_000 }, async (t) => {
  const root = tempDir(t, 'raftka-groups-cli-');
  const ports = await freePorts(6);
  const cluster = ProcessCluster.prepare({ root, nodeIds: [1, 2, 3], clientPorts: ports.slice(0, 3), controllerPorts: ports.slice(3), overrides: { ...DEV_OVERRIDES, 'offsets.topic.num.partitions': '3' } });
  defer(t, () => cluster.killAll());
  cluster.startAll();
  await cluster.waitReady(60_000);
  const bs = ['-b', cluster.spec.nodeIds.map((id) => cluster.clientAddress(id)).join(',')];
  const client = new Raftka({ brokers: cluster.spec.nodeIds.map((id) => cluster.clientAddress(id)) });
  const admin = client.admin();
  await admin.connect();
  defer(t, () => admin.disconnect());
  await admin.createTopics({ topics: [{ topic: 'ev', numPartitions: 3, replicationFactor: 3 }] });
  const producer = client.producer();
  await producer.connect();
  defer(t, () => producer.disconnect());
  await producer.send({ topic: 'ev', messages: Array.from({ length: 30 }, (_, i) => ({ partition: i % 3, value: `v${i}` })) });

  // Consume 12 of 30 as group g (the rest stays uncommitted).
  const c1 = await raftka(['consume', 'ev', '--group', 'g', '--offset', 'earliest', '--max-messages', '12', '--session-timeout-ms', '3000', ...bs]);
  assert.equal(c1.code, 0, c1.stderr);
  assert.equal(c1.stdout.split('\n').filter((l) => l !== '').length, 12);

  const list = await raftka(['groups', 'list', '--json', ...bs]);
  assert.equal(list.code, 0, list.stderr);
  const groups = JSON.parse(list.stdout) as Array<{ group: string; state: string }>;
  assert.deepEqual(groups.find((g) => g.group === 'g'), { group: 'g', state: 'Empty', protocolType: 'consumer' });

  const d1 = await raftka(['groups', 'describe', 'g', '--json', ...bs]);
  assert.equal(d1.code, 0, d1.stderr);
  const desc = JSON.parse(d1.stdout) as { state: string; members: unknown[]; partitions: Array<{ partition: number; committedOffset: number | null; logEndOffset: number; lag: number }> };
  assert.equal(desc.state, 'Empty');
  assert.equal(desc.members.length, 0);
  const committedSum = desc.partitions.reduce((n, p) => n + (p.committedOffset ?? 0), 0);
  assert.equal(committedSum, 12, 'committed exactly what was printed');
  for (const p of desc.partitions) {
    assert.equal(p.logEndOffset, 10);
    assert.equal(p.lag, 10 - (p.committedOffset ?? 0));
  }

  // The next consumer continues where g left off (and from the start where g committed
  // nothing): the remaining 18 records.
  const c2 = await raftka(['consume', 'ev', '--group', 'g', '--offset', 'earliest', '--timeout-ms', '3000', '--session-timeout-ms', '3000', ...bs]);
  assert.equal(c2.code, 0, c2.stderr);
  const seen = new Set([...c1.stdout.split('\n'), ...c2.stdout.split('\n')].filter((l) => l !== ''));
  assert.equal(seen.size, 30, `every record printed once across the two runs: c1 ${JSON.stringify(c1.stdout)} c2 ${JSON.stringify(c2.stdout)} ${c2.stderr}`);

  // While a member is active: describe shows it; reset-offsets and delete are refused.
  const live = start(['consume', '/^e.$/', '--group', 'g', '--session-timeout-ms', '3000', ...bs]);
  defer(t, () => live.kill('SIGKILL'));
  await waitFor('a member in describe', async () => {
    const d = await raftka(['groups', 'describe', 'g', '--json', ...bs]);
    const j = d.code === 0 ? (JSON.parse(d.stdout) as { state: string; members: Array<{ assignment: Array<{ partitions: number[] }> }> }) : undefined;
    return j && j.state === 'Stable' && j.members.length === 1 && j.members[0]!.assignment[0]?.partitions.length === 3;
  }, 30_000, 200);
  const human = await raftka(['groups', 'describe', 'g', ...bs]);
  assert.match(human.stdout, /TOPIC\s+PARTITION\s+CURRENT-OFFSET\s+LOG-END-OFFSET\s+LAG\s+CONSUMER-ID/);
  assertOneLineError(await raftka(['groups', 'reset-offsets', 'g', '--topic', 'ev', '--to-earliest', ...bs]), /is Stable with 1 member/, 'reset of an active group');
  assertOneLineError(await raftka(['groups', 'delete', 'g', ...bs]), /has active members/, 'delete of an active group');
  live.kill('SIGTERM');
  assert.equal((await live.done).code, 0);

  // Reset: dry run changes nothing; to-offset 1 then the next consume reads 9 per partition.
  const dry = await raftka(['groups', 'reset-offsets', 'g', '--topic', 'ev', '--to-offset', '1', '--dry-run', '--json', ...bs]);
  assert.equal(dry.code, 0, dry.stderr);
  assert.deepEqual((JSON.parse(dry.stdout) as Array<{ previousOffset: number; newOffset: number }>).map((r) => [r.previousOffset, r.newOffset]), [[10, 1], [10, 1], [10, 1]]);
  const reset = await raftka(['groups', 'reset-offsets', 'g', '--topic', 'ev', '--to-offset', '1', '--json', ...bs]);
  assert.equal(reset.code, 0, reset.stderr);
  const d2 = JSON.parse((await raftka(['groups', 'describe', 'g', '--json', ...bs])).stdout) as { partitions: Array<{ committedOffset: number; lag: number }> };
  assert.deepEqual(d2.partitions.map((p) => [p.committedOffset, p.lag]), [[1, 9], [1, 9], [1, 9]]);
  const late = await raftka(['groups', 'reset-offsets', 'g', '--topic', 'ev', '--to-datetime', new Date(Date.now() + 3_600_000).toISOString(), '--json', ...bs]);
  assert.deepEqual((JSON.parse(late.stdout) as Array<{ newOffset: number }>).map((r) => r.newOffset), [10, 10, 10], 'a time after every record: the log end');
  await raftka(['groups', 'reset-offsets', 'g', '--topic', 'ev', '--to-earliest', ...bs]);
  const again = await raftka(['consume', 'ev', '--group', 'g', '--timeout-ms', '3000', '--session-timeout-ms', '3000', ...bs]);
  assert.equal(again.stdout.split('\n').filter((l) => l !== '').length, 30);

  // Bad input: one line, exit 1, nothing changed.
  assertOneLineError(await raftka(['groups', 'describe', 'nope', ...bs]), /group "nope" does not exist/, 'describe unknown group');
  assertOneLineError(await raftka(['groups', 'delete', 'nope', ...bs]), /group "nope" does not exist/, 'delete unknown group');
  assertOneLineError(await raftka(['groups', 'reset-offsets', 'g', '--topic', 'ev', ...bs]), /exactly one of --to-earliest/, 'reset without a target');
  assertOneLineError(await raftka(['groups', 'reset-offsets', 'g', '--topic', 'ev', '--to-datetime', 'yesterday', ...bs]), /not an ISO-8601/, 'bad datetime');
  assertOneLineError(await raftka(['groups', 'reset-offsets', 'g', '--topic', 'missing', '--to-latest', ...bs]), /topic "missing" does not exist/, 'unknown topic');
  assertOneLineError(await raftka(['consume', '/[/', '--group', 'g', ...bs]), /malformed topic pattern/, 'malformed regex');
  const d3 = JSON.parse((await raftka(['groups', 'describe', 'g', '--json', ...bs])).stdout) as { partitions: Array<{ committedOffset: number }> };
  assert.deepEqual(d3.partitions.map((p) => p.committedOffset), [10, 10, 10], 'bad input changed no offset');

  const del = await raftka(['groups', 'delete', 'g', ...bs]);
  assert.equal(del.code, 0, del.stderr);
  assertOneLineError(await raftka(['groups', 'describe', 'g', ...bs]), /does not exist/, 'deleted group');
});
