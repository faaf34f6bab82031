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
export const DEADLINE_SLACK_MS = 5_000;

/**
 * A stream of requests to one broker (ProduceStream, FetchStream); answers are matched by
 * correlation id, which `send` assigns (any id the request carries is replaced).
 */
export interface CorrelatedStream<Req, Res> {
  /** Rejects when the stream breaks, or with CANCELLED when `signal` aborts (the answer is then ignored). */
  send(req: Req, signal?: AbortSignal): Promise<Res>;
  /** Ends the stream once every sent request is answered (or cancels it after the client's timeout). */
  close(): Promise<void>;
  /** Cuts the stream now: requests still waiting reject. */
  cancel(): void;
}
export type ProduceStream = CorrelatedStream<ProduceRequest, ProduceResponse>;
export type FetchStream = CorrelatedStream<FetchRequest, FetchResponse>;

function cancelledError(what: string): Error {
  return Object.assign(new Error(`${what} cancelled`), { code: grpc.status.CANCELLED, details: 'cancelled by the caller' });
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

  /** Opens a ProduceStream (see CorrelatedStream). */
  produceStream(): ProduceStream {
    return this.openStream(RaftkaRpc.ProduceStream);
  }

  /** Opens a FetchStream (see CorrelatedStream): long-poll fetches without a unary call each. */
  fetchStream(): FetchStream {
    return this.openStream(RaftkaRpc.FetchStream);
  }

  /** A broken stream rejects every request still waiting on it. */
  private openStream<Req extends { correlationId?: number }, Res extends { correlationId: number }>(m: RpcMethod<Req, Res>): CorrelatedStream<Req, Res> {
    const call = this.client.makeBidiStreamRequest<Req, Res>(
      m.path,
      (v) => m.request.encode(v),
      (b) => m.response.decode(b),
      new grpc.Metadata(),
    );
    const waiting = new Map<number, { resolve(r: Res): void; reject(e: unknown): void }>();
    let nextId = 1;
    let failure: unknown;
    const failAll = (e: unknown) => {
      failure ??= e;
      for (const w of waiting.values()) w.reject(e);
      waiting.clear();
    };
    let ended: () => void = () => undefined;
    const done = new Promise<void>((resolve) => (ended = resolve));
    call.on('data', (res: Res) => {
      const w = waiting.get(res.correlationId);
      waiting.delete(res.correlationId);
      w?.resolve(res);
    });
    call.on('error', (e: Error) => {
      failAll(e);
      ended();
    });
    call.on('end', () => {
      failAll(new Error(`${m.name} ended by the server`));
      ended();
    });
    return {
      send: (req, signal) =>
        new Promise<Res>((resolve, reject) => {
          if (failure !== undefined) {
            reject(failure);
            return;
          }
          if (signal?.aborted) {
            reject(cancelledError(m.name));
            return;
          }
          const correlationId = nextId++;
          if (signal === undefined) {
            // The producer's path (one request per batch set): no listener to undo.
            waiting.set(correlationId, { resolve, reject });
          } else {
            const onAbort = () => {
              waiting.delete(correlationId);
              reject(cancelledError(m.name));
            };
            signal.addEventListener('abort', onAbort, { once: true });
            const settle = () => signal.removeEventListener('abort', onAbort);
            waiting.set(correlationId, {
              resolve: (r) => {
                settle();
                resolve(r);
              },
              reject: (e) => {
                settle();
                reject(e);
              },
            });
          }
          call.write({ ...req, correlationId });
        }),
      close: async () => {
        call.end();
        const t = setTimeout(() => call.cancel(), this.timeoutMs);
        await done;
        clearTimeout(t);
      },
      cancel: () => call.cancel(),
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

/**
 * One lazily opened stream per broker address (a producer's ProduceStreams, a consumer's
 * FetchStreams). A stream has no per-message deadline, so each request gets one here: a
 * request unanswered by then retires its stream (ended: requests already on it may still
 * be answered); a stream that failed is dropped too, and the next request opens a new one.
 */
export class StreamPerBroker<Req, Res> {
  private readonly streams = new Map<string, CorrelatedStream<Req, Res>>();

  constructor(
    private readonly what: string,
    private readonly open: (address: string) => CorrelatedStream<Req, Res>,
  ) {}

  send(address: string, req: Req, deadlineMs: number, signal?: AbortSignal): Promise<Res> {
    let stream = this.streams.get(address);
    if (!stream) this.streams.set(address, (stream = this.open(address)));
    const s = stream;
    const forget = () => {
      if (this.streams.get(address) === s) this.streams.delete(address);
    };
    return new Promise<Res>((resolve, reject) => {
      const t = setTimeout(() => {
        forget();
        void s.close().catch(() => undefined);
        reject(Object.assign(new Error(`no ${this.what} answer within ${deadlineMs} ms`), { code: grpc.status.DEADLINE_EXCEEDED, details: 'deadline exceeded' }));
      }, deadlineMs);
      s.send(req, signal).then(
        (r) => {
          clearTimeout(t);
          resolve(r);
        },
        (e: unknown) => {
          clearTimeout(t);
          if (!signal?.aborted) forget();
          reject(e as Error);
        },
      );
    });
  }

  /** Ends every stream: `drain` waits for their answers (produce), otherwise they are cut (fetch). */
  async close(drain: boolean): Promise<void> {
    const all = [...this.streams.values()];
    this.streams.clear();
    if (drain) await Promise.all(all.map((s) => s.close().catch(() => undefined)));
    else for (const s of all) s.cancel();
  }
}

/** A consumer's fetch streams: one FetchStream per broker, opened through `connect`. */
export function fetchStreams(connect: (address: string) => RawClient): StreamPerBroker<FetchRequest, FetchResponse> {
  return new StreamPerBroker('fetch', (address) => connect(address).fetchStream());
}
