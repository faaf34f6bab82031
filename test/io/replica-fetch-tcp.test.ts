// The framed TCP replica fetch transport: answers matched by correlation id, records
// carried raw, aborts, malformed requests and broken framing.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import net from 'node:net';
import { silentLogger } from '../../src/common/logger.ts';
import { ERRORS, isRaftkaError } from '../../src/common/errors.ts';
import type { ReplicaFetchRequest, ReplicaFetchResponse } from '../../src/broker/types.ts';
import { startTcpReplicaFetchServer, TcpReplicaFetchClient } from '../../src/io/replica-fetch-tcp.ts';
import { readBuffers } from '../../src/log/read-buffers.ts';
import { defer, waitFor } from '../support/tmp.ts';

const TOPIC_ID = 'AAAAAAAAAAAAAAAAAAAAAA';
const BIG = Buffer.from(Array.from({ length: 3 * 1024 * 1024 }, (_, i) => (i * 31) & 0xff));

/** 300 KiB of records that differ with the offset (4000..4099). */
const mid = (off: number) => BIG.subarray(off - 4000, off - 4000 + 300 * 1024);

/** `bytes` in a buffer lent by the read pool, as a log read answers them. */
function lentCopy(bytes: Buffer): Buffer {
  const b = readBuffers.acquire(bytes.length);
  bytes.copy(b);
  return b.subarray(0, bytes.length);
}

function request(fetchOffset: number, maxWaitMs = 0, partitions = 1): ReplicaFetchRequest {
  return {
    replicaId: 2,
    brokerEpoch: 1,
    maxWaitMs,
    minBytes: 1,
    maxBytes: 1 << 20,
    sessionId: 0,
    sessionEpoch: 0,
    forgotten: [],
    partitions: Array.from({ length: partitions }, (_, i) => ({ topicId: TOPIC_ID, partition: i, currentLeaderEpoch: 1, fetchOffset, lastFetchedEpoch: -1, flushedOffset: 0, maxBytes: 1 << 20 })),
  };
}

/** A leader stand-in: echoes the offset in the HW, records = "p<partition>@<offset>"; offset 999 parks until released. */
async function leader(t: Parameters<typeof defer>[0]) {
  const parked: Array<() => void> = [];
  let calls = 0;
  const server = await startTcpReplicaFetchServer({
    listen: '127.0.0.1:0',
    logger: silentLogger(),
    handler: {
      handleReplicaFetch: async (req): Promise<ReplicaFetchResponse> => {
        calls++;
        const off = req.partitions[0]?.fetchOffset ?? 0;
        if (off === 999) await new Promise<void>((r) => parked.push(r));
        if (off === 666) throw new TypeError('a bug in the leader');
        return {
          errorCode: 0,
          sessionId: 0,
          partitions: req.partitions.map((p) => ({
            topicId: p.topicId,
            partition: p.partition,
            errorCode: 0,
            highWatermark: off,
            logStartOffset: 0,
            logEndOffset: off,
            divergingEpoch: off === 7 ? { epoch: 3, endOffset: 5 } : undefined,
            records: off === 1234 ? BIG : off >= 4000 && off < 4100 ? mid(off) : off === 5000 ? lentCopy(mid(4050)) : Buffer.from(`p${p.partition}@${off}`),
          })),
        };
      },
    },
  });
  defer(t, () => {
    for (const r of parked) r();
    return server.close();
  });
  return { server, parked, calls: () => calls };
}

test('concurrent fetches on one connection get their own answers; records and diverging epochs survive the trip', async (t) => {
  const { server } = await leader(t);
  const client = new TcpReplicaFetchClient({ addresses: new Map([[1, `127.0.0.1:${server.port}`]]) });
  defer(t, () => client.close());
  const signal = new AbortController().signal;
  const answers = await Promise.all(Array.from({ length: 20 }, (_, i) => client.fetch(1, request(i, 0, 1 + (i % 3)), new AbortController().signal)));
  answers.forEach((a, i) => {
    assert.equal(a.errorCode, 0);
    assert.equal(a.partitions.length, 1 + (i % 3));
    a.partitions.forEach((p, j) => {
      assert.equal(p.highWatermark, i);
      assert.equal(p.records.toString(), `p${j}@${i}`);
    });
  });
  assert.deepEqual(answers[7]!.partitions[0]!.divergingEpoch, { epoch: 3, endOffset: 5 });
  assert.equal(answers[6]!.partitions[0]!.divergingEpoch, undefined);
  // Big record payloads (many TCP reads each) arrive whole, in their partitions.
  const big = await client.fetch(1, request(1234, 0, 2), signal);
  assert.ok(big.partitions[0]!.records.equals(BIG) && big.partitions[1]!.records.equals(BIG));
  const empty = await client.fetch(1, request(0, 0, 0), signal);
  assert.deepEqual(empty.partitions, []);
  // A handler bug is a code, and the connection goes on.
  assert.equal((await client.fetch(1, request(666), signal)).errorCode, ERRORS.UNKNOWN_SERVER_ERROR.code);
  assert.equal((await client.fetch(1, { ...request(1), maxWaitMs: -5 }, signal)).errorCode, ERRORS.INVALID_REQUEST.code);
  assert.equal((await client.fetch(1, request(3), signal)).partitions[0]!.highWatermark, 3);
});

test('an abort settles the call at once and leaves the connection usable', async (t) => {
  const l = await leader(t);
  const client = new TcpReplicaFetchClient({ addresses: new Map([[1, `127.0.0.1:${l.server.port}`]]) });
  defer(t, () => client.close());
  const ac = new AbortController();
  const parked = client.fetch(1, request(999, 10_000), ac.signal);
  await waitFor('the fetch parked on the leader', () => l.parked.length === 1, 5_000, 5);
  ac.abort();
  await assert.rejects(parked, (e: unknown) => isRaftkaError(e, 'REQUEST_TIMED_OUT'));
  const next = await client.fetch(1, request(4), new AbortController().signal);
  assert.equal(next.partitions[0]!.highWatermark, 4);
  // The late answer to the aborted call is dropped quietly.
  l.parked.shift()!();
  assert.equal((await client.fetch(1, request(5), new AbortController().signal)).partitions[0]!.highWatermark, 5);
});

test('unknown and unreachable leaders fail fast', async (t) => {
  const client = new TcpReplicaFetchClient({ addresses: new Map([[3, '127.0.0.1:1']]) });
  defer(t, () => client.close());
  await assert.rejects(client.fetch(9, request(0), new AbortController().signal), (e: unknown) => isRaftkaError(e, 'BROKER_NOT_AVAILABLE'));
  await assert.rejects(client.fetch(3, request(0), new AbortController().signal), (e: unknown) => isRaftkaError(e, 'NETWORK_EXCEPTION'));
});

test('a peer that breaks the framing is disconnected; others are served', async (t) => {
  const l = await leader(t);
  const junk = async (bytes: Buffer) => {
    const sock = net.connect(l.server.port, '127.0.0.1');
    defer(t, () => sock.destroy());
    const closed = new Promise<void>((resolve) => sock.on('close', () => resolve()));
    sock.on('error', () => undefined);
    sock.write(bytes);
    await closed;
  };
  await junk(Buffer.from([0xff, 0xff, 0xff, 0xff, 1, 2, 3]));
  const wrongKind = Buffer.alloc(9);
  wrongKind.writeUInt32BE(5, 0);
  wrongKind.writeUInt8(7, 4);
  await junk(wrongKind);
  const garbageBody = Buffer.concat([Buffer.from([0, 0, 0, 9, 1, 0, 0, 0, 1]), Buffer.from([0xff, 0xff, 0xff, 0xff])]);
  await junk(garbageBody);
  const client = new TcpReplicaFetchClient({ addresses: new Map([[1, `127.0.0.1:${l.server.port}`]]) });
  defer(t, () => client.close());
  assert.equal((await client.fetch(1, request(2), new AbortController().signal)).partitions[0]!.highWatermark, 2);
});

test('a response the fetcher released lends its frame buffer to a later one; an unreleased response keeps its bytes', async (t) => {
  const { server } = await leader(t);
  const client = new TcpReplicaFetchClient({ addresses: new Map([[1, `127.0.0.1:${server.port}`]]) });
  defer(t, () => client.close());
  const signal = new AbortController().signal;
  const first = await client.fetch(1, request(4001), signal);
  assert.ok(first.partitions[0]!.records.equals(mid(4001)));
  const store = first.partitions[0]!.records.buffer;
  client.release(first);
  const second = await client.fetch(1, request(4002), signal);
  assert.equal(second.partitions[0]!.records.buffer, store, 'the released frame buffer was reused');
  assert.ok(second.partitions[0]!.records.equals(mid(4002)), 'and holds the new response whole');
  // Not released: the next response gets another buffer and the first keeps its bytes.
  const third = await client.fetch(1, request(4003), signal);
  assert.notEqual(third.partitions[0]!.records.buffer, store);
  assert.ok(second.partitions[0]!.records.equals(mid(4002)) && third.partitions[0]!.records.equals(mid(4003)));
  // Frames past the pooled size are plain allocations; releasing them is harmless.
  const big = await client.fetch(1, request(1234), signal);
  client.release(big);
  client.release(big);
  assert.ok(big.partitions[0]!.records.equals(BIG));
});

test('the leader gives lent read buffers back once a response is written', async (t) => {
  const { server } = await leader(t);
  const client = new TcpReplicaFetchClient({ addresses: new Map([[1, `127.0.0.1:${server.port}`]]) });
  defer(t, () => client.close());
  const signal = new AbortController().signal;
  // Drain the idle list so a buffer coming back is visible.
  const held = Array.from({ length: readBuffers.idleCount }, () => readBuffers.acquire(100 * 1024));
  const r = await client.fetch(1, request(5000, 0, 2), signal);
  assert.ok(r.partitions.every((p) => p.records.equals(mid(4050))), 'the records arrive whole');
  await waitFor("both partitions' buffers back in the pool", () => readBuffers.idleCount === 2, 5000);
  for (const b of held) readBuffers.release(b);
});
