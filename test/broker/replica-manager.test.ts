// Three replica managers in one process, wired by direct calls: replication, acks=all,
// ISR shrink and expand, leader change with divergent-tail truncation, and min ISR.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync, readdirSync } from 'node:fs';
import { join } from 'node:path';
import { ReplicaManager } from '../../src/broker/replica-manager.ts';
import type { AlterPartitionRequest, PartitionAssignment, ReplicaFetchClient } from '../../src/broker/types.ts';
import { buildBatch, decodeRecords, iterateBatches } from '../../src/log/batch.ts';
import { systemClock } from '../../src/common/clock.ts';
import { silentLogger } from '../../src/common/logger.ts';
import { ERRORS, isRaftkaError } from '../../src/common/errors.ts';
import { defer, tempDir, waitFor } from '../support/tmp.ts';

const TOPIC_ID = 'AAAAAAAAAAAAAAAAAAAAAA';

class Cluster {
  readonly rms = new Map<number, ReplicaManager>();
  readonly down = new Set<number>();
  /** Links that drop fetches: `${follower}->${leader}`. */
  readonly cut = new Set<string>();
  assignment: PartitionAssignment;
  readonly alters: AlterPartitionRequest[] = [];

  constructor(readonly root: string, config: Record<string, string> = {}) {
    this.assignment = { topicId: TOPIC_ID, topic: 't', partition: 0, replicas: [1, 2, 3], isr: [1, 2, 3], leader: 1, leaderEpoch: 1, partitionEpoch: 1, config: { 'min.insync.replicas': '2', ...config } };
  }

  start(id: number): ReplicaManager {
    const fetchClient: ReplicaFetchClient = {
      fetch: async (leaderId, req) => {
        if (this.down.has(leaderId) || this.down.has(id) || this.cut.has(`${id}->${leaderId}`)) {
          await new Promise((r) => setTimeout(r, 20));
          throw new Error('unreachable');
        }
        const resp = await this.rms.get(leaderId)!.handleReplicaFetch(req);
        // A link cut while the fetch was parked loses the response too.
        if (this.cut.has(`${id}->${leaderId}`) || this.down.has(id)) throw new Error('unreachable');
        return resp;
      },
    };
    const rm = new ReplicaManager({
      brokerId: id,
      brokerEpoch: () => 1,
      dataDir: join(this.root, `broker-${id}`),
      clock: systemClock,
      logger: silentLogger(),
      fetchClient,
      controller: { alterPartition: async (req) => this.alterPartition(req) },
      replicaLagTimeMaxMs: 400,
      replicaFetchWaitMaxMs: 100,
      replicaFetchBackoffMs: 20,
      isrCheckIntervalMs: 50,
    });
    rm.start();
    this.rms.set(id, rm);
    this.down.delete(id);
    return rm;
  }

  /** A toy controller: accepts any change from the current leader at the current epochs. */
  private async alterPartition(req: AlterPartitionRequest) {
    this.alters.push(req);
    const a = this.assignment;
    if (req.leaderEpoch !== a.leaderEpoch || req.partitionEpoch !== a.partitionEpoch) return { errorCode: 74 };
    this.assignment = { ...a, isr: req.newIsr, partitionEpoch: a.partitionEpoch + 1 };
    await this.publish();
    return { errorCode: 0, isr: this.assignment.isr, leaderEpoch: a.leaderEpoch, partitionEpoch: this.assignment.partitionEpoch };
  }

  async publish(): Promise<void> {
    for (const [id, rm] of this.rms) if (!this.down.has(id)) await rm.reconcile([this.assignment]);
  }

  async electLeader(leader: number, isr: number[]): Promise<void> {
    this.assignment = { ...this.assignment, leader, isr, leaderEpoch: this.assignment.leaderEpoch + 1, partitionEpoch: this.assignment.partitionEpoch + 1 };
    await this.publish();
  }

  async stop(id: number): Promise<void> {
    this.down.add(id);
    await this.rms.get(id)!.close();
  }

  async closeAll(): Promise<void> {
    for (const [id, rm] of this.rms) if (!this.down.has(id)) await rm.close();
  }

  segmentBytes(id: number): Buffer {
    const dir = join(this.root, `broker-${id}`, 't-0');
    return Buffer.concat(readdirSync(dir).filter((f) => f.endsWith('.log')).sort().map((f) => readFileSync(join(dir, f))));
  }
}

async function consumeAll(rm: ReplicaManager): Promise<string[]> {
  const out: string[] = [];
  let offset = 0;
  for (;;) {
    const [r] = await rm.fetch([{ topicId: TOPIC_ID, partition: 0, fetchOffset: offset, maxBytes: 1 << 20 }], 0, 1);
    assert.equal(r!.errorCode, 0, r!.errorMessage);
    if (r!.records.length === 0) return out;
    for (const { bytes } of iterateBatches(r!.records)) for (const rec of decodeRecords(bytes)) {
      out.push(rec.value!.toString());
      offset = rec.offset + 1;
    }
  }
}

const batch = (v: string) => buildBatch([{ key: v, value: v }]);

test('acks=all completes once the ISR has the write; replicas end byte-identical', async (t) => {
  const c = new Cluster(tempDir(t));
  defer(t, () => c.closeAll());
  for (const id of [1, 2, 3]) c.start(id);
  await c.publish();
  const leader = c.rms.get(1)!;
  const results = await Promise.all(Array.from({ length: 20 }, (_, i) => leader.produce(TOPIC_ID, 0, batch(`v${i}`), -1, 5000)));
  assert.deepEqual(results.map((r) => r.baseOffset).sort((a, b) => a - b), Array.from({ length: 20 }, (_, i) => i));
  assert.equal(leader.partition(TOPIC_ID, 0)!.highWatermark, 20);
  assert.equal((await consumeAll(leader)).length, 20);
  await waitFor('followers at the log end', () => [2, 3].every((id) => c.rms.get(id)!.partition(TOPIC_ID, 0)!.log.logEndOffset === 20));
  assert.ok(c.segmentBytes(1).equals(c.segmentBytes(2)) && c.segmentBytes(1).equals(c.segmentBytes(3)));
  await assert.rejects(c.rms.get(2)!.produce(TOPIC_ID, 0, batch('x'), -1, 1000), (e: unknown) => isRaftkaError(e, 'NOT_LEADER_OR_FOLLOWER'));
  await assert.rejects(leader.produce(TOPIC_ID, 0, batch('x'), 2, 1000), (e: unknown) => isRaftkaError(e, 'INVALID_REQUIRED_ACKS'));
});

test('a dead follower is shrunk out of the ISR, acks=all goes on, and it rejoins after catching up', async (t) => {
  const c = new Cluster(tempDir(t));
  defer(t, () => c.closeAll());
  for (const id of [1, 2, 3]) c.start(id);
  await c.publish();
  const leader = c.rms.get(1)!;
  await leader.produce(TOPIC_ID, 0, batch('before'), -1, 5000);
  await c.stop(3);
  const r = await leader.produce(TOPIC_ID, 0, batch('while-down'), -1, 5000);
  assert.equal(r.baseOffset, 1);
  assert.deepEqual(c.assignment.isr, [1, 2]);
  c.start(3);
  await c.publish();
  await waitFor('follower 3 back in the ISR', () => c.assignment.isr.includes(3), 5000);
  await leader.produce(TOPIC_ID, 0, batch('after'), -1, 5000);
  await waitFor('follower 3 caught up', () => c.rms.get(3)!.partition(TOPIC_ID, 0)!.log.logEndOffset === 3);
  assert.ok(c.segmentBytes(1).equals(c.segmentBytes(3)));
});

test('with the ISR below min.insync.replicas, acks=all is refused and nothing is written', async (t) => {
  const c = new Cluster(tempDir(t));
  defer(t, () => c.closeAll());
  for (const id of [1, 2, 3]) c.start(id);
  c.cut.add('2->1').add('3->1'); // the followers cannot catch up and rejoin
  c.assignment = { ...c.assignment, isr: [1] };
  await c.publish();
  const leader = c.rms.get(1)!;
  const end = leader.partition(TOPIC_ID, 0)!.log.logEndOffset;
  await assert.rejects(leader.produce(TOPIC_ID, 0, batch('x'), -1, 1000), (e: unknown) => isRaftkaError(e, 'NOT_ENOUGH_REPLICAS'));
  assert.equal(leader.partition(TOPIC_ID, 0)!.log.logEndOffset, end);
});

test('a new leader truncates the old leader divergent tail; acknowledged writes survive', async (t) => {
  const c = new Cluster(tempDir(t));
  defer(t, () => c.closeAll());
  for (const id of [1, 2, 3]) c.start(id);
  await c.publish();
  const old = c.rms.get(1)!;
  for (let i = 0; i < 5; i++) await old.produce(TOPIC_ID, 0, batch(`acked${i}`), -1, 5000);
  // Partition the old leader from its followers; it takes writes it can never commit.
  c.cut.add('2->1').add('3->1');
  await old.produce(TOPIC_ID, 0, batch('lost-a'), 1, 5000);
  await old.produce(TOPIC_ID, 0, batch('lost-b'), 1, 5000);
  assert.equal(old.partition(TOPIC_ID, 0)!.log.logEndOffset, 7);
  await c.electLeader(2, [2, 3]);
  const leader = c.rms.get(2)!;
  await waitFor('new leader ready for consumers', () => leader.partition(TOPIC_ID, 0)!.role.kind === 'leader');
  // Committed once follower 3 has fetched it from the new leader.
  await leader.produce(TOPIC_ID, 0, batch('new-epoch'), -1, 5000);
  c.cut.clear();
  await waitFor('old leader truncated and caught up', () => c.segmentBytes(1).equals(c.segmentBytes(2)), 5000);
  const values = await consumeAll(leader);
  assert.deepEqual(values.slice(0, 5), ['acked0', 'acked1', 'acked2', 'acked3', 'acked4']);
  assert.ok(!values.includes('lost-a') && !values.includes('lost-b'), JSON.stringify(values));
  assert.ok(values.includes('new-epoch'));
});

test('idempotent producer: a retry after a leader change is answered by the new leader with the original offsets [KIP-98]', async (t) => {
  const c = new Cluster(tempDir(t));
  defer(t, () => c.closeAll());
  for (const id of [1, 2, 3]) c.start(id);
  await c.publish();
  const idem = (seq: number, v: string) => buildBatch([{ key: v, value: v }], { producerId: 4242, producerEpoch: 0, baseSequence: seq });
  const old = c.rms.get(1)!;
  const offsets: number[] = [];
  for (let seq = 0; seq < 4; seq++) offsets.push((await old.produce(TOPIC_ID, 0, idem(seq, `m${seq}`), -1, 5000)).baseOffset);
  // The old leader itself answers a retry with the original offset and writes nothing.
  assert.equal((await old.produce(TOPIC_ID, 0, idem(3, 'm3'), -1, 5000)).baseOffset, offsets[3]);
  assert.equal(old.partition(TOPIC_ID, 0)!.log.logEndOffset, 4);

  // Broker 2 takes over (its state came from the replicated batches); broker 3 restarts
  // first, so its state is rebuilt from its snapshot and log.
  await c.stop(3);
  c.start(3);
  await c.electLeader(2, [2, 3]);
  const leader = c.rms.get(2)!;
  await assert.rejects(old.produce(TOPIC_ID, 0, idem(4, 'm4'), -1, 1000), (e: unknown) => isRaftkaError(e, 'NOT_LEADER_OR_FOLLOWER'));
  // The producer never saw the answer for sequence 3 (say) and retries it at the new leader.
  const retried = await leader.produce(TOPIC_ID, 0, idem(3, 'm3'), -1, 5000);
  assert.equal(retried.baseOffset, offsets[3]);
  await assert.rejects(leader.produce(TOPIC_ID, 0, idem(6, 'gap'), -1, 5000), (e: unknown) => isRaftkaError(e, 'OUT_OF_ORDER_SEQUENCE_NUMBER'));
  assert.equal((await leader.produce(TOPIC_ID, 0, idem(4, 'm4'), -1, 5000)).baseOffset, 4);

  // And again on the restarted replica once it leads.
  await waitFor('broker 3 caught up', () => c.rms.get(3)!.partition(TOPIC_ID, 0)!.log.logEndOffset === 5);
  await c.electLeader(3, [3, 2]);
  const third = c.rms.get(3)!;
  assert.equal((await third.produce(TOPIC_ID, 0, idem(4, 'm4'), -1, 5000)).baseOffset, 4);
  assert.equal((await third.produce(TOPIC_ID, 0, idem(2, 'm2'), -1, 5000)).baseOffset, offsets[2]);
  assert.equal((await third.produce(TOPIC_ID, 0, idem(5, 'm5'), -1, 5000)).baseOffset, 5);
  assert.deepEqual(await consumeAll(third), ['m0', 'm1', 'm2', 'm3', 'm4', 'm5']);
});

test('a changed topic config reaches the open partition logs (max.message.bytes, retention.ms) without reopening them', async (t) => {
  const c = new Cluster(tempDir(t));
  defer(t, () => c.closeAll());
  for (const id of [1, 2, 3]) c.start(id);
  await c.publish();
  const leader = c.rms.get(1)!;
  const big = batch('x'.repeat(500));
  assert.equal((await leader.produce(TOPIC_ID, 0, big, -1, 5000)).baseOffset, 0);
  const log = leader.partition(TOPIC_ID, 0)!.log;
  // An IncrementalAlterConfigs that committed: the next image carries the new overrides.
  c.assignment = { ...c.assignment, config: { ...c.assignment.config, 'max.message.bytes': '200', 'retention.ms': '60000' } };
  await c.publish();
  assert.equal(leader.partition(TOPIC_ID, 0)!.log, log, 'the same open log');
  for (const id of [1, 2, 3]) {
    const cfg = c.rms.get(id)!.partition(TOPIC_ID, 0)!.log.config;
    assert.deepEqual([cfg['max.message.bytes'], cfg['retention.ms']], [200, 60000], `broker ${id}`);
  }
  await assert.rejects(leader.produce(TOPIC_ID, 0, big, -1, 5000), (e: unknown) => isRaftkaError(e, 'MESSAGE_TOO_LARGE'));
  assert.equal((await leader.produce(TOPIC_ID, 0, batch('small'), -1, 5000)).baseOffset, 1);
  // Deleting the override goes back to the default.
  const { 'max.message.bytes': _gone, ...rest } = c.assignment.config;
  c.assignment = { ...c.assignment, config: rest };
  await c.publish();
  assert.equal(leader.partition(TOPIC_ID, 0)!.log.config['max.message.bytes'], 1024 * 1024 + 12);
  assert.equal((await leader.produce(TOPIC_ID, 0, big, -1, 5000)).baseOffset, 2);
});

test('replica fetch sessions: incremental answers carry only partitions with news; a stale session epoch is refused [KIP-227]', async (t) => {
  const rm = new ReplicaManager({
    brokerId: 1,
    brokerEpoch: () => 1,
    dataDir: tempDir(t),
    clock: systemClock,
    logger: silentLogger(),
    fetchClient: { fetch: () => Promise.reject(new Error('broker 1 follows nobody here')) },
    controller: { alterPartition: async () => ({ errorCode: 0 }) },
  });
  defer(t, () => rm.close());
  rm.start();
  await rm.reconcile([0, 1, 2].map((partition) => ({ topicId: TOPIC_ID, topic: 't', partition, replicas: [1, 2], isr: [1, 2], leader: 1, leaderEpoch: 1, partitionEpoch: 1, config: {} })));
  const offsets = [0, 0, 0];
  const fetchState = (partition: number) => ({ topicId: TOPIC_ID, partition, currentLeaderEpoch: 1, fetchOffset: offsets[partition]!, lastFetchedEpoch: offsets[partition]! > 0 ? 1 : -1, flushedOffset: offsets[partition]!, maxBytes: 1 << 20 });
  const fetch = (sessionId: number, sessionEpoch: number, partitions: number[], maxWaitMs = 0) =>
    rm.handleReplicaFetch({ replicaId: 2, brokerEpoch: 1, maxWaitMs, minBytes: 1, maxBytes: 1 << 20, sessionId, sessionEpoch, partitions: partitions.map(fetchState), forgotten: [] });
  const carried = (r: { partitions: readonly { partition: number }[] }) => r.partitions.map((p) => p.partition).sort();

  const full = await fetch(0, 0, [0, 1, 2]);
  assert.equal(full.errorCode, 0);
  assert.notEqual(full.sessionId, 0);
  assert.deepEqual(carried(full), [0, 1, 2], 'a new session tells every partition');

  await rm.produce(TOPIC_ID, 1, batch('a'), 1, 5000);
  const data = await fetch(full.sessionId, 1, []);
  assert.deepEqual(carried(data), [1]);
  assert.ok(data.partitions[0]!.records.length > 0);

  // The follower reports the write (only partition 1 changed): the HW moves, and that is news.
  offsets[1] = 1;
  const hw = await fetch(full.sessionId, 2, [1]);
  assert.deepEqual(carried(hw), [1]);
  assert.deepEqual([hw.partitions[0]!.highWatermark, hw.partitions[0]!.records.length], [1, 0]);
  assert.deepEqual(carried(await fetch(full.sessionId, 3, [])), [], 'nothing new');

  // A parked incremental fetch is answered by a produce to any partition of the session.
  const parked = fetch(full.sessionId, 4, [], 5_000);
  await rm.produce(TOPIC_ID, 2, batch('b'), 1, 5000);
  assert.deepEqual(carried(await parked), [2]);

  const stale = await fetch(full.sessionId, 4, []);
  assert.deepEqual([stale.errorCode, stale.sessionId, stale.partitions.length], [ERRORS.INVALID_FETCH_SESSION_EPOCH.code, 0, 0]);
  assert.equal((await fetch(full.sessionId, 5, [])).errorCode, ERRORS.FETCH_SESSION_ID_NOT_FOUND.code, 'the session is gone');
  const again = await fetch(0, 0, [0, 1, 2]);
  assert.deepEqual([again.errorCode, carried(again)], [0, [0, 1, 2]]);
});
