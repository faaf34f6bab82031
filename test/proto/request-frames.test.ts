import { test } from 'node:test';
import assert from 'node:assert/strict';
import * as grpc from '@grpc/grpc-js';
import { grpcJsInternal } from '../../src/proto/grpc-internals.ts';
import { installInPlaceRequestFrames, withFrameHeadroom } from '../../src/proto/request-frames.ts';
import { bindServer, messageCodec, SERVER_OPTIONS, shutdownServer } from '../../src/proto/rpc.ts';
import { RaftkaRpc, type ProduceRequest } from '../../src/proto/raftka.ts';

interface Sender {
  writeMessage(message: Buffer, compress: boolean): Promise<Buffer>;
}

/** The handler a grpc-js client call frames its messages with when nothing is compressed. */
function identityHandler(): Sender {
  const mod = grpcJsInternal<{ CompressionFilter: new (o: object, s: object) => { sendCompression: Sender } }>('build/src/compression-filter.js');
  assert.ok(mod, 'grpc-js of the locked release line');
  return new mod.CompressionFilter({}, {}).sendCompression;
}

test('in-place request frames are installed into the grpc-js this repository locks (an upgrade that drops them fails here)', () => {
  assert.equal(installInPlaceRequestFrames(), true);
});

test('a message with headroom is framed in its own memory; any other message is copied into a frame as grpc-js does', async () => {
  assert.equal(installInPlaceRequestFrames(), true);
  const handler = identityHandler();
  const body = Buffer.from('a produce request, as bytes');
  const message = withFrameHeadroom(body);
  assert.deepEqual(message, body);
  const frame = await handler.writeMessage(message, false);
  assert.equal(frame.buffer, message.buffer, 'the frame is the message memory');
  assert.equal(frame.byteOffset, message.byteOffset - 5);
  assert.equal(frame[0], 0, 'not compressed');
  assert.equal(frame.readUInt32BE(1), body.length);
  assert.deepEqual(frame.subarray(5), body);
  // Framing it again (a transparent retry resends the kept message) gives the same bytes.
  assert.deepEqual(await handler.writeMessage(message, false), frame);

  const plain = Buffer.from(body);
  const copied = await handler.writeMessage(plain, false);
  assert.equal(copied.readUInt32BE(1), body.length);
  plain.fill(0);
  assert.deepEqual(copied.subarray(5), body, 'a message without headroom is copied');
  // A view into someone else's buffer never gets its preceding bytes overwritten.
  const shared = Buffer.alloc(64, 0xee);
  const view = shared.subarray(10, 10 + body.length);
  body.copy(view);
  await handler.writeMessage(view, false);
  assert.deepEqual(shared.subarray(5, 10), Buffer.alloc(5, 0xee));
});

test('messageCodec.encode leaves headroom, and its results stay intact while later encodes reuse the writer', () => {
  const codec = messageCodec<ProduceRequest>(RaftkaRpc.Produce.request.type);
  const req = (tag: number, size: number): ProduceRequest => ({ acks: -1, timeoutMs: 1000, topicData: [{ name: `t${tag}`, partitions: [{ partition: tag, records: Buffer.alloc(size, tag) }] }] });
  const a = codec.encode(req(1, 100_000));
  const b = codec.encode(req(2, 300));
  assert.equal(a.byteOffset >= 5, true);
  assert.deepEqual(codec.decode(a).topicData[0]!.partitions[0]!.records, Buffer.alloc(100_000, 1));
  assert.deepEqual(codec.decode(b).topicData[0]!.name, 't2');
});

test('produce requests of many sizes sent over a grpc-js stream arrive byte for byte', async (t) => {
  const server = new grpc.Server(SERVER_OPTIONS);
  const received: Buffer[] = [];
  const identity = (x: Buffer) => x;
  server.addService(
    { Stream: { path: '/test.Frames/Stream', requestStream: true, responseStream: true, requestSerialize: identity, requestDeserialize: identity, responseSerialize: identity, responseDeserialize: identity } },
    {
      Stream: (call: grpc.ServerDuplexStream<Buffer, Buffer>) => {
        call.on('data', (m: Buffer) => {
          received.push(Buffer.from(m));
          call.write(Buffer.alloc(1));
        });
        call.on('end', () => call.end());
      },
    },
  );
  const port = await bindServer(server, '127.0.0.1:0', 16 * 1024 * 1024);
  t.after(() => shutdownServer(server, 0));
  const client = new grpc.Client(`127.0.0.1:${port}`, grpc.credentials.createInsecure());
  t.after(() => client.close());
  const codec = RaftkaRpc.Produce.request;
  const call = client.makeBidiStreamRequest('/test.Frames/Stream', (v: ProduceRequest) => codec.encode(v), identity, new grpc.Metadata());
  const sizes = [0, 1, 4091, 4096, 65_531, 65_536, 300_000, 1_000_000, 17];
  const sent = sizes.map((size, i): ProduceRequest => ({ acks: -1, timeoutMs: 1000, topicData: [{ name: `t${i}`, partitions: [{ partition: i, records: Buffer.alloc(size, (i * 37) % 251) }] }] }));
  let answers = 0;
  const done = new Promise<void>((resolve, reject) => {
    call.on('data', () => {
      if (++answers === sent.length) resolve();
    });
    call.on('error', reject);
  });
  for (const r of sent) call.write(r);
  await done;
  call.end();
  assert.equal(received.length, sent.length);
  received.forEach((m, i) => assert.deepEqual(codec.decode(m), codec.decode(codec.encode(sent[i]!)), `message ${i} (${sizes[i]} record bytes)`));
});
