import { test } from 'node:test';
import assert from 'node:assert/strict';
import * as grpc from '@grpc/grpc-js';
import fc from 'fast-check';
import { RaftkaRpc, type FetchResponse } from '../../src/proto/raftka.ts';
import { bindServer, serviceDefinition, shutdownServer, SERVER_OPTIONS, MESSAGE_BYTES_MAX } from '../../src/proto/rpc.ts';
import { RawClient } from '../../src/client/raw-client.ts';
import { assertProperty } from '../support/property.ts';

const codec = RaftkaRpc.Fetch.response;

function fetchResponse(tag: number, sizes: readonly number[]): FetchResponse {
  return {
    errorCode: 0,
    errorMessage: '',
    responses: [
      {
        name: `topic-${tag}`,
        topicId: '',
        partitions: sizes.map((size, partition) => ({
          partition,
          errorCode: 0,
          errorMessage: '',
          highWatermark: tag * 1000 + partition,
          lastStableOffset: -1,
          logStartOffset: 0,
          records: Buffer.alloc(size, (tag * 31 + partition) % 251),
          currentLeader: null,
        })),
      },
    ],
  };
}

test('encodeTransient writes the same bytes as encode, nested length prefixes of every width included', async () => {
  await assertProperty(
    'transient encode = encode',
    fc.property(fc.nat(1000), fc.array(fc.oneof(fc.nat(200), fc.integer({ min: 16_000, max: 20_000 }), fc.integer({ min: 2_000_000, max: 2_100_000 })), { maxLength: 4 }), (tag, sizes) => {
      const v = fetchResponse(tag, sizes);
      assert.deepEqual(codec.encodeTransient(v), codec.encode(v));
    }),
    { numRuns: 40 },
  );
});

test('encodeTransient reuses its buffer: the next call overwrites the view it returned', () => {
  const first = codec.encodeTransient(fetchResponse(1, [1000]));
  const copy = Buffer.from(first);
  codec.encodeTransient(fetchResponse(2, [1000]));
  assert.notDeepEqual(first, copy, 'the contract: a transient encoding is valid until the next one');
});

test('concurrent large gRPC responses, each encoded transiently, all arrive intact (grpc-js copies them at once)', async (t) => {
  const server = new grpc.Server({ ...SERVER_OPTIONS, 'grpc.max_receive_message_length': MESSAGE_BYTES_MAX });
  server.addService(serviceDefinition(RaftkaRpc), {
    Fetch: (call: grpc.ServerUnaryCall<{ maxBytes: number }, FetchResponse>, callback: grpc.sendUnaryData<FetchResponse>) => {
      const tag = call.request.maxBytes;
      // Answer out of order, so encodings of different responses interleave.
      setTimeout(() => callback(null, fetchResponse(tag, [300_000 + tag, 1_000 + tag])), tag % 7);
    },
  });
  const port = await bindServer(server, '127.0.0.1:0');
  const client = new RawClient(`127.0.0.1:${port}`);
  t.after(async () => {
    client.close();
    await shutdownServer(server);
  });
  const tags = Array.from({ length: 40 }, (_, i) => i + 1);
  const answers = await Promise.all(tags.map((tag) => client.fetch({ maxWaitMs: 0, minBytes: 0, maxBytes: tag, topics: [] })));
  answers.forEach((r, i) => {
    const want = fetchResponse(tags[i]!, [300_000 + tags[i]!, 1_000 + tags[i]!]);
    assert.equal(r.responses[0]!.name, want.responses[0]!.name);
    for (const [p, part] of r.responses[0]!.partitions.entries()) {
      assert.ok(Buffer.from(part.records).equals(want.responses[0]!.partitions[p]!.records), `response ${tags[i]} partition ${p} intact`);
      assert.equal(part.highWatermark, want.responses[0]!.partitions[p]!.highWatermark);
    }
  });
});
