// An in-process gRPC interposer between the SDK and one real broker: it serves the
// public API on its own port, forwards to the broker, and lets a test decide the fate of
// every produce request (delay it, lose it before or after the broker sees it, send it
// twice). Metadata answers name the interposers instead of the brokers, so the SDK's
// every produce goes through one. Only what the producer uses is served (Metadata,
// InitProducerId, Produce, ProduceStream).
import * as grpc from '@grpc/grpc-js';
import { RawClient } from '../../src/client/raw-client.ts';
import { RaftkaRpc, type MetadataRequest, type MetadataResponse, type InitProducerIdRequest, type ProduceRequest, type ProduceResponse } from '../../src/proto/raftka.ts';
import { bindServer, serviceDefinition, SERVER_OPTIONS, shutdownServer } from '../../src/proto/rpc.ts';

export type Fault = { type: 'ok' } | { type: 'delay'; ms: number } | { type: 'loseRequest' } | { type: 'loseResponse' } | { type: 'duplicate' };

export interface InterposerOptions {
  brokerId: number;
  /** The real broker's client address. */
  upstream: string;
  /** The interposer port standing in for each broker id (undefined: leave the broker's own). */
  portOf: (brokerId: number) => number | undefined;
  /** The fault for the next produce request (called once per request, in arrival order). */
  nextFault: () => Fault;
}

export class Interposer {
  private readonly server = new grpc.Server(SERVER_OPTIONS);
  private readonly upstream: RawClient;
  port = 0;
  /** Produce requests seen, and how many were forwarded (duplicates count twice). */
  seen = 0;
  forwarded = 0;

  constructor(private readonly opts: InterposerOptions) {
    this.upstream = new RawClient(opts.upstream, { timeoutMs: 5_000 });
  }

  get address(): string {
    return `127.0.0.1:${this.port}`;
  }

  private rewrite(md: MetadataResponse): MetadataResponse {
    return { ...md, brokers: md.brokers.map((b) => ({ ...b, host: '127.0.0.1', port: this.opts.portOf(b.id) ?? b.port })) };
  }

  private async forward(req: ProduceRequest): Promise<ProduceResponse> {
    this.forwarded++;
    return this.upstream.produce(req, { timeoutMs: (req.timeoutMs ?? 30_000) + 5_000 });
  }

  /** Plays one produce request through its fault; throws when the client must see a lost answer. */
  private async play(req: ProduceRequest): Promise<ProduceResponse> {
    this.seen++;
    const fault = this.opts.nextFault();
    if (fault.type === 'delay') await new Promise((r) => setTimeout(r, fault.ms)); // the reordering under test
    if (fault.type === 'loseRequest') throw new Error('interposer: request lost');
    const res = await this.forward(req);
    if (fault.type === 'duplicate') await this.forward(req).catch(() => undefined);
    if (fault.type === 'loseResponse') throw new Error('interposer: response lost');
    return res;
  }

  async start(): Promise<void> {
    const unary =
      <Req, Res>(fn: (req: Req) => Promise<Res>): grpc.handleUnaryCall<Req, Res> =>
      (call, cb) => {
        fn(call.request).then(
          (r) => cb(null, r),
          (e: Error) => cb({ code: grpc.status.UNAVAILABLE, details: e.message }),
        );
      };
    this.server.addService(serviceDefinition(RaftkaRpc), {
      Metadata: unary(async (req: MetadataRequest) => this.rewrite(await this.upstream.metadata(req))),
      InitProducerId: unary((req: InitProducerIdRequest) => this.upstream.initProducerId(req)),
      Produce: unary((req: ProduceRequest) => this.play(req)),
      ProduceStream: (call: grpc.ServerDuplexStream<ProduceRequest, ProduceResponse>) => {
        // A lost request or answer breaks the whole stream, as a dropped connection does:
        // the client fails every request on it and retries them on a new one.
        let broken = false;
        call.on('data', (req: ProduceRequest) => {
          this.play(req).then(
            (res) => {
              if (!broken) call.write({ ...res, correlationId: req.correlationId ?? 0 });
            },
            () => {
              if (broken) return;
              broken = true;
              // Emitting 'error' makes grpc-js end the call with this status (destroy()
              // would leave the client waiting for its deadline).
              call.emit('error', Object.assign(new Error('interposer: connection dropped'), { code: grpc.status.UNAVAILABLE }));
            },
          );
        });
        call.on('end', () => call.end());
        call.on('error', () => undefined);
      },
    });
    this.port = await bindServer(this.server, '127.0.0.1:0');
  }

  async stop(): Promise<void> {
    this.upstream.close();
    await shutdownServer(this.server, 100);
  }
}
