// Raft messages between nodes over gRPC (proto/raft.proto, service raftka.internal.Raft).
//
// Shape: each node serves `Send`, a client stream; for each peer a node keeps one
// long-lived channel and one open stream to it, and writes one RaftBatch per Ready (all
// of a Ready's messages to that peer in one frame). Raft tolerates loss, reordering
// across reconnects and duplication, so the transport never retries or acknowledges a
// message: when a stream breaks, what was buffered in it is lost and the core resends
// on its own schedule. That keeps this adapter free of state the core would have to
// reason about.
//
// Bounds: the bytes queued towards a peer and not yet flushed to HTTP/2 are capped
// (`peerBufferBytesMax`); past the cap, or while the channel is in TRANSIENT_FAILURE,
// messages to that peer are dropped and counted, so a slow or dead peer cannot grow the
// sender's memory (grpc-js itself buffers without bound while connecting). Reconnect backoff is short (100 ms..1 s) so that a restarted
// node is reachable again well within an election timeout.
//
// Fencing: a batch from another cluster id, or from a node `isKnownPeer` does not
// accept, ends that stream with PERMISSION_DENIED and is logged; nothing in it is
// delivered.
import { fileURLToPath } from 'node:url';
import * as grpc from '@grpc/grpc-js';
import protobuf from 'protobufjs';
import { componentLogger, silentLogger, type Logger } from '../common/logger.ts';

export const RAFT_PROTO_PATH = fileURLToPath(new URL('../../proto/raft.proto', import.meta.url));
const SEND_PATH = '/raftka.internal.Raft/Send';

/** A Raft message as protobufjs encodes it: the plain-object form of proto RaftMessage. */
export type WireMessage = Record<string, unknown>;

/** Maps the core's message type to and from the proto's RaftMessage. */
export interface RaftWireCodec<M> {
  toWire(m: M): WireMessage;
  fromWire(w: WireMessage): M;
}

interface WireBatch {
  clusterId: string;
  fromNode: number;
  fromDirectoryId: string;
  toNode: number;
  messages: WireMessage[];
}

interface WireSummary {
  batchesReceived: number | { toNumber(): number };
}

// Plain objects go straight to `encode` (no fromObject copy): the codec shapes them as
// the proto expects. Decoded batches stay protobufjs instances; the codec reads them.
function encodeBatch(Batch: protobuf.Type, v: WireBatch): Buffer {
  const u8 = Batch.encode(v).finish();
  return Buffer.from(u8.buffer, u8.byteOffset, u8.byteLength);
}

let protoRoot: protobuf.Root | undefined;
function loadTypes(): { Batch: protobuf.Type; Summary: protobuf.Type } {
  protoRoot ??= protobuf.loadSync(RAFT_PROTO_PATH);
  return {
    Batch: protoRoot.lookupType('raftka.internal.RaftBatch'),
    Summary: protoRoot.lookupType('raftka.internal.SendSummary'),
  };
}

export interface RaftTransportOptions<M> {
  clusterId: string;
  nodeId: number;
  directoryId: string;
  /** host:port to listen on; port 0 picks a free port (see `port` after `start`). */
  listen: string;
  /** node id → host:port of every peer this node may send to. */
  peers: ReadonlyMap<number, string>;
  codec: RaftWireCodec<M>;
  /** Called with every batch accepted from a known peer of this cluster, in arrival order. */
  onMessages(fromNode: number, messages: M[]): void;
  /** Whether a node may talk to us; defaults to "is in `peers`". Voter changes widen it. */
  isKnownPeer?(nodeId: number, directoryId: string): boolean;
  peerBufferBytesMax?: number;
  /** Adds other services to the same listener (the controller RPCs ride on the CONTROLLER listener). */
  registerServices?(server: grpc.Server): void;
  /**
   * A peer's incoming stream ended (the peer closed it, or its process died and the
   * connection dropped). The controller uses it to fence a dead broker without waiting
   * for its session to time out.
   */
  onPeerStreamClosed?(nodeId: number): void;
  logger?: Logger;
}

export interface TransportStats {
  batchesSent: number;
  batchesReceived: number;
  messagesDropped: number;
  batchesRejected: number;
}

interface Peer {
  readonly nodeId: number;
  address: string;
  /** Undefined while the peer is a member whose address is not known yet. */
  client: grpc.Client | undefined;
  stream: grpc.ClientWritableStream<Buffer> | undefined;
  /** Encoded bytes handed to the current stream whose write has not completed (flushed to HTTP/2). */
  outstanding: { bytes: number };
}

const CHANNEL_OPTIONS: grpc.ChannelOptions = {
  // A restarted peer must be reachable again within an election timeout; grpc's default
  // backoff starts at 1 s and grows to 120 s.
  'grpc.initial_reconnect_backoff_ms': 100,
  'grpc.min_reconnect_backoff_ms': 100,
  'grpc.max_reconnect_backoff_ms': 1000,
  'grpc.keepalive_time_ms': 10_000,
  'grpc.keepalive_timeout_ms': 5_000,
  'grpc.keepalive_permit_without_calls': 1,
  'grpc.max_send_message_length': 64 * 1024 * 1024,
  'grpc.max_receive_message_length': 64 * 1024 * 1024,
};

export class RaftTransport<M> {
  private readonly opts: RaftTransportOptions<M>;
  private readonly log: Logger;
  private readonly incoming = new Map<number, number>();
  private readonly server = new grpc.Server({
    'grpc.max_receive_message_length': 64 * 1024 * 1024,
    'grpc.keepalive_permit_without_calls': 1,
  });
  private readonly peers = new Map<number, Peer>();
  /** Node ids we accept messages from when no `isKnownPeer` is given. */
  private readonly members = new Set<number>();
  private readonly types = loadTypes();
  private readonly bufferBytesMax: number;
  private boundPort = 0;
  private readonly lastLogged = new Map<string, number>();
  private closed = false;
  readonly stats: TransportStats = { batchesSent: 0, batchesReceived: 0, messagesDropped: 0, batchesRejected: 0 };

  constructor(opts: RaftTransportOptions<M>) {
    this.opts = opts;
    this.log = componentLogger(opts.logger ?? silentLogger(), 'raft-transport', { nodeId: opts.nodeId });
    this.bufferBytesMax = opts.peerBufferBytesMax ?? 64 * 1024 * 1024;
    for (const [nodeId, address] of opts.peers) {
      if (nodeId !== opts.nodeId) this.addPeer(nodeId, address);
    }
  }

  get port(): number {
    return this.boundPort;
  }

  async start(): Promise<number> {
    const { Batch, Summary } = this.types;
    const def: grpc.ServiceDefinition = {
      Send: {
        path: SEND_PATH,
        requestStream: true,
        responseStream: false,
        requestSerialize: (v: WireBatch) => encodeBatch(Batch, v),
        requestDeserialize: (b: Buffer) => Batch.decode(b) as unknown as WireBatch,
        responseSerialize: (v: WireSummary) => Buffer.from(Summary.encode(v).finish()),
        responseDeserialize: (b: Buffer) => Summary.decode(b) as unknown as WireSummary,
      },
    };
    this.server.addService(def, { Send: this.handleSend.bind(this) });
    this.opts.registerServices?.(this.server);
    this.boundPort = await new Promise<number>((resolve, reject) => {
      this.server.bindAsync(this.opts.listen, grpc.ServerCredentials.createInsecure(), (err, port) =>
        err ? reject(err) : resolve(port),
      );
    });
    this.log.info({ listen: this.opts.listen, port: this.boundPort }, 'raft transport listening');
    return this.boundPort;
  }

  /** Adds or re-points a peer (voter change, or a test that learns ports late). */
  addPeer(nodeId: number, address: string): void {
    this.members.add(nodeId);
    const old = this.peers.get(nodeId);
    if (old !== undefined) {
      if (old.address === address) return;
      old.stream?.end();
      old.client?.close();
    }
    const client = address === '' ? undefined : new grpc.Client(address, grpc.credentials.createInsecure(), CHANNEL_OPTIONS);
    this.peers.set(nodeId, { nodeId, address, client, stream: undefined, outstanding: { bytes: 0 } });
    // Connect now, so that the first vote request to a peer we never talked to (follower
    // to follower) does not also pay for the handshake.
    client?.getChannel().getConnectivityState(true);
  }

  removePeer(nodeId: number): void {
    this.members.delete(nodeId);
    const p = this.peers.get(nodeId);
    if (p === undefined) return;
    p.stream?.end();
    p.client?.close();
    this.peers.delete(nodeId);
  }

  /**
   * Queues `messages` for `to` as one batch. Never throws for a down peer: the batch is
   * dropped (and counted) and the core will resend.
   */
  send(to: number, messages: readonly M[]): void {
    if (this.closed || messages.length === 0) return;
    const peer = this.peers.get(to);
    if (peer?.client === undefined) {
      // Expected briefly at start-up while addresses are learned; Raft resends.
      this.stats.messagesDropped += messages.length;
      this.log.debug({ to }, 'no address for peer; dropping messages');
      return;
    }
    // A peer known to be down (connect failed, backing off) or one that stopped reading
    // gets nothing more queued: grpc-js would buffer without bound.
    const state = peer.client.getChannel().getConnectivityState(true);
    if (state === grpc.connectivityState.TRANSIENT_FAILURE || peer.outstanding.bytes > this.bufferBytesMax) {
      this.stats.messagesDropped += messages.length;
      return;
    }
    const stream = peer.stream ?? this.openStream(peer, peer.client);
    const batch: WireBatch = {
      clusterId: this.opts.clusterId,
      fromNode: this.opts.nodeId,
      fromDirectoryId: this.opts.directoryId,
      toNode: to,
      messages: messages.map((m) => this.opts.codec.toWire(m)),
    };
    const bytes = encodeBatch(this.types.Batch, batch);
    const counter = peer.outstanding;
    counter.bytes += bytes.length;
    stream.write(bytes, () => {
      counter.bytes -= bytes.length;
    });
    this.stats.batchesSent++;
  }

  private openStream(peer: Peer, client: grpc.Client): grpc.ClientWritableStream<Buffer> {
    const { Summary } = this.types;
    // Batches are encoded in `send` (to know their size), so the serializer passes bytes on.
    const stream = client.makeClientStreamRequest<Buffer, WireSummary>(
      SEND_PATH,
      (b) => b,
      (b) => Summary.decode(b) as unknown as WireSummary,
      new grpc.Metadata(),
      {},
      (err) => {
        if (peer.stream === stream) {
          peer.stream = undefined;
          // What was queued in a dead stream is lost; the next stream starts from zero.
          peer.outstanding = { bytes: 0 };
        }
        if (err === null || this.closed) return;
        if (err.code === grpc.status.PERMISSION_DENIED) {
          if (this.shouldLog(`out:${peer.nodeId}`)) {
            this.log.error({ to: peer.nodeId, address: peer.address, err: err.details }, 'peer rejected our raft stream');
          }
        } else {
          this.log.debug({ to: peer.nodeId, address: peer.address, code: err.code, err: err.details }, 'raft stream to peer ended');
        }
      },
    );
    // Errors surface in the callback above; without a listener they would crash the process.
    stream.on('error', () => undefined);
    peer.stream = stream;
    return stream;
  }

  private handleSend(
    call: grpc.ServerReadableStream<WireBatch, WireSummary>,
    callback: grpc.sendUnaryData<WireSummary>,
  ): void {
    let received = 0;
    let done = false;
    let peer: number | undefined;
    const finish = (err: grpc.ServerErrorResponse | null): void => {
      if (done) return;
      done = true;
      if (peer !== undefined) {
        const n = (this.incoming.get(peer) ?? 1) - 1;
        if (n <= 0) this.incoming.delete(peer);
        else this.incoming.set(peer, n);
        this.opts.onPeerStreamClosed?.(peer);
      }
      try {
        callback(err, err === null ? { batchesReceived: received } : null);
      } catch {
        // the call was already cancelled
      }
    };
    call.on('data', (batch: WireBatch) => {
      if (done) return;
      const why = this.rejection(batch);
      if (why !== undefined) {
        this.stats.batchesRejected++;
        if (this.shouldLog(`in:${batch.clusterId}:${batch.fromNode}`)) {
          this.log.warn(
            { fromNode: batch.fromNode, clusterId: batch.clusterId, peer: call.getPeer(), why, rejectedSoFar: this.stats.batchesRejected },
            'rejected raft messages',
          );
        }
        const err = Object.assign(new Error(why), { code: grpc.status.PERMISSION_DENIED, details: why });
        finish(err);
        return;
      }
      received++;
      this.stats.batchesReceived++;
      if (peer === undefined) {
        peer = batch.fromNode;
        this.incoming.set(peer, (this.incoming.get(peer) ?? 0) + 1);
      }
      let messages: M[];
      try {
        messages = batch.messages.map((w) => this.opts.codec.fromWire(w));
      } catch (e) {
        this.log.warn({ fromNode: batch.fromNode, err: (e as Error).message }, 'malformed raft batch');
        finish(Object.assign(new Error('malformed batch'), { code: grpc.status.INVALID_ARGUMENT }));
        return;
      }
      this.opts.onMessages(batch.fromNode, messages);
    });
    call.on('end', () => finish(null));
    call.on('error', () => finish(null));
    call.on('cancelled', () => finish(null));
  }

  /** Incoming streams currently open from `nodeId`. */
  incomingStreams(nodeId: number): number {
    return this.incoming.get(nodeId) ?? 0;
  }

  /**
   * A misconfigured peer retries every heartbeat; one line per source per 10 s says it
   * all without flooding the log.
   */
  private shouldLog(key: string): boolean {
    const now = performance.now();
    const last = this.lastLogged.get(key);
    if (last !== undefined && now - last < 10_000) return false;
    if (this.lastLogged.size > 1_000) this.lastLogged.clear();
    this.lastLogged.set(key, now);
    return true;
  }

  private rejection(batch: WireBatch): string | undefined {
    if (batch.clusterId !== this.opts.clusterId) {
      return `cluster id ${JSON.stringify(batch.clusterId)} does not match this node's cluster ${JSON.stringify(this.opts.clusterId)}`;
    }
    if (batch.toNode !== this.opts.nodeId) return `batch addressed to node ${batch.toNode}, this is node ${this.opts.nodeId}`;
    const known = this.opts.isKnownPeer
      ? this.opts.isKnownPeer(batch.fromNode, batch.fromDirectoryId)
      : this.members.has(batch.fromNode);
    if (!known) return `node ${batch.fromNode} is not a member of this quorum`;
    return undefined;
  }

  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    for (const p of this.peers.values()) {
      p.stream?.end();
      p.client?.close();
    }
    this.peers.clear();
    await new Promise<void>((resolve) => {
      // Open peer streams would hold tryShutdown forever; force after a short grace.
      const t = setTimeout(() => {
        this.server.forceShutdown();
        resolve();
      }, 500);
      this.server.tryShutdown(() => {
        clearTimeout(t);
        resolve();
      });
    });
  }
}

