// The narrow interfaces the request handlers need from the rest of the node. The server
// never reaches into the metadata image, the controller or Raft directly: node.ts backs
// these with the real parts, tests with fakes.
import type { AlterPartitionRequest, AlterPartitionResponse, ReplicaFetchRequest, ReplicaFetchResponse } from '../broker/types.ts';
import type { ReplicaManager } from '../broker/replica-manager.ts';
import type {
  CreatePartitionsRequest,
  CreatePartitionsResponse,
  CreateTopicsRequest,
  CreateTopicsResponse,
  DeleteTopicsRequest,
  DeleteTopicsResponse,
  ElectLeadersRequest,
  ElectLeadersResponse,
  IncrementalAlterConfigsRequest,
  IncrementalAlterConfigsResponse,
} from '../proto/raftka.ts';
import type {
  BrokerHeartbeatRequest,
  BrokerHeartbeatResponse,
  BrokerRegistrationRequest,
  BrokerRegistrationResponse,
  ControlledShutdownRequest,
  ControlledShutdownResponse,
  AllocateProducerIdsRequest,
  AllocateProducerIdsResponse,
} from '../proto/broker.ts';

export type {
  CreatePartitionsRequest,
  CreatePartitionsResponse,
  CreateTopicsRequest,
  CreateTopicsResponse,
  DeleteTopicsRequest,
  DeleteTopicsResponse,
  ElectLeadersRequest,
  ElectLeadersResponse,
  IncrementalAlterConfigsRequest,
  IncrementalAlterConfigsResponse,
  BrokerHeartbeatRequest,
  BrokerHeartbeatResponse,
  BrokerRegistrationRequest,
  BrokerRegistrationResponse,
  ControlledShutdownRequest,
  ControlledShutdownResponse,
  AllocateProducerIdsRequest,
  AllocateProducerIdsResponse,
};

// ─── metadata ───

export interface BrokerView {
  readonly id: number;
  /** The client listener's advertised address. */
  readonly host: string;
  readonly port: number;
  readonly rack: string | null;
  readonly fenced: boolean;
}

export interface PartitionView {
  readonly partition: number;
  /** -1: no leader. */
  readonly leader: number;
  readonly leaderEpoch: number;
  readonly replicas: readonly number[];
  readonly isr: readonly number[];
  readonly elr: readonly number[];
  readonly lastKnownElr: readonly number[];
}

export interface TopicView {
  readonly name: string;
  readonly topicId: string;
  /** Dense: partitions[i].partition === i. */
  readonly partitions: readonly PartitionView[];
}

export interface ConfigEntryView {
  readonly name: string;
  readonly value: string;
  /** Where the value comes from: set on the topic, a broker-level default, or built in. */
  readonly source: 'topic' | 'broker' | 'default';
}

export interface VoterView {
  readonly id: number;
  /** Entries behind the Raft leader's log end; -1 when unknown on this node. */
  readonly lag: number;
  readonly isLeader: boolean;
}

/**
 * One consistent view of the cluster metadata (node.ts: the current metadata image plus
 * the Raft driver's voter progress). The server takes one view per request, so a
 * request never mixes two image offsets.
 */
export interface MetadataView {
  readonly clusterId: string;
  /** The active controller's node id; -1 when none is known. */
  readonly controllerId: number;
  brokers(): readonly BrokerView[];
  broker(id: number): BrokerView | undefined;
  topics(): Iterable<TopicView>;
  topicByName(name: string): TopicView | undefined;
  topicById(topicId: string): TopicView | undefined;
  /** The topic's effective configs (overrides and defaults); undefined for an unknown topic. */
  topicConfigs(topicId: string): readonly ConfigEntryView[] | undefined;
  voters(): readonly VoterView[];
}

// ─── admin ───

/**
 * Topic administration, answered by the active controller once its records commit
 * (node.ts: forwarding to the controller over the internal API [KIP-590], or a direct
 * call when this node is the active controller). Requests reaching it are already
 * validated (names, counts, sizes, timeouts filled in). An error for a whole request
 * (NOT_CONTROLLER, REQUEST_TIMED_OUT) may come back as the response's top-level
 * `errorCode` or as a thrown RaftkaError; the server copies it to every topic.
 */
export interface AdminClient {
  createTopics(req: CreateTopicsRequest): Promise<CreateTopicsResponse>;
  deleteTopics(req: DeleteTopicsRequest): Promise<DeleteTopicsResponse>;
  createPartitions(req: CreatePartitionsRequest): Promise<CreatePartitionsResponse>;
  /** Resource types, operations and duplicates are checked; keys and values are the controller's to judge. */
  incrementalAlterConfigs(req: IncrementalAlterConfigsRequest): Promise<IncrementalAlterConfigsResponse>;
  /** Names and the election type are checked; empty `topics` means every partition. */
  electLeaders(req: ElectLeadersRequest): Promise<ElectLeadersResponse>;
}

// ─── producer ids ───

/**
 * Hands out idempotent producer ids [KIP-98] (node.ts: a ProducerIdManager drawing
 * blocks from the active controller). Throws a RaftkaError (NOT_CONTROLLER,
 * REQUEST_TIMED_OUT: retriable) when no block can be obtained.
 */
export interface ProducerIdSource {
  nextProducerId(): Promise<number>;
}

// ─── data ───

/** What the client API needs from the replica manager (the real class's methods). */
export type ReplicaManagerApi = Pick<ReplicaManager, 'produce' | 'fetch' | 'listOffset'>;

/** The leader side of replica fetch (ReplicaManager implements it). */
export interface ReplicaFetchHandler {
  handleReplicaFetch(req: ReplicaFetchRequest): Promise<ReplicaFetchResponse>;
}

// ─── controller RPCs (internal API, served by controller nodes) ───

export interface AlterPartitionRpcRequest extends AlterPartitionRequest {
  /** The leader's registration epoch: a request from a stale incarnation is refused. */
  readonly brokerEpoch: number;
}

export interface AlterPartitionRpcResponse extends AlterPartitionResponse {
  readonly errorMessage?: string;
}

/**
 * The active controller as the internal Controller service calls it (node.ts plugs in
 * the controller). A node that is not the active controller answers NOT_CONTROLLER.
 * Forwarded admin requests use AdminClient's methods, so the same controller object
 * serves both.
 */
export interface ControllerRpcHandler extends AdminClient {
  brokerRegistration(req: BrokerRegistrationRequest): Promise<BrokerRegistrationResponse>;
  brokerHeartbeat(req: BrokerHeartbeatRequest): Promise<BrokerHeartbeatResponse>;
  alterPartition(req: AlterPartitionRpcRequest): Promise<AlterPartitionRpcResponse>;
  controlledShutdown(req: ControlledShutdownRequest): Promise<ControlledShutdownResponse>;
  allocateProducerIds(req: AllocateProducerIdsRequest): Promise<AllocateProducerIdsResponse>;
}
