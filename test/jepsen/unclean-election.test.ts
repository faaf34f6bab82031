// Multi-process: every replica of a flush.before.ack=false partition stops uncleanly, so
// none is eligible when they come back [KIP-966]. An admin's unclean election then takes
// the replica whose log its broker reported as the most complete: here the one that was
// only killed (its writes were in the page cache) rather than the ones that lost power
// (their never-synced segments are gone). The order alone (lastKnownElr, then replica
// order: the rule before the reports) takes a power-lossed one whenever the restarts
// leave lastKnownElr without the killed replica; test/controller pins the rule itself,
// this test the reports' way from the brokers' logs to the controller.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { startProcessJepsenCluster } from '../../src/jepsen/cluster.ts';
import { readReplicaLog, type ReplicaLog } from '../../src/jepsen/observations.ts';
import { Raftka } from '../../src/client/index.ts';
import { ClusterClient } from '../support/cluster-client.ts';
import { defer, tempDir, waitFor } from '../support/tmp.ts';

const TOPIC = 'lazy';
const bin = new URL('../../bin/raftka.mjs', import.meta.url).pathname;
const run = promisify(execFile);

interface LogEnd {
  readonly lastWrittenEpoch: number;
  readonly logEndOffset: number;
}

function logEnd(log: ReplicaLog): LogEnd {
  const last = log.batches.at(-1);
  // The partition leader epoch sits at byte 12 of a batch header.
  return last === undefined ? { lastWrittenEpoch: -1, logEndOffset: 0 } : { lastWrittenEpoch: last.bytes.readInt32BE(12), logEndOffset: last.lastOffset + 1 };
}
const RECORDS = 20;

test('unclean election after every replica stopped uncleanly takes the most complete log and loses no record it kept [KIP-966]', { timeout: 180_000 }, async (t) => {
  const cluster = await startProcessJepsenCluster({ nodes: 3, root: tempDir(t, 'raftka-unclean-') });
  defer(t, () => cluster.stop());
  await cluster.waitReady(30_000);
  const admin = new Raftka({ brokers: [...cluster.bootstrap], requestTimeout: 10_000 }).admin();
  await admin.connect();
  defer(t, () => admin.disconnect());
  await admin.createTopics({
    topics: [{ topic: TOPIC, numPartitions: 1, replicationFactor: 3, configEntries: [{ name: 'flush.before.ack', value: 'false' }] }],
    waitForLeaders: true,
  });
  const describe = async () => (await admin.describeTopics({ topics: [TOPIC] })).topics[0]!.partitions[0]!;

  const client = new ClusterClient([...cluster.bootstrap]);
  defer(t, () => client.close());
  const acked: string[] = [];
  for (let i = 0; i < RECORDS; i++) {
    const value = `v${i}`;
    await waitFor(`an acknowledgement of ${value}`, async () => {
      await client.refresh(TOPIC);
      const r = await client.produceOnce(TOPIC, 0, value);
      return r.type === 'ok';
    });
    acked.push(value);
  }
  const before = await describe();
  assert.deepEqual([...before.isr].sort(), [1, 2, 3], 'every replica wrote every acknowledged record');

  // The last replica in replica order is only killed; the other two lose power and,
  // with it, every byte nothing synced.
  const [first, second, kept] = before.replicas as [number, number, number];
  const [, cut] = await Promise.all([cluster.kill(kept), cluster.powerLoss([first, second])]);
  assert.ok(cut.cutBytes > 0, `the power loss cut unsynced bytes: ${JSON.stringify(cut)}`);
  // What each replica will recover: its whole batches on disk now.
  const ends = new Map<number, LogEnd>();
  for (const id of cluster.nodeIds) ends.set(id, logEnd(await readReplicaLog(join(cluster.dataDir(id), `${TOPIC}-0`), id)));
  const shown = JSON.stringify([...ends]);
  assert.ok(ends.get(kept)!.logEndOffset >= RECORDS, `the killed replica kept every record: ${shown}`);
  for (const id of [first, second]) assert.ok(ends.get(id)!.logEndOffset < RECORDS, `the power loss took records from node ${id}: ${shown}`);
  await Promise.all(cluster.nodeIds.map((id) => cluster.start(id)));
  await cluster.waitReady(60_000);
  // Every replica re-registered after an unclean stop: none is in the ISR or ELR.
  const offline = await waitFor('the partition to be left without a leader', async () => {
    const p = await describe();
    return p.leader === -1 && p.isr.length === 0 ? p : undefined;
  }, 30_000, 100);
  assert.equal(offline.leader, -1);
  const listed = await run(process.execPath, [bin, 'topics', 'describe', '--unavailable-partitions', '--json', '--bootstrap', cluster.bootstrap.join(',')]);
  const unavailable = JSON.parse(listed.stdout.trim()) as { name: string; partitions: Array<{ partition: number; leader: number }> };
  assert.deepEqual([unavailable.name, unavailable.partitions.map((p) => [p.partition, p.leader])], [TOPIC, [[0, -1]]], 'describe --unavailable-partitions lists it');

  // The operator's command. The election elects nothing (ELIGIBLE_LEADERS_NOT_AVAILABLE)
  // until every broker's heartbeat has reported where its replica's log ends; --wait-ms
  // asks again meanwhile.
  const cli = await run(process.execPath, [bin, 'topics', 'elect-leaders', TOPIC, '--unclean', '--wait-ms', '30000', '--json', '--bootstrap', cluster.bootstrap.join(',')], { timeout: 60_000 });
  const elected = JSON.parse(cli.stdout.trim()) as { partition: number; leader: number; result: string; message?: string };
  assert.equal(elected.result, 'ELECTED', elected.message);
  assert.equal(elected.leader, kept, `the replica with the most complete log (${kept}) leads: ${shown}`);

  // The power-lossed replicas fetch from it, rejoin the ISR, and the high watermark
  // covers every acknowledged record again.
  const read = await waitFor('every acknowledged record to be readable', async () => {
    await client.refresh(TOPIC);
    const r = await client.readAll(TOPIC, 0);
    return r !== undefined && r.highWatermark >= RECORDS ? r : undefined;
  }, 30_000, 100);
  const values = new Set(read.records.map((r) => r.value));
  assert.deepEqual(acked.filter((v) => !values.has(v)), [], 'no acknowledged record is lost');
});
