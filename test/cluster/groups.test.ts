// Multi-process: the group coordinator over the raw Groups API — __consumer_offsets
// created on the first FindCoordinator, join/sync/heartbeat with generation fencing,
// committed offsets surviving kill -9 of the coordinator's broker, and bad input.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { DEV_OVERRIDES, ProcessCluster, freePorts } from '../../src/node/process-cluster.ts';
import { RawClient } from '../../src/client/raw-client.ts';
import { GroupClient } from '../../src/client/group-client.ts';
import { ERRORS } from '../../src/common/errors.ts';
import { defer, tempDir, waitFor } from '../support/tmp.ts';
import { createRequire } from 'node:module';
import { dirname, join } from 'node:path';
import * as grpc from '@grpc/grpc-js';
import * as protoLoader from '@grpc/proto-loader';
import { protoPath as healthProtoPath } from 'grpc-health-check';

// The reflection protocol's own .proto, as a generic gRPC tool (grpcurl) loads it.
const REFLECTION_PROTO = join(dirname(createRequire(import.meta.url).resolve('@grpc/reflection')), '..', 'proto', 'grpc', 'reflection', 'v1', 'reflection.proto');

/** One reflection request; the services the broker lists. */
function listServices(address: string): Promise<string[]> {
  const pkg = grpc.loadPackageDefinition(protoLoader.loadSync(REFLECTION_PROTO)) as unknown as { grpc: { reflection: { v1: { ServerReflection: grpc.ServiceClientConstructor } } } };
  const client = new pkg.grpc.reflection.v1.ServerReflection(address, grpc.credentials.createInsecure()) as unknown as grpc.Client & {
    ServerReflectionInfo(): grpc.ClientDuplexStream<unknown, { listServicesResponse?: { service: Array<{ name: string }> } }>;
  };
  return new Promise((resolve, reject) => {
    const call = client.ServerReflectionInfo();
    call.on('data', (r: { listServicesResponse?: { service: Array<{ name: string }> } }) => {
      resolve((r.listServicesResponse?.service ?? []).map((x) => x.name));
      call.end();
    });
    call.on('error', reject);
    call.on('end', () => client.close());
    call.write({ host: '', listServices: '*' });
  });
}

function healthOf(address: string, service: string): Promise<string> {
  const pkg = grpc.loadPackageDefinition(protoLoader.loadSync(healthProtoPath, { enums: String })) as unknown as { grpc: { health: { v1: { Health: grpc.ServiceClientConstructor } } } };
  const client = new pkg.grpc.health.v1.Health(address, grpc.credentials.createInsecure()) as unknown as grpc.Client & {
    Check(req: { service: string }, cb: (err: grpc.ServiceError | null, res: { status: string }) => void): void;
  };
  return new Promise((resolve, reject) =>
    client.Check({ service }, (err, res) => {
      client.close();
      if (err) reject(err);
      else resolve(res.status);
    }),
  );
}

const PROTOCOL = { protocolType: 'consumer', protocols: [{ name: 'range', metadata: Buffer.from('sub') }] };

test('group coordinator: membership, fencing, offsets surviving the coordinator', { timeout: 180_000 }, async (t) => {
  const root = tempDir(t, 'raftka-groups-');
  const ports = await freePorts(6);
  const cluster = ProcessCluster.prepare({ root, nodeIds: [1, 2, 3], clientPorts: ports.slice(0, 3), controllerPorts: ports.slice(3), overrides: { ...DEV_OVERRIDES, 'offsets.topic.num.partitions': '3' } });
  defer(t, () => cluster.killAll());
  cluster.startAll();
  await cluster.waitReady(60_000);

  const admin = new RawClient(cluster.clientAddress(1));
  defer(t, () => admin.close());
  const created = await admin.createTopics({ topics: [{ name: 'events', numPartitions: 3, replicationFactor: 3 }] });
  assert.equal(created.topics[0]!.errorCode, 0, created.topics[0]!.errorMessage);

  const clients = new Map<number, GroupClient>([1, 2, 3].map((id) => [id, new GroupClient(cluster.clientAddress(id), 10_000)]));
  defer(t, () => clients.forEach((c) => c.close()));
  const anyClient = clients.get(1)!;

  // Generic gRPC tools find the Groups service next to Raftka.
  assert.deepEqual((await listServices(cluster.clientAddress(1))).filter((n) => n.startsWith('raftka.')).sort(), ['raftka.v1.Groups', 'raftka.v1.Raftka']);
  assert.equal(await healthOf(cluster.clientAddress(1), 'raftka.v1.Groups'), 'SERVING');

  // Bad input first: nothing is created for it.
  assert.equal((await anyClient.findCoordinator('')).errorCode, ERRORS.INVALID_GROUP_ID.code);

  const findCoordinator = async (group: string, not?: number) =>
    waitFor(`coordinator of ${group}`, async () => {
      for (const id of [1, 2, 3]) {
        if (id === not) continue;
        const r = await clients.get(id)!.findCoordinator(group).catch(() => undefined);
        if (r?.errorCode === 0 && r.nodeId !== not) return r.nodeId;
      }
      return undefined;
    }, 30_000, 100);

  const coordinatorId = await findCoordinator('g1');
  const coord = () => clients.get(coordinatorId)!;

  // First join without a member id: MEMBER_ID_REQUIRED with the id to use [KIP-394].
  // (The coordinator may still be loading the partition it just got: retriable errors.)
  const first = await waitFor('first join', async () => {
    const r = await coord().joinGroup({ groupId: 'g1', sessionTimeoutMs: 10_000, ...PROTOCOL });
    return r.errorCode === ERRORS.NOT_COORDINATOR.code || r.errorCode === ERRORS.COORDINATOR_LOAD_IN_PROGRESS.code ? undefined : r;
  }, 20_000, 100);
  assert.equal(first.errorCode, ERRORS.MEMBER_ID_REQUIRED.code, first.errorMessage);
  assert.ok(first.memberId.length > 0);
  const badTimeout = await coord().joinGroup({ groupId: 'g1', sessionTimeoutMs: 10, memberId: first.memberId, ...PROTOCOL });
  assert.equal(badTimeout.errorCode, ERRORS.INVALID_SESSION_TIMEOUT.code);
  const joined = await coord().joinGroup({ groupId: 'g1', sessionTimeoutMs: 10_000, memberId: first.memberId, ...PROTOCOL });
  assert.equal(joined.errorCode, 0, joined.errorMessage);
  assert.equal(joined.leader, first.memberId);
  assert.equal(joined.protocolName, 'range');
  assert.equal(joined.members.length, 1);
  const gen = joined.generationId;
  const synced = await coord().syncGroup({ groupId: 'g1', generationId: gen, memberId: first.memberId, assignments: [{ memberId: first.memberId, assignment: Buffer.from('all-of-it') }] });
  assert.equal(synced.errorCode, 0, synced.errorMessage);
  assert.equal(synced.assignment.toString(), 'all-of-it');
  assert.equal((await coord().heartbeat({ groupId: 'g1', generationId: gen, memberId: first.memberId })).errorCode, 0);

  // A non-coordinator answers NOT_COORDINATOR.
  const other = [1, 2, 3].find((id) => id !== coordinatorId)!;
  assert.equal((await clients.get(other)!.heartbeat({ groupId: 'g1', generationId: gen, memberId: first.memberId })).errorCode, ERRORS.NOT_COORDINATOR.code);

  // Commits: a member's with the current generation; fencing leaves offsets unchanged.
  const commit = (generationId: number, memberId: string, offset: number, topic = 'events') =>
    coord().offsetCommit({ groupId: 'g1', generationId, memberId, topics: [{ name: topic, partitions: [{ partition: 0, committedOffset: offset }, { partition: 2, committedOffset: offset + 1 }] }] });
  const ok = await commit(gen, first.memberId, 42);
  assert.deepEqual(ok.topics[0]!.partitions.map((p) => p.errorCode), [0, 0]);
  assert.equal((await commit(gen - 1, first.memberId, 7)).errorCode, ERRORS.ILLEGAL_GENERATION.code);
  assert.equal((await commit(gen, 'nobody', 7)).errorCode, ERRORS.UNKNOWN_MEMBER_ID.code);
  assert.equal((await commit(-1, '', 7)).errorCode, ERRORS.UNKNOWN_MEMBER_ID.code, 'an outside commit while the group has members');
  const unknownTopic = await commit(gen, first.memberId, 7, 'no-such-topic');
  assert.deepEqual(unknownTopic.topics[0]!.partitions.map((p) => p.errorCode), [ERRORS.UNKNOWN_TOPIC_OR_PARTITION.code, ERRORS.UNKNOWN_TOPIC_OR_PARTITION.code]);
  const fetched = await coord().offsetFetch({ groupId: 'g1', topics: [{ name: 'events', partitions: [0, 1, 2] }] });
  assert.deepEqual(fetched.topics[0]!.partitions.map((p) => p.committedOffset), [42, -1, 43]);

  // Unknown groups, asked of their own coordinator (Kafka): OffsetFetch answers -1 for
  // every partition, DescribeGroups state Dead, both without an error; nothing is created.
  const strangerCoord = clients.get(await findCoordinator('nobody-here'))!;
  const unknownFetch = await waitFor('OffsetFetch of an unknown group', async () => {
    const r = await strangerCoord.offsetFetch({ groupId: 'nobody-here', topics: [{ name: 'events', partitions: [0, 1] }] });
    return r.errorCode === ERRORS.COORDINATOR_LOAD_IN_PROGRESS.code ? undefined : r;
  }, 20_000, 100);
  assert.equal(unknownFetch.errorCode, 0, unknownFetch.errorMessage);
  assert.deepEqual(unknownFetch.topics[0]!.partitions.map((p) => [p.committedOffset, p.errorCode]), [[-1, 0], [-1, 0]]);
  const unknownDescribed = (await strangerCoord.describeGroups(['nobody-here'])).groups[0]!;
  assert.deepEqual([unknownDescribed.errorCode, unknownDescribed.groupState, unknownDescribed.members.length], [0, 'Dead', 0]);
  assert.ok(!(await strangerCoord.listGroups()).groups.some((g) => g.groupId === 'nobody-here'));
  const described = await coord().describeGroups(['g1']);
  assert.equal(described.groups[0]!.groupState, 'Stable');
  assert.equal(described.groups[0]!.members[0]!.memberAssignment.toString(), 'all-of-it');
  assert.equal((await coord().deleteGroups(['g1'])).results[0]!.errorCode, ERRORS.NON_EMPTY_GROUP.code);

  // Over the wire, a second group: a rebalance with two members (JoinGroup waits for
  // the other member) and a static member restarting without a rebalance [KIP-345].
  const c2 = clients.get(await findCoordinator('g2'))!;
  const join2 = (memberId: string, instance = '') => c2.joinGroup({ groupId: 'g2', sessionTimeoutMs: 10_000, rebalanceTimeoutMs: 10_000, memberId, groupInstanceId: instance, ...PROTOCOL });
  const a2 = await waitFor('static member joins g2', async () => {
    const r = await join2('', 'pod-a');
    return r.errorCode === ERRORS.COORDINATOR_LOAD_IN_PROGRESS.code ? undefined : r;
  }, 20_000, 100);
  assert.equal(a2.errorCode, 0, a2.errorMessage);
  assert.equal((await c2.syncGroup({ groupId: 'g2', generationId: a2.generationId, memberId: a2.memberId, groupInstanceId: 'pod-a', assignments: [{ memberId: a2.memberId, assignment: Buffer.from('A1') }] })).assignment.toString(), 'A1');
  const bFirst = await join2('');
  assert.equal(bFirst.errorCode, ERRORS.MEMBER_ID_REQUIRED.code);
  const bId = bFirst.memberId;
  const bJoin = join2(bId); // waits until pod-a rejoins
  await waitFor('pod-a told to rejoin', async () => (await c2.heartbeat({ groupId: 'g2', generationId: a2.generationId, memberId: a2.memberId, groupInstanceId: 'pod-a' })).errorCode === ERRORS.REBALANCE_IN_PROGRESS.code, 10_000, 20);
  const [a3, b3] = await Promise.all([join2(a2.memberId, 'pod-a'), bJoin]);
  assert.deepEqual([a3.errorCode, b3.errorCode, a3.generationId, b3.generationId], [0, 0, a2.generationId + 1, a2.generationId + 1]);
  assert.equal(a3.leader, a2.memberId);
  assert.deepEqual(a3.members.map((m) => m.memberId).sort(), [a2.memberId, bId].sort());
  const [sa, sb] = await Promise.all([
    c2.syncGroup({ groupId: 'g2', generationId: a3.generationId, memberId: a2.memberId, groupInstanceId: 'pod-a', assignments: [{ memberId: a2.memberId, assignment: Buffer.from('A2') }, { memberId: bId, assignment: Buffer.from('B2') }] }),
    c2.syncGroup({ groupId: 'g2', generationId: b3.generationId, memberId: bId }),
  ]);
  assert.deepEqual([sa.assignment.toString(), sb.assignment.toString()], ['A2', 'B2']);
  // pod-a restarts (no member id, same instance id and subscription): same generation,
  // its assignment back, b undisturbed; the old incarnation is fenced.
  const restarted = await join2('', 'pod-a');
  assert.deepEqual([restarted.errorCode, restarted.generationId], [0, a3.generationId]);
  assert.notEqual(restarted.memberId, a2.memberId);
  assert.equal((await c2.syncGroup({ groupId: 'g2', generationId: a3.generationId, memberId: restarted.memberId, groupInstanceId: 'pod-a' })).assignment.toString(), 'A2');
  assert.equal((await c2.heartbeat({ groupId: 'g2', generationId: b3.generationId, memberId: bId })).errorCode, 0, 'no rebalance for b');
  assert.equal((await c2.heartbeat({ groupId: 'g2', generationId: a3.generationId, memberId: a2.memberId, groupInstanceId: 'pod-a' })).errorCode, ERRORS.FENCED_INSTANCE_ID.code);

  // kill -9 of the coordinator's broker: another broker takes over the partition, loads
  // it, and every committed offset and the member's assignment survive.
  await cluster.kill9(coordinatorId);
  const next = await findCoordinator('g1', coordinatorId);
  assert.notEqual(next, coordinatorId);
  const after = await waitFor('offsets from the new coordinator', async () => {
    const r = await clients.get(next)!.offsetFetch({ groupId: 'g1', topics: [{ name: 'events', partitions: [0, 1, 2] }] }).catch(() => undefined);
    return r?.errorCode === 0 ? r : undefined;
  }, 30_000, 100);
  assert.deepEqual(after.topics[0]!.partitions.map((p) => p.committedOffset), [42, -1, 43]);
  const hb = await clients.get(next)!.heartbeat({ groupId: 'g1', generationId: gen, memberId: first.memberId });
  assert.equal(hb.errorCode, 0, `the member carries on with the new coordinator: ${hb.errorMessage}`);
  const again = await clients.get(next)!.syncGroup({ groupId: 'g1', generationId: gen, memberId: first.memberId });
  assert.equal(again.assignment.toString(), 'all-of-it');

  // Leaving empties the group; then it can be deleted with its offsets.
  const left = await clients.get(next)!.leaveGroup({ groupId: 'g1', members: [{ memberId: first.memberId }] });
  assert.equal(left.members[0]!.errorCode, 0, left.members[0]!.errorMessage);
  const emptyState = await clients.get(next)!.describeGroups(['g1']);
  assert.equal(emptyState.groups[0]!.groupState, 'Empty');
  const outside = await clients.get(next)!.offsetCommit({ groupId: 'g1', generationId: -1, memberId: '', topics: [{ name: 'events', partitions: [{ partition: 1, committedOffset: 5 }] }] });
  assert.equal(outside.topics[0]!.partitions[0]!.errorCode, 0, 'a commit from outside an empty group');
  const deleted = await clients.get(next)!.deleteGroups(['g1']);
  assert.equal(deleted.results[0]!.errorCode, 0, deleted.results[0]!.errorMessage);
  const gone = await clients.get(next)!.offsetFetch({ groupId: 'g1', topics: [{ name: 'events', partitions: [0, 1] }] });
  assert.deepEqual(gone.topics[0]!.partitions.map((p) => p.committedOffset), [-1, -1]);
  assert.equal((await clients.get(next)!.deleteGroups(['g1'])).results[0]!.errorCode, ERRORS.GROUP_ID_NOT_FOUND.code);
});
