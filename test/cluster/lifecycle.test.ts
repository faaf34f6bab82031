// Multi-process: cluster describe, controlled shutdown on SIGTERM (leaving a clean-shutdown
// marker), DeleteTopics removing data from disk, and a restarted broker rejoining.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { DEV_OVERRIDES, ProcessCluster, freePorts } from '../../src/node/process-cluster.ts';
import { RawClient } from '../../src/client/raw-client.ts';
import { CLEAN_SHUTDOWN_FILE } from '../../src/log/clean-shutdown.ts';
import { ClusterClient } from '../support/cluster-client.ts';
import { defer, tempDir, waitFor } from '../support/tmp.ts';

const bin = new URL('../../bin/raftka.mjs', import.meta.url).pathname;
const run = promisify(execFile);

test('describe, controlled shutdown, delete topic, restart', { timeout: 180_000 }, async (t) => {
  const root = tempDir(t, 'raftka-lifecycle-');
  const ports = await freePorts(6);
  const cluster = ProcessCluster.prepare({ root, nodeIds: [1, 2, 3], clientPorts: ports.slice(0, 3), controllerPorts: ports.slice(3), overrides: DEV_OVERRIDES });
  defer(t, () => cluster.killAll());
  cluster.startAll();
  await cluster.waitReady(60_000);

  // raftka cluster describe --json
  const { stdout } = await run(process.execPath, [bin, 'cluster', 'describe', '--json', '--bootstrap', cluster.clientAddress(1)]);
  const described = JSON.parse(stdout.trim().split('\n').at(-1)!) as {
    clusterId: string;
    controller: number;
    brokers: Array<{ id: number; host: string; port: number; rack: string | null; fenced: boolean }>;
    voters: Array<{ id: number; lag: number }>;
  };
  assert.equal(described.clusterId, cluster.clusterId);
  assert.ok([1, 2, 3].includes(described.controller));
  assert.deepEqual(described.brokers.map((b) => [b.id, b.fenced]), [[1, false], [2, false], [3, false]]);
  assert.deepEqual(described.voters.map((v) => v.id), [1, 2, 3]);
  assert.ok(described.voters.every((v) => v.lag >= 0), `voter lag known: ${JSON.stringify(described.voters)}`);

  const admin = new RawClient(cluster.clientAddress(1));
  defer(t, () => admin.close());
  const created = await admin.createTopics({ topics: [{ name: 'life', numPartitions: 3, replicationFactor: 3 }] });
  assert.equal(created.topics[0]!.errorCode, 0, created.topics[0]!.errorMessage);
  const client = new ClusterClient([1, 2, 3].map((id) => cluster.clientAddress(id)));
  defer(t, () => client.close());
  await waitFor('leaders', async () => (await client.refresh('life')) && [0, 1, 2].every((p) => client.leaderOf('life', p) !== undefined), 20_000, 100);
  for (let p = 0; p < 3; p++) {
    const r = await waitFor(`write to ${p}`, async () => {
      const o = await client.produceOnce('life', p, `v${p}`);
      return o.type === 'ok' ? o : undefined;
    }, 20_000, 100);
    assert.equal(r.offset, 0);
  }

  // SIGTERM of partition 0's leader: it moves its leaderships away, then exits 0.
  const victim = client.leaderOf('life', 0)!;
  const proc = cluster.procs.get(victim)!;
  const exit = new Promise<number | null>((resolve) => proc.once('exit', (code) => resolve(code)));
  await cluster.stop(victim, 20_000);
  assert.equal(await exit, 0, 'a clean exit after controlled shutdown');
  // Its data dir records the clean stop with the broker epoch of its last registration
  // (read back from its own copy of the metadata log), for the next start to present.
  const marker = JSON.parse(readFileSync(join(cluster.dataDir(victim), CLEAN_SHUTDOWN_FILE), 'utf8')) as { brokerEpoch: number };
  const dump = await run(process.execPath, [bin, 'metadata', 'dump', '--dir', cluster.dataDir(victim), '--json']);
  const registrations = dump.stdout
    .trim()
    .split('\n')
    .map((l) => JSON.parse(l) as { type: string; records?: Array<{ type: string; brokerId?: number; brokerEpoch?: number }> })
    .flatMap((i) => (i.type === 'entry' || i.type === 'snapshot' ? (i.records ?? []) : []))
    .filter((r) => r.type === 'registerBroker' && r.brokerId === victim);
  assert.ok(registrations.length > 0, 'the victim registered');
  assert.equal(marker.brokerEpoch, registrations.at(-1)!.brokerEpoch, 'the marker names its last registration');
  const after = await waitFor('a cluster view without the stopped broker leading', async () => {
    const v = await cluster.describe();
    if (!v) return undefined;
    await client.refresh('life');
    return [0, 1, 2].every((p) => client.leaderOf('life', p) !== undefined && client.leaderOf('life', p) !== victim) ? v : undefined;
  }, 20_000, 100);
  assert.ok(after.brokers.find((b) => b.id === victim)?.fenced, 'the stopped broker is fenced');
  for (let p = 0; p < 3; p++) {
    const read = await waitFor(`read ${p}`, () => client.readAll('life', p), 20_000, 100);
    assert.deepEqual(read.records.map((r) => r.value), [`v${p}`], `partition ${p} kept its write`);
  }

  cluster.start(victim);
  await cluster.waitReady(60_000);
  assert.ok(!existsSync(join(cluster.dataDir(victim), CLEAN_SHUTDOWN_FILE)), 'the restart took the marker');
  // ...and registered with it (logged before the unfenced state waitReady waited for).
  const registered = cluster
    .logTail(victim, 10_000)
    .split('\n')
    .filter((l) => l.includes('"msg":"registered"'))
    .map((l) => JSON.parse(l) as { brokerEpoch: number; previousBrokerEpoch: number });
  assert.equal(registered.at(-1)?.previousBrokerEpoch, marker.brokerEpoch, 'the restart presented the clean stop\'s broker epoch');
  assert.ok(registered.at(-1)!.brokerEpoch > marker.brokerEpoch);

  // DeleteTopics removes the partition directories on every broker.
  const dirs = [1, 2, 3].flatMap((id) => [0, 1, 2].map((p) => join(cluster.dataDir(id), `life-${p}`)));
  assert.ok(dirs.every((d) => existsSync(d)));
  const del = await waitFor('delete', async () => {
    const r = await admin.deleteTopics({ names: ['life'] }).catch(() => undefined);
    return r?.topics[0]?.errorCode === 0 ? r : undefined;
  }, 20_000, 200);
  assert.equal(del.topics[0]!.name, 'life');
  await waitFor('partition data removed from disk', () => dirs.every((d) => !existsSync(d)), 20_000, 100);
  const md = await admin.metadata({ topics: ['life'] });
  assert.notEqual(md.topics[0]?.errorCode ?? 3, 0, 'the topic is gone');
});
