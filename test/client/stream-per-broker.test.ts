// StreamPerBroker over a real grpc-js FetchStream whose server answers only when the test
// says so: per-request deadlines retire a stream, an abort drops one request and keeps
// the stream, a broken stream is replaced on the next request, close(false) cuts it.
import { test, type TestContext } from 'node:test';
import assert from 'node:assert/strict';
import * as grpc from '@grpc/grpc-js';
import { RawClient, StreamPerBroker } from '../../src/client/raw-client.ts';
import { RaftkaRpc, type FetchRequest, type FetchResponse } from '../../src/proto/raftka.ts';
import { bindServer, serviceDefinition, shutdownServer, SERVER_OPTIONS } from '../../src/proto/rpc.ts';
import { waitFor } from '../support/tmp.ts';

interface Held {
  req: FetchRequest;
  call: grpc.ServerDuplexStream<FetchRequest, FetchResponse>;
}

/** A server that holds every FetchStream request until `answer` or `breakStream`. */
async function holdingServer(t: TestContext) {
  const held: Held[] = [];
  const streams: Array<grpc.ServerDuplexStream<FetchRequest, FetchResponse>> = [];
  const server = new grpc.Server(SERVER_OPTIONS);
  server.addService(serviceDefinition(RaftkaRpc), {
    FetchStream: (call: grpc.ServerDuplexStream<FetchRequest, FetchResponse>) => {
      streams.push(call);
      call.on('data', (req: FetchRequest) => held.push({ req, call }));
      call.on('end', () => call.end());
      call.on('error', () => undefined);
    },
  });
  const port = await bindServer(server, '127.0.0.1:0');
  const client = new RawClient(`127.0.0.1:${port}`);
  const address = `127.0.0.1:${port}`;
  t.after(async () => {
    client.close();
    await shutdownServer(server, 100);
  });
  const answer = (h: Held, tag: string) => h.call.write({ correlationId: h.req.correlationId!, errorCode: 0, errorMessage: tag, responses: [] });
  const breakStream = (call: grpc.ServerDuplexStream<FetchRequest, FetchResponse>) => call.emit('error', Object.assign(new Error('dropped'), { code: grpc.status.UNAVAILABLE }));
  const streamsFor = new StreamPerBroker<FetchRequest, FetchResponse>('fetch', () => client.fetchStream());
  t.after(() => streamsFor.close(false));
  return { held, streams, address, answer, breakStream, streamsFor };
}

const req = (maxBytes: number): FetchRequest => ({ maxWaitMs: 0, maxBytes, topics: [] });

test('answers reach their own request, in any order', async (t) => {
  const s = await holdingServer(t);
  const a = s.streamsFor.send(s.address, req(1), 5_000);
  const b = s.streamsFor.send(s.address, req(2), 5_000);
  await waitFor('both requests at the server', () => s.held.length === 2);
  const [ha, hb] = [s.held.find((h) => h.req.maxBytes === 1)!, s.held.find((h) => h.req.maxBytes === 2)!];
  s.answer(hb, 'for b');
  s.answer(ha, 'for a');
  assert.equal((await a).errorMessage, 'for a');
  assert.equal((await b).errorMessage, 'for b');
  assert.equal(s.streams.length, 1, 'both went over one stream');
});

test('a request unanswered by its deadline fails with DEADLINE_EXCEEDED, and the next request opens a new stream', async (t) => {
  const s = await holdingServer(t);
  await assert.rejects(s.streamsFor.send(s.address, req(1), 100), (e: grpc.ServiceError) => e.code === grpc.status.DEADLINE_EXCEEDED && /no fetch answer within 100 ms/.test(e.message));
  const next = s.streamsFor.send(s.address, req(2), 5_000);
  await waitFor('the second request at the server', () => s.held.length === 2);
  assert.equal(s.streams.length, 2);
  s.answer(s.held[1]!, 'fresh');
  assert.equal((await next).errorMessage, 'fresh');
});

test('an aborted request rejects with CANCELLED; its late answer is ignored and the stream goes on', async (t) => {
  const s = await holdingServer(t);
  const ac = new AbortController();
  const aborted = s.streamsFor.send(s.address, req(1), 5_000, ac.signal);
  await waitFor('the request at the server', () => s.held.length === 1);
  ac.abort();
  await assert.rejects(aborted, (e: grpc.ServiceError) => e.code === grpc.status.CANCELLED);
  s.answer(s.held[0]!, 'too late');
  const next = s.streamsFor.send(s.address, req(2), 5_000);
  await waitFor('the second request at the server', () => s.held.length === 2);
  s.answer(s.held[1]!, 'second');
  assert.equal((await next).errorMessage, 'second');
  assert.equal(s.streams.length, 1, 'the abort kept the stream');
  await assert.rejects(s.streamsFor.send(s.address, req(3), 5_000, AbortSignal.abort()), (e: grpc.ServiceError) => e.code === grpc.status.CANCELLED);
});

test('a broken stream fails its requests; the next request opens a new one', async (t) => {
  const s = await holdingServer(t);
  const a = s.streamsFor.send(s.address, req(1), 5_000);
  const b = s.streamsFor.send(s.address, req(2), 5_000);
  await waitFor('both requests at the server', () => s.held.length === 2);
  s.breakStream(s.streams[0]!);
  await assert.rejects(a, (e: grpc.ServiceError) => e.code === grpc.status.UNAVAILABLE);
  await assert.rejects(b, (e: grpc.ServiceError) => e.code === grpc.status.UNAVAILABLE);
  const c = s.streamsFor.send(s.address, req(3), 5_000);
  await waitFor('the third request at the server', () => s.held.length === 3);
  assert.equal(s.streams.length, 2);
  s.answer(s.held[2]!, 'on the new stream');
  assert.equal((await c).errorMessage, 'on the new stream');
});

test('close(false) cuts the streams: waiting requests reject at once', async (t) => {
  const s = await holdingServer(t);
  const a = s.streamsFor.send(s.address, req(1), 60_000);
  await waitFor('the request at the server', () => s.held.length === 1);
  await s.streamsFor.close(false);
  await assert.rejects(a, (e: grpc.ServiceError) => e.code === grpc.status.CANCELLED);
});
