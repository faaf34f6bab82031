// Replica fetch over a framed TCP protocol of our own: an alternative to the gRPC
// transport (replica-fetch-transport.ts) with the same ReplicaFetchClient interface, for
// node.ts to choose by measurement (scripts/bench/replica-transport.ts: on loopback it
// moves several times the bytes of grpc-js, which spends its time in HTTP/2 framing and
// copies). The request and the response header are the protobuf messages of
// proto/broker.proto; record bytes follow the header raw, never copied into a message.
//
// Frames (big-endian):
//   request   [u32 length][u8 1][u32 correlation id][ReplicaFetchRequest]
//   response  [u32 length][u8 2][u32 correlation id][u32 header length]
//             [ReplicaFetchResponse, every partition's records empty]
//             then for each partition, in header order: [u32 n][n record bytes]
// `length` counts everything after itself and is bounded by MESSAGE_BYTES_MAX; a peer
// that breaks the framing is disconnected.
//
// Liveness: a call that gets no answer within its max wait plus `deadlineSlackMs`
// (default 1.5 s, so a frozen leader is noticed within ~2 s at the fetcher's 500 ms max
// wait) destroys the connection, failing every call on it; the next fetch reconnects. A
// killed peer closes the socket, which fails the calls at once. The server drops
// connections idle for `idleTimeoutMs`.
import net from 'node:net';
import { ERRORS, isRaftkaError, RaftkaError } from '../common/errors.ts';
import { componentLogger, silentLogger, type Logger } from '../common/logger.ts';
import type { ReplicaFetchClient, ReplicaFetchRequest, ReplicaFetchResponse } from '../broker/types.ts';
import { BrokerReplicationRpc, type WireReplicaFetchRequest, type WireReplicaFetchResponse } from '../proto/broker.ts';
import { MESSAGE_BYTES_MAX } from '../proto/rpc.ts';
import { ReadBufferPool, readBuffers } from '../log/read-buffers.ts';
import type { ReplicaFetchHandler } from '../server/types.ts';
import { checkReplicaFetchRequest, fromWireResponse, toWireResponse } from './replica-fetch-transport.ts';

const KIND_REQUEST = 1;
const KIND_RESPONSE = 2;
const codec = BrokerReplicationRpc.ReplicaFetch;

/** Splits a byte stream into frames; returns undefined for a frame past the bound. */
class FrameReader {
  private chunks: Buffer[] = [];
  private have = 0;
  private need = -1;

  /** Feeds a chunk; calls `onFrame` with each whole frame body (after the length). */
  push(chunk: Buffer, onFrame: (body: Buffer) => void): string | undefined {
    this.chunks.push(chunk);
    this.have += chunk.length;
    for (;;) {
      if (this.need < 0) {
        if (this.have < 4) return undefined;
        const head = this.take(4);
        this.need = head.readUInt32BE(0);
        if (this.need < 5 || this.need > MESSAGE_BYTES_MAX) return `frame length ${this.need} is outside [5, ${MESSAGE_BYTES_MAX}]`;
      }
      if (this.have < this.need) return undefined;
      const body = this.take(this.need);
      this.need = -1;
      onFrame(body);
    }
  }

  /** Removes `n` bytes from the front (one copy only when they span chunks). */
  private take(n: number): Buffer {
    const first = this.chunks[0]!;
    let out: Buffer;
    if (first.length >= n) {
      out = first.subarray(0, n);
      if (first.length === n) this.chunks.shift();
      else this.chunks[0] = first.subarray(n);
    } else {
      out = Buffer.allocUnsafe(n);
      let pos = 0;
      while (pos < n) {
        const c = this.chunks[0]!;
        const k = Math.min(c.length, n - pos);
        c.copy(out, pos, 0, k);
        pos += k;
        if (k === c.length) this.chunks.shift();
        else this.chunks[0] = c.subarray(k);
      }
    }
    this.have -= n;
    return out;
  }
}

/**
 * The client's side of the framing: socket reads land in one reused buffer (`onread`)
 * and each frame body is copied once into a buffer of its exact size. Without it every
 * 64 KiB read allocated a fresh buffer and a frame spanning reads was copied again into
 * one more; replicating 64 KiB batches, that was most of a follower's allocations.
 */
export class FrameAssembler {
  private readonly head = Buffer.alloc(4);
  private headHave = 0;
  private frame: Buffer | undefined;
  private frameHave = 0;

  /** `frames`: where frame buffers come from (given back by whoever consumes a frame last). */
  constructor(private readonly frames?: ReadBufferPool) {}

  /** Feeds `n` bytes of `chunk` (valid only during the call); returns an error for a frame past the bound. */
  push(chunk: Buffer, n: number, onFrame: (body: Buffer) => void): string | undefined {
    let pos = 0;
    while (pos < n) {
      if (this.frame === undefined) {
        const k = Math.min(4 - this.headHave, n - pos);
        chunk.copy(this.head, this.headHave, pos, pos + k);
        this.headHave += k;
        pos += k;
        if (this.headHave < 4) return undefined;
        const need = this.head.readUInt32BE(0);
        if (need < 5 || need > MESSAGE_BYTES_MAX) return `frame length ${need} is outside [5, ${MESSAGE_BYTES_MAX}]`;
        this.frame = this.frames ? this.frames.acquire(need).subarray(0, need) : Buffer.allocUnsafe(need);
        this.frameHave = 0;
        continue;
      }
      const k = Math.min(this.frame.length - this.frameHave, n - pos);
      chunk.copy(this.frame, this.frameHave, pos, pos + k);
      this.frameHave += k;
      pos += k;
      if (this.frameHave === this.frame.length) {
        const body = this.frame;
        this.frame = undefined;
        this.headHave = 0;
        onFrame(body);
      }
    }
    return undefined;
  }
}

/** Bytes a client connection reads per syscall into its reused buffer. */
const CLIENT_READ_BUFFER_BYTES = 256 * 1024;

function requestFrame(correlationId: number, req: WireReplicaFetchRequest): Buffer {
  const body = codec.request.encode(req);
  const head = Buffer.allocUnsafe(9);
  head.writeUInt32BE(5 + body.length, 0);
  head.writeUInt8(KIND_REQUEST, 4);
  head.writeUInt32BE(correlationId, 5);
  return Buffer.concat([head, body]);
}

/** The response as a list of buffers for one corked write: records are not copied. */
function responseFrame(correlationId: number, resp: WireReplicaFetchResponse): Buffer[] {
  const header = codec.response.encode({ ...resp, partitions: resp.partitions.map((p) => ({ ...p, records: Buffer.alloc(0) })) });
  const parts: Buffer[] = [];
  let length = 9 + header.length;
  for (const p of resp.partitions) {
    const n = Buffer.allocUnsafe(4);
    n.writeUInt32BE(p.records.length, 0);
    parts.push(n, p.records);
    length += 4 + p.records.length;
  }
  const head = Buffer.allocUnsafe(13);
  head.writeUInt32BE(length, 0);
  head.writeUInt8(KIND_RESPONSE, 4);
  head.writeUInt32BE(correlationId, 5);
  head.writeUInt32BE(header.length, 9);
  return [head, header, ...parts];
}

function parseResponse(body: Buffer): { correlationId: number; response: WireReplicaFetchResponse } {
  if (body.readUInt8(0) !== KIND_RESPONSE) throw new Error(`expected a response frame, got kind ${body.readUInt8(0)}`);
  const correlationId = body.readUInt32BE(1);
  const hlen = body.readUInt32BE(5);
  if (9 + hlen > body.length) throw new Error('response header overruns its frame');
  const response = codec.response.decode(body.subarray(9, 9 + hlen));
  let pos = 9 + hlen;
  for (const p of response.partitions) {
    if (pos + 4 > body.length) throw new Error('response records overrun their frame');
    const n = body.readUInt32BE(pos);
    pos += 4;
    if (pos + n > body.length) throw new Error('response records overrun their frame');
    p.records = body.subarray(pos, pos + n);
    pos += n;
  }
  if (pos !== body.length) throw new Error(`${body.length - pos} stray bytes after the response`);
  return { correlationId, response };
}

// ─── client ───

export interface TcpReplicaFetchClientOptions {
  /** brokerId → host:port of each broker's replica fetch listener. */
  addresses?: ReadonlyMap<number, string>;
  logger?: Logger;
  deadlineSlackMs?: number;
  connectTimeoutMs?: number;
}

interface Pending {
  resolve(r: ReplicaFetchResponse): void;
  reject(e: unknown): void;
  timer: NodeJS.Timeout;
}

class Connection {
  readonly socket: net.Socket;
  readonly pending = new Map<number, Pending>();
  private readonly reader: FrameAssembler;
  private nextId = 1;
  private failure: Error | undefined;
  readonly ready: Promise<void>;

  constructor(
    readonly address: string,
    connectTimeoutMs: number,
    private readonly log: Logger,
    frames: ReadBufferPool,
  ) {
    this.reader = new FrameAssembler(frames);
    const i = address.lastIndexOf(':');
    const host = address.slice(0, i).replace(/^\[(.*)\]$/, '$1');
    const port = Number(address.slice(i + 1));
    this.socket = net.connect({
      host,
      port,
      noDelay: true,
      onread: {
        buffer: Buffer.allocUnsafe(CLIENT_READ_BUFFER_BYTES),
        callback: (n: number, buf: Uint8Array): boolean => {
          const bad = this.reader.push(buf as Buffer, n, (body) => this.onFrame(body));
          if (bad) this.fail(new RaftkaError('NETWORK_EXCEPTION', `${address} broke the framing: ${bad}`));
          return true;
        },
      },
    });
    this.ready = new Promise<void>((resolve, reject) => {
      const t = setTimeout(() => this.fail(new RaftkaError('NETWORK_EXCEPTION', `connecting to ${address} timed out`)), connectTimeoutMs);
      this.socket.once('connect', () => {
        clearTimeout(t);
        resolve();
      });
      this.socket.once('close', () => {
        clearTimeout(t);
        reject(this.failure ?? new RaftkaError('NETWORK_EXCEPTION', `connection to ${address} closed`));
      });
    });
    // Unobserved when no fetch waits on it; the rejection still reaches every caller.
    this.ready.catch(() => undefined);
    this.socket.on('error', (e) => this.fail(new RaftkaError('NETWORK_EXCEPTION', `${address}: ${e.message}`)));
    this.socket.on('close', () => this.fail(new RaftkaError('NETWORK_EXCEPTION', `connection to ${address} closed`)));
  }

  get broken(): boolean {
    return this.failure !== undefined;
  }

  private onFrame(body: Buffer): void {
    let parsed;
    try {
      parsed = parseResponse(body);
    } catch (e) {
      this.fail(new RaftkaError('NETWORK_EXCEPTION', `${this.address} sent a malformed response: ${(e as Error).message}`));
      return;
    }
    const p = this.pending.get(parsed.correlationId);
    if (!p) return; // aborted by the caller meanwhile
    this.pending.delete(parsed.correlationId);
    clearTimeout(p.timer);
    p.resolve(fromWireResponse(parsed.response));
  }

  fail(e: Error): void {
    if (this.failure) return;
    this.failure = e;
    this.socket.destroy();
    for (const p of this.pending.values()) {
      clearTimeout(p.timer);
      p.reject(e);
    }
    this.pending.clear();
    this.log.debug({ address: this.address, err: e.message }, 'replica fetch connection closed');
  }

  async call(req: ReplicaFetchRequest, deadlineMs: number, signal: AbortSignal): Promise<ReplicaFetchResponse> {
    await this.ready;
    if (this.failure) throw this.failure;
    const id = this.nextId;
    this.nextId = this.nextId >= 0xffffffff ? 1 : this.nextId + 1;
    return new Promise<ReplicaFetchResponse>((resolve, reject) => {
      const onAbort = () => {
        const p = this.pending.get(id);
        if (!p) return;
        this.pending.delete(id);
        clearTimeout(p.timer);
        reject(new RaftkaError('REQUEST_TIMED_OUT', 'replica fetch aborted'));
      };
      const timer = setTimeout(() => {
        // No answer in time: the leader is frozen or unreachable. Every call on this
        // connection shares its fate, so drop it and let the next fetch reconnect.
        this.fail(new RaftkaError('REQUEST_TIMED_OUT', `no answer from ${this.address} within ${deadlineMs} ms`));
      }, deadlineMs);
      this.pending.set(id, {
        resolve: (r) => {
          signal.removeEventListener('abort', onAbort);
          resolve(r);
        },
        reject: (e) => {
          signal.removeEventListener('abort', onAbort);
          reject(e);
        },
        timer,
      });
      signal.addEventListener('abort', onAbort, { once: true });
      this.socket.write(requestFrame(id, req));
    });
  }
}

/**
 * Response frames up to this size are assembled in pooled buffers, which the fetcher
 * gives back once it has appended their records (`release`): the default fetch carries up
 * to 1 MiB per partition, and a new buffer per response was V8 external memory whose
 * growth starts major GCs.
 */
const FRAME_BUFFER_BYTES = 2 * 1024 * 1024;
/** Idle frame buffers kept: a follower has one fetch in flight per leader (two in a three-node cluster). */
const FRAME_BUFFERS_KEPT = 2;

export class TcpReplicaFetchClient implements ReplicaFetchClient {
  private readonly frames = new ReadBufferPool(FRAME_BUFFER_BYTES, FRAME_BUFFERS_KEPT);
  private readonly addresses = new Map<number, string>();
  private readonly connections = new Map<number, Connection>();
  private readonly log: Logger;
  private readonly slackMs: number;
  private readonly connectTimeoutMs: number;
  private closed = false;

  constructor(opts: TcpReplicaFetchClientOptions = {}) {
    this.log = componentLogger(opts.logger ?? silentLogger(), 'replica-fetch-tcp-client');
    this.slackMs = opts.deadlineSlackMs ?? 1_500;
    this.connectTimeoutMs = opts.connectTimeoutMs ?? 1_000;
    for (const [id, a] of opts.addresses ?? []) this.addresses.set(id, a);
  }

  setAddress(brokerId: number, address: string): void {
    this.addresses.set(brokerId, address);
    const c = this.connections.get(brokerId);
    if (c && c.address !== address) {
      c.fail(new RaftkaError('NETWORK_EXCEPTION', `broker ${brokerId} moved to ${address}`));
      this.connections.delete(brokerId);
    }
  }

  removeBroker(brokerId: number): void {
    this.addresses.delete(brokerId);
    this.connections.get(brokerId)?.fail(new RaftkaError('NETWORK_EXCEPTION', `broker ${brokerId} removed`));
    this.connections.delete(brokerId);
  }

  async fetch(leaderId: number, request: ReplicaFetchRequest, signal: AbortSignal): Promise<ReplicaFetchResponse> {
    if (this.closed) throw new RaftkaError('BROKER_NOT_AVAILABLE', 'replica fetch client is closed');
    if (signal.aborted) throw new RaftkaError('REQUEST_TIMED_OUT', 'replica fetch aborted');
    const address = this.addresses.get(leaderId);
    if (address === undefined) throw new RaftkaError('BROKER_NOT_AVAILABLE', `no address known for broker ${leaderId}`);
    let c = this.connections.get(leaderId);
    if (!c || c.broken || c.address !== address) {
      c = new Connection(address, this.connectTimeoutMs, this.log, this.frames);
      this.connections.set(leaderId, c);
    }
    return c.call(request, request.maxWaitMs + this.slackMs, signal);
  }

  /** The caller is done with `response`'s record bytes: their frame buffer may be reused. */
  release(response: ReplicaFetchResponse): void {
    for (const p of response.partitions) this.frames.release(p.records);
  }

  close(): void {
    this.closed = true;
    for (const c of this.connections.values()) c.fail(new RaftkaError('BROKER_NOT_AVAILABLE', 'replica fetch client closed'));
    this.connections.clear();
  }
}

// ─── server ───

/** Gives back the read buffers under a sent response's records (log/read-buffers.ts). */
function releaseRecords(resp: WireReplicaFetchResponse): void {
  for (const p of resp.partitions) readBuffers.release(p.records);
}

export interface TcpReplicaFetchServerOptions {
  /** host:port; port 0 picks a free port. */
  listen: string;
  handler: ReplicaFetchHandler;
  logger: Logger;
  /** Calls in flight per connection before the server stops reading from it. */
  inFlightMax?: number;
  idleTimeoutMs?: number;
}

export interface TcpReplicaFetchServer {
  readonly port: number;
  close(): Promise<void>;
}

export async function startTcpReplicaFetchServer(opts: TcpReplicaFetchServerOptions): Promise<TcpReplicaFetchServer> {
  const log = componentLogger(opts.logger, 'replica-fetch-tcp-server');
  const inFlightMax = opts.inFlightMax ?? 16;
  const sockets = new Set<net.Socket>();
  const server = net.createServer((sock) => {
    sockets.add(sock);
    sock.setNoDelay(true);
    sock.setTimeout(opts.idleTimeoutMs ?? 60_000, () => sock.destroy());
    const reader = new FrameReader();
    let inFlight = 0;
    const answer = (id: number, resp: WireReplicaFetchResponse) => {
      if (sock.destroyed) return releaseRecords(resp);
      const parts = responseFrame(id, resp);
      sock.cork();
      for (let i = 0; i < parts.length - 1; i++) sock.write(parts[i]!);
      // Once the last part is with the kernel (or the write failed) the record bytes are
      // done with: lent read buffers go back to the pool.
      sock.write(parts[parts.length - 1]!, () => releaseRecords(resp));
      sock.uncork();
    };
    const handle = (body: Buffer) => {
      if (body.readUInt8(0) !== KIND_REQUEST) throw new Error(`expected a request frame, got kind ${body.readUInt8(0)}`);
      const id = body.readUInt32BE(1);
      const req = codec.request.decode(body.subarray(5));
      const bad = checkReplicaFetchRequest(req);
      if (bad) {
        log.warn({ replicaId: req.replicaId, why: bad }, 'refused a malformed replica fetch');
        answer(id, { errorCode: ERRORS.INVALID_REQUEST.code, sessionId: 0, partitions: [] });
        return;
      }
      inFlight++;
      if (inFlight >= inFlightMax) sock.pause();
      opts.handler
        .handleReplicaFetch(req)
        .then(toWireResponse, (e: unknown): WireReplicaFetchResponse => {
          if (isRaftkaError(e)) return { errorCode: e.code, sessionId: 0, partitions: [] };
          log.error({ err: e, replicaId: req.replicaId }, 'replica fetch failed unexpectedly');
          return { errorCode: ERRORS.UNKNOWN_SERVER_ERROR.code, sessionId: 0, partitions: [] };
        })
        .then((resp) => answer(id, resp))
        .finally(() => {
          inFlight--;
          if (inFlight < inFlightMax) sock.resume();
        })
        .catch((e: unknown) => log.warn({ err: (e as Error).message }, 'writing a replica fetch response failed'));
    };
    sock.on('data', (chunk: Buffer) => {
      let bad: string | undefined;
      try {
        bad = reader.push(chunk, handle);
      } catch (e) {
        bad = (e as Error).message;
      }
      if (bad) {
        log.warn({ peer: `${sock.remoteAddress}:${sock.remotePort}`, why: bad }, 'dropping a replica fetch connection that broke the framing');
        sock.destroy();
      }
    });
    sock.on('error', () => undefined);
    sock.on('close', () => sockets.delete(sock));
  });
  const i = opts.listen.lastIndexOf(':');
  const host = opts.listen.slice(0, i).replace(/^\[(.*)\]$/, '$1');
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(Number(opts.listen.slice(i + 1)), host, () => resolve());
  });
  const port = (server.address() as net.AddressInfo).port;
  log.info({ listen: opts.listen, port }, 'replica fetch (tcp) listening');
  let closing: Promise<void> | undefined;
  return {
    port,
    close: () =>
      (closing ??= new Promise<void>((resolve) => {
        server.close(() => resolve());
        for (const s of sockets) s.destroy();
      })),
  };
}
