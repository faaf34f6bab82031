// A thin typed client for the consumer-group API (proto/group.proto), like RawClient for
// raftka.proto: one channel per broker address, errors in responses returned as codes,
// only transport failures reject. The SDK consumer and the CLI build on it.
import * as grpc from '@grpc/grpc-js';
import { CHANNEL_OPTIONS, callUnary, type CallOptions, type RpcMethod } from '../proto/rpc.ts';
import {
  GroupsRpc,
  type DeleteGroupsResponse,
  type DescribeGroupsResponse,
  type FindCoordinatorResponse,
  type HeartbeatRequest,
  type HeartbeatResponse,
  type JoinGroupRequest,
  type JoinGroupResponse,
  type LeaveGroupRequest,
  type LeaveGroupResponse,
  type ListGroupsResponse,
  type OffsetCommitRequest,
  type OffsetCommitResponse,
  type OffsetFetchRequest,
  type OffsetFetchResponse,
  type SyncGroupRequest,
  type SyncGroupResponse,
} from '../proto/group.ts';

/** JoinGroup may wait out a whole rebalance; its deadline adds this to the rebalance timeout. */
const JOIN_SLACK_MS = 5_000;

export class GroupClient {
  private readonly client: grpc.Client;

  constructor(
    readonly address: string,
    private readonly timeoutMs = 30_000,
  ) {
    this.client = new grpc.Client(address, grpc.credentials.createInsecure(), CHANNEL_OPTIONS);
  }

  private call<Req, Res>(m: RpcMethod<Req, Res>, req: Req, opts: CallOptions = {}): Promise<Res> {
    return callUnary(this.client, m, req, { timeoutMs: this.timeoutMs, ...opts });
  }

  findCoordinator(groupId: string, opts?: CallOptions): Promise<FindCoordinatorResponse> {
    return this.call(GroupsRpc.FindCoordinator, { key: groupId, keyType: 0 }, opts);
  }

  joinGroup(req: JoinGroupRequest, opts?: CallOptions): Promise<JoinGroupResponse> {
    const wait = (req.rebalanceTimeoutMs || req.sessionTimeoutMs) + JOIN_SLACK_MS;
    return this.call(GroupsRpc.JoinGroup, req, { timeoutMs: wait, ...opts });
  }

  syncGroup(req: SyncGroupRequest, opts?: CallOptions): Promise<SyncGroupResponse> {
    return this.call(GroupsRpc.SyncGroup, req, opts);
  }

  heartbeat(req: HeartbeatRequest, opts?: CallOptions): Promise<HeartbeatResponse> {
    return this.call(GroupsRpc.Heartbeat, req, opts);
  }

  leaveGroup(req: LeaveGroupRequest, opts?: CallOptions): Promise<LeaveGroupResponse> {
    return this.call(GroupsRpc.LeaveGroup, req, opts);
  }

  offsetCommit(req: OffsetCommitRequest, opts?: CallOptions): Promise<OffsetCommitResponse> {
    return this.call(GroupsRpc.OffsetCommit, req, opts);
  }

  offsetFetch(req: OffsetFetchRequest, opts?: CallOptions): Promise<OffsetFetchResponse> {
    return this.call(GroupsRpc.OffsetFetch, req, opts);
  }

  describeGroups(groups: string[], opts?: CallOptions): Promise<DescribeGroupsResponse> {
    return this.call(GroupsRpc.DescribeGroups, { groups }, opts);
  }

  listGroups(statesFilter: string[] = [], opts?: CallOptions): Promise<ListGroupsResponse> {
    return this.call(GroupsRpc.ListGroups, { statesFilter }, opts);
  }

  deleteGroups(groups: string[], opts?: CallOptions): Promise<DeleteGroupsResponse> {
    return this.call(GroupsRpc.DeleteGroups, { groups }, opts);
  }

  close(): void {
    this.client.close();
  }
}
