// Multi-process: the Jepsen cluster's faults act on real node processes and real links.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { readFileSync, statSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { startProcessJepsenCluster, type ProcessJepsenCluster } from '../../src/jepsen/cluster.ts';
import { checkControllers, checkMetadataLogs, checkReplicas } from '../../src/jepsen/checker.ts';
import { readReplicaLog, replicaImages } from '../../src/jepsen/observations.ts';
import { readFsyncLedger } from '../../src/node/test-hooks.ts';
import { Raftka } from '../../src/client/index.ts';
import { defer, pidAlive, tempDir, waitFor } from '../support/tmp.ts';

type HasAfter = Parameters<typeof defer>[0];

function procState(pid: number): string {
  const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
  return stat.slice(stat.lastIndexOf(')') + 2, stat.lastIndexOf(')') + 3);
}

async function startCluster(t: HasAfter): Promise<{ cluster: ProcessJepsenCluster; pids: () => number[] }> {
  const root = tempDir(t, 'raftka-jepsen-');
  const cluster = await startProcessJepsenCluster({ nodes: 3, root });
  const seen = new Set<number>();
  const pids = () => {
    for (const id of cluster.nodeIds) {
      const p = cluster.pid(id);
      if (p !== undefined) seen.add(p);
    }
    return [...seen];
  };
  defer(t, async () => {
    pids();
    await cluster.stop();
    for (const pid of seen) assert.equal(pidAlive(pid), false, `pid ${pid} still running after stop()`);
  });
  await cluster.waitReady(30_000);
  pids();
  return { cluster, pids };
}

function client(cluster: ProcessJepsenCluster): Raftka {
  return new Raftka({ brokers: [...cluster.bootstrap], requestTimeout: 10_000 });
}

test('jepsen cluster: clients only see proxies; isolating the controller elects another; kill, start, pause, resume; observations of a healthy run pass the checker', async (t) => {
  const { cluster, pids } = await startCluster(t);
  const raftka = client(cluster);
  const admin = raftka.admin();
  await admin.connect();
  defer(t, () => admin.disconnect());
  await admin.createTopics({ topics: [{ topic: 'jepsen', numPartitions: 3, replicationFactor: 3 }], waitForLeaders: true });
  // Every endpoint a client learns is a clients→node proxy.
  const described = await admin.describeCluster();
  assert.deepEqual(described.brokers.map((b) => `${b.host}:${b.port}`).sort(), [...cluster.bootstrap].sort());

  const producer = raftka.producer({ deliveryTimeoutMs: 30_000 });
  await producer.connect();
  defer(t, () => producer.disconnect());
  let n = 0;
  const produce = async (count: number) => {
    for (let i = 0; i < count; i++) {
      const md = await producer.send({ topic: 'jepsen', messages: [{ key: `k${n % 7}`, value: `v${n}` }] });
      assert.equal(md[0]!.errorCode, 0);
      n++;
    }
  };
  await produce(10);
  // Raft, replica fetch and client traffic all run through the proxies.
  const conns = cluster.linkConnections();
  for (const a of cluster.nodeIds) {
    for (const b of cluster.nodeIds) if (a !== b) assert.ok(conns[`${a}->${b} raft`]! > 0, `${a}->${b} raft connected`);
  }
  assert.ok(Object.entries(conns).some(([k, c]) => k.endsWith('replication') && c > 0), 'followers fetch through the proxies');
  assert.ok(Object.entries(conns).some(([k, c]) => k.startsWith('clients->') && c > 0), 'clients connect through the proxies');

  // Isolate the controller from both peers (clients still reach it).
  const ctl = await cluster.controllerId();
  assert.ok(ctl !== null);
  const others = cluster.nodeIds.filter((id) => id !== ctl);
  await cluster.cut(others.flatMap((o) => [[ctl, o] as const, [o, ctl] as const]));
  assert.equal(cluster.linkModes()[`${ctl}->${others[0]} raft`], 'drop');
  assert.equal(cluster.linkModes()[`clients->${ctl}`], 'pass');
  const next = await waitFor('a new controller among the others', async () => {
    const c = await cluster.controllerId();
    return c !== null && c !== ctl ? c : undefined;
  }, 20_000, 100);
  assert.ok(others.includes(next));
  await cluster.healAll();
  await cluster.waitReady(30_000);
  await produce(5);

  // kill -9 and restart a node.
  const victim = others.find((id) => id !== next)!;
  const killedPid = cluster.pid(victim)!;
  await cluster.kill(victim);
  assert.equal(pidAlive(killedPid), false);
  assert.equal(cluster.isRunning(victim), false);
  await produce(5); // RF 3, min.insync.replicas 2: two nodes suffice
  await cluster.start(victim);
  assert.notEqual(cluster.pid(victim), killedPid);
  pids();
  await cluster.waitReady(30_000);

  // SIGSTOP / SIGCONT.
  await cluster.pause(victim);
  const pausedPid = cluster.pid(victim)!;
  assert.equal(procState(pausedPid), 'T');
  assert.equal(cluster.isPaused(victim), true);
  await cluster.resume(victim);
  assert.notEqual(procState(pausedPid), 'T');
  await cluster.waitReady(30_000);
  await produce(5);
  await producer.disconnect();

  // One-way holds the bytes from 1 to 2 on both nodes' connections; clients cut separately.
  await cluster.cut([[1, 2]], 'one-way');
  await cluster.cut([['clients', 3]]);
  const modes = cluster.linkModes();
  assert.equal(modes['1->2 raft'], 'to-client-only');
  assert.equal(modes['1->2 replication'], 'to-client-only');
  assert.equal(modes['2->1 raft'], 'to-target-only');
  assert.equal(modes['clients->3'], 'drop');
  assert.deepEqual(Object.entries(modes).filter(([, m]) => m !== 'pass').map(([k]) => k).sort(), ['1->2 raft', '1->2 replication', '2->1 raft', '2->1 replication', 'clients->3']);
  await cluster.cut([[2, 1]], 'one-way');
  assert.equal(cluster.linkModes()['1->2 raft'], 'drop', 'both directions held now');
  await assert.rejects(cluster.cut([[1, 9]]), /no node 9/);

  await cluster.healAll();
  assert.ok(Object.values(cluster.linkModes()).every((m) => m === 'pass'));
  await cluster.waitReady(30_000);
  const obs = await cluster.observations();
  assert.ok(obs.controllerEvents!.some((e) => e.node === ctl), 'the first controller was logged');
  assert.ok(obs.controllerEvents!.some((e) => e.node === next), 'the controller elected during the partition was logged');
  assert.equal(checkControllers(obs.controllerEvents!).valid, true);
  const ml = obs.metadataLogs!;
  assert.equal(ml.voters.length, 3);
  assert.ok(ml.committedIndex > 0);
  assert.ok(ml.voters.every((v) => v.entries.length > 0));
  assert.equal(checkMetadataLogs(ml.voters, ml.committedIndex).valid, true);
  const replicas = obs.replicas!.filter((p) => p.key.startsWith('jepsen-'));
  assert.equal(replicas.length, 3);
  assert.equal(replicas.reduce((s, p) => s + p.highWatermark, 0), n, 'every acknowledged record is below a high watermark');
  for (const p of replicas) {
    assert.equal(p.replicas.length, 3, `${p.key}: all replicas back in the ISR`);
    if (p.highWatermark > 0) assert.ok(p.replicas.every((r) => (r.bytes?.length ?? 0) > 0));
  }
  assert.equal(checkReplicas(obs.replicas!).valid, true);
  for (const id of cluster.nodeIds) assert.equal(cluster.isRunning(id), false, 'observations() leaves the nodes stopped');

  // The replica images are real bytes: a flipped byte in one replica is a divergence.
  const p = replicas.find((r) => r.highWatermark > 0)!;
  const dir = join(cluster.dataDir(2), p.key);
  const seg = join(dir, '00000000000000000000.log');
  const bytes = readFileSync(seg);
  bytes.writeUInt8(bytes.readUInt8(bytes.length - 5) ^ 0xff, bytes.length - 5);
  writeFileSync(seg, bytes);
  const logs = await Promise.all(cluster.nodeIds.map((id) => readReplicaLog(join(cluster.dataDir(id), p.key), id)));
  assert.equal(checkReplicas([{ key: p.key, highWatermark: p.highWatermark, replicas: replicaImages(logs, p.highWatermark) }]).valid, false);
});

test('jepsen cluster: power loss cuts segment files to their fsynced lengths and the node rejoins; clock shifts move LogAppendTime', async (t) => {
  const { cluster, pids } = await startCluster(t);
  const raftka = client(cluster);
  const admin = raftka.admin();
  await admin.connect();
  defer(t, () => admin.disconnect());
  // The power-lost node is the controller and the partition's leader at once, the hard
  // case: the next controller never saw its connection drop, so the old incarnation's
  // session outlives the restart, and the restarted process must not lead from the
  // metadata it replays before its new registration moved that leadership away.
  const ctl = await waitFor('a controller', () => cluster.controllerId().then((c) => c ?? undefined), 10_000, 50);
  const lazyReplicas = [ctl, ...cluster.nodeIds.filter((id) => id !== ctl)];
  await admin.createTopics({
    topics: [
      // fsync every 4 records and not before acknowledging: acked data ahead of the last fsync.
      { topic: 'lazy', replicaAssignment: [{ partition: 0, replicas: lazyReplicas }], configEntries: [{ name: 'flush.before.ack', value: 'false' }, { name: 'flush.messages', value: '4' }] },
      { topic: 'clocked', numPartitions: 1, replicationFactor: 3, configEntries: [{ name: 'message.timestamp.type', value: 'LogAppendTime' }] },
    ],
    waitForLeaders: true,
  });
  const producer = raftka.producer({ deliveryTimeoutMs: 30_000 });
  await producer.connect();
  defer(t, () => producer.disconnect());

  // Clock: the leader's skew shows in the timestamps it assigns.
  const hour = 3_600_000;
  const clockLeader = (await cluster.leaderOf('clocked-0'))!;
  await cluster.shiftClock(clockLeader, hour);
  const skewed = (await producer.send({ topic: 'clocked', messages: [{ value: 'a' }] }))[0]!;
  assert.ok(Math.abs(skewed.logAppendTime - (Date.now() + hour)) < 60_000, `LogAppendTime ${skewed.logAppendTime} is about an hour ahead of ${Date.now()}`);
  await cluster.healAll();
  assert.equal(await cluster.leaderOf('clocked-0'), clockLeader);
  const straight = (await producer.send({ topic: 'clocked', messages: [{ value: 'b' }] }))[0]!;
  assert.ok(Math.abs(straight.logAppendTime - Date.now()) < 60_000, 'healAll resets the clock');

  // Power loss: 6 records, fsynced after the 4th; the last 2 are only in the page cache.
  for (let i = 0; i < 6; i++) await producer.send({ topic: 'lazy', messages: [{ value: `r${i}` }] });
  const leader = (await cluster.leaderOf('lazy-0'))!;
  assert.equal(leader, ctl, 'the preferred replica leads');
  assert.equal(await cluster.controllerId(), ctl);
  const seg = join(cluster.dataDir(leader), 'lazy-0', '00000000000000000000.log');
  const before = statSync(seg).size;
  const oldPid = cluster.pid(leader)!;
  await cluster.powerLoss([leader]);
  assert.equal(pidAlive(oldPid), false);
  const ledger = readFsyncLedger(cluster.ledgerPath(leader));
  const cut = cluster.lastPowerLoss().find((c) => c.file === seg);
  assert.ok(cut, `the leader's segment was cut (cuts: ${JSON.stringify(cluster.lastPowerLoss())})`);
  assert.equal(cut.from, before);
  assert.equal(cut.to, ledger.get(seg));
  assert.ok(cut.to > 0 && cut.to < before, `cut to ${cut.to} of ${before} bytes`);
  assert.equal(statSync(seg).size, cut.to);
  for (const c of cluster.lastPowerLoss()) if (c.to >= 0) assert.equal(c.to, ledger.get(c.file));

  await cluster.start(leader);
  pids();
  await cluster.waitReady(30_000);
  const rejoined = await waitFor('the power-lost node back in the ISR', async () => {
    const m = await admin.fetchTopicMetadata({ topics: ['lazy'] });
    const p = m.topics[0]?.partitions[0];
    return p && p.isr.includes(leader) ? p : undefined;
  }, 30_000, 200);
  assert.ok(rejoined.isr.length === 3);
  // Its log was refilled from the new leader: the cut records are back.
  await waitFor('the cut bytes replicated back', () => statSync(seg).size >= before, 20_000, 100);
});

test('Ctrl-C on the owning process kills every node of a jepsen cluster', async (t) => {
  const root = tempDir(t, 'raftka-jepsen-sigint-');
  const module = fileURLToPath(new URL('../../src/jepsen/cluster.ts', import.meta.url));
  const script = `
    import { startProcessJepsenCluster } from ${JSON.stringify(module)};
    const c = await startProcessJepsenCluster({ nodes: 2, root: ${JSON.stringify(root)} });
    console.log(JSON.stringify(c.nodeIds.map((id) => c.pid(id))));
    setInterval(() => undefined, 1000);
  `;
  const owner = spawn(process.execPath, ['--import', 'tsx', '--input-type=module', '-e', script], { stdio: ['ignore', 'pipe', 'inherit'] });
  let out = '';
  owner.stdout.on('data', (d: Buffer) => (out += d.toString()));
  const exited = new Promise<number | null>((resolve) => owner.once('exit', (code) => resolve(code)));
  defer(t, () => {
    if (owner.exitCode === null && owner.signalCode === null) owner.kill('SIGKILL');
  });
  const pids = await waitFor('the node pids', () => (out.includes(']') ? (JSON.parse(out.trim().split('\n')[0]!) as number[]) : undefined), 30_000);
  assert.equal(pids.length, 2);
  assert.ok(pids.every(pidAlive));
  owner.kill('SIGINT');
  assert.equal(await exited, 130, 'exits like an interrupted process');
  await waitFor('every node gone', () => pids.every((p) => !pidAlive(p)), 10_000);
});
