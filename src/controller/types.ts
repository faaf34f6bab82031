// Requests and responses of the controller, in Kafka's vocabulary (the RPCs of
// KIP-631/KIP-497 and the admin APIs), plus the controller's configuration.
//
// Client errors travel inside responses as the closed error codes (ApiError), never as
// exceptions: a request for three topics can fail for one of them. Every handler
// returns a ControllerResult: the records to append (one atomic batch) and the response
// to send once they are committed.
import { boolDef, intDef, longDef, parseConfig, type ConfigOf } from '../common/config.ts';
import { ERRORS, type ErrorName } from '../common/errors.ts';
import type { ConfigResourceType, Endpoint, MetadataRecord } from '../metadata/records.ts';

export interface ControllerResult<R> {
  /** Propose these as one Raft entry (encodeRecords); empty means nothing to append. */
  readonly records: readonly MetadataRecord[];
  /** Send only after the records are committed (see QuorumController). */
  readonly response: R;
}

export interface ApiError {
  readonly error: ErrorName;
  /** ERRORS[error].code, for the wire. */
  readonly errorCode: number;
  readonly errorMessage: string | null;
}

export function apiError(error: ErrorName, errorMessage: string | null = null): ApiError {
  return { error, errorCode: ERRORS[error].code, errorMessage };
}

export const OK: ApiError = apiError('NONE');

// ─── Broker lifecycle [KIP-631] ─────────────────────────────────────────────────────

export interface RegisterBrokerRequest {
  readonly brokerId: number;
  /** Drawn at process start: a new one means a restart, the same one a retry. */
  readonly incarnationId: string;
  readonly endpoints: readonly Endpoint[];
  readonly rack?: string | null;
  /**
   * The broker epoch this broker held when it last shut down cleanly, or -1 [KIP-966]. A
   * restart after an unclean shutdown (or without this) drops the broker from every ELR:
   * its log may have lost unflushed records.
   */
  readonly previousBrokerEpoch?: number;
}

export interface RegisterBrokerResponse extends ApiError {
  /** -1 on error. */
  readonly brokerEpoch: number;
}

export interface BrokerHeartbeatRequest {
  readonly brokerId: number;
  readonly brokerEpoch: number;
  /** The highest metadata offset the broker has applied (informational). */
  readonly currentMetadataOffset: number;
  /**
   * The broker has replayed its own registration (its image shows this broker epoch)
   * and finished log recovery: it may be unfenced [KIP-631 "catching up"].
   */
  readonly caughtUp: boolean;
  /** Stay (or become) fenced, e.g. while a disk is being recovered. */
  readonly wantFence: boolean;
  /** Controlled shutdown: move my leaderships away and fence me. */
  readonly wantShutDown: boolean;
  /**
   * The log end of every replica this broker hosts of a partition that has no leader
   * (at most LIST_LENGTH_MAX): an unclean election takes the most complete log [KIP-966
   * unclean recovery]. Each heartbeat replaces the broker's previous reports.
   */
  readonly leaderlessReplicas?: readonly LeaderlessReplicaReport[];
}

/** A replica of a partition without a leader, as the broker hosting it sees its log. */
export interface LeaderlessReplicaReport {
  readonly topicId: string;
  readonly partition: number;
  /** The partition's leader epoch in the broker's image; a report for another epoch is stale. */
  readonly leaderEpoch: number;
  /** The leader epoch of the log's last batch (-1 when the log is empty). */
  readonly lastWrittenEpoch: number;
  readonly logEndOffset: number;
}

export interface BrokerHeartbeatResponse extends ApiError {
  readonly isCaughtUp: boolean;
  readonly isFenced: boolean;
  /** Controlled shutdown is complete: the broker leads nothing and may exit. */
  readonly shouldShutDown: boolean;
}

export interface ControlledShutdownRequest {
  readonly brokerId: number;
  readonly brokerEpoch: number;
}

export interface ControlledShutdownResponse extends ApiError {
  /** Partitions the broker still leads once the records commit (always 0 on success). */
  readonly remainingLeaderships: number;
}

export interface UnregisterBrokerRequest {
  readonly brokerId: number;
}

// ─── Topics ─────────────────────────────────────────────────────────────────────────

export interface CreatableTopic {
  readonly name: string;
  /** -1 or absent: num.partitions. Must be absent/-1 when `assignments` is given. */
  readonly numPartitions?: number;
  /** -1 or absent: default.replication.factor. Must be absent/-1 with `assignments`. */
  readonly replicationFactor?: number;
  /** Manual placement: one replica list per partition, preferred leader first. */
  readonly assignments?: readonly (readonly number[])[];
  readonly configs?: Readonly<Record<string, string>>;
}

export interface CreateTopicsRequest {
  readonly topics: readonly CreatableTopic[];
  /** Validate and answer as if created, without writing anything. */
  readonly validateOnly?: boolean;
}

export interface CreatableTopicResult extends ApiError {
  readonly name: string;
  /** '' on error. */
  readonly topicId: string;
  readonly numPartitions: number;
  readonly replicationFactor: number;
}

export interface CreateTopicsResponse {
  readonly topics: readonly CreatableTopicResult[];
}

export interface DeleteTopicsRequest {
  readonly topicNames?: readonly string[];
  readonly topicIds?: readonly string[];
}

export interface DeletableTopicResult extends ApiError {
  readonly name: string;
  readonly topicId: string;
}

export interface DeleteTopicsResponse {
  readonly topics: readonly DeletableTopicResult[];
}

export interface CreatePartitionsTopic {
  readonly name: string;
  /** The new total number of partitions. */
  readonly count: number;
  /** Replica lists for the new partitions only. */
  readonly assignments?: readonly (readonly number[])[];
}

export interface CreatePartitionsRequest {
  readonly topics: readonly CreatePartitionsTopic[];
  readonly validateOnly?: boolean;
}

export interface CreatePartitionsTopicResult extends ApiError {
  readonly name: string;
}

export interface CreatePartitionsResponse {
  readonly topics: readonly CreatePartitionsTopicResult[];
}

// ─── Partitions [KIP-497, KIP-903, KIP-966] ─────────────────────────────────────────

export interface AlterPartitionRequest {
  /** The partition leader sending it. */
  readonly brokerId: number;
  /** The leader's broker epoch; checked when given (a stale incarnation is refused). */
  readonly brokerEpoch?: number;
  readonly topicId: string;
  readonly partition: number;
  readonly leaderEpoch: number;
  readonly partitionEpoch: number;
  readonly newIsr: readonly number[];
  /**
   * Broker epochs of the new ISR members as the leader saw them in their fetches
   * [KIP-903]; a member whose epoch is not its current registration's is INELIGIBLE.
   */
  readonly newIsrBrokerEpochs?: readonly { readonly brokerId: number; readonly brokerEpoch: number }[];
}

export interface AlterPartitionResponse extends ApiError {
  readonly topicId: string;
  readonly partition: number;
  /** The partition state after the change (or the current one on error, when known). */
  readonly leader: number;
  readonly leaderEpoch: number;
  readonly partitionEpoch: number;
  readonly isr: readonly number[];
}

export type ElectionType = 'preferred' | 'unclean';

export interface TopicPartitionName {
  readonly topic: string;
  readonly partition: number;
}

export interface ElectLeadersRequest {
  readonly electionType: ElectionType;
  /** Absent: every partition. */
  readonly partitions?: readonly TopicPartitionName[];
}

export interface ElectLeadersResult extends ApiError {
  readonly topic: string;
  readonly partition: number;
  readonly leader: number;
}

export interface ElectLeadersResponse {
  readonly results: readonly ElectLeadersResult[];
}

// ─── Configs ────────────────────────────────────────────────────────────────────────

export interface AlterableConfig {
  readonly name: string;
  readonly op: 'set' | 'delete';
  /** Required for `set`. */
  readonly value?: string | null;
}

export interface AlterConfigsResource {
  readonly resourceType: ConfigResourceType;
  /** Topic name, broker id, or '' for the cluster. */
  readonly resourceName: string;
  readonly configs: readonly AlterableConfig[];
}

export interface IncrementalAlterConfigsRequest {
  readonly resources: readonly AlterConfigsResource[];
  readonly validateOnly?: boolean;
}

export interface AlterConfigsResourceResult extends ApiError {
  readonly resourceType: ConfigResourceType;
  readonly resourceName: string;
}

export interface IncrementalAlterConfigsResponse {
  readonly resources: readonly AlterConfigsResourceResult[];
}

// ─── Producer ids [KIP-730] ─────────────────────────────────────────────────────────

export interface AllocateProducerIdsRequest {
  readonly brokerId: number;
  readonly brokerEpoch: number;
}

export interface AllocateProducerIdsResponse extends ApiError {
  /** -1 on error. */
  readonly producerIdStart: number;
  readonly producerIdLen: number;
}

// ─── Liveness ───────────────────────────────────────────────────────────────────────

export interface TickResponse {
  /** Brokers fenced by this tick (missed heartbeats for broker.session.timeout.ms). */
  readonly fencedBrokers: readonly number[];
  /** Partitions whose leadership moved back to the preferred replica. */
  readonly preferredElections: number;
}

// ─── Configuration ──────────────────────────────────────────────────────────────────

/** Kafka's key names where Kafka has the setting. Times are in ms of the `nowMs` passed in. */
export const CONTROLLER_CONFIG_DEFS = {
  'broker.session.timeout.ms': intDef(9000, 'Fence a broker that has not heartbeated for this long', { min: 1 }),
  'num.partitions': intDef(1, 'Partitions of a topic created without a count', { min: 1 }),
  'default.replication.factor': intDef(1, 'Replication factor of a topic created without one', { min: 1, max: 32767 }),
  'auto.leader.rebalance.enable': boolDef(true, 'Move leadership back to preferred replicas periodically'),
  'leader.imbalance.check.interval.ms': longDef(300_000, 'How often tick() looks for preferred leaders to restore', { min: 1 }),
  'create.topic.partitions.max': intDef(10_000, 'Most partitions one CreateTopics/CreatePartitions request may add', {
    min: 1,
  }),
} as const;

export type ControllerConfig = ConfigOf<typeof CONTROLLER_CONFIG_DEFS>;

export function controllerConfig(input: Record<string, unknown> = {}): ControllerConfig {
  return parseConfig(CONTROLLER_CONFIG_DEFS, input);
}
