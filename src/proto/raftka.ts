// TypeScript shapes of proto/raftka.proto (package raftka.v1), the public client API, and
// its typed rpc methods. Field names are protobufjs's camelCase of the proto names;
// int64 fields are numbers; bytes are Buffers. Request fields are optional where proto3
// gives a meaningful zero default; decoded messages always carry every field (see
// src/proto/rpc.ts).
import { defineService, loadProto } from './rpc.ts';

export interface Broker {
  id: number;
  host: string;
  port: number;
  rack: string;
  fenced: boolean;
}

export interface LeaderHint {
  leaderId: number;
  leaderEpoch: number;
}

export interface PartitionMetadata {
  errorCode: number;
  errorMessage: string;
  partition: number;
  leaderId: number;
  leaderEpoch: number;
  replicas: number[];
  isr: number[];
  offlineReplicas: number[];
  /** Absent from servers that predate them; decoded as lists. */
  eligibleLeaderReplicas?: number[];
  lastKnownElr?: number[];
}

export interface ConfigEntry {
  name: string;
  value: string;
  source: 'topic' | 'broker' | 'default' | string;
}

export interface ReplicaAssignment {
  partition: number;
  brokerIds: number[];
}

// ─── Metadata / DescribeCluster ───

export interface MetadataRequest {
  topics?: string[];
  topicIds?: string[];
  noTopics?: boolean;
}

export interface TopicMetadata {
  errorCode: number;
  errorMessage: string;
  name: string;
  topicId: string;
  partitions: PartitionMetadata[];
}

export interface MetadataResponse {
  errorCode: number;
  errorMessage: string;
  clusterId: string;
  controllerId: number;
  brokers: Broker[];
  topics: TopicMetadata[];
}

export type DescribeClusterRequest = Record<string, never>;

export interface QuorumVoter {
  id: number;
  lag: number;
  isLeader: boolean;
}

export interface DescribeClusterResponse {
  errorCode: number;
  errorMessage: string;
  clusterId: string;
  controllerId: number;
  brokers: Broker[];
  voters: QuorumVoter[];
}

// ─── admin ───

export interface CreatableTopic {
  name: string;
  numPartitions?: number;
  replicationFactor?: number;
  assignments?: ReplicaAssignment[];
  configs?: Record<string, string>;
}

export interface CreateTopicsRequest {
  topics: CreatableTopic[];
  timeoutMs?: number;
  validateOnly?: boolean;
}

export interface CreatableTopicResult {
  name: string;
  topicId: string;
  errorCode: number;
  errorMessage: string;
  numPartitions: number;
  replicationFactor: number;
  configs: ConfigEntry[];
}

export interface CreateTopicsResponse {
  errorCode: number;
  errorMessage: string;
  topics: CreatableTopicResult[];
}

export interface DeleteTopicsRequest {
  names?: string[];
  topicIds?: string[];
  timeoutMs?: number;
}

export interface DeletableTopicResult {
  name: string;
  topicId: string;
  errorCode: number;
  errorMessage: string;
}

export interface DeleteTopicsResponse {
  errorCode: number;
  errorMessage: string;
  topics: DeletableTopicResult[];
}

export interface CreatePartitionsTopic {
  name: string;
  count: number;
  assignments?: ReplicaAssignment[];
}

export interface CreatePartitionsRequest {
  topics: CreatePartitionsTopic[];
  timeoutMs?: number;
  validateOnly?: boolean;
}

export interface CreatePartitionsTopicResult {
  name: string;
  errorCode: number;
  errorMessage: string;
}

export interface CreatePartitionsResponse {
  errorCode: number;
  errorMessage: string;
  topics: CreatePartitionsTopicResult[];
}

export interface DescribeTopicsRequest {
  names?: string[];
  topicIds?: string[];
}

export interface TopicDescription {
  errorCode: number;
  errorMessage: string;
  name: string;
  topicId: string;
  partitions: PartitionMetadata[];
  configs: ConfigEntry[];
}

export interface DescribeTopicsResponse {
  errorCode: number;
  errorMessage: string;
  topics: TopicDescription[];
}

// ─── Produce ───

export interface PartitionProduceData {
  partition: number;
  records: Buffer;
}

export interface TopicProduceData {
  name?: string;
  topicId?: string;
  partitions: PartitionProduceData[];
}

export interface ProduceRequest {
  correlationId?: number;
  /** -1 (all), 1, 0; unset means -1. */
  acks?: number;
  timeoutMs?: number;
  topicData: TopicProduceData[];
}

export interface PartitionProduceResponse {
  partition: number;
  errorCode: number;
  errorMessage: string;
  baseOffset: number;
  logAppendTimeMs: number;
  logStartOffset: number;
  currentLeader: LeaderHint | null;
}

export interface TopicProduceResponse {
  name: string;
  topicId: string;
  partitions: PartitionProduceResponse[];
}

export interface ProduceResponse {
  correlationId: number;
  errorCode: number;
  errorMessage: string;
  responses: TopicProduceResponse[];
}

// ─── Fetch ───

export interface FetchPartition {
  partition: number;
  fetchOffset: number;
  partitionMaxBytes?: number;
}

export interface FetchTopic {
  name?: string;
  topicId?: string;
  partitions: FetchPartition[];
}

export interface FetchRequest {
  correlationId?: number;
  maxWaitMs?: number;
  minBytes?: number;
  maxBytes?: number;
  topics: FetchTopic[];
}

export interface FetchPartitionData {
  partition: number;
  errorCode: number;
  errorMessage: string;
  highWatermark: number;
  lastStableOffset: number;
  logStartOffset: number;
  records: Buffer;
  currentLeader: LeaderHint | null;
}

export interface FetchTopicResponse {
  name: string;
  topicId: string;
  partitions: FetchPartitionData[];
}

export interface FetchResponse {
  correlationId: number;
  errorCode: number;
  errorMessage: string;
  responses: FetchTopicResponse[];
}

// ─── ListOffsets ───

export const LATEST_TIMESTAMP = -1;
export const EARLIEST_TIMESTAMP = -2;

export interface ListOffsetsPartition {
  partition: number;
  timestamp: number;
}

export interface ListOffsetsTopic {
  name?: string;
  topicId?: string;
  partitions: ListOffsetsPartition[];
}

export interface ListOffsetsRequest {
  topics: ListOffsetsTopic[];
}

export interface ListOffsetsPartitionResponse {
  partition: number;
  errorCode: number;
  errorMessage: string;
  offset: number;
  timestamp: number;
  currentLeader: LeaderHint | null;
}

export interface ListOffsetsTopicResponse {
  name: string;
  topicId: string;
  partitions: ListOffsetsPartitionResponse[];
}

export interface ListOffsetsResponse {
  errorCode: number;
  errorMessage: string;
  topics: ListOffsetsTopicResponse[];
}

// ─── IncrementalAlterConfigs ───

/** Kafka's ConfigResource.Type ids (the ones the API accepts). */
export const CONFIG_RESOURCE_TOPIC = 2;
/** With an empty name: the cluster-wide default. */
export const CONFIG_RESOURCE_BROKER = 4;
/** Kafka's AlterConfigOp.OpType ids (the ones the API accepts). */
export const CONFIG_OP_SET = 0;
export const CONFIG_OP_DELETE = 1;

export interface AlterableConfig {
  name: string;
  /** CONFIG_OP_SET or CONFIG_OP_DELETE. */
  operation?: number;
  /** Used with SET only. */
  value?: string;
}

export interface AlterConfigsResource {
  /** CONFIG_RESOURCE_TOPIC, or CONFIG_RESOURCE_BROKER with name '' (the cluster default). */
  resourceType: number;
  resourceName: string;
  configs: AlterableConfig[];
}

export interface IncrementalAlterConfigsRequest {
  resources: AlterConfigsResource[];
  validateOnly?: boolean;
  timeoutMs?: number;
}

export interface AlterConfigsResourceResponse {
  errorCode: number;
  errorMessage: string;
  resourceType: number;
  resourceName: string;
}

export interface IncrementalAlterConfigsResponse {
  errorCode: number;
  errorMessage: string;
  resources: AlterConfigsResourceResponse[];
}

// ─── ElectLeaders ───

/** Kafka's ElectionType ids. */
export const ELECTION_PREFERRED = 0;
export const ELECTION_UNCLEAN = 1;

export interface ElectLeadersTopic {
  name: string;
  partitions: number[];
}

export interface ElectLeadersRequest {
  /** ELECTION_PREFERRED (default) or ELECTION_UNCLEAN. */
  electionType?: number;
  /** Empty or absent: every partition. */
  topics?: ElectLeadersTopic[];
  timeoutMs?: number;
}

export interface PartitionElectionResult {
  partition: number;
  errorCode: number;
  errorMessage: string;
  /** The leader after the election; -1: none or unknown. */
  leaderId: number;
}

export interface ElectLeadersTopicResult {
  name: string;
  partitions: PartitionElectionResult[];
}

export interface ElectLeadersResponse {
  errorCode: number;
  errorMessage: string;
  topics: ElectLeadersTopicResult[];
}

// ─── InitProducerId ───

export interface InitProducerIdRequest {
  /** Must be empty (no transactions yet). */
  transactionalId?: string;
  /** Ignored without a transactional id. */
  transactionTimeoutMs?: number;
}

export interface InitProducerIdResponse {
  errorCode: number;
  errorMessage: string;
  /** -1 on error. */
  producerId: number;
  /** 0 for a fresh id; -1 on error. */
  producerEpoch: number;
}

// ─── the service ───

export type RaftkaService = {
  Metadata: readonly [MetadataRequest, MetadataResponse];
  DescribeCluster: readonly [DescribeClusterRequest, DescribeClusterResponse];
  CreateTopics: readonly [CreateTopicsRequest, CreateTopicsResponse];
  DeleteTopics: readonly [DeleteTopicsRequest, DeleteTopicsResponse];
  CreatePartitions: readonly [CreatePartitionsRequest, CreatePartitionsResponse];
  DescribeTopics: readonly [DescribeTopicsRequest, DescribeTopicsResponse];
  IncrementalAlterConfigs: readonly [IncrementalAlterConfigsRequest, IncrementalAlterConfigsResponse];
  ElectLeaders: readonly [ElectLeadersRequest, ElectLeadersResponse];
  Produce: readonly [ProduceRequest, ProduceResponse];
  ProduceStream: readonly [ProduceRequest, ProduceResponse];
  Fetch: readonly [FetchRequest, FetchResponse];
  FetchStream: readonly [FetchRequest, FetchResponse];
  ListOffsets: readonly [ListOffsetsRequest, ListOffsetsResponse];
  InitProducerId: readonly [InitProducerIdRequest, InitProducerIdResponse];
};

export const RAFTKA_SERVICE = 'raftka.v1.Raftka';

export const RaftkaRpc = defineService<RaftkaService>(loadProto('raftka.proto'), RAFTKA_SERVICE, [
  'Metadata',
  'DescribeCluster',
  'CreateTopics',
  'DeleteTopics',
  'CreatePartitions',
  'DescribeTopics',
  'IncrementalAlterConfigs',
  'ElectLeaders',
  'Produce',
  'ProduceStream',
  'Fetch',
  'FetchStream',
  'ListOffsets',
  'InitProducerId',
]);
