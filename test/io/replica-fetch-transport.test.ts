// Replica fetch between two ReplicaManagers in one process (leader and follower each with
// its own server), over gRPC and over the framed TCP transport, and the controller RPC
// plumbing.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync, readdirSync } from 'node:fs';
import { join } from 'node:path';
import * as grpc from '@grpc/grpc-js';
import { ReplicaManager } from '../../src/broker/replica-manager.ts';
import type { AlterPartitionRequest, PartitionAssignment, ReplicaFetchClient } from '../../src/broker/types.ts';
import { systemClock } from '../../src/common/clock.ts';
import { silentLogger } from '../../src/common/logger.ts';
import { ERRORS, RaftkaError, isRaftkaError } from '../../src/common/errors.ts';
import { buildBatch } from '../../src/log/batch.ts';
import { GrpcReplicaFetchClient } from '../../src/io/replica-fetch-transport.ts';
import { GrpcControllerClient } from '../../src/io/controller-rpc.ts';
import { startInternalServer } from '../../src/io/internal-server.ts';
import type { ControllerRpcHandler, ReplicaFetchHandler } from '../../src/server/types.ts';
import { startTcpReplicaFetchServer, TcpReplicaFetchClient } from '../../src/io/replica-fetch-tcp.ts';
import { BrokerReplicationRpc } from '../../src/proto/broker.ts';
import { callUnary, CHANNEL_OPTIONS } from '../../src/proto/rpc.ts';
import { defer, tempDir, waitFor } from '../support/tmp.ts';

const TOPIC_ID = 'AAAAAAAAAAAAAAAAAAAAAA';

function segmentBytes(root: string, id: number): Buffer {
  const dir = join(root, `broker-${id}`, 't-0');
  return Buffer.concat(readdirSync(dir).filter((f) => f.endsWith('.log')).sort().map((f) => readFileSync(join(dir, f))));
}

interface Transport {
  client: ReplicaFetchClient & { setAddress(id: number, address: string): void; close(): void };
  serve(handler: ReplicaFetchHandler): Promise<{ port: number; close(): Promise<void> }>;
}

const TRANSPORTS: Record<string, () => Transport> = {
  grpc: () => ({
    client: new GrpcReplicaFetchClient({ logger: silentLogger() }),
    serve: (handler) => startInternalServer({ listen: '127.0.0.1:0', logger: silentLogger(), replicaFetch: handler }),
  }),
  tcp: () => ({
    client: new TcpReplicaFetchClient({ logger: silentLogger() }),
    serve: (handler) => startTcpReplicaFetchServer({ listen: '127.0.0.1:0', logger: silentLogger(), handler }),
  }),
};

for (const [name, makeTransport] of Object.entries(TRANSPORTS)) {
  test(`${name}: a follower replicates from its leader; acks=all completes; ISR shrinks and expands on address changes`, async (t) => {
    const transport = makeTransport();
    const root = tempDir(t);
    let assignment: PartitionAssignment = { topicId: TOPIC_ID, topic: 't', partition: 0, replicas: [1, 2], isr: [1, 2], leader: 1, leaderEpoch: 1, partitionEpoch: 1, config: { 'min.insync.replicas': '2' } };
    const alters: AlterPartitionRequest[] = [];
    const rms = new Map<number, ReplicaManager>();
    const live = new Map<number, string>();
    const publish = async () => {
      for (const rm of rms.values()) await rm.reconcile([assignment]);
    };
    const fetchClient = transport.client;
    defer(t, () => fetchClient.close());
    for (const id of [1, 2]) {
      const rm = new ReplicaManager({
        brokerId: id,
        brokerEpoch: () => 1,
        dataDir: join(root, `broker-${id}`),
        clock: systemClock,
        logger: silentLogger(),
        fetchClient,
        controller: {
          alterPartition: async (req) => {
            alters.push(req);
            assignment = { ...assignment, isr: req.newIsr, partitionEpoch: assignment.partitionEpoch + 1 };
            await publish();
            return { errorCode: 0, isr: assignment.isr, leaderEpoch: assignment.leaderEpoch, partitionEpoch: assignment.partitionEpoch };
          },
        },
        replicaLagTimeMaxMs: 500,
        replicaFetchWaitMaxMs: 200,
        replicaFetchBackoffMs: 20,
        isrCheckIntervalMs: 50,
      });
      rm.start();
      defer(t, () => rm.close());
      const server = await transport.serve(rm);
      defer(t, () => server.close());
      live.set(id, `127.0.0.1:${server.port}`);
      fetchClient.setAddress(id, live.get(id)!);
      rms.set(id, rm);
    }
    await publish();
    const leader = rms.get(1)!;
    const follower = rms.get(2)!;

    // acks=all needs the follower's fetch (over gRPC) to move the high watermark.
    const big = Buffer.alloc(256 * 1024, 7);
    const results = await Promise.all(Array.from({ length: 20 }, (_, i) => leader.produce(TOPIC_ID, 0, buildBatch([{ key: `k${i}`, value: i % 5 === 0 ? big : `v${i}` }]), -1, 10_000)));
    assert.deepEqual(results.map((r) => r.baseOffset).sort((a, b) => a - b), Array.from({ length: 20 }, (_, i) => i));
    assert.equal(leader.partition(TOPIC_ID, 0)!.highWatermark, 20);
    await waitFor('the follower at the log end', () => follower.partition(TOPIC_ID, 0)!.log.logEndOffset === 20);
    assert.ok(segmentBytes(root, 1).equals(segmentBytes(root, 2)), 'replicas differ');

    // Re-pointing the leader's address to a dead port: the follower drops out of the ISR;
    // back at the right address it catches up and rejoins.
    fetchClient.setAddress(1, '127.0.0.1:1');
    await waitFor('the follower shrunk out of the ISR', () => assignment.isr.length === 1, 10_000);
    assert.deepEqual(assignment.isr, [1]);
    assert.ok(isRaftkaError(await leader.produce(TOPIC_ID, 0, buildBatch([{ value: 'alone' }]), -1, 1_000).catch((e: unknown) => e), 'NOT_ENOUGH_REPLICAS'));
    await leader.produce(TOPIC_ID, 0, buildBatch([{ value: 'acks1' }]), 1, 1_000);
    fetchClient.setAddress(1, live.get(1)!);
    await waitFor('the follower back in the ISR', () => assignment.isr.length === 2, 10_000);
    await waitFor('the follower at the new log end', () => follower.partition(TOPIC_ID, 0)!.log.logEndOffset === 21);
    assert.ok(alters.some((a) => a.newIsr.length === 1) && alters.some((a) => a.newIsr.length === 2));
  });
}

test('the fetch client honours its AbortSignal and fails fast on an unknown or dead leader', async (t) => {
  const root = tempDir(t);
  const rm = new ReplicaManager({
    brokerId: 1,
    brokerEpoch: () => 1,
    dataDir: join(root, 'b1'),
    clock: systemClock,
    logger: silentLogger(),
    fetchClient: { fetch: () => Promise.reject(new Error('unused')) },
    controller: { alterPartition: () => Promise.resolve({ errorCode: 41 }) },
  });
  defer(t, () => rm.close());
  await rm.reconcile([{ topicId: TOPIC_ID, topic: 't', partition: 0, replicas: [1, 2], isr: [1, 2], leader: 1, leaderEpoch: 1, partitionEpoch: 1, config: {} }]);
  let received = 0;
  const server = await startInternalServer({
    listen: '127.0.0.1:0',
    logger: silentLogger(),
    replicaFetch: {
      handleReplicaFetch: (r) => {
        received++;
        return rm.handleReplicaFetch(r);
      },
    },
  });
  defer(t, () => server.close());
  const client = new GrpcReplicaFetchClient({ addresses: new Map([[1, `127.0.0.1:${server.port}`], [3, '127.0.0.1:1']]) });
  defer(t, () => client.close());
  const req = {
    replicaId: 2,
    brokerEpoch: 1,
    maxWaitMs: 20_000,
    minBytes: 1,
    maxBytes: 1 << 20,
    sessionId: 0,
    sessionEpoch: 0,
    forgotten: [],
    partitions: [{ topicId: TOPIC_ID, partition: 0, currentLeaderEpoch: 1, fetchOffset: 0, lastFetchedEpoch: -1, flushedOffset: 0, maxBytes: 1 << 20 }],
  };
  // Nothing to fetch: the call parks on the leader until we abort it.
  const ac = new AbortController();
  const t0 = Date.now();
  const parked = client.fetch(1, req, ac.signal);
  const rejected = assert.rejects(parked, (e: { code?: number }) => e.code === grpc.status.CANCELLED);
  // Abort once the leader holds the parked request.
  await waitFor('the fetch to reach the leader', () => received === 1, 5_000, 5);
  ac.abort();
  await rejected;
  assert.ok(Date.now() - t0 < 5_000);

  // Data answers the parked fetch: records arrive as raw bytes.
  const answer = client.fetch(1, req, new AbortController().signal);
  await waitFor('the second fetch to reach the leader', () => received === 2, 5_000, 5);
  await rm.produce(TOPIC_ID, 0, buildBatch([{ value: 'hello' }]), 1, 1_000);
  const resp = await answer;
  assert.equal(resp.errorCode, 0);
  assert.equal(resp.partitions[0]!.errorCode, 0);
  assert.ok(resp.partitions[0]!.records.length > 0);
  assert.equal(resp.partitions[0]!.logEndOffset, 1);
  assert.equal(resp.partitions[0]!.divergingEpoch, undefined);

  await assert.rejects(client.fetch(9, req, new AbortController().signal), (e: unknown) => isRaftkaError(e, 'BROKER_NOT_AVAILABLE'));
  await assert.rejects(client.fetch(3, { ...req, maxWaitMs: 0 }, new AbortController().signal), (e: { code?: number }) => e.code === grpc.status.UNAVAILABLE);

  // A malformed request is refused with a code, not a crash.
  const raw = new grpc.Client(`127.0.0.1:${server.port}`, grpc.credentials.createInsecure(), CHANNEL_OPTIONS);
  defer(t, () => raw.close());
  const bad = await callUnary(raw, BrokerReplicationRpc.ReplicaFetch, { ...req, maxWaitMs: -5, partitions: [] });
  assert.equal(bad.errorCode, ERRORS.INVALID_REQUEST.code);
  const neg = await callUnary(raw, BrokerReplicationRpc.ReplicaFetch, { ...req, maxWaitMs: 0, partitions: [{ ...req.partitions[0]!, fetchOffset: -1 }] });
  assert.equal(neg.errorCode, ERRORS.INVALID_REQUEST.code);
});

test('controller RPCs: typed client and server around an injected handler', async (t) => {
  const calls: string[] = [];
  const handler: ControllerRpcHandler = {
    brokerRegistration: async (req) => {
      calls.push(`register ${req.brokerId} ${req.incarnationId} ${req.listeners.map((l) => `${l.name}=${l.host}:${l.port}`).join(',')} rack=${req.rack}`);
      return { errorCode: 0, errorMessage: '', brokerEpoch: 42 };
    },
    brokerHeartbeat: async (req) => {
      calls.push(`heartbeat ${req.brokerId}@${req.brokerEpoch} offset=${req.currentMetadataOffset} shut=${req.wantShutDown}`);
      return { errorCode: 0, errorMessage: '', isCaughtUp: true, isFenced: false, shouldShutDown: req.wantShutDown };
    },
    alterPartition: async (req) => {
      calls.push(`alter ${req.topicId}-${req.partition} epoch=${req.brokerEpoch} isr=${req.newIsr.join(',')}`);
      if (req.leaderEpoch < 3) return { errorCode: ERRORS.FENCED_LEADER_EPOCH.code, errorMessage: 'stale' };
      return { errorCode: 0, isr: req.newIsr, leaderEpoch: req.leaderEpoch, partitionEpoch: req.partitionEpoch + 1 };
    },
    controlledShutdown: async () => {
      throw new TypeError('a bug in the controller');
    },
    createTopics: async () => {
      throw new RaftkaError('NOT_CONTROLLER', 'controller moved to node 3');
    },
    deleteTopics: async (req) => ({ errorCode: 0, errorMessage: '', topics: (req.names ?? []).map((n) => ({ name: n, topicId: TOPIC_ID, errorCode: 0, errorMessage: '' })) }),
    createPartitions: async () => ({ errorCode: 0, errorMessage: '', topics: [] }),
    allocateProducerIds: async (req) => ({ errorCode: 0, errorMessage: '', producerIdStart: 1000 * req.brokerId, producerIdLen: 1000 }),
    incrementalAlterConfigs: async (req) => ({
      errorCode: 0,
      errorMessage: '',
      resources: req.resources.map((r) => ({ resourceType: r.resourceType, resourceName: r.resourceName, errorCode: 0, errorMessage: r.configs.map((c) => `${c.name}:${c.operation}:${c.value}`).join(',') })),
    }),
    electLeaders: async (req) => ({ errorCode: 0, errorMessage: '', topics: (req.topics ?? []).map((t) => ({ name: t.name, partitions: t.partitions.map((p) => ({ partition: p, errorCode: ERRORS.ELECTION_NOT_NEEDED.code, errorMessage: '', leaderId: req.electionType ?? -1 })) })) }),
  };
  const server = await startInternalServer({ listen: '127.0.0.1:0', logger: silentLogger(), controller: handler });
  defer(t, () => server.close());
  let address: string | undefined = `127.0.0.1:${server.port}`;
  const client = new GrpcControllerClient({ controllerAddress: () => address, brokerEpoch: () => 42 });
  defer(t, () => client.close());

  const reg = await client.brokerRegistration({ brokerId: 2, clusterId: 'c', incarnationId: 'inc', listeners: [{ name: 'CLIENT', host: 'h', port: 9093 }], rack: 'r2', previousBrokerEpoch: -1 });
  assert.deepEqual(reg, { errorCode: 0, errorMessage: '', brokerEpoch: 42 });
  const hb = await client.brokerHeartbeat({ brokerId: 2, brokerEpoch: 42, currentMetadataOffset: 2 ** 40, wantFence: false, wantShutDown: true });
  assert.equal(hb.shouldShutDown, true);
  // As the replica manager's ControllerClient: the broker epoch is filled in.
  const ok = await client.alterPartition({ brokerId: 2, topicId: TOPIC_ID, partition: 0, leaderEpoch: 3, partitionEpoch: 7, newIsr: [2, 1] });
  assert.deepEqual(ok, { errorCode: 0, errorMessage: '', isr: [2, 1], leaderEpoch: 3, partitionEpoch: 8 });
  const stale = await client.alterPartition({ brokerId: 2, topicId: TOPIC_ID, partition: 0, leaderEpoch: 1, partitionEpoch: 7, newIsr: [2] });
  assert.deepEqual(stale, { errorCode: ERRORS.FENCED_LEADER_EPOCH.code, errorMessage: 'stale' });
  const cs = await client.controlledShutdown({ brokerId: 2, brokerEpoch: 42 });
  assert.equal(cs.errorCode, ERRORS.UNKNOWN_SERVER_ERROR.code);
  const ct = await client.createTopics({ topics: [{ name: 'x' }], timeoutMs: 1_000 });
  assert.equal(ct.errorCode, ERRORS.NOT_CONTROLLER.code);
  assert.match(ct.errorMessage, /node 3/);
  const ids = await client.allocateProducerIds({ brokerId: 2, brokerEpoch: 42 });
  assert.deepEqual(ids, { errorCode: 0, errorMessage: '', producerIdStart: 2000, producerIdLen: 1000 });
  const dt = await client.deleteTopics({ names: ['t'] });
  assert.deepEqual(dt.topics.map((x) => [x.name, x.topicId]), [['t', TOPIC_ID]]);
  // Forwarded config changes and elections keep every field across the wire.
  const ac = await client.incrementalAlterConfigs({ resources: [{ resourceType: 2, resourceName: 't', configs: [{ name: 'retention.ms', operation: 0, value: '5' }, { name: 'cleanup.policy', operation: 1 }] }], validateOnly: true, timeoutMs: 1_000 });
  assert.deepEqual(ac.resources, [{ resourceType: 2, resourceName: 't', errorCode: 0, errorMessage: 'retention.ms:0:5,cleanup.policy:1:' }]);
  const el = await client.electLeaders({ electionType: 1, topics: [{ name: 't', partitions: [0, 2] }] });
  assert.deepEqual(el.topics, [{ name: 't', partitions: [0, 2].map((p) => ({ partition: p, errorCode: ERRORS.ELECTION_NOT_NEEDED.code, errorMessage: '', leaderId: 1 })) }]);
  assert.deepEqual(calls, [
    'register 2 inc CLIENT=h:9093 rack=r2',
    `heartbeat 2@42 offset=${2 ** 40} shut=true`,
    `alter ${TOPIC_ID}-0 epoch=42 isr=2,1`,
    `alter ${TOPIC_ID}-0 epoch=42 isr=2`,
  ]);

  // No controller known, or one that does not answer: NOT_CONTROLLER, retriable.
  address = undefined;
  await assert.rejects(client.brokerHeartbeat({ brokerId: 2, brokerEpoch: 42, currentMetadataOffset: 0, wantFence: false, wantShutDown: false }), (e: unknown) => isRaftkaError(e, 'NOT_CONTROLLER'));
  address = '127.0.0.1:1';
  await assert.rejects(client.brokerHeartbeat({ brokerId: 2, brokerEpoch: 42, currentMetadataOffset: 0, wantFence: false, wantShutDown: false }), (e: unknown) => isRaftkaError(e, 'NOT_CONTROLLER'));
});
