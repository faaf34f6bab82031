// Replica fetch over gRPC (proto/broker.proto, service raftka.internal.BrokerReplication).
//
// Client: one long-lived channel per leader broker, with the data-path HTTP/2 window
// (DATA_CHANNEL_OPTIONS: a 1 MiB response would otherwise wait on ~16 window updates),
// created on first use and re-pointed when the address book changes. A fetch that
// cannot reach its leader rejects; the replica fetcher backs off and retries, and the
// metadata image moves the partition on if the leader is really gone. Keepalive on the
// channel makes a silent leader fail the call in about 2 s; a killed one fails at once.
//
// Server: decodes, bounds the request (wait, sizes, offsets) and calls the replica
// manager's `handleReplicaFetch`. Errors travel as codes; an unexpected exception is
// logged and answered UNKNOWN_SERVER_ERROR.
import * as grpc from '@grpc/grpc-js';
import { ERRORS, isRaftkaError, RaftkaError } from '../common/errors.ts';
import { componentLogger, silentLogger, type Logger } from '../common/logger.ts';
import type { ReplicaFetchClient, ReplicaFetchRequest, ReplicaFetchResponse } from '../broker/types.ts';
import { BrokerReplicationRpc, type WireReplicaFetchRequest, type WireReplicaFetchResponse } from '../proto/broker.ts';
import { callUnary, DATA_CHANNEL_OPTIONS, serviceDefinition, unaryHandler } from '../proto/rpc.ts';
import type { ReplicaFetchHandler } from '../server/types.ts';

/** A replica fetch waits at most this long on the leader; longer requests are refused. */
export const REPLICA_FETCH_WAIT_MS_MAX = 30_000;
/** Slack on top of a fetch's max wait before the client gives up on the call. */
const CALL_DEADLINE_SLACK_MS = 5_000;

export function toWireRequest(r: ReplicaFetchRequest): WireReplicaFetchRequest {
  return r;
}

export function fromWireResponse(w: WireReplicaFetchResponse): ReplicaFetchResponse {
  return {
    errorCode: w.errorCode,
    sessionId: w.sessionId,
    partitions: w.partitions.map((p) => ({
      topicId: p.topicId,
      partition: p.partition,
      errorCode: p.errorCode,
      highWatermark: p.highWatermark,
      logStartOffset: p.logStartOffset,
      logEndOffset: p.logEndOffset,
      divergingEpoch: p.divergingEpoch ? { epoch: p.divergingEpoch.epoch, endOffset: p.divergingEpoch.endOffset } : undefined,
      records: p.records,
    })),
  };
}

export function toWireResponse(r: ReplicaFetchResponse): WireReplicaFetchResponse {
  return {
    errorCode: r.errorCode,
    sessionId: r.sessionId,
    partitions: r.partitions.map((p) => ({
      topicId: p.topicId,
      partition: p.partition,
      errorCode: p.errorCode,
      highWatermark: p.highWatermark,
      logStartOffset: p.logStartOffset,
      logEndOffset: p.logEndOffset,
      divergingEpoch: p.divergingEpoch ? { epoch: p.divergingEpoch.epoch, endOffset: p.divergingEpoch.endOffset } : null,
      records: p.records,
    })),
  };
}

export interface GrpcReplicaFetchClientOptions {
  /** brokerId → host:port of each broker's internal listener; more can be set later. */
  addresses?: ReadonlyMap<number, string>;
  logger?: Logger;
  /** Defaults to DATA_CHANNEL_OPTIONS (the benchmark compares others). */
  channelOptions?: grpc.ChannelOptions;
}

interface Channel {
  readonly address: string;
  readonly client: grpc.Client;
}

export class GrpcReplicaFetchClient implements ReplicaFetchClient {
  private readonly addresses = new Map<number, string>();
  private readonly channels = new Map<number, Channel>();
  private readonly log: Logger;
  private readonly channelOptions: grpc.ChannelOptions;
  private closed = false;

  constructor(opts: GrpcReplicaFetchClientOptions = {}) {
    this.log = componentLogger(opts.logger ?? silentLogger(), 'replica-fetch-client');
    this.channelOptions = opts.channelOptions ?? DATA_CHANNEL_OPTIONS;
    for (const [id, addr] of opts.addresses ?? []) this.addresses.set(id, addr);
  }

  /** Sets or changes a broker's address; an open channel to an old address is closed. */
  setAddress(brokerId: number, address: string): void {
    this.addresses.set(brokerId, address);
    const ch = this.channels.get(brokerId);
    if (ch && ch.address !== address) {
      ch.client.close();
      this.channels.delete(brokerId);
    }
  }

  removeBroker(brokerId: number): void {
    this.addresses.delete(brokerId);
    this.channels.get(brokerId)?.client.close();
    this.channels.delete(brokerId);
  }

  private channel(brokerId: number): grpc.Client {
    const address = this.addresses.get(brokerId);
    if (address === undefined) throw new RaftkaError('BROKER_NOT_AVAILABLE', `no address known for broker ${brokerId}`);
    let ch = this.channels.get(brokerId);
    if (!ch || ch.address !== address) {
      ch?.client.close();
      ch = { address, client: new grpc.Client(address, grpc.credentials.createInsecure(), this.channelOptions) };
      this.channels.set(brokerId, ch);
      this.log.debug({ brokerId, address }, 'opened replica fetch channel');
    }
    return ch.client;
  }

  async fetch(leaderId: number, request: ReplicaFetchRequest, signal: AbortSignal): Promise<ReplicaFetchResponse> {
    if (this.closed) throw new RaftkaError('BROKER_NOT_AVAILABLE', 'replica fetch client is closed');
    const client = this.channel(leaderId);
    const wire = await callUnary(client, BrokerReplicationRpc.ReplicaFetch, toWireRequest(request), {
      timeoutMs: request.maxWaitMs + CALL_DEADLINE_SLACK_MS,
      signal,
    });
    return fromWireResponse(wire);
  }

  close(): void {
    this.closed = true;
    for (const ch of this.channels.values()) ch.client.close();
    this.channels.clear();
  }
}

/** Why a replica fetch request is malformed, or undefined when it is fine. */
export function checkReplicaFetchRequest(r: WireReplicaFetchRequest): string | undefined {
  if (!Number.isInteger(r.replicaId) || r.replicaId < 0) return `replica id ${r.replicaId} is invalid`;
  if (!Number.isInteger(r.maxWaitMs) || r.maxWaitMs < 0 || r.maxWaitMs > REPLICA_FETCH_WAIT_MS_MAX) return `max_wait_ms ${r.maxWaitMs} is outside [0, ${REPLICA_FETCH_WAIT_MS_MAX}]`;
  if (r.maxBytes < 0 || r.minBytes < 0) return 'byte bounds must not be negative';
  if (!Number.isInteger(r.sessionEpoch) || r.sessionEpoch < 0) return `session epoch ${r.sessionEpoch} is invalid`;
  if (r.sessionEpoch === 0 && r.forgotten.length > 0) return 'a full fetch (session epoch 0) cannot forget partitions';
  for (const p of r.partitions) {
    if (!Number.isSafeInteger(p.fetchOffset) || p.fetchOffset < 0) return `fetch offset ${p.fetchOffset} is invalid`;
    if (!Number.isSafeInteger(p.flushedOffset) || p.flushedOffset < 0) return `flushed offset ${p.flushedOffset} is invalid`;
    if (!Number.isInteger(p.maxBytes) || p.maxBytes < 0) return `partition max bytes ${p.maxBytes} is invalid`;
  }
  return undefined;
}

/** Serves replica fetch on `server`, answered by `handler` (the replica manager). */
export function addReplicaFetchService(server: grpc.Server, handler: ReplicaFetchHandler, logger: Logger): void {
  const log = componentLogger(logger, 'replica-fetch-server');
  server.addService(serviceDefinition(BrokerReplicationRpc), {
    ReplicaFetch: unaryHandler(
      async (req: WireReplicaFetchRequest): Promise<WireReplicaFetchResponse> => {
        const bad = checkReplicaFetchRequest(req);
        if (bad) {
          log.warn({ replicaId: req.replicaId, why: bad }, 'refused a malformed replica fetch');
          return { errorCode: ERRORS.INVALID_REQUEST.code, sessionId: 0, partitions: [] };
        }
        return toWireResponse(await handler.handleReplicaFetch(req));
      },
      (e: unknown, req: WireReplicaFetchRequest): WireReplicaFetchResponse => {
        if (isRaftkaError(e)) return { errorCode: e.code, sessionId: 0, partitions: [] };
        log.error({ err: e, replicaId: req.replicaId }, 'replica fetch failed unexpectedly');
        return { errorCode: ERRORS.UNKNOWN_SERVER_ERROR.code, sessionId: 0, partitions: [] };
      },
    ),
  });
}
