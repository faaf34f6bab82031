// A thin typed client for the public API (proto/raftka.proto): one channel per broker
// address, one method per rpc, plain decoded objects back (bytes as Buffers). Errors in
// responses are returned, not thrown: the caller reads `errorCode`. Only transport
// failures reject (a grpc ServiceError). Tests and the CLI use it; the SDK (metadata
// cache, batching, retries) builds on it later.
import * as grpc from '@grpc/grpc-js';
import { callUnary, DATA_CHANNEL_OPTIONS, type CallOptions, type RpcMethod } from '../proto/rpc.ts';
import {
  RaftkaRpc,
  type CreatePartitionsRequest,
  type CreatePartitionsResponse,
  type CreateTopicsRequest,
  type CreateTopicsResponse,
  type DeleteTopicsRequest,
  type DeleteTopicsResponse,
  type DescribeClusterResponse,
  type DescribeTopicsRequest,
  type DescribeTopicsResponse,
  type ElectLeadersRequest,
  type ElectLeadersResponse,
  type IncrementalAlterConfigsRequest,
  type IncrementalAlterConfigsResponse,
  type FetchRequest,
  type FetchResponse,
  type InitProducerIdRequest,
  type InitProducerIdResponse,
  type ListOffsetsRequest,
  type ListOffsetsResponse,
  type MetadataRequest,
  type MetadataResponse,
  type ProduceRequest,
  type ProduceResponse,
} from '../proto/raftka.ts';

export interface RawClientOptions {
  /** Deadline for calls without a wait of their own (default 30 s). */
  timeoutMs?: number;
  channelOptions?: grpc.ChannelOptions;
}

/** Slack on top of a request's own wait (fetch max wait, produce or admin timeout). */
const DEADLINE_SLACK_MS = 5_000;

/** A stream of produce requests to one broker; responses are matched by correlation id. */
export interface ProduceStream {
  send(req: ProduceRequest): Promise<ProduceResponse>;
  /** Ends the stream once every sent request is answered (or rejects them after `timeoutMs`). */
  close(): Promise<void>;
}

export class RawClient {
  private readonly client: grpc.Client;
  private readonly timeoutMs: number;

  constructor(
    readonly address: string,
    opts: RawClientOptions = {},
  ) {
    // The data channel options: fetch responses carry record bytes.
    this.client = new grpc.Client(address, grpc.credentials.createInsecure(), opts.channelOptions ?? DATA_CHANNEL_OPTIONS);
    this.timeoutMs = opts.timeoutMs ?? 30_000;
  }

  private call<Req, Res>(m: RpcMethod<Req, Res>, req: Req, opts: CallOptions = {}): Promise<Res> {
    return callUnary(this.client, m, req, { timeoutMs: this.timeoutMs, ...opts });
  }

  metadata(req: MetadataRequest = {}, opts?: CallOptions): Promise<MetadataResponse> {
    return this.call(RaftkaRpc.Metadata, req, opts);
  }

  describeCluster(opts?: CallOptions): Promise<DescribeClusterResponse> {
    return this.call(RaftkaRpc.DescribeCluster, {}, opts);
  }

  createTopics(req: CreateTopicsRequest, opts?: CallOptions): Promise<CreateTopicsResponse> {
    return this.call(RaftkaRpc.CreateTopics, req, { timeoutMs: (req.timeoutMs || this.timeoutMs) + DEADLINE_SLACK_MS, ...opts });
  }

  deleteTopics(req: DeleteTopicsRequest, opts?: CallOptions): Promise<DeleteTopicsResponse> {
    return this.call(RaftkaRpc.DeleteTopics, req, { timeoutMs: (req.timeoutMs || this.timeoutMs) + DEADLINE_SLACK_MS, ...opts });
  }

  createPartitions(req: CreatePartitionsRequest, opts?: CallOptions): Promise<CreatePartitionsResponse> {
    return this.call(RaftkaRpc.CreatePartitions, req, { timeoutMs: (req.timeoutMs || this.timeoutMs) + DEADLINE_SLACK_MS, ...opts });
  }

  incrementalAlterConfigs(req: IncrementalAlterConfigsRequest, opts?: CallOptions): Promise<IncrementalAlterConfigsResponse> {
    return this.call(RaftkaRpc.IncrementalAlterConfigs, req, { timeoutMs: (req.timeoutMs || this.timeoutMs) + DEADLINE_SLACK_MS, ...opts });
  }

  electLeaders(req: ElectLeadersRequest, opts?: CallOptions): Promise<ElectLeadersResponse> {
    return this.call(RaftkaRpc.ElectLeaders, req, { timeoutMs: (req.timeoutMs || this.timeoutMs) + DEADLINE_SLACK_MS, ...opts });
  }

  describeTopics(req: DescribeTopicsRequest = {}, opts?: CallOptions): Promise<DescribeTopicsResponse> {
    return this.call(RaftkaRpc.DescribeTopics, req, opts);
  }

  produce(req: ProduceRequest, opts?: CallOptions): Promise<ProduceResponse> {
    return this.call(RaftkaRpc.Produce, req, { timeoutMs: (req.timeoutMs || this.timeoutMs) + DEADLINE_SLACK_MS, ...opts });
  }

  fetch(req: FetchRequest, opts?: CallOptions): Promise<FetchResponse> {
    return this.call(RaftkaRpc.Fetch, req, { timeoutMs: (req.maxWaitMs ?? 0) + DEADLINE_SLACK_MS, ...opts });
  }

  listOffsets(req: ListOffsetsRequest, opts?: CallOptions): Promise<ListOffsetsResponse> {
    return this.call(RaftkaRpc.ListOffsets, req, opts);
  }

  /** A fresh idempotent producer id (epoch 0) [KIP-98]; any broker answers. */
  initProducerId(req: InitProducerIdRequest = {}, opts?: CallOptions): Promise<InitProducerIdResponse> {
    return this.call(RaftkaRpc.InitProducerId, req, opts);
  }

  /**
   * Opens a ProduceStream. Each `send` gets a fresh correlation id (any id the request
   * carries is replaced). A broken stream rejects every request still waiting on it.
   */
  produceStream(): ProduceStream {
    const m = RaftkaRpc.ProduceStream;
    const call = this.client.makeBidiStreamRequest<ProduceRequest, ProduceResponse>(
      m.path,
      (v) => m.request.encode(v),
      (b) => m.response.decode(b),
      new grpc.Metadata(),
    );
    const waiting = new Map<number, { resolve(r: ProduceResponse): void; reject(e: unknown): void }>();
    let nextId = 1;
    let failure: unknown;
    const failAll = (e: unknown) => {
      failure ??= e;
      for (const w of waiting.values()) w.reject(e);
      waiting.clear();
    };
    let ended: () => void = () => undefined;
    const done = new Promise<void>((resolve) => (ended = resolve));
    call.on('data', (res: ProduceResponse) => {
      const w = waiting.get(res.correlationId);
      waiting.delete(res.correlationId);
      w?.resolve(res);
    });
    call.on('error', (e: Error) => {
      failAll(e);
      ended();
    });
    call.on('end', () => {
      failAll(new Error('produce stream ended by the server'));
      ended();
    });
    return {
      send: (req) =>
        new Promise<ProduceResponse>((resolve, reject) => {
          if (failure !== undefined) {
            reject(failure);
            return;
          }
          const correlationId = nextId++;
          waiting.set(correlationId, { resolve, reject });
          call.write({ ...req, correlationId });
        }),
      close: async () => {
        call.end();
        const t = setTimeout(() => call.cancel(), this.timeoutMs);
        await done;
        clearTimeout(t);
      },
    };
  }

  close(): void {
    this.client.close();
  }
}

/** Clients by broker address, one channel each. */
export class RawClientPool {
  private readonly clients = new Map<string, RawClient>();

  constructor(private readonly opts: RawClientOptions = {}) {}

  get(address: string): RawClient {
    let c = this.clients.get(address);
    if (!c) {
      c = new RawClient(address, this.opts);
      this.clients.set(address, c);
    }
    return c;
  }

  close(): void {
    for (const c of this.clients.values()) c.close();
    this.clients.clear();
  }
}
