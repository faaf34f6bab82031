// The raw gRPC baseline's far end: a grpc-js server in its own process whose one unary
// method takes a buffer and discards it. Prints its port on stdout, exits on SIGTERM.
import * as grpc from '@grpc/grpc-js';
import { SERVER_OPTIONS, bindServer } from '../../src/proto/rpc.ts';

const server = new grpc.Server(SERVER_OPTIONS);
const identity = (b: Buffer) => b;
server.addService(
  {
    Send: { path: '/bench.Sink/Send', requestStream: false, responseStream: false, requestSerialize: identity, requestDeserialize: identity, responseSerialize: identity, responseDeserialize: identity },
  },
  {
    Send: (call: grpc.ServerUnaryCall<Buffer, Buffer>, cb: grpc.sendUnaryData<Buffer>) => cb(null, Buffer.alloc(8)),
  },
);
const port = await bindServer(server, '127.0.0.1:0');
process.stdout.write(`${port}\n`);
process.on('SIGTERM', () => server.forceShutdown());
