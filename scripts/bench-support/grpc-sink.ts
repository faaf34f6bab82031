// The raw gRPC baseline's far end: a grpc-js server in its own process that takes
// buffers and discards them, over a unary method (Send) and a bidi stream (Stream, one
// 8-byte answer per message, as ProduceStream answers each request). Usage: grpc-sink.ts
// [RECEIVE_WINDOW_BYTES] (raised as a broker raises its own for Produce; default: grpc-js's
// 64 KiB). Prints its port on stdout, exits on SIGTERM.
import * as grpc from '@grpc/grpc-js';
import { SERVER_OPTIONS, bindServer } from '../../src/proto/rpc.ts';

const server = new grpc.Server(SERVER_OPTIONS);
const identity = (b: Buffer) => b;
const codec = { requestSerialize: identity, requestDeserialize: identity, responseSerialize: identity, responseDeserialize: identity };
const ack = Buffer.alloc(8);
server.addService(
  {
    Send: { path: '/bench.Sink/Send', requestStream: false, responseStream: false, ...codec },
    Stream: { path: '/bench.Sink/Stream', requestStream: true, responseStream: true, ...codec },
  },
  {
    Send: (call: grpc.ServerUnaryCall<Buffer, Buffer>, cb: grpc.sendUnaryData<Buffer>) => cb(null, ack),
    Stream: (call: grpc.ServerDuplexStream<Buffer, Buffer>) => {
      call.on('data', () => call.write(ack));
      call.on('end', () => call.end());
    },
  },
);
const port = await bindServer(server, '127.0.0.1:0', Number(process.argv[2] ?? 0));
process.stdout.write(`${port}\n`);
process.on('SIGTERM', () => server.forceShutdown());
