// Pooled gRPC response frames for grpc-js servers.
//
// grpc-js frames every server response by copying the serialized message into a fresh
// buffer five bytes longer (BaseServerInterceptingCall.serializeMessage) and drops that
// buffer once the HTTP/2 stream has written it. For a consumer's Fetch responses, up to
// megabytes each at hundreds of MB/s, that was a fresh mmap-ed allocation per response
// (the broker's malloc mmap threshold is 128 KiB): page faults on every first touch, and
// external memory that only a major GC gives back. A broker's RSS peaked in the consume
// runs on that garbage (V8 lets external memory grow ~64 MB past the last GC before it
// collects), and its CPU went to faults and marking.
//
// Here the framed buffer of a large response is lent from a pool and given back when the
// stream's write callback reports the bytes written: Node's HTTP/2 session completes a
// stream write only after the socket write that carried its DATA frames
// (Http2Session::OnStreamAfterWrite → ClearOutgoing), so nothing reads the buffer after
// that. A write that fails gives nothing back (its buffer is left to the GC).
//
// grpc-js has no hook for this, so the patch replaces two methods of its internal
// BaseServerInterceptingCall: serializeMessage (frame into a pooled buffer) and
// sendMessage (the same steps as grpc-js 1.14's, plus the give-back). It is installed
// only on grpc-js 1.14.x and when those methods and the helpers sendMessage uses are
// there; otherwise grpc-js keeps its own (slower, correct).
// test/proto/response-frames.test.ts fails when an upgrade of grpc-js leaves the patch
// out, so the upgrade gets looked at.
import * as grpc from '@grpc/grpc-js';
import { grpcJsInternal } from './grpc-internals.ts';

/** Responses below this are framed by grpc-js's own allocation (Node's buffer pool serves them cheaply). */
const POOLED_MIN_BYTES = 64 * 1024;
/** Larger frames are not pooled (fetches are bounded by fetch.max.bytes, 50 MiB by default). */
const POOLED_MAX_BYTES = 16 * 1024 * 1024;
/** Idle frame buffers kept in all: they stay in a broker's resident memory. */
const IDLE_BYTES_MAX = 32 * 1024 * 1024;

/** Buffers of power-of-two sizes, lent for one response frame each. */
export class FramePool {
  private readonly idle = new Map<number, Buffer[]>();
  private idleBytes = 0;
  /** Backing stores lent out and not yet given back. */
  private readonly lent = new WeakSet<ArrayBufferLike>();

  constructor(
    readonly minBytes = POOLED_MIN_BYTES,
    readonly maxBytes = POOLED_MAX_BYTES,
    readonly idleBytesMax = IDLE_BYTES_MAX,
  ) {}

  /** A buffer of exactly `size` bytes, pooled when `size` is in the pooled range. */
  acquire(size: number): Buffer {
    if (size < this.minBytes || size > this.maxBytes) return Buffer.allocUnsafe(size);
    let capacity = this.minBytes;
    while (capacity < size) capacity *= 2;
    let store = this.idle.get(capacity)?.pop();
    if (store) this.idleBytes -= capacity;
    // allocUnsafeSlow: a backing store of its own, so the store identifies the buffer.
    else store = Buffer.allocUnsafeSlow(capacity);
    this.lent.add(store.buffer);
    return store.subarray(0, size);
  }

  /** Gives back the buffer under `view`; views of other memory and repeated give-backs are ignored. */
  release(view: Uint8Array): void {
    const store = view.buffer;
    if (!this.lent.has(store)) return;
    this.lent.delete(store);
    const capacity = store.byteLength;
    if (this.idleBytes + capacity > this.idleBytesMax) return;
    let list = this.idle.get(capacity);
    if (!list) this.idle.set(capacity, (list = []));
    list.push(Buffer.from(store, 0, capacity));
    this.idleBytes += capacity;
  }

  /** Bytes of idle buffers (tests, inspection). */
  get idleBytesNow(): number {
    return this.idleBytes;
  }
}

/** The process's pool of response frames. */
export const responseFrames = new FramePool();

/** The members of grpc-js's BaseServerInterceptingCall that the patch uses. */
interface ServerCall {
  handler: { serialize(value: unknown): Buffer };
  stream: { write(chunk: Buffer, cb: (error?: Error | null) => void): void };
  maxSendMessageSize: number;
  callEventTracker?: { addMessageSent(): void } | null;
  checkCancelled(): boolean;
  maybeSendMetadata(): void;
  sendStatus(status: { code: grpc.status; details: string; metadata: grpc.Metadata | null }): void;
  serializeMessage(value: unknown): Buffer;
  sendMessage(message: unknown, callback: () => void): void;
}

let installed: boolean | undefined;

/**
 * Makes grpc-js servers in this process frame large responses in pooled buffers (see the
 * top of this file). Returns whether the patch is in place; idempotent.
 */
export function installPooledResponseFrames(): boolean {
  if (installed !== undefined) return installed;
  installed = false;
  // The replaced sendMessage repeats grpc-js 1.14's steps; another minor version may take others.
  const proto = grpcJsInternal<{ BaseServerInterceptingCall?: { prototype: Partial<ServerCall> } }>('build/src/server-interceptors.js')?.BaseServerInterceptingCall?.prototype;
  if (!proto || !['serializeMessage', 'sendMessage', 'checkCancelled', 'maybeSendMetadata', 'sendStatus'].every((m) => typeof (proto as Record<string, unknown>)[m] === 'function')) return false;
  const pool = responseFrames;
  // As grpc-js decides whether a failed send names its cause to the client.
  const sendErrorDetails = process.env['GRPC_NODE_DEBUG_SEND_ERROR_DETAILS'] === 'true';
  const internal = (what: string, e: unknown) => (sendErrorDetails ? `${what}: ${e instanceof Error ? e.message : String(e)}` : what);
  proto.serializeMessage = function serializeMessage(this: ServerCall, value: unknown): Buffer {
    const message = this.handler.serialize(value);
    const framed = pool.acquire(message.byteLength + 5);
    framed[0] = 0; // not compressed: grpc-js servers do not compress responses
    framed.writeUInt32BE(message.byteLength, 1);
    framed.set(message, 5);
    return framed;
  };
  proto.sendMessage = function sendMessage(this: ServerCall, message: unknown, callback: () => void): void {
    if (this.checkCancelled()) return;
    let response: Buffer;
    try {
      response = this.serializeMessage(message);
    } catch (e) {
      this.sendStatus({ code: grpc.status.INTERNAL, details: internal('Error serializing response', e), metadata: null });
      return;
    }
    if (this.maxSendMessageSize !== -1 && response.length - 5 > this.maxSendMessageSize) {
      pool.release(response);
      this.sendStatus({ code: grpc.status.RESOURCE_EXHAUSTED, details: `Sent message larger than max (${response.length} vs. ${this.maxSendMessageSize})`, metadata: null });
      return;
    }
    this.maybeSendMetadata();
    this.stream.write(response, (error) => {
      if (error) {
        this.sendStatus({ code: grpc.status.INTERNAL, details: sendErrorDetails ? internal('Error writing message', error) : 'Internal server error', metadata: null });
        return;
      }
      pool.release(response);
      this.callEventTracker?.addMessageSent();
      callback();
    });
  };
  installed = true;
  return true;
}
