// Controller RPCs over gRPC (proto/broker.proto, service raftka.internal.Controller):
// broker registration and heartbeats, AlterPartition from partition leaders, controlled
// shutdown, and admin requests forwarded from any broker [KIP-590, KIP-631].
//
// Server: `addControllerService` serves whatever ControllerRpcHandler node.ts plugs in
// (the active controller, or a stand-in answering NOT_CONTROLLER on other nodes).
// Client: `GrpcControllerClient` calls the node that `controllerAddress()` names now
// (node.ts answers from the metadata image / Raft leader), so after a controller change
// the next call goes to the new one. It implements ControllerClient, so the replica
// manager's AlterPartition goes straight over it, and AdminClient, so the client API can
// forward admin requests with it. A call that cannot reach a controller rejects with
// NOT_CONTROLLER (retriable); callers retry with their own backoff.
import * as grpc from '@grpc/grpc-js';
import { ERRORS, isRaftkaError, RaftkaError } from '../common/errors.ts';
import { componentLogger, silentLogger, type Logger } from '../common/logger.ts';
import type { AlterPartitionRequest, ControllerClient } from '../broker/types.ts';
import { ControllerRpc, type ControllerService, type WireAlterPartitionRequest, type WireAlterPartitionResponse } from '../proto/broker.ts';
import { callUnary, CHANNEL_OPTIONS, isServiceError, serviceDefinition, unaryHandler, type RpcMethod } from '../proto/rpc.ts';
import type {
  AllocateProducerIdsRequest,
  AllocateProducerIdsResponse,
  AlterPartitionRpcResponse,
  BrokerHeartbeatRequest,
  BrokerHeartbeatResponse,
  BrokerRegistrationRequest,
  BrokerRegistrationResponse,
  ControlledShutdownRequest,
  ControlledShutdownResponse,
  ControllerRpcHandler,
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
} from '../server/types.ts';

function alterToWire(r: AlterPartitionRpcResponse): WireAlterPartitionResponse {
  return {
    errorCode: r.errorCode,
    errorMessage: r.errorMessage ?? '',
    isr: [...(r.isr ?? [])],
    leaderEpoch: r.leaderEpoch ?? -1,
    partitionEpoch: r.partitionEpoch ?? -1,
  };
}

function alterFromWire(w: WireAlterPartitionResponse): AlterPartitionRpcResponse {
  // The partition fields mean something only on success (see broker/types.ts).
  if (w.errorCode !== 0) return { errorCode: w.errorCode, errorMessage: w.errorMessage };
  return { errorCode: 0, errorMessage: '', isr: w.isr, leaderEpoch: w.leaderEpoch, partitionEpoch: w.partitionEpoch };
}

/** Every controller response has these; the rest of an error response is proto3 zeroes. */
const ERROR_SHAPES: { [K in keyof ControllerService]: () => ControllerService[K][1] } = {
  BrokerRegistration: () => ({ errorCode: 0, errorMessage: '', brokerEpoch: -1 }),
  BrokerHeartbeat: () => ({ errorCode: 0, errorMessage: '', isCaughtUp: false, isFenced: true, shouldShutDown: false }),
  AlterPartition: () => ({ errorCode: 0, errorMessage: '', isr: [], leaderEpoch: -1, partitionEpoch: -1 }),
  ControlledShutdown: () => ({ errorCode: 0, errorMessage: '', remainingPartitions: [] }),
  AllocateProducerIds: () => ({ errorCode: 0, errorMessage: '', producerIdStart: -1, producerIdLen: 0 }),
  CreateTopics: () => ({ errorCode: 0, errorMessage: '', topics: [] }),
  DeleteTopics: () => ({ errorCode: 0, errorMessage: '', topics: [] }),
  CreatePartitions: () => ({ errorCode: 0, errorMessage: '', topics: [] }),
  IncrementalAlterConfigs: () => ({ errorCode: 0, errorMessage: '', resources: [] }),
  ElectLeaders: () => ({ errorCode: 0, errorMessage: '', topics: [] }),
};

/** Serves the Controller service on `server` with `handler`. */
export function addControllerService(server: grpc.Server, handler: ControllerRpcHandler, logger: Logger): void {
  const log = componentLogger(logger, 'controller-rpc-server');
  const onError =
    <K extends keyof ControllerService>(what: K) =>
    (e: unknown): ControllerService[K][1] => {
      const shape = ERROR_SHAPES[what]();
      if (isRaftkaError(e)) return { ...shape, errorCode: e.code, errorMessage: e.message };
      log.error({ err: e }, `${what} failed unexpectedly`);
      return { ...shape, errorCode: ERRORS.UNKNOWN_SERVER_ERROR.code, errorMessage: `unexpected server error: ${(e as Error)?.message ?? String(e)}` };
    };
  server.addService(serviceDefinition(ControllerRpc), {
    BrokerRegistration: unaryHandler((req: BrokerRegistrationRequest) => handler.brokerRegistration(req), onError('BrokerRegistration')),
    BrokerHeartbeat: unaryHandler((req: BrokerHeartbeatRequest) => handler.brokerHeartbeat(req), onError('BrokerHeartbeat')),
    AlterPartition: unaryHandler(async (req: WireAlterPartitionRequest) => alterToWire(await handler.alterPartition({ ...req, newIsr: [...req.newIsr] })), onError('AlterPartition')),
    ControlledShutdown: unaryHandler((req: ControlledShutdownRequest) => handler.controlledShutdown(req), onError('ControlledShutdown')),
    AllocateProducerIds: unaryHandler((req: AllocateProducerIdsRequest) => handler.allocateProducerIds(req), onError('AllocateProducerIds')),
    CreateTopics: unaryHandler((req: CreateTopicsRequest) => handler.createTopics(req), onError('CreateTopics')),
    DeleteTopics: unaryHandler((req: DeleteTopicsRequest) => handler.deleteTopics(req), onError('DeleteTopics')),
    CreatePartitions: unaryHandler((req: CreatePartitionsRequest) => handler.createPartitions(req), onError('CreatePartitions')),
    IncrementalAlterConfigs: unaryHandler((req: IncrementalAlterConfigsRequest) => handler.incrementalAlterConfigs(req), onError('IncrementalAlterConfigs')),
    ElectLeaders: unaryHandler((req: ElectLeadersRequest) => handler.electLeaders(req), onError('ElectLeaders')),
  });
}

export interface GrpcControllerClientOptions {
  /** host:port of the active controller's internal listener now; undefined when none is known. */
  controllerAddress: () => string | undefined;
  /** This broker's registration epoch, sent with AlterPartition. */
  brokerEpoch?: () => number;
  /** Deadline for calls that carry no timeout of their own. */
  callTimeoutMs?: number;
  logger?: Logger;
}

/** Slack on top of an admin request's own timeout before the call itself gives up. */
const ADMIN_DEADLINE_SLACK_MS = 2_000;

export class GrpcControllerClient implements ControllerRpcHandler, ControllerClient {
  private channel: { address: string; client: grpc.Client } | undefined;
  private readonly log: Logger;
  private readonly callTimeoutMs: number;
  private closed = false;

  constructor(private readonly opts: GrpcControllerClientOptions) {
    this.log = componentLogger(opts.logger ?? silentLogger(), 'controller-rpc-client');
    this.callTimeoutMs = opts.callTimeoutMs ?? 10_000;
  }

  private client(): grpc.Client {
    if (this.closed) throw new RaftkaError('NOT_CONTROLLER', 'controller client is closed');
    const address = this.opts.controllerAddress();
    if (address === undefined) throw new RaftkaError('NOT_CONTROLLER', 'no active controller is known');
    if (this.channel?.address !== address) {
      this.channel?.client.close();
      this.channel = { address, client: new grpc.Client(address, grpc.credentials.createInsecure(), CHANNEL_OPTIONS) };
      this.log.debug({ address }, 'opened controller channel');
    }
    return this.channel.client;
  }

  private async call<Req, Res>(m: RpcMethod<Req, Res>, req: Req, timeoutMs = this.callTimeoutMs): Promise<Res> {
    const client = this.client();
    try {
      return await callUnary(client, m, req, { timeoutMs });
    } catch (e) {
      // Unreachable or slow controller: a retriable code the caller already handles.
      if (isServiceError(e)) throw new RaftkaError('NOT_CONTROLLER', `${m.name} to ${this.channel?.address}: ${e.details || e.message}`, { cause: e });
      throw e;
    }
  }

  brokerRegistration(req: BrokerRegistrationRequest): Promise<BrokerRegistrationResponse> {
    return this.call(ControllerRpc.BrokerRegistration, req);
  }

  brokerHeartbeat(req: BrokerHeartbeatRequest): Promise<BrokerHeartbeatResponse> {
    return this.call(ControllerRpc.BrokerHeartbeat, req);
  }

  async alterPartition(req: AlterPartitionRequest & { brokerEpoch?: number }): Promise<AlterPartitionRpcResponse> {
    const wire: WireAlterPartitionRequest = {
      brokerId: req.brokerId,
      brokerEpoch: req.brokerEpoch ?? this.opts.brokerEpoch?.() ?? -1,
      topicId: req.topicId,
      partition: req.partition,
      leaderEpoch: req.leaderEpoch,
      partitionEpoch: req.partitionEpoch,
      newIsr: req.newIsr,
    };
    return alterFromWire(await this.call(ControllerRpc.AlterPartition, wire));
  }

  controlledShutdown(req: ControlledShutdownRequest): Promise<ControlledShutdownResponse> {
    return this.call(ControllerRpc.ControlledShutdown, req);
  }

  allocateProducerIds(req: AllocateProducerIdsRequest): Promise<AllocateProducerIdsResponse> {
    return this.call(ControllerRpc.AllocateProducerIds, req);
  }

  createTopics(req: CreateTopicsRequest): Promise<CreateTopicsResponse> {
    return this.call(ControllerRpc.CreateTopics, req, (req.timeoutMs ?? this.callTimeoutMs) + ADMIN_DEADLINE_SLACK_MS);
  }

  deleteTopics(req: DeleteTopicsRequest): Promise<DeleteTopicsResponse> {
    return this.call(ControllerRpc.DeleteTopics, req, (req.timeoutMs ?? this.callTimeoutMs) + ADMIN_DEADLINE_SLACK_MS);
  }

  createPartitions(req: CreatePartitionsRequest): Promise<CreatePartitionsResponse> {
    return this.call(ControllerRpc.CreatePartitions, req, (req.timeoutMs ?? this.callTimeoutMs) + ADMIN_DEADLINE_SLACK_MS);
  }

  incrementalAlterConfigs(req: IncrementalAlterConfigsRequest): Promise<IncrementalAlterConfigsResponse> {
    return this.call(ControllerRpc.IncrementalAlterConfigs, req, (req.timeoutMs ?? this.callTimeoutMs) + ADMIN_DEADLINE_SLACK_MS);
  }

  electLeaders(req: ElectLeadersRequest): Promise<ElectLeadersResponse> {
    return this.call(ControllerRpc.ElectLeaders, req, (req.timeoutMs ?? this.callTimeoutMs) + ADMIN_DEADLINE_SLACK_MS);
  }

  close(): void {
    this.closed = true;
    this.channel?.client.close();
    this.channel = undefined;
  }
}
