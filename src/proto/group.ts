// TypeScript shapes of proto/group.proto (package raftka.v1, service Groups): the group
// coordinator's API. Conventions as in raftka.ts: camelCase field names, int64 as
// numbers, bytes as Buffers; decoded messages carry every field.
import { defineService, loadProto } from './rpc.ts';

export interface Status {
  errorCode: number;
  errorMessage: string;
}

export interface FindCoordinatorRequest {
  key: string;
  keyType?: number;
}

export interface FindCoordinatorResponse extends Status {
  nodeId: number;
  host: string;
  port: number;
}

export interface JoinGroupProtocol {
  name: string;
  metadata: Buffer;
}

export interface JoinGroupRequest {
  groupId: string;
  sessionTimeoutMs: number;
  rebalanceTimeoutMs?: number;
  memberId?: string;
  groupInstanceId?: string;
  protocolType: string;
  protocols: JoinGroupProtocol[];
  reason?: string;
}

export interface JoinGroupMember {
  memberId: string;
  groupInstanceId: string;
  metadata: Buffer;
}

export interface JoinGroupResponse extends Status {
  generationId: number;
  protocolType: string;
  protocolName: string;
  leader: string;
  memberId: string;
  members: JoinGroupMember[];
  skipAssignment: boolean;
}

export interface SyncGroupAssignment {
  memberId: string;
  assignment: Buffer;
}

export interface SyncGroupRequest {
  groupId: string;
  generationId: number;
  memberId: string;
  groupInstanceId?: string;
  protocolType?: string;
  protocolName?: string;
  assignments?: SyncGroupAssignment[];
}

export interface SyncGroupResponse extends Status {
  protocolType: string;
  protocolName: string;
  assignment: Buffer;
}

export interface HeartbeatRequest {
  groupId: string;
  generationId: number;
  memberId: string;
  groupInstanceId?: string;
}

export type HeartbeatResponse = Status;

export interface LeaveGroupMember {
  memberId: string;
  groupInstanceId?: string;
  reason?: string;
}

export interface LeaveGroupRequest {
  groupId: string;
  members: LeaveGroupMember[];
}

export interface LeaveGroupMemberResponse extends Status {
  memberId: string;
  groupInstanceId: string;
}

export interface LeaveGroupResponse extends Status {
  members: LeaveGroupMemberResponse[];
}

export interface OffsetCommitPartition {
  partition: number;
  committedOffset: number;
  committedLeaderEpoch?: number;
  committedMetadata?: string;
}

export interface OffsetCommitTopic {
  name: string;
  partitions: OffsetCommitPartition[];
}

export interface OffsetCommitRequest {
  groupId: string;
  generationId: number;
  memberId?: string;
  groupInstanceId?: string;
  topics: OffsetCommitTopic[];
}

export interface OffsetCommitPartitionResponse extends Status {
  partition: number;
}

export interface OffsetCommitTopicResponse {
  name: string;
  partitions: OffsetCommitPartitionResponse[];
}

export interface OffsetCommitResponse extends Status {
  topics: OffsetCommitTopicResponse[];
}

export interface OffsetFetchTopic {
  name: string;
  partitions?: number[];
}

export interface OffsetFetchRequest {
  groupId: string;
  topics?: OffsetFetchTopic[];
}

export interface OffsetFetchPartitionResponse extends Status {
  partition: number;
  committedOffset: number;
  committedLeaderEpoch: number;
  metadata: string;
}

export interface OffsetFetchTopicResponse {
  name: string;
  partitions: OffsetFetchPartitionResponse[];
}

export interface OffsetFetchResponse extends Status {
  topics: OffsetFetchTopicResponse[];
}

export interface DescribeGroupsRequest {
  groups: string[];
}

export interface DescribedGroupMember {
  memberId: string;
  groupInstanceId: string;
  clientId: string;
  clientHost: string;
  memberMetadata: Buffer;
  memberAssignment: Buffer;
}

export interface DescribedGroup extends Status {
  groupId: string;
  groupState: string;
  protocolType: string;
  protocolData: string;
  members: DescribedGroupMember[];
  generationId: number;
  leader: string;
}

export interface DescribeGroupsResponse extends Status {
  groups: DescribedGroup[];
}

export interface ListGroupsRequest {
  statesFilter?: string[];
}

export interface ListedGroup {
  groupId: string;
  protocolType: string;
  groupState: string;
}

export interface ListGroupsResponse extends Status {
  groups: ListedGroup[];
}

export interface DeleteGroupsRequest {
  groups: string[];
}

export interface DeletableGroupResult extends Status {
  groupId: string;
}

export interface DeleteGroupsResponse extends Status {
  results: DeletableGroupResult[];
}

export type GroupsService = {
  FindCoordinator: readonly [FindCoordinatorRequest, FindCoordinatorResponse];
  JoinGroup: readonly [JoinGroupRequest, JoinGroupResponse];
  SyncGroup: readonly [SyncGroupRequest, SyncGroupResponse];
  Heartbeat: readonly [HeartbeatRequest, HeartbeatResponse];
  LeaveGroup: readonly [LeaveGroupRequest, LeaveGroupResponse];
  OffsetCommit: readonly [OffsetCommitRequest, OffsetCommitResponse];
  OffsetFetch: readonly [OffsetFetchRequest, OffsetFetchResponse];
  DescribeGroups: readonly [DescribeGroupsRequest, DescribeGroupsResponse];
  ListGroups: readonly [ListGroupsRequest, ListGroupsResponse];
  DeleteGroups: readonly [DeleteGroupsRequest, DeleteGroupsResponse];
};

export const GROUPS_SERVICE = 'raftka.v1.Groups';

export const GroupsRpc = defineService<GroupsService>(loadProto('group.proto'), GROUPS_SERVICE, [
  'FindCoordinator',
  'JoinGroup',
  'SyncGroup',
  'Heartbeat',
  'LeaveGroup',
  'OffsetCommit',
  'OffsetFetch',
  'DescribeGroups',
  'ListGroups',
  'DeleteGroups',
]);
