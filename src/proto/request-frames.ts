// gRPC request frames written in place, for grpc-js clients.
//
// grpc-js frames every message a client sends by copying it into a fresh buffer five bytes
// longer (CompressionHandler.writeMessage: a flag byte and the length). For the SDK's
// produce requests, hundreds of KiB each at the producer's full rate, that was a second
// copy and a second large allocation per request after the encode's own exact-size copy
// out of the reused protobufjs writer (rpc.ts): CPU the load generator shares with the
// brokers on two cores, and external memory whose growth starts major GCs.
//
// Here the encode leaves five bytes free in front of the bytes it returns
// (`withFrameHeadroom`), and the identity handler, given such a message to send
// uncompressed, writes the frame header into them and returns the frame as a view of the
// same memory. Nothing is pooled or reused: the buffer belongs to its call alone, and a
// transparent retry, which resends the message grpc-js kept, writes the same five bytes
// again. Any other message (no headroom, or compressed) is framed by grpc-js as before.
//
// grpc-js has no hook for this, so the patch replaces the writeMessage method of its
// internal IdentityHandler (reached through a CompressionFilter, which is exported). It
// is installed only on grpc-js 1.14.x and when that method is there;
// test/proto/request-frames.test.ts fails when an upgrade of grpc-js leaves it out.
import { grpcJsInternal } from './grpc-internals.ts';

/** The gRPC message frame header: compressed flag (1 byte) + length (4 bytes, big-endian). */
const FRAME_HEADER_BYTES = 5;

/** Views whose five preceding bytes are free for a frame header (the views' owners' own memory). */
const withHeadroom = new WeakSet<Buffer>();

/** A copy of `bytes` with five free bytes in front of it, framed in place when grpc-js sends it. */
export function withFrameHeadroom(bytes: Uint8Array): Buffer {
  const frame = Buffer.allocUnsafe(bytes.byteLength + FRAME_HEADER_BYTES);
  frame.set(bytes, FRAME_HEADER_BYTES);
  const message = frame.subarray(FRAME_HEADER_BYTES);
  withHeadroom.add(message);
  return message;
}

interface IdentityHandlerProto {
  writeMessage(message: Buffer, compress: boolean): Promise<Buffer>;
}

let installed: boolean | undefined;

/**
 * Makes grpc-js clients in this process frame messages made by `withFrameHeadroom` in
 * place (see the top of this file). Returns whether the patch is in place; idempotent.
 */
export function installInPlaceRequestFrames(): boolean {
  if (installed !== undefined) return installed;
  installed = false;
  let proto: Partial<IdentityHandlerProto> | undefined;
  try {
    const mod = grpcJsInternal<{ CompressionFilter?: new (channelOptions: object, sharedFilterConfig: object) => { sendCompression?: object } }>('build/src/compression-filter.js');
    // A filter built with no options sends with the identity handler.
    const handler = mod?.CompressionFilter ? new mod.CompressionFilter({}, {}).sendCompression : undefined;
    proto = handler ? (Object.getPrototypeOf(handler) as Partial<IdentityHandlerProto>) : undefined;
  } catch {
    return false;
  }
  if (!proto || !Object.prototype.hasOwnProperty.call(proto, 'writeMessage') || typeof proto.writeMessage !== 'function') return false;
  const frameCopy = proto.writeMessage;
  proto.writeMessage = function writeMessage(this: IdentityHandlerProto, message: Buffer, compress: boolean): Promise<Buffer> {
    if (compress || !withHeadroom.has(message)) return frameCopy.call(this, message, compress);
    const frame = Buffer.from(message.buffer, message.byteOffset - FRAME_HEADER_BYTES, message.byteLength + FRAME_HEADER_BYTES);
    frame[0] = 0; // not compressed
    frame.writeUInt32BE(message.byteLength, 1);
    return Promise.resolve(frame);
  };
  installed = true;
  return true;
}
