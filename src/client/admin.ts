// Admin, KafkaJS-shaped, over the public API's admin rpcs. Topic changes go to any broker
// (it forwards them to the active controller and answers once the records commit);
// offsets go to partition leaders. What the server has no rpc for (describing
// per-broker configs) fails with UNSUPPORTED_VERSION rather than pretending.
import { CONFIG_OP_DELETE, CONFIG_OP_SET, EARLIEST_TIMESTAMP, ELECTION_PREFERRED, ELECTION_UNCLEAN, LATEST_TIMESTAMP, type ConfigEntry, type PartitionMetadata, type QuorumVoter, type ReplicaAssignment } from '../proto/raftka.ts';
import { ERRORS, errorByCode, type ErrorName } from '../common/errors.ts';
import type { Cluster } from './cluster.ts';
import { RaftkaClientError, RaftkaProtocolError } from './errors.ts';

export interface ITopicConfig {
  topic: string;
  /** Default: the broker's num.partitions. */
  numPartitions?: number;
  /** Default: the broker's default.replication.factor. */
  replicationFactor?: number;
  /** KafkaJS shape: `[{ partition, replicas: [brokerIds] }]`. */
  replicaAssignment?: Array<{ partition: number; replicas: number[] }>;
  configEntries?: Array<{ name: string; value: string }>;
}

export interface PartitionInfo {
  partitionErrorCode: number;
  partitionId: number;
  leader: number;
  leaderEpoch: number;
  replicas: number[];
  isr: number[];
  offlineReplicas: number[];
  /** Eligible leader replicas [KIP-966]: out of the ISR, but electable (they hold every record up to the high watermark). */
  elr: number[];
  /** Replicas that left the ELR by an unclean restart (a hint for unclean elections). */
  lastKnownElr: number[];
}

export interface TopicInfo {
  name: string;
  topicId: string;
  partitions: PartitionInfo[];
}

export interface TopicDescriptionInfo extends TopicInfo {
  configs: ConfigEntry[];
}

export interface ClusterDescription {
  clusterId: string;
  controller: number;
  brokers: Array<{ nodeId: number; host: string; port: number; rack: string; fenced: boolean }>;
  voters: QuorumVoter[];
}

export interface TopicOffsets {
  partition: number;
  /** The high watermark (KafkaJS names it both `offset` and `high`). */
  offset: number;
  high: number;
  low: number;
}

/** KafkaJS's ConfigResourceTypes values. */
export const ConfigResourceTypes = { UNKNOWN: 0, TOPIC: 2, BROKER: 4, BROKER_LOGGER: 8 } as const;

export interface DescribeConfigResource {
  type: number;
  name: string;
  /** Only these names (all when absent). */
  configNames?: string[];
}

export interface DescribeConfigsResult {
  resources: Array<{
    errorCode: number;
    errorMessage: string;
    resourceType: number;
    resourceName: string;
    configEntries: Array<{ configName: string; configValue: string; isDefault: boolean; configSource: string; readOnly: boolean; isSensitive: boolean }>;
  }>;
}

/** One partition's outcome of electLeaders. */
export interface ElectionResult {
  topic: string;
  partition: number;
  /** The leader after the election (-1: none or unknown). */
  leader: number;
  /** 0 when the leader moved. */
  errorCode: number;
  /** The code's name; undefined when the leader moved. */
  error: ErrorName | undefined;
  errorMessage: string;
}

const ADMIN_RETRY_MS = 100;

function toPartitionInfo(p: PartitionMetadata): PartitionInfo {
  return {
    partitionErrorCode: p.errorCode,
    partitionId: p.partition,
    leader: p.leaderId,
    leaderEpoch: p.leaderEpoch,
    replicas: p.replicas,
    isr: p.isr,
    offlineReplicas: p.offlineReplicas,
    elr: p.eligibleLeaderReplicas ?? [],
    lastKnownElr: p.lastKnownElr ?? [],
  };
}

function toAssignments(a: ITopicConfig['replicaAssignment']): ReplicaAssignment[] | undefined {
  return a?.map((r) => ({ partition: r.partition, brokerIds: r.replicas }));
}

export class Admin {
  private connected = false;

  constructor(
    private readonly cluster: Cluster,
    private readonly requestTimeoutMs: number,
  ) {}

  async connect(): Promise<void> {
    await this.cluster.refresh();
    this.connected = true;
  }

  async disconnect(): Promise<void> {
    this.connected = false;
    this.cluster.close();
  }

  private check(): void {
    if (!this.connected) throw new RaftkaClientError('NOT_CONNECTED', 'call admin.connect() first');
  }

  /**
   * Runs `call` against any broker, retrying while the answer's error is retriable
   * (NOT_CONTROLLER during a controller election, REQUEST_TIMED_OUT) until `timeoutMs`.
   */
  private async withRetry<T extends { errorCode: number; errorMessage: string }>(what: string, timeoutMs: number, call: () => Promise<T>): Promise<T> {
    const deadline = Date.now() + timeoutMs;
    for (;;) {
      let r: T | undefined;
      let err: unknown;
      try {
        r = await call();
      } catch (e) {
        err = e;
      }
      if (r && (r.errorCode === 0 || !ERRORS[errorByCode(r.errorCode)].retriable)) {
        if (r.errorCode !== 0) throw RaftkaProtocolError.fromCode(r.errorCode, `${what}: ${r.errorMessage}`);
        return r;
      }
      if (Date.now() > deadline) {
        if (r) throw RaftkaProtocolError.fromCode(r.errorCode, `${what}: ${r.errorMessage}`);
        throw err;
      }
      await new Promise((res) => setTimeout(res, ADMIN_RETRY_MS));
    }
  }

  /** Resolves true when the topics were created, false when any already existed (as KafkaJS). */
  async createTopics(args: { topics: ITopicConfig[]; validateOnly?: boolean; timeout?: number; waitForLeaders?: boolean }): Promise<boolean> {
    this.check();
    const timeoutMs = args.timeout ?? this.requestTimeoutMs;
    const res = await this.withRetry('CreateTopics', timeoutMs, () =>
      this.cluster.anyBroker((c) =>
        c.createTopics({
          timeoutMs,
          validateOnly: args.validateOnly ?? false,
          topics: args.topics.map((t) => ({
            name: t.topic,
            numPartitions: t.numPartitions ?? -1,
            replicationFactor: t.replicationFactor ?? -1,
            assignments: toAssignments(t.replicaAssignment) ?? [],
            configs: Object.fromEntries((t.configEntries ?? []).map((e) => [e.name, e.value])),
          })),
        }),
      ),
    );
    let created = true;
    for (const t of res.topics) {
      if (t.errorCode === ERRORS.TOPIC_ALREADY_EXISTS.code) created = false;
      else if (t.errorCode !== 0) throw RaftkaProtocolError.fromCode(t.errorCode, t.errorMessage, { topic: t.name });
    }
    if (created && !args.validateOnly && args.waitForLeaders !== false) {
      await this.waitForLeaders(args.topics.map((t) => t.topic), timeoutMs);
    }
    return created;
  }

  /** Waits until every partition of `topics` has a leader in this client's metadata view. */
  private async waitForLeaders(topics: string[], timeoutMs: number): Promise<void> {
    const deadline = Date.now() + timeoutMs;
    for (;;) {
      await this.cluster.refresh(topics).catch(() => undefined);
      if (topics.every((t) => (this.cluster.topic(t)?.partitions.length ?? 0) > 0 && this.cluster.topic(t)!.partitions.every((p) => p.leaderId >= 0))) return;
      if (Date.now() > deadline) throw new RaftkaProtocolError('LEADER_NOT_AVAILABLE', `topics ${topics.join(', ')} have no leader for every partition after ${timeoutMs} ms`);
      await new Promise((res) => setTimeout(res, ADMIN_RETRY_MS));
    }
  }

  async deleteTopics(args: { topics: string[]; timeout?: number }): Promise<void> {
    this.check();
    const timeoutMs = args.timeout ?? this.requestTimeoutMs;
    const res = await this.withRetry('DeleteTopics', timeoutMs, () => this.cluster.anyBroker((c) => c.deleteTopics({ names: args.topics, timeoutMs })));
    for (const t of res.topics) if (t.errorCode !== 0) throw RaftkaProtocolError.fromCode(t.errorCode, t.errorMessage, { topic: t.name });
  }

  /** Grows topics to `count` partitions in total. */
  async createPartitions(args: { topicPartitions: Array<{ topic: string; count: number; assignments?: number[][] }>; validateOnly?: boolean; timeout?: number }): Promise<boolean> {
    this.check();
    const timeoutMs = args.timeout ?? this.requestTimeoutMs;
    const res = await this.withRetry('CreatePartitions', timeoutMs, () =>
      this.cluster.anyBroker((c) =>
        c.createPartitions({
          timeoutMs,
          validateOnly: args.validateOnly ?? false,
          topics: args.topicPartitions.map((t) => ({ name: t.topic, count: t.count, assignments: (t.assignments ?? []).map((brokerIds, i) => ({ partition: i, brokerIds })) })),
        }),
      ),
    );
    for (const t of res.topics) if (t.errorCode !== 0) throw RaftkaProtocolError.fromCode(t.errorCode, t.errorMessage, { topic: t.name });
    return true;
  }

  async listTopics(): Promise<string[]> {
    this.check();
    const md = await this.cluster.anyBroker((c) => c.metadata({}));
    return md.topics.filter((t) => t.errorCode === 0 || t.errorCode === ERRORS.LEADER_NOT_AVAILABLE.code).map((t) => t.name);
  }

  /** KafkaJS's fetchTopicMetadata: partitions with leader, replicas, ISR (all topics when none are named). */
  async fetchTopicMetadata(args: { topics?: string[] } = {}): Promise<{ topics: TopicInfo[] }> {
    this.check();
    const md = await this.cluster.anyBroker((c) => c.metadata({ topics: args.topics ?? [] }));
    const out: TopicInfo[] = [];
    for (const t of md.topics) {
      if (t.errorCode !== 0 && t.errorCode !== ERRORS.LEADER_NOT_AVAILABLE.code) throw RaftkaProtocolError.fromCode(t.errorCode, t.errorMessage, { topic: t.name });
      out.push({ name: t.name, topicId: t.topicId, partitions: [...t.partitions].sort((a, b) => a.partition - b.partition).map(toPartitionInfo) });
    }
    return { topics: out };
  }

  /** Topics with partitions (leader, epochs, replicas, ISR) and effective configs. */
  async describeTopics(args: { topics?: string[] } = {}): Promise<{ topics: TopicDescriptionInfo[] }> {
    this.check();
    const res = await this.withRetry('DescribeTopics', this.requestTimeoutMs, () => this.cluster.anyBroker((c) => c.describeTopics({ names: args.topics ?? [] })));
    const out: TopicDescriptionInfo[] = [];
    for (const t of res.topics) {
      if (t.errorCode !== 0) throw RaftkaProtocolError.fromCode(t.errorCode, t.errorMessage, { topic: t.name });
      out.push({ name: t.name, topicId: t.topicId, partitions: [...t.partitions].sort((a, b) => a.partition - b.partition).map(toPartitionInfo), configs: t.configs });
    }
    return { topics: out };
  }

  async describeCluster(): Promise<ClusterDescription> {
    this.check();
    const r = await this.withRetry('DescribeCluster', this.requestTimeoutMs, () => this.cluster.anyBroker((c) => c.describeCluster()));
    return {
      clusterId: r.clusterId,
      controller: r.controllerId,
      brokers: r.brokers.map((b) => ({ nodeId: b.id, host: b.host, port: b.port, rack: b.rack, fenced: b.fenced })),
      voters: r.voters,
    };
  }

  /** Topic configs (from DescribeTopics). Broker configs have no rpc yet: UNSUPPORTED_VERSION per resource. */
  async describeConfigs(args: { resources: DescribeConfigResource[]; includeSynonyms?: boolean }): Promise<DescribeConfigsResult> {
    this.check();
    const topics = args.resources.filter((r) => r.type === ConfigResourceTypes.TOPIC).map((r) => r.name);
    const described = topics.length > 0 ? await this.withRetry('DescribeTopics', this.requestTimeoutMs, () => this.cluster.anyBroker((c) => c.describeTopics({ names: topics }))) : undefined;
    return {
      resources: args.resources.map((r) => {
        const base = { resourceType: r.type, resourceName: r.name };
        if (r.type !== ConfigResourceTypes.TOPIC) {
          return { ...base, errorCode: ERRORS.UNSUPPORTED_VERSION.code, errorMessage: 'only topic configs can be described (the server has no broker DescribeConfigs rpc)', configEntries: [] };
        }
        const t = described?.topics.find((d) => d.name === r.name);
        if (!t || t.errorCode !== 0) return { ...base, errorCode: t?.errorCode ?? ERRORS.UNKNOWN_TOPIC_OR_PARTITION.code, errorMessage: t?.errorMessage ?? 'unknown topic', configEntries: [] };
        const wanted = r.configNames ? new Set(r.configNames) : undefined;
        return {
          ...base,
          errorCode: 0,
          errorMessage: '',
          configEntries: t.configs
            .filter((c) => !wanted || wanted.has(c.name))
            .map((c) => ({ configName: c.name, configValue: c.value, isDefault: c.source === 'default', configSource: c.source, readOnly: false, isSensitive: false })),
        };
      }),
    };
  }

  /**
   * Retries a forwarded admin call while any item answers NOT_CONTROLLER (the
   * controller moved or is being elected; nothing was changed) until `timeoutMs`.
   */
  private async retryItems<T>(timeoutMs: number, call: () => Promise<T>, codes: (r: T) => number[]): Promise<T> {
    const deadline = Date.now() + timeoutMs;
    for (;;) {
      const r = await this.withRetry('admin', timeoutMs, async () => {
        const x = await call();
        return { ...x, errorCode: (x as { errorCode: number }).errorCode, errorMessage: (x as { errorMessage: string }).errorMessage };
      });
      if (!codes(r).includes(ERRORS.NOT_CONTROLLER.code) || Date.now() > deadline) return r;
      await new Promise((res) => setTimeout(res, ADMIN_RETRY_MS));
    }
  }

  /**
   * Changes config overrides key by key (Kafka's incrementalAlterConfigs [KIP-339]): an
   * entry sets `name` to `value`, or removes the override with `op: 'delete'` (the
   * value then comes from the cluster default or the built-in default); keys not named
   * keep their values. Unlike KafkaJS's alterConfigs, which replaces a resource's whole
   * set, nothing else is reset. Resources: `{ type: ConfigResourceTypes.TOPIC, name:
   * topic }`, or `{ type: ConfigResourceTypes.BROKER, name: '' }` for the cluster-wide
   * default. Resolves once the change is committed; brokers apply it as they replay it.
   * The first resource that fails throws a RaftkaProtocolError naming it (INVALID_CONFIG
   * for an unknown key or a bad value, UNKNOWN_TOPIC_OR_PARTITION, ...); a resource's
   * changes apply together or not at all.
   */
  async alterConfigs(args: {
    resources: Array<{ type: number; name: string; configEntries: Array<{ name: string; value?: string | null; op?: 'set' | 'delete' }> }>;
    validateOnly?: boolean;
    timeout?: number;
  }): Promise<{ resources: Array<{ errorCode: number; errorMessage: string; resourceType: number; resourceName: string }> }> {
    this.check();
    const timeoutMs = args.timeout ?? this.requestTimeoutMs;
    const resources = args.resources.map((r) => ({
      resourceType: r.type,
      resourceName: r.name,
      configs: r.configEntries.map((e) => {
        const op = e.op ?? 'set';
        if (op !== 'set' && op !== 'delete') throw new RaftkaClientError('INVALID_ARGUMENT', `config ${e.name}: op must be 'set' or 'delete', got ${JSON.stringify(op)}`);
        if (op === 'set' && typeof e.value !== 'string') throw new RaftkaClientError('INVALID_ARGUMENT', `config ${e.name}: set needs a string value`);
        return op === 'set' ? { name: e.name, operation: CONFIG_OP_SET, value: e.value! } : { name: e.name, operation: CONFIG_OP_DELETE };
      }),
    }));
    const res = await this.retryItems(
      timeoutMs,
      () => this.cluster.anyBroker((c) => c.incrementalAlterConfigs({ resources, validateOnly: args.validateOnly ?? false, timeoutMs })),
      (r) => r.resources.map((x) => x.errorCode),
    );
    for (const r of res.resources) {
      if (r.errorCode !== 0) throw RaftkaProtocolError.fromCode(r.errorCode, r.errorMessage, r.resourceType === ConfigResourceTypes.TOPIC ? { topic: r.resourceName } : {});
    }
    return { resources: res.resources.map((r) => ({ errorCode: r.errorCode, errorMessage: r.errorMessage, resourceType: r.resourceType, resourceName: r.resourceName })) };
  }

  /**
   * Leader elections [KIP-460]: 'preferred' (the default) moves leadership back to each
   * partition's first replica; 'unclean' elects a leader for partitions that have none
   * (may lose acknowledged writes). `topicPartitions` absent: every partition; a topic
   * without `partitions`: all of its partitions. Resolves with one result per partition:
   * `error` undefined when the leader moved, 'ELECTION_NOT_NEEDED' when the wanted
   * replica already leads, or another code (PREFERRED_LEADER_NOT_AVAILABLE,
   * UNKNOWN_TOPIC_OR_PARTITION, ...). A failure of the whole request throws.
   */
  async electLeaders(
    args: { topicPartitions?: Array<{ topic: string; partitions?: number[] }>; electionType?: 'preferred' | 'unclean'; timeout?: number } = {},
  ): Promise<ElectionResult[]> {
    this.check();
    const type = args.electionType ?? 'preferred';
    if (type !== 'preferred' && type !== 'unclean') throw new RaftkaClientError('INVALID_ARGUMENT', `electionType must be 'preferred' or 'unclean', got ${JSON.stringify(type)}`);
    const timeoutMs = args.timeout ?? this.requestTimeoutMs;
    const topics = (args.topicPartitions ?? []).map((t) => ({ name: t.topic, partitions: t.partitions ?? [] }));
    const res = await this.retryItems(
      timeoutMs,
      () => this.cluster.anyBroker((c) => c.electLeaders({ electionType: type === 'unclean' ? ELECTION_UNCLEAN : ELECTION_PREFERRED, topics, timeoutMs })),
      (r) => r.topics.flatMap((t) => t.partitions.map((p) => p.errorCode)),
    );
    return res.topics.flatMap((t) =>
      t.partitions.map((p) => ({
        topic: t.name,
        partition: p.partition,
        leader: p.leaderId,
        errorCode: p.errorCode,
        error: p.errorCode === 0 ? undefined : errorByCode(p.errorCode),
        errorMessage: p.errorMessage,
      })),
    );
  }

  /**
   * ListOffsets at the partition leaders: for each partition, the offset for `timestamp`
   * (-1 latest = high watermark, -2 earliest = log start, or a time in ms). Retries
   * leadership errors with a metadata refresh.
   */
  async listOffsets(topic: string, partitions: Array<{ partition: number; timestamp: number }>): Promise<Array<{ partition: number; offset: number; timestamp: number }>> {
    this.check();
    await this.cluster.ensure([topic]);
    const deadline = Date.now() + this.requestTimeoutMs;
    const out = new Map<number, { partition: number; offset: number; timestamp: number }>();
    let todo = partitions;
    while (todo.length > 0) {
      const byLeader = new Map<number, typeof todo>();
      const retry: typeof todo = [];
      for (const p of todo) {
        const l = this.cluster.leaderOf(topic, p.partition);
        if (l < 0 || !this.cluster.brokerConnection(l)) retry.push(p);
        else byLeader.set(l, [...(byLeader.get(l) ?? []), p]);
      }
      let lastError: RaftkaProtocolError | undefined;
      await Promise.all(
        [...byLeader].map(async ([leader, ps]) => {
          try {
            const r = await this.cluster.brokerConnection(leader)!.listOffsets({ topics: [{ name: topic, partitions: ps }] });
            for (const p of ps) {
              const pr = r.topics[0]?.partitions.find((x) => x.partition === p.partition);
              const code = pr?.errorCode ?? (r.errorCode || ERRORS.UNKNOWN_SERVER_ERROR.code);
              if (code === 0 && pr) out.set(p.partition, { partition: p.partition, offset: pr.offset, timestamp: pr.timestamp });
              else if (ERRORS[errorByCode(code)].retriable) {
                lastError = RaftkaProtocolError.fromCode(code, pr?.errorMessage ?? r.errorMessage, { topic, partition: p.partition });
                retry.push(p);
              } else throw RaftkaProtocolError.fromCode(code, pr?.errorMessage ?? r.errorMessage, { topic, partition: p.partition });
            }
          } catch (e) {
            if (e instanceof RaftkaProtocolError && !e.retriable) throw e;
            retry.push(...ps);
          }
        }),
      );
      todo = retry;
      if (todo.length > 0) {
        if (Date.now() > deadline) throw lastError ?? new RaftkaProtocolError('LEADER_NOT_AVAILABLE', `ListOffsets for ${topic}: no answer from the leaders of partitions ${todo.map((p) => p.partition).join(', ')}`, { topic });
        await this.cluster.refresh([topic]).catch(() => undefined);
        await new Promise((res) => setTimeout(res, ADMIN_RETRY_MS));
      }
    }
    return partitions.map((p) => out.get(p.partition)!);
  }

  /** KafkaJS's fetchTopicOffsets: high watermark and log start per partition. */
  async fetchTopicOffsets(topic: string): Promise<TopicOffsets[]> {
    this.check();
    await this.cluster.ensure([topic]);
    const ids = this.cluster.topic(topic)!.partitions.map((p) => p.partition);
    const [high, low] = await Promise.all([
      this.listOffsets(topic, ids.map((partition) => ({ partition, timestamp: LATEST_TIMESTAMP }))),
      this.listOffsets(topic, ids.map((partition) => ({ partition, timestamp: EARLIEST_TIMESTAMP }))),
    ]);
    return ids.map((partition, i) => ({ partition, offset: high[i]!.offset, high: high[i]!.offset, low: low[i]!.offset }));
  }

  /** KafkaJS's fetchTopicOffsetsByTimestamp: the first offset at or after `timestamp` per partition (-1 past the end). */
  async fetchTopicOffsetsByTimestamp(topic: string, timestamp: number): Promise<Array<{ partition: number; offset: number }>> {
    this.check();
    await this.cluster.ensure([topic]);
    const ids = this.cluster.topic(topic)!.partitions.map((p) => p.partition);
    const r = await this.listOffsets(topic, ids.map((partition) => ({ partition, timestamp })));
    return r.map(({ partition, offset }) => ({ partition, offset }));
  }
}
