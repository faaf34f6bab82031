// A one-broker stand-in for SDK tests that need to control answers: Metadata for the
// topics it is given, InitProducerId, and Produce / ProduceStream answered by a handler
// the test supplies (hold, fail, or succeed per partition). It keeps each partition's
// appended records so tests can check exactly-once and order. The SDK benchmark runs it
// in a process of its own with `answerOnly` (scripts/bench-support/broker-standin.ts).
import * as grpc from '@grpc/grpc-js';
import { RaftkaRpc, type PartitionProduceData, type ProduceRequest, type ProduceResponse } from '../../src/proto/raftka.ts';
import { bindServer, serviceDefinition, SERVER_OPTIONS, shutdownServer } from '../../src/proto/rpc.ts';
import { readBatchHeader } from '../../src/log/batch.ts';

export type ProduceHandler = (req: ProduceRequest) => Promise<ProduceResponse>;

/** A successful answer to every partition of `req`, at the base offset `baseOffsetOf` gives. */
function answer(req: ProduceRequest, baseOffsetOf: (topic: string | undefined, p: PartitionProduceData) => number): ProduceResponse {
  return {
    correlationId: req.correlationId ?? 0,
    errorCode: 0,
    errorMessage: '',
    responses: req.topicData.map((td) => ({
      name: td.name ?? '',
      topicId: '',
      partitions: td.partitions.map((p) => ({ partition: p.partition, errorCode: 0, errorMessage: '', baseOffset: baseOffsetOf(td.name, p), logAppendTimeMs: -1, logStartOffset: 0, currentLeader: null })),
    })),
  };
}

export interface FakeBrokerOptions {
  /** Keep every produce request in `requests` (default true). */
  keepRequests?: boolean;
  /** The server's HTTP/2 receive window (bindServer); grpc-js's default when unset. */
  receiveWindowBytes?: number;
}

export class FakeBroker {
  private server = new grpc.Server(SERVER_OPTIONS);
  port = 0;
  /** Produce requests seen. */
  readonly requests: ProduceRequest[] = [];
  handler: ProduceHandler = (req) => Promise.resolve(this.appendAll(req));
  private readonly logs = new Map<string, { next: number; batches: Array<{ baseOffset: number; bytes: Buffer }> }>();
  private nextProducerId = 1000;

  constructor(
    private readonly topics: Record<string, number>,
    private readonly opts: FakeBrokerOptions = {},
  ) {}

  get address(): string {
    return `127.0.0.1:${this.port}`;
  }

  /** Appends every batch of the request and answers with offsets (no dedup: tests check what arrived). */
  appendAll(req: ProduceRequest): ProduceResponse {
    return answer(req, (topic, p) => {
      const key = `${topic}-${p.partition}`;
      let log = this.logs.get(key);
      if (!log) this.logs.set(key, (log = { next: 0, batches: [] }));
      const h = readBatchHeader(p.records);
      const baseOffset = log.next;
      log.batches.push({ baseOffset, bytes: Buffer.from(p.records) });
      log.next += h.lastOffset - h.baseOffset + 1;
      return baseOffset;
    });
  }

  /** Answers every batch of the request with an offset, keeping nothing. */
  answerOnly(req: ProduceRequest): ProduceResponse {
    let offset = 0;
    return answer(req, () => (offset += 1000));
  }

  /** A produce request arrived: kept (unless keepRequests is false) and handed to `handler`. */
  private take(req: ProduceRequest): Promise<ProduceResponse> {
    if (this.opts.keepRequests !== false) this.requests.push(req);
    return this.handler(req);
  }

  batches(topic: string, partition: number): Array<{ baseOffset: number; bytes: Buffer }> {
    return this.logs.get(`${topic}-${partition}`)?.batches ?? [];
  }

  async start(): Promise<void> {
    const unary = <Req, Res>(fn: (req: Req) => Promise<Res>): grpc.handleUnaryCall<Req, Res> => (call, cb) => {
      fn(call.request).then((r) => cb(null, r), (e: Error) => cb({ code: grpc.status.INTERNAL, details: e.message }));
    };
    this.server.addService(serviceDefinition(RaftkaRpc), {
      Metadata: unary(() =>
        Promise.resolve({
          errorCode: 0,
          errorMessage: '',
          clusterId: 'fake',
          controllerId: 1,
          brokers: [{ id: 1, host: '127.0.0.1', port: this.port, rack: '', fenced: false }],
          topics: Object.entries(this.topics).map(([name, n]) => ({
            errorCode: 0,
            errorMessage: '',
            name,
            topicId: '',
            partitions: Array.from({ length: n }, (_, partition) => ({ errorCode: 0, errorMessage: '', partition, leaderId: 1, leaderEpoch: 0, replicas: [1], isr: [1], offlineReplicas: [] })),
          })),
        }),
      ),
      InitProducerId: unary(() => Promise.resolve({ errorCode: 0, errorMessage: '', producerId: this.nextProducerId++, producerEpoch: 0 })),
      Produce: unary((req: ProduceRequest) => this.take(req)),
      ProduceStream: (call: grpc.ServerDuplexStream<ProduceRequest, ProduceResponse>) => {
        call.on('data', (req: ProduceRequest) => {
          this.take(req).then(
            (res) => call.write({ ...res, correlationId: req.correlationId ?? 0 }),
            () => call.destroy(),
          );
        });
        call.on('end', () => call.end());
        call.on('error', () => undefined);
      },
    });
    this.port = await bindServer(this.server, '127.0.0.1:0', this.opts.receiveWindowBytes ?? 0);
  }

  async stop(): Promise<void> {
    await shutdownServer(this.server, 100);
  }
}
