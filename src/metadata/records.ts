// The cluster metadata records: the only way cluster metadata changes [KIP-500, KIP-631].
// The active controller appends them to the Raft metadata log in atomic batches (one
// batch per Raft entry); every node replays committed batches, in log order, into its
// `MetadataImage`. A record never refers to time or randomness: replay is a pure function
// of (image, record), so every node reaches the same image at the same offset.
//
// Each record carries a `version` so its shape can evolve: a node refuses a version it
// does not know instead of guessing (see codec.ts). Names follow KRaft's
// (org.apache.kafka.common.metadata.*Record), with Raft's vocabulary where ours differs.
//
// Broker heartbeats are NOT records: liveness is the active controller's in-memory soft
// state [KIP-631 "broker heartbeats"]; only its consequences (fence / unfence) are logged.

/** "No leader": the partition is offline. */
export const NO_LEADER = -1;

/** The size of a producer-id block handed to a broker [KIP-730]. */
export const PRODUCER_ID_BLOCK_SIZE = 1000;

export interface Endpoint {
  /** Listener name, e.g. `CLIENT` or `REPLICATION`. */
  readonly name: string;
  readonly host: string;
  readonly port: number;
}

/**
 * A broker registered (or re-registered with a new incarnation). It starts fenced: it may
 * not lead or join an ISR until it has caught up with the metadata log and the controller
 * unfences it [KIP-631]. Replaces any previous registration of the same id.
 */
export interface RegisterBrokerRecord {
  readonly type: 'registerBroker';
  readonly version: 0;
  readonly brokerId: number;
  /** A uuid the broker draws at start-up: tells a restart from a retry. */
  readonly incarnationId: string;
  /** Grows with every registration in the cluster; requests quote it to prove freshness. */
  readonly brokerEpoch: number;
  readonly endpoints: readonly Endpoint[];
  readonly rack: string | null;
  readonly fenced: boolean;
}

export interface UnregisterBrokerRecord {
  readonly type: 'unregisterBroker';
  readonly version: 0;
  readonly brokerId: number;
  readonly brokerEpoch: number;
}

export interface FenceBrokerRecord {
  readonly type: 'fenceBroker';
  readonly version: 0;
  readonly brokerId: number;
  readonly brokerEpoch: number;
}

export interface UnfenceBrokerRecord {
  readonly type: 'unfenceBroker';
  readonly version: 0;
  readonly brokerId: number;
  readonly brokerEpoch: number;
}

export interface TopicRecord {
  readonly type: 'topic';
  readonly version: 0;
  readonly name: string;
  /** Kafka-style uuid (22 chars, base64url). Names can be reused; ids never are. */
  readonly topicId: string;
}

/** Removes the topic, its partitions and its configuration. */
export interface RemoveTopicRecord {
  readonly type: 'removeTopic';
  readonly version: 0;
  readonly topicId: string;
}

/** The full state of one partition: a new partition, or one restored from a snapshot. */
export interface PartitionRecord {
  readonly type: 'partition';
  readonly version: 0;
  readonly topicId: string;
  readonly partition: number;
  /** In preference order: replicas[0] is the preferred leader. */
  readonly replicas: readonly number[];
  readonly isr: readonly number[];
  /** Eligible leader replicas [KIP-966]: out of the ISR, yet known to hold the high watermark. */
  readonly elr: readonly number[];
  /** ELR members that lost eligibility by an unclean shutdown, kept as unclean-recovery hints [KIP-966]. */
  readonly lastKnownElr: readonly number[];
  readonly leader: number;
  readonly leaderEpoch: number;
  readonly partitionEpoch: number;
}

/**
 * A change to one partition; absent fields are unchanged. Replay bumps `partitionEpoch`
 * always, and `leaderEpoch` when `leader` is present and differs from the current leader
 * (KRaft's PartitionChangeRecord; the leader epoch fences the previous leader's writes
 * [KIP-101, KIP-320], the partition epoch fences stale AlterPartition requests [KIP-497]).
 */
export interface PartitionChangeRecord {
  readonly type: 'partitionChange';
  readonly version: 0;
  readonly topicId: string;
  readonly partition: number;
  readonly replicas?: readonly number[];
  readonly isr?: readonly number[];
  readonly elr?: readonly number[];
  readonly lastKnownElr?: readonly number[];
  readonly leader?: number;
}

export type ConfigResourceType = 'topic' | 'broker' | 'cluster';

/** Sets (or with value null, deletes) one configuration key of a resource. */
export interface ConfigRecord {
  readonly type: 'config';
  readonly version: 0;
  readonly resourceType: ConfigResourceType;
  /** Topic name, broker id as a string, or '' for the cluster. */
  readonly resourceName: string;
  readonly name: string;
  readonly value: string | null;
}

/**
 * A block of producer ids handed to a broker: [nextProducerId - PRODUCER_ID_BLOCK_SIZE,
 * nextProducerId). `nextProducerId` only grows, so blocks never overlap [KIP-730].
 */
export interface ProducerIdsRecord {
  readonly type: 'producerIds';
  readonly version: 0;
  readonly brokerId: number;
  readonly brokerEpoch: number;
  readonly nextProducerId: number;
}

/** A finalized feature level, e.g. `metadata.version` [KIP-584, KIP-778]. */
export interface FeatureLevelRecord {
  readonly type: 'featureLevel';
  readonly version: 0;
  readonly name: string;
  readonly featureLevel: number;
}

/** Changes nothing; a controller may append it to prove it still leads. */
export interface NoOpRecord {
  readonly type: 'noOp';
  readonly version: 0;
}

export type MetadataRecord =
  | RegisterBrokerRecord
  | UnregisterBrokerRecord
  | FenceBrokerRecord
  | UnfenceBrokerRecord
  | TopicRecord
  | RemoveTopicRecord
  | PartitionRecord
  | PartitionChangeRecord
  | ConfigRecord
  | ProducerIdsRecord
  | FeatureLevelRecord
  | NoOpRecord;

export type MetadataRecordType = MetadataRecord['type'];

/** The highest version of each record type this code reads and writes. */
export const RECORD_VERSIONS: { readonly [T in MetadataRecordType]: number } = {
  registerBroker: 0,
  unregisterBroker: 0,
  fenceBroker: 0,
  unfenceBroker: 0,
  topic: 0,
  removeTopic: 0,
  partition: 0,
  partitionChange: 0,
  config: 0,
  producerIds: 0,
  featureLevel: 0,
  noOp: 0,
};

export type RecordOf<T extends MetadataRecordType> = Extract<MetadataRecord, { type: T }>;
type WithoutVersion<R> = R extends unknown ? Omit<R, 'version'> : never;

/** Builds a record without spelling out `version` (always the current one). */
export function record<T extends MetadataRecordType>(r: WithoutVersion<RecordOf<T>> & { type: T }): RecordOf<T> {
  return { ...r, version: 0 } as unknown as RecordOf<T>;
}
