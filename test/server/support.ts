// A client API server over a real ReplicaManager, with a fake metadata view and admin
// client, for the server tests.
import { join } from 'node:path';
import { ReplicaManager } from '../../src/broker/replica-manager.ts';
import type { PartitionAssignment } from '../../src/broker/types.ts';
import { systemClock } from '../../src/common/clock.ts';
import { silentLogger } from '../../src/common/logger.ts';
import { startClientApiServer, type ClientApiLimits, type ClientApiServer } from '../../src/server/client-api.ts';
import type { AdminClient, BrokerView, ConfigEntryView, MetadataView, ReplicaManagerApi, TopicView, VoterView } from '../../src/server/types.ts';
import { RawClient } from '../../src/client/raw-client.ts';
import { defer, tempDir } from '../support/tmp.ts';
import type { TestContext } from 'node:test';

export const TOPIC_ID = 'AAAAAAAAAAAAAAAAAAAAAA';
export const OTHER_TOPIC_ID = 'BBBBBBBBBBBBBBBBBBBBBA';

export class FakeMetadata implements MetadataView {
  clusterId = 'test-cluster';
  controllerId = 1;
  readonly brokerList: BrokerView[] = [
    { id: 1, host: '127.0.0.1', port: 9092, rack: 'r1', fenced: false },
    { id: 2, host: '127.0.0.1', port: 9093, rack: null, fenced: false },
    { id: 3, host: '127.0.0.1', port: 9094, rack: null, fenced: true },
  ];
  readonly topicList: TopicView[] = [];
  readonly configs = new Map<string, ConfigEntryView[]>();
  voterList: VoterView[] = [
    { id: 1, lag: 0, isLeader: true },
    { id: 2, lag: 3, isLeader: false },
  ];

  brokers(): readonly BrokerView[] {
    return this.brokerList;
  }
  broker(id: number): BrokerView | undefined {
    return this.brokerList.find((b) => b.id === id);
  }
  topics(): Iterable<TopicView> {
    return this.topicList;
  }
  topicByName(name: string): TopicView | undefined {
    return this.topicList.find((t) => t.name === name);
  }
  topicById(topicId: string): TopicView | undefined {
    return this.topicList.find((t) => t.topicId === topicId);
  }
  topicConfigs(topicId: string): readonly ConfigEntryView[] | undefined {
    return this.topicById(topicId) ? (this.configs.get(topicId) ?? []) : undefined;
  }
  voters(): readonly VoterView[] {
    return this.voterList;
  }
}

export const unusedAdmin: AdminClient = {
  createTopics: () => Promise.reject(new Error('no admin in this test')),
  deleteTopics: () => Promise.reject(new Error('no admin in this test')),
  createPartitions: () => Promise.reject(new Error('no admin in this test')),
  incrementalAlterConfigs: () => Promise.reject(new Error('no admin in this test')),
  electLeaders: () => Promise.reject(new Error('no admin in this test')),
};

export interface Harness {
  rm: ReplicaManager;
  meta: FakeMetadata;
  server: ClientApiServer;
  client: RawClient;
}

/**
 * Broker 1 with topic `t` (id TOPIC_ID): partition 0 led here (single replica,
 * min.insync.replicas 1), partition 1 led by broker 2 at epoch 5 (not hosted here).
 */
export async function startHarness(
  t: TestContext,
  opts: { config?: Record<string, string>; limits?: Partial<ClientApiLimits>; admin?: AdminClient; wrap?: (rm: ReplicaManager) => ReplicaManagerApi } = {},
): Promise<Harness> {
  const dir = tempDir(t);
  const rm = new ReplicaManager({
    brokerId: 1,
    brokerEpoch: () => 1,
    dataDir: join(dir, 'broker-1'),
    clock: systemClock,
    logger: silentLogger(),
    fetchClient: { fetch: () => Promise.reject(new Error('no followers in this test')) },
    controller: { alterPartition: () => Promise.resolve({ errorCode: 41 }) },
  });
  rm.start();
  defer(t, () => rm.close());
  const config = { 'min.insync.replicas': '1', ...opts.config };
  const assignment: PartitionAssignment = { topicId: TOPIC_ID, topic: 't', partition: 0, replicas: [1], isr: [1], leader: 1, leaderEpoch: 1, partitionEpoch: 1, config };
  await rm.reconcile([assignment]);
  const meta = new FakeMetadata();
  meta.topicList.push({
    name: 't',
    topicId: TOPIC_ID,
    partitions: [
      { partition: 0, leader: 1, leaderEpoch: 1, replicas: [1], isr: [1], elr: [], lastKnownElr: [] },
      // Broker 3 restarted uncleanly while out of the ISR [KIP-966].
      { partition: 1, leader: 2, leaderEpoch: 5, replicas: [2, 3], isr: [2], elr: [], lastKnownElr: [3] },
    ],
  });
  meta.configs.set(TOPIC_ID, [
    { name: 'min.insync.replicas', value: '1', source: 'topic' },
    { name: 'retention.ms', value: '604800000', source: 'default' },
  ]);
  const server = await startClientApiServer({
    listen: '127.0.0.1:0',
    brokerId: 1,
    metadata: () => meta,
    admin: opts.admin ?? unusedAdmin,
    replicaManager: opts.wrap ? opts.wrap(rm) : rm,
    logger: silentLogger(),
    ...(opts.limits ? { limits: opts.limits } : {}),
  });
  defer(t, () => server.close());
  const client = new RawClient(`127.0.0.1:${server.port}`);
  defer(t, () => client.close());
  return { rm, meta, server, client };
}
