// A small bridge from .proto files to @grpc/grpc-js, in the style of src/io/raft-transport
// (protobufjs for the messages, grpc-js generic service definitions, no proto-loader):
// `defineService` reads a service from the loaded proto and returns one typed
// `RpcMethod` per rpc, which serves both the server (`serviceDefinition`) and the
// client (`callUnary`). A service is then a few lines: the TypeScript shapes of its
// messages and one `defineService` call.
//
// Messages cross as plain objects with camelCase field names. Decoding goes through
// protobufjs's `toObject` with `longs: Number` (int64 fields become numbers; callers
// reject values past 2^53), `defaults: true` (absent scalars read as their proto3
// zero, absent messages as null, absent proto3 `optional` fields stay absent). bytes
// fields decode to Buffers that are views into the received frame, so large record
// payloads are not copied on the way in.
//
// This module sits with the proto (not in io/) because the client SDK may import only
// common/, the batch codec and the generated proto layer (DESIGN.md).
import type { Http2Server, ServerHttp2Session } from 'node:http2';
import { dirname } from 'node:path';
import { fileURLToPath } from 'node:url';
import * as grpc from '@grpc/grpc-js';
import protobuf from 'protobufjs';
import { installPooledResponseFrames } from './response-frames.ts';
import { installInPlaceRequestFrames, withFrameHeadroom } from './request-frames.ts';

export const PROTO_DIR = dirname(fileURLToPath(new URL('../../proto/raftka.proto', import.meta.url)));

/** The largest message either side sends or accepts: a fetch of 64 MiB plus framing. */
export const MESSAGE_BYTES_MAX = 64 * 1024 * 1024 + 64 * 1024;

/**
 * Options for every channel this codebase opens to a Raftka listener.
 *
 * - Keepalive: a peer that stops answering (a partition, a frozen host) is noticed in
 *   about 2 s (ping after 1 s idle, 1 s to answer), inside the 2 s failover budget. A
 *   killed process closes its sockets, which grpc notices at once without pings.
 * - Reconnect backoff 100 ms..1 s: a restarted broker is reachable again quickly (grpc's
 *   default starts at 1 s and grows to 120 s).
 * - Message limits raised to MESSAGE_BYTES_MAX (grpc's default receive limit is 4 MiB).
 */
export const CHANNEL_OPTIONS: grpc.ChannelOptions = {
  'grpc.keepalive_time_ms': 1_000,
  'grpc.keepalive_timeout_ms': 1_000,
  'grpc.keepalive_permit_without_calls': 1,
  'grpc.initial_reconnect_backoff_ms': 100,
  'grpc.min_reconnect_backoff_ms': 100,
  'grpc.max_reconnect_backoff_ms': 1_000,
  'grpc.max_send_message_length': MESSAGE_BYTES_MAX,
  'grpc.max_receive_message_length': MESSAGE_BYTES_MAX,
};

/**
 * HTTP/2 receive window for channels that carry record data (replica fetch, consumer
 * fetch). With the default 64 KiB window a 1 MiB response needs ~16 window updates,
 * each a round trip; scripts/bench/replica-transport.ts measures the difference.
 */
export const DATA_FLOW_CONTROL_WINDOW_BYTES = 16 * 1024 * 1024;

export const DATA_CHANNEL_OPTIONS: grpc.ChannelOptions = {
  ...CHANNEL_OPTIONS,
  'grpc-node.flow_control_window': DATA_FLOW_CONTROL_WINDOW_BYTES,
};

export const SERVER_OPTIONS: grpc.ServerOptions = {
  'grpc.max_send_message_length': MESSAGE_BYTES_MAX,
  'grpc.max_receive_message_length': MESSAGE_BYTES_MAX,
  'grpc.keepalive_time_ms': 1_000,
  'grpc.keepalive_timeout_ms': 1_000,
  'grpc.keepalive_permit_without_calls': 1,
};

const roots = new Map<string, protobuf.Root>();

/** Loads (once) a .proto file from proto/ by file name, with its imports. */
export function loadProto(fileName: string): protobuf.Root {
  let root = roots.get(fileName);
  if (!root) {
    root = new protobuf.Root();
    // Imports are named relative to proto/ ("raftka.proto"), as protoc would see them.
    root.resolvePath = (_origin, target) => `${PROTO_DIR}/${target.replace(/^.*\//, '')}`;
    root.loadSync(fileName, { keepCase: false });
    root.resolveAll();
    roots.set(fileName, root);
  }
  return root;
}

const TO_OBJECT: protobuf.IConversionOptions = { longs: Number, defaults: true, arrays: true, objects: true };

export interface MessageCodec<T> {
  readonly type: protobuf.Type;
  encode(v: T): Buffer;
  /**
   * Encodes into one writer this process reuses: the result is a view that the next
   * encodeTransient call overwrites. For grpc-js server responses only (see
   * TRANSIENT_WRITER_KEEP_BYTES).
   */
  encodeTransient(v: T): Buffer;
  decode(b: Uint8Array): T;
}

/**
 * Messages are encoded into one reused protobufjs writer (`encode` then copies the
 * bytes out at their exact size; server responses are used in place). A fresh writer per
 * response starts at 128 bytes and doubles its way up (a 2 MiB Fetch response allocated
 * and copied about 4 MiB on the way, then 2 MiB more for the final copy), and that
 * garbage, most of all the consumers' fetch responses, was what made V8 run a major GC
 * several times a second under consume load. grpc-js copies a serialized response into
 * its framed message buffer inside the call that serialized it
 * (ServerInterceptingCall.serializeMessage), so the view is dead before the next response
 * is encoded. A writer that grew past this size is let go after its use, so one huge
 * response does not pin its buffer for good.
 */
const TRANSIENT_WRITER_KEEP_BYTES = 8 * 1024 * 1024;
let transientWriter = protobuf.Writer.create();

function encodeTransient(type: protobuf.Type, v: Record<string, unknown>): Buffer {
  const w = transientWriter;
  w.pos = 0;
  w.states = null;
  const u8 = type.encode(v, w).finish(true);
  if (w.buf.length > TRANSIENT_WRITER_KEEP_BYTES) transientWriter = protobuf.Writer.create();
  return Buffer.from(u8.buffer, u8.byteOffset, u8.byteLength);
}

export function messageCodec<T>(type: protobuf.Type): MessageCodec<T> {
  // Codecs are made when services are defined, before anything is sent: the patch that
  // frames `encode`'s results in place is in by then (once per process).
  installInPlaceRequestFrames();
  return {
    type,
    // Plain objects go straight to `encode` (no fromObject copy): our TypeScript types
    // shape them as the proto expects.
    // A 128 KiB produce request in a fresh writer was allocated and copied about twice
    // over on the way up, before its final copy. The copy keeps five bytes free in front
    // for the gRPC frame header, so a grpc-js client sends it without copying it again
    // (request-frames.ts).
    encode: (v: T) => withFrameHeadroom(encodeTransient(type, v as unknown as Record<string, unknown>)),
    encodeTransient: (v: T) => encodeTransient(type, v as unknown as Record<string, unknown>),
    decode: (b: Uint8Array) => type.toObject(type.decode(b), TO_OBJECT) as T,
  };
}

export interface RpcMethod<Req, Res> {
  /** The rpc's name in the .proto, e.g. `Produce`. */
  readonly name: string;
  /** `/package.Service/Method`, the HTTP/2 path. */
  readonly path: string;
  readonly requestStream: boolean;
  readonly responseStream: boolean;
  readonly request: MessageCodec<Req>;
  readonly response: MessageCodec<Res>;
}

/** A service's rpcs by name, each typed [request, response]. */
export type ServiceShape = Record<string, readonly [unknown, unknown]>;
export type ServiceMethods<S extends ServiceShape> = { readonly [K in keyof S]: RpcMethod<S[K][0], S[K][1]> };

/**
 * Builds typed methods for service `fullName` (e.g. `raftka.v1.Raftka`) of a loaded proto.
 * Throws at start-up when the TypeScript shape names an rpc the proto lacks or misses one
 * it has, so the two cannot drift apart silently.
 */
export function defineService<S extends ServiceShape>(root: protobuf.Root, fullName: string, names: readonly (keyof S & string)[]): ServiceMethods<S> {
  const service = root.lookupService(fullName);
  const inProto = service.methodsArray.map((m) => m.name).sort();
  const declared = [...names].sort();
  if (inProto.join() !== declared.join()) {
    throw new Error(`service ${fullName}: proto has rpcs [${inProto.join(', ')}], TypeScript declares [${declared.join(', ')}]`);
  }
  const out: Record<string, RpcMethod<unknown, unknown>> = {};
  for (const m of service.methodsArray) {
    m.resolve();
    out[m.name] = {
      name: m.name,
      path: `/${fullName}/${m.name}`,
      requestStream: m.requestStream === true,
      responseStream: m.responseStream === true,
      request: messageCodec(m.resolvedRequestType!),
      response: messageCodec(m.resolvedResponseType!),
    };
  }
  return out as ServiceMethods<S>;
}

/**
 * Per rpc, called with each response right after it was encoded: its buffers' bytes have
 * been copied by then, so lent buffers can go back (see log/read-buffers.ts).
 */
export type ResponseEncodedHooks<S extends ServiceShape> = { readonly [K in keyof S]?: (res: S[K][1]) => void };

/** A grpc-js service definition for `server.addService`, keyed by rpc name. */
export function serviceDefinition<S extends ServiceShape>(methods: ServiceMethods<S>, encoded: ResponseEncodedHooks<S> = {}): grpc.ServiceDefinition {
  const def: Record<string, grpc.MethodDefinition<unknown, unknown>> = {};
  const hooks = encoded as Record<string, ((res: unknown) => void) | undefined>;
  for (const [key, m] of Object.entries(methods as Record<string, RpcMethod<unknown, unknown>>)) {
    const after = hooks[key];
    def[key] = {
      path: m.path,
      requestStream: m.requestStream,
      responseStream: m.responseStream,
      requestSerialize: (v) => m.request.encode(v),
      requestDeserialize: (b) => m.request.decode(b),
      responseSerialize: after
        ? (v) => {
            const b = m.response.encodeTransient(v);
            after(v);
            return b;
          }
        : (v) => m.response.encodeTransient(v),
      responseDeserialize: (b) => m.response.decode(b),
    };
  }
  return def;
}

/**
 * Wraps an async handler so the call is always answered exactly once: a thrown error
 * becomes the response `onError` builds (an error code inside the response, not a gRPC
 * status), so a bug in a handler can neither crash the process nor hang the caller.
 */
export function unaryHandler<Req, Res>(
  handle: (req: Req, call: grpc.ServerUnaryCall<Req, Res>) => Promise<Res>,
  onError: (e: unknown, req: Req) => Res,
): grpc.handleUnaryCall<Req, Res> {
  return (call, callback) => {
    let answered = false;
    const answer = (res: Res) => {
      if (answered) return;
      answered = true;
      callback(null, res);
    };
    handle(call.request, call).then(answer, (e: unknown) => {
      let res: Res;
      try {
        res = onError(e, call.request);
      } catch (e2) {
        answered = true;
        callback({ code: grpc.status.INTERNAL, details: (e2 as Error).message });
        return;
      }
      answer(res);
    });
  };
}

export interface CallOptions {
  /** Deadline for the whole call; the call fails with DEADLINE_EXCEEDED after it. */
  timeoutMs?: number;
  /** Cancels the call (it then rejects with CANCELLED). */
  signal?: AbortSignal;
}

/** One unary call; rejects with the grpc ServiceError on a transport failure. */
export function callUnary<Req, Res>(client: grpc.Client, m: RpcMethod<Req, Res>, req: Req, opts: CallOptions = {}): Promise<Res> {
  return new Promise<Res>((resolve, reject) => {
    const signal = opts.signal;
    if (signal?.aborted) {
      reject(Object.assign(new Error(`${m.name} aborted before it was sent`), { code: grpc.status.CANCELLED }));
      return;
    }
    const options: grpc.CallOptions = opts.timeoutMs !== undefined ? { deadline: Date.now() + opts.timeoutMs } : {};
    const onAbort = () => call.cancel();
    const call = client.makeUnaryRequest<Req, Res>(
      m.path,
      (v) => m.request.encode(v),
      (b) => m.response.decode(b),
      req,
      new grpc.Metadata(),
      options,
      (err, res) => {
        signal?.removeEventListener('abort', onAbort);
        if (err) reject(err);
        else resolve(res!);
      },
    );
    signal?.addEventListener('abort', onAbort, { once: true });
  });
}

/**
 * Binds `server` to `listen` (host:port; port 0 picks one) and returns the port.
 *
 * `receiveWindowBytes` raises the server's HTTP/2 receive windows (per stream and per
 * connection) for requests that carry record data (Produce). grpc-js has a client option
 * for this (`grpc-node.flow_control_window`) but no server option, so this reaches the
 * http2 servers grpc-js keeps in `http2Servers` (grpc-js 1.14); if that internal is not
 * there (another grpc-js version) the window stays at the default and `false` is
 * returned, which is slower but correct. scripts/bench/replica-transport.ts measures it.
 * Large responses are framed in pooled buffers (response-frames.ts).
 */
export async function bindServer(server: grpc.Server, listen: string, receiveWindowBytes = 0): Promise<number> {
  installPooledResponseFrames();
  const port = await new Promise<number>((resolve, reject) => {
    server.bindAsync(listen, grpc.ServerCredentials.createInsecure(), (err, p) => (err ? reject(err) : resolve(p)));
  });
  if (receiveWindowBytes > 0) raiseServerReceiveWindow(server, receiveWindowBytes);
  return port;
}

export function raiseServerReceiveWindow(server: grpc.Server, bytes: number): boolean {
  const internal = (server as unknown as { http2Servers?: unknown }).http2Servers;
  if (!(internal instanceof Map)) return false;
  for (const h2 of internal.keys() as Iterable<Http2Server>) {
    if (typeof h2.updateSettings !== 'function') return false;
    h2.updateSettings({ initialWindowSize: bytes });
    h2.on('session', (session: ServerHttp2Session) => {
      try {
        session.setLocalWindowSize(bytes);
      } catch {
        // A session that is already closing keeps its window; nothing to do.
      }
    });
  }
  return true;
}

/**
 * Stops a server: lets calls in flight finish for `graceMs` (long-poll fetches end by
 * their own deadline), then cuts the rest.
 */
export function shutdownServer(server: grpc.Server, graceMs = 500): Promise<void> {
  return new Promise<void>((resolve) => {
    const t = setTimeout(() => {
      server.forceShutdown();
      resolve();
    }, graceMs);
    server.tryShutdown(() => {
      clearTimeout(t);
      resolve();
    });
  });
}

/** Whether `e` is a grpc status error (a transport failure), as opposed to a bug. */
export function isServiceError(e: unknown): e is grpc.ServiceError {
  return e instanceof Error && typeof (e as Partial<grpc.ServiceError>).code === 'number' && 'details' in e;
}
