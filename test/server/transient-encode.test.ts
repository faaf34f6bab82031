import { test } from 'node:test';
import assert from 'node:assert/strict';
import fc from 'fast-check';
import { RaftkaRpc, type FetchRequest, type FetchResponse } from '../../src/proto/raftka.ts';
import { fetchServer } from '../support/fetch-server.ts';
import { ReadBufferPool } from '../../src/log/read-buffers.ts';
import { assertProperty } from '../support/property.ts';

const codec = RaftkaRpc.Fetch.response;

function fetchResponse(tag: number, sizes: readonly number[]): FetchResponse {
  return {
    correlationId: tag,
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

test('encode and encodeTransient write the bytes of a fresh protobufjs writer, nested length prefixes of every width included', async () => {
  await assertProperty(
    'transient encode = encode = protobufjs',
    fc.property(fc.nat(1000), fc.array(fc.oneof(fc.nat(200), fc.integer({ min: 16_000, max: 20_000 }), fc.integer({ min: 2_000_000, max: 2_100_000 })), { maxLength: 4 }), (tag, sizes) => {
      const v = fetchResponse(tag, sizes);
      const fresh = Buffer.from(codec.type.encode(v).finish());
      assert.deepEqual(codec.encode(v), fresh);
      assert.deepEqual(codec.encodeTransient(v), fresh);
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

test('encode returns bytes of its own: later encodings (transient or not) leave them as they were', () => {
  const first = codec.encode(fetchResponse(1, [5000]));
  const copy = Buffer.from(first);
  codec.encode(fetchResponse(2, [5000]));
  codec.encodeTransient(fetchResponse(3, [5000]));
  assert.deepEqual(first, copy);
});


test('concurrent large gRPC responses, each encoded transiently, all arrive intact (grpc-js copies them at once)', async (t) => {
  const client = await fetchServer(t, (tag) => fetchResponse(tag, [300_000 + tag, 1_000 + tag]));
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

for (const transport of ['Fetch', 'FetchStream'] as const) {
  test(`read buffers given back once a ${transport} response is encoded are lent again, and no response in flight is corrupted`, async (t) => {
    const pool = new ReadBufferPool(400_000, 4);
    const stores = new Set<ArrayBufferLike>();
    const client = await fetchServer(
      t,
      (tag) => {
        const res = fetchResponse(tag, [0]);
        const size = 300_000 + tag;
        const lent = pool.acquire(size);
        stores.add(lent.buffer);
        lent.fill((tag * 31) % 251, 0, size);
        res.responses[0]!.partitions[0]!.records = lent.subarray(0, size);
        return res;
      },
      { [transport]: (res: FetchResponse) => res.responses.forEach((r) => r.partitions.forEach((p) => pool.release(p.records))) },
    );
    const stream = client.fetchStream();
    t.after(() => stream.cancel());
    const fetch = (req: FetchRequest) => (transport === 'Fetch' ? client.fetch(req) : stream.send(req));
    const tags = Array.from({ length: 60 }, (_, i) => i + 1);
    // Three waves: buffers given back by one wave's encodings are lent to the next.
    for (let wave = 0; wave < 3; wave++) {
      const some = tags.filter((tag) => tag % 3 === wave);
      const answers = await Promise.all(some.map((tag) => fetch({ maxWaitMs: 0, minBytes: 0, maxBytes: tag, topics: [] })));
      answers.forEach((r, i) => {
        const tag = some[i]!;
        const records = r.responses[0]!.partitions[0]!.records;
        assert.ok(Buffer.from(records).equals(Buffer.alloc(300_000 + tag, (tag * 31) % 251)), `response ${tag} intact`);
      });
    }
    assert.ok(stores.size < tags.length, `60 responses lent ${stores.size} distinct buffers: some must have been reused`);
    assert.equal(pool.idleCount, 4, 'every buffer came back; the pool keeps 4');
  });
}
