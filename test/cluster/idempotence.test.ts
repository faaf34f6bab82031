// Idempotent producing across real processes [KIP-98]: InitProducerId hands out ids from
// controller-allocated blocks that never overlap (across brokers and a controller kill);
// a raw client stamps batches with its producer id and sequences, and retries of a batch
// whose acknowledgement it "lost" are answered with the original offset after kill -9 of
// the partition leader, by the new leader (state from replicated batches) and by a
// restarted replica (state rebuilt from its snapshot and log). The log holds every batch
// once, in sequence order.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { DEV_OVERRIDES, ProcessCluster, freePorts } from '../../src/node/process-cluster.ts';
import { RawClient } from '../../src/client/raw-client.ts';
import { buildBatch } from '../../src/log/batch.ts';
import type { ErrorName } from '../../src/common/errors.ts';
import { ClusterClient } from '../support/cluster-client.ts';
import { defer, tempDir, waitFor } from '../support/tmp.ts';

const TOPIC = 'idem';

/** Errors a retry must never meet: they would mean the broker lost or mangled producer state. */
const FATAL: ReadonlySet<ErrorName> = new Set(['OUT_OF_ORDER_SEQUENCE_NUMBER', 'UNKNOWN_PRODUCER_ID', 'INVALID_PRODUCER_EPOCH', 'INVALID_RECORD', 'DUPLICATE_SEQUENCE_NUMBER']);

async function initProducerId(cluster: ProcessCluster, id: number): Promise<{ producerId: number; producerEpoch: number }> {
  const c = new RawClient(cluster.clientAddress(id), { timeoutMs: 15_000 });
  try {
    return await waitFor(
      `InitProducerId at node ${id}`,
      async () => {
        const r = await c.initProducerId({}).catch(() => undefined);
        return r && r.errorCode === 0 ? r : undefined;
      },
      30_000,
      100,
    );
  } finally {
    c.close();
  }
}

async function isr(cluster: ProcessCluster): Promise<number[] | undefined> {
  for (const id of cluster.runningIds()) {
    const c = new RawClient(cluster.clientAddress(id), { timeoutMs: 2000 });
    try {
      const md = await c.metadata({ topics: [TOPIC] });
      const p = md.topics[0]?.partitions[0];
      if (p && p.errorCode === 0) return p.isr;
    } catch {
      // next node
    } finally {
      c.close();
    }
  }
  return undefined;
}

test('idempotent produce: retries after kill -9 of the partition leader are deduplicated; producer ids never repeat', { timeout: 240_000 }, async (t) => {
  const root = tempDir(t, 'raftka-cluster-');
  const ports = await freePorts(6);
  const cluster = ProcessCluster.prepare({ root, nodeIds: [1, 2, 3], clientPorts: ports.slice(0, 3), controllerPorts: ports.slice(3), overrides: DEV_OVERRIDES });
  defer(t, () => cluster.killAll());
  cluster.startAll();
  await cluster.waitReady(60_000);

  // Producer ids: distinct across brokers and calls, epoch 0.
  const ids: number[] = [];
  for (const id of [1, 2, 3, 1, 2, 3]) {
    const r = await initProducerId(cluster, id);
    assert.equal(r.producerEpoch, 0);
    ids.push(r.producerId);
  }
  assert.equal(new Set(ids).size, ids.length, `producer ids repeat: ${ids.join(',')}`);
  const c0 = new RawClient(cluster.clientAddress(1));
  defer(t, () => c0.close());
  const txn = await c0.initProducerId({ transactionalId: 'tx-1' });
  assert.equal(txn.errorCode, 42, 'a transactional id is refused (INVALID_REQUEST)');

  await waitFor(
    'topic creation',
    async () => {
      const r = await c0.createTopics({ topics: [{ name: TOPIC, numPartitions: 1, replicationFactor: 3 }] }).catch(() => undefined);
      const code = r?.topics[0]?.errorCode;
      return code === 0 || code === 36;
    },
    20_000,
    200,
  );
  const client = new ClusterClient(cluster.spec.nodeIds.map((id) => cluster.clientAddress(id)));
  defer(t, () => client.close());
  await waitFor('a leader', async () => (await client.refresh(TOPIC)) && client.leaderOf(TOPIC, 0) !== undefined, 20_000, 100);

  const producerId = ids[0]!;
  const batchOf = (seq: number) => buildBatch([{ key: `k${seq}`, value: `v${seq}` }], { producerId, producerEpoch: 0, baseSequence: seq });
  /** Sends batch `seq` until it is acknowledged, as an idempotent producer retries; returns its offset. */
  const send = (seq: number) =>
    waitFor(
      `batch ${seq} acknowledged`,
      async () => {
        const r = await client.produceBatch(TOPIC, 0, batchOf(seq), -1, 3000);
        if (r.type === 'ok') return { offset: r.offset };
        if (r.type === 'fail' && FATAL.has(r.error)) throw new Error(`batch ${seq}: ${r.error}`);
        await client.refresh(TOPIC);
        return undefined;
      },
      45_000,
      100,
    ).then((x) => x.offset);

  const offsets: number[] = [];
  for (let seq = 0; seq < 10; seq++) offsets.push(await send(seq));
  assert.deepEqual(offsets, Array.from({ length: 10 }, (_, i) => i));
  // Batch 9's acknowledgement is "lost": the producer retries it at the same leader first.
  assert.equal(await send(9), 9);

  // kill -9 the leader; the new leader answers the retry of batch 9 with offset 9.
  const first = client.leaderOf(TOPIC, 0)!;
  t.diagnostic(`kill -9 partition leader ${first}`);
  await cluster.kill9(first);
  await waitFor('a new leader', async () => (await client.refresh(TOPIC)) && client.leaderOf(TOPIC, 0) !== undefined && client.leaderOf(TOPIC, 0) !== first, 30_000, 100);
  assert.equal(await send(9), 9, 'the new leader deduplicates the retry');
  offsets.push(await send(10));
  assert.equal(offsets[10], 10);

  // Bring the old leader back (its producer state rebuilt from snapshot + log after the
  // crash), let it rejoin the ISR, then kill the current leader: whoever leads next
  // answers the retry of batch 10 with its original offset.
  cluster.start(first);
  await cluster.waitReady(60_000);
  await waitFor('old leader back in the ISR', async () => (await isr(cluster))?.length === 3, 60_000, 200);
  const second = client.leaderOf(TOPIC, 0)!;
  t.diagnostic(`kill -9 partition leader ${second}`);
  await cluster.kill9(second);
  await waitFor('another leader', async () => (await client.refresh(TOPIC)) && client.leaderOf(TOPIC, 0) !== undefined && client.leaderOf(TOPIC, 0) !== second, 30_000, 100);
  t.diagnostic(`leader now ${client.leaderOf(TOPIC, 0)}`);
  assert.equal(await send(10), 10, 'the next leader deduplicates the retry');
  assert.equal(await send(11), 11);
  // A gap is refused, not written.
  const gap = await client.produceBatch(TOPIC, 0, batchOf(13), -1, 3000);
  assert.deepEqual(gap, { type: 'fail', error: 'OUT_OF_ORDER_SEQUENCE_NUMBER' });

  // Producer ids after the kills and restarts: still never a repeat (a restarted broker
  // takes a fresh block, after every block handed out before).
  cluster.start(second);
  await cluster.waitReady(60_000);
  for (const id of [1, 2, 3]) ids.push((await initProducerId(cluster, id)).producerId);
  assert.equal(new Set(ids).size, ids.length, `producer ids repeat: ${ids.join(',')}`);

  const read = await waitFor('read the partition', () => client.readAll(TOPIC, 0), 20_000, 100);
  assert.deepEqual(
    read.records.map((r) => `${r.offset}:${r.value}`),
    Array.from({ length: 12 }, (_, i) => `${i}:v${i}`),
    'every batch exactly once, in sequence order',
  );
});
