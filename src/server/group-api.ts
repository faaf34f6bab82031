// The consumer-group API (proto/group.proto, service raftka.v1.Groups) on the client API
// server: FindCoordinator answers from the metadata image (creating `__consumer_offsets`
// through the controller the first time, as Kafka does); everything else goes to this
// broker's GroupCoordinator, which answers NOT_COORDINATOR for groups it does not serve.
// As in client-api.ts, errors are codes inside responses and nothing throws past
// `unaryHandler`.
import * as grpc from '@grpc/grpc-js';
import { ERRORS, isRaftkaError, type ErrorName } from '../common/errors.ts';
import { componentLogger, type Logger } from '../common/logger.ts';
import { OFFSETS_TOPIC, type GroupCoordinator } from '../group/coordinator.ts';
import { groupPartition } from '../group/records.ts';
import { serviceDefinition, unaryHandler } from '../proto/rpc.ts';
import {
  GroupsRpc,
  type DeleteGroupsRequest,
  type DescribeGroupsRequest,
  type FindCoordinatorRequest,
  type FindCoordinatorResponse,
  type HeartbeatRequest,
  type JoinGroupRequest,
  type LeaveGroupRequest,
  type ListGroupsRequest,
  type OffsetCommitRequest,
  type OffsetFetchRequest,
  type SyncGroupRequest,
} from '../proto/group.ts';
import type { AdminClient, MetadataView } from './types.ts';

export interface GroupApiOptions {
  brokerId: number;
  metadata: () => MetadataView;
  admin: AdminClient;
  coordinator: GroupCoordinator;
  /** `__consumer_offsets` settings (offsets.topic.*). */
  offsetsTopic: { partitions: number; replicationFactor: number };
  logger: Logger;
}

const GROUP_ID_MAX = 255;

function err(name: ErrorName, message: string): { errorCode: number; errorMessage: string } {
  return { errorCode: ERRORS[name].code, errorMessage: message };
}

/** The caller's address as the coordinator reports it (DescribeGroups client_host). */
function peerHost(call: grpc.ServerUnaryCall<unknown, unknown>): string {
  const peer = call.getPeer();
  const i = peer.lastIndexOf(':');
  return i > 0 ? peer.slice(0, i) : peer;
}

function clientIdOf(call: grpc.ServerUnaryCall<unknown, unknown>): string {
  const v = call.metadata.get('client-id')[0];
  return typeof v === 'string' ? v : '';
}

export class GroupApiHandlers {
  private creating: Promise<void> | undefined;
  private readonly log: Logger;

  constructor(private readonly opts: GroupApiOptions) {
    this.log = componentLogger(opts.logger, 'group-api', { brokerId: opts.brokerId });
  }

  async findCoordinator(req: FindCoordinatorRequest): Promise<FindCoordinatorResponse> {
    const none = { nodeId: -1, host: '', port: -1 };
    if ((req.keyType ?? 0) !== 0) return { ...err('INVALID_REQUEST', `key_type ${req.keyType} is not supported; 0 (group) is`), ...none };
    if (req.key === '' || req.key.length > GROUP_ID_MAX) return { ...err('INVALID_GROUP_ID', req.key === '' ? 'the group id is empty' : `a group id is at most ${GROUP_ID_MAX} characters`), ...none };
    const view = this.opts.metadata();
    const topic = view.topicByName(OFFSETS_TOPIC);
    if (!topic) {
      this.createOffsetsTopic(view);
      return { ...err('COORDINATOR_NOT_AVAILABLE', `${OFFSETS_TOPIC} is being created; retry`), ...none };
    }
    // From this image, not the coordinator's: that one learns the partition count only
    // after this broker has reconciled the image.
    const p = topic.partitions[groupPartition(req.key, topic.partitions.length)];
    const leader = p && p.leader >= 0 ? view.broker(p.leader) : undefined;
    if (!p || !leader || leader.fenced) return { ...err('COORDINATOR_NOT_AVAILABLE', `${OFFSETS_TOPIC}-${p?.partition ?? '?'} has no leader right now`), ...none };
    return { errorCode: 0, errorMessage: '', nodeId: leader.id, host: leader.host, port: leader.port };
  }

  /** Creates `__consumer_offsets` once (in the background; FindCoordinator is retried). */
  private createOffsetsTopic(view: MetadataView): void {
    if (this.creating) return;
    const live = view.brokers().filter((b) => !b.fenced).length;
    const rf = Math.max(1, Math.min(this.opts.offsetsTopic.replicationFactor, live));
    this.creating = this.opts.admin
      .createTopics({
        topics: [
          {
            name: OFFSETS_TOPIC,
            numPartitions: this.opts.offsetsTopic.partitions,
            replicationFactor: rf,
            configs: { 'cleanup.policy': 'compact', 'min.insync.replicas': String(rf >= 3 ? 2 : 1) },
          },
        ],
      })
      .then((r) => {
        const t = r.topics[0];
        if (t && t.errorCode !== 0 && t.errorCode !== ERRORS.TOPIC_ALREADY_EXISTS.code) this.log.warn({ errorCode: t.errorCode, error: t.errorMessage }, `creating ${OFFSETS_TOPIC} failed`);
        else this.log.info({ partitions: this.opts.offsetsTopic.partitions, replicationFactor: rf }, `created ${OFFSETS_TOPIC}`);
      })
      .catch((e: unknown) => this.log.warn({ err: (e as Error).message }, `creating ${OFFSETS_TOPIC} failed`))
      .finally(() => {
        this.creating = undefined;
      });
  }
}

function topLevel(e: unknown, what: string, log: Logger): { errorCode: number; errorMessage: string } {
  if (isRaftkaError(e)) return { errorCode: e.code, errorMessage: e.message };
  log.error({ err: e }, `${what} failed`);
  return err('UNKNOWN_SERVER_ERROR', `${what} failed on the broker: ${(e as Error).message}`);
}

export function addGroupService(server: grpc.Server, opts: GroupApiOptions): GroupApiHandlers {
  const h = new GroupApiHandlers(opts);
  const c = opts.coordinator;
  const log = componentLogger(opts.logger, 'group-api', { brokerId: opts.brokerId });
  const onError =
    (what: string, empty: Record<string, unknown>) =>
    <T>(e: unknown): T =>
      ({ ...topLevel(e, what, log), ...empty }) as T;
  const impl: grpc.UntypedServiceImplementation = {
    FindCoordinator: unaryHandler((req: FindCoordinatorRequest) => h.findCoordinator(req), onError('FindCoordinator', { nodeId: -1, host: '', port: -1 })),
    // JoinGroup waits for the rebalance (bounded by the group's rebalance timeout, the
    // coordinator's tick ends it). A cancelled call needs nothing undone: as in Kafka the
    // member still counts as joined, and its retry with the same member id is answered at
    // once with the generation it missed (or supersedes the waiting join).
    JoinGroup: unaryHandler(
      (req: JoinGroupRequest, call) => c.joinGroup(req, clientIdOf(call), peerHost(call)),
      onError('JoinGroup', { generationId: -1, protocolType: '', protocolName: '', leader: '', memberId: '', members: [], skipAssignment: false }),
    ),
    SyncGroup: unaryHandler((req: SyncGroupRequest) => c.syncGroup(req), onError('SyncGroup', { protocolType: '', protocolName: '', assignment: Buffer.alloc(0) })),
    Heartbeat: unaryHandler(async (req: HeartbeatRequest) => c.heartbeat(req), onError('Heartbeat', {})),
    LeaveGroup: unaryHandler(async (req: LeaveGroupRequest) => c.leaveGroup(req), onError('LeaveGroup', { members: [] })),
    OffsetCommit: unaryHandler((req: OffsetCommitRequest) => c.offsetCommit(req), onError('OffsetCommit', { topics: [] })),
    OffsetFetch: unaryHandler(async (req: OffsetFetchRequest) => c.offsetFetch(req), onError('OffsetFetch', { topics: [] })),
    DescribeGroups: unaryHandler(async (req: DescribeGroupsRequest) => c.describeGroups(req.groups), onError('DescribeGroups', { groups: [] })),
    ListGroups: unaryHandler(async (req: ListGroupsRequest) => c.listGroups(req.statesFilter ?? []), onError('ListGroups', { groups: [] })),
    DeleteGroups: unaryHandler((req: DeleteGroupsRequest) => c.deleteGroups(req.groups), onError('DeleteGroups', { results: [] })),
  };
  server.addService(serviceDefinition(GroupsRpc), impl);
  return h;
}
