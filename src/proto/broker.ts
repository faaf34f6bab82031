// TypeScript shapes of proto/broker.proto (package raftka.internal): replica fetch and the
// controller RPCs between nodes. Conventions as in src/proto/raftka.ts.
import { defineService, loadProto } from './rpc.ts';
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
} from './raftka.ts';

// ─── ReplicaFetch ───

export interface WireReplicaFetchPartition {
  topicId: string;
  partition: number;
  currentLeaderEpoch: number;
  fetchOffset: number;
  lastFetchedEpoch: number;
  flushedOffset: number;
  maxBytes: number;
}

export interface WireReplicaFetchRequest {
  replicaId: number;
  brokerEpoch: number;
  maxWaitMs: number;
  minBytes: number;
  maxBytes: number;
  partitions: readonly WireReplicaFetchPartition[];
  sessionId: number;
  sessionEpoch: number;
  forgotten: readonly { topicId: string; partition: number }[];
}

export interface WireReplicaFetchPartitionResponse {
  topicId: string;
  partition: number;
  errorCode: number;
  highWatermark: number;
  logStartOffset: number;
  logEndOffset: number;
  divergingEpoch: { epoch: number; endOffset: number } | null;
  records: Buffer;
}

export interface WireReplicaFetchResponse {
  errorCode: number;
  partitions: WireReplicaFetchPartitionResponse[];
  sessionId: number;
}

export type BrokerReplicationService = {
  ReplicaFetch: readonly [WireReplicaFetchRequest, WireReplicaFetchResponse];
};

export const BrokerReplicationRpc = defineService<BrokerReplicationService>(loadProto('broker.proto'), 'raftka.internal.BrokerReplication', ['ReplicaFetch']);

// ─── Controller [KIP-631] ───

export interface Listener {
  name: string;
  host: string;
  port: number;
}

export interface BrokerRegistrationRequest {
  brokerId: number;
  clusterId: string;
  incarnationId: string;
  listeners: Listener[];
  /** "" when the broker has no rack. */
  rack: string;
  /** -1 when this incarnation has not registered before. */
  previousBrokerEpoch: number;
}

export interface BrokerRegistrationResponse {
  errorCode: number;
  errorMessage: string;
  brokerEpoch: number;
}

export interface BrokerHeartbeatRequest {
  brokerId: number;
  brokerEpoch: number;
  currentMetadataOffset: number;
  wantFence: boolean;
  wantShutDown: boolean;
  /** Absent when the sender leaves the field out; decoded as a list (possibly empty). */
  leaderlessReplicas?: LeaderlessReplica[];
}

export interface LeaderlessReplica {
  topicId: string;
  partition: number;
  leaderEpoch: number;
  lastWrittenEpoch: number;
  logEndOffset: number;
}

export interface BrokerHeartbeatResponse {
  errorCode: number;
  errorMessage: string;
  isCaughtUp: boolean;
  isFenced: boolean;
  shouldShutDown: boolean;
}

export interface WireAlterPartitionRequest {
  brokerId: number;
  brokerEpoch: number;
  topicId: string;
  partition: number;
  leaderEpoch: number;
  partitionEpoch: number;
  newIsr: readonly number[];
}

export interface WireAlterPartitionResponse {
  errorCode: number;
  errorMessage: string;
  isr: number[];
  leaderEpoch: number;
  partitionEpoch: number;
}

export interface PartitionRef {
  topicId: string;
  partition: number;
}

export interface ControlledShutdownRequest {
  brokerId: number;
  brokerEpoch: number;
}

export interface ControlledShutdownResponse {
  errorCode: number;
  errorMessage: string;
  remainingPartitions: PartitionRef[];
}

export interface AllocateProducerIdsRequest {
  brokerId: number;
  brokerEpoch: number;
}

export interface AllocateProducerIdsResponse {
  errorCode: number;
  errorMessage: string;
  /** -1 on error. */
  producerIdStart: number;
  producerIdLen: number;
}

export type ControllerService = {
  BrokerRegistration: readonly [BrokerRegistrationRequest, BrokerRegistrationResponse];
  BrokerHeartbeat: readonly [BrokerHeartbeatRequest, BrokerHeartbeatResponse];
  AlterPartition: readonly [WireAlterPartitionRequest, WireAlterPartitionResponse];
  ControlledShutdown: readonly [ControlledShutdownRequest, ControlledShutdownResponse];
  AllocateProducerIds: readonly [AllocateProducerIdsRequest, AllocateProducerIdsResponse];
  CreateTopics: readonly [CreateTopicsRequest, CreateTopicsResponse];
  DeleteTopics: readonly [DeleteTopicsRequest, DeleteTopicsResponse];
  CreatePartitions: readonly [CreatePartitionsRequest, CreatePartitionsResponse];
  IncrementalAlterConfigs: readonly [IncrementalAlterConfigsRequest, IncrementalAlterConfigsResponse];
  ElectLeaders: readonly [ElectLeadersRequest, ElectLeadersResponse];
};

export const ControllerRpc = defineService<ControllerService>(loadProto('broker.proto'), 'raftka.internal.Controller', [
  'BrokerRegistration',
  'BrokerHeartbeat',
  'AlterPartition',
  'ControlledShutdown',
  'AllocateProducerIds',
  'CreateTopics',
  'DeleteTopics',
  'CreatePartitions',
  'IncrementalAlterConfigs',
  'ElectLeaders',
]);
