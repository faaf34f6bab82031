import type { TestContext } from 'node:test';
import * as grpc from '@grpc/grpc-js';
import { RaftkaRpc, type FetchResponse, type RaftkaService } from '../../src/proto/raftka.ts';
import { bindServer, serviceDefinition, shutdownServer, SERVER_OPTIONS, MESSAGE_BYTES_MAX, type ResponseEncodedHooks } from '../../src/proto/rpc.ts';
import { RawClient } from '../../src/client/raw-client.ts';

/**
 * A server whose Fetch answers `respond(tag)` for a request with maxBytes = tag, out of
 * order (so encodings of different responses interleave), and a client of it.
 */
export async function fetchServer(t: TestContext, respond: (tag: number) => FetchResponse, hooks: ResponseEncodedHooks<RaftkaService> = {}): Promise<RawClient> {
  const server = new grpc.Server({ ...SERVER_OPTIONS, 'grpc.max_receive_message_length': MESSAGE_BYTES_MAX });
  server.addService(serviceDefinition(RaftkaRpc, hooks), {
    Fetch: (call: grpc.ServerUnaryCall<{ maxBytes: number }, FetchResponse>, callback: grpc.sendUnaryData<FetchResponse>) => {
      const tag = call.request.maxBytes;
      const res = respond(tag);
      setTimeout(() => callback(null, res), tag % 7);
    },
    FetchStream: (call: grpc.ServerDuplexStream<{ maxBytes: number; correlationId: number }, FetchResponse>) => {
      call.on('data', (req: { maxBytes: number; correlationId: number }) => {
        const res = { ...respond(req.maxBytes), correlationId: req.correlationId };
        setTimeout(() => call.write(res), req.maxBytes % 7);
      });
      call.on('end', () => call.end());
    },
  });
  const port = await bindServer(server, '127.0.0.1:0');
  const client = new RawClient(`127.0.0.1:${port}`);
  t.after(async () => {
    client.close();
    await shutdownServer(server);
  });
  return client;
}
