import { test } from 'node:test';
import assert from 'node:assert/strict';
import { RaftTransport } from '../../src/io/raft-transport.ts';
import { messageFromWire, messageToWire, raftMessageCodec } from '../../src/io/raft-codec.ts';
import type { Message } from '../../src/raft/types.ts';
import protobuf from 'protobufjs';
import { RAFT_PROTO_PATH } from '../../src/io/raft-transport.ts';
import { waitFor } from '../support/tmp.ts';
import { createLogger } from '../../src/common/logger.ts';
import net from 'node:net';

const base = (from: number, to: number, clusterId = 'c1') => ({ clusterId, from, to, term: 7 });
const cfg = { voters: [{ nodeId: 1, directoryId: 'AAAAAAAAAAAAAAAAAAAAAA' }], observers: [4] };

const samples = (from: number, to: number): Message[] => [
  { ...base(from, to), type: 'preVote', lastLogIndex: 10, lastLogTerm: 6, candidateDirectoryId: 'cand', voterDirectoryId: 'vot', leadershipTransfer: false },
  { ...base(from, to), type: 'vote', lastLogIndex: 2 ** 40, lastLogTerm: 6, candidateDirectoryId: 'cand', voterDirectoryId: 'vot', leadershipTransfer: true },
  { ...base(from, to), type: 'preVoteResponse', granted: true, voterDirectoryId: 'v' },
  { ...base(from, to), type: 'voteResponse', granted: false, voterDirectoryId: 'v' },
  {
    ...base(from, to), type: 'append', prevLogIndex: 4, prevLogTerm: 3, leaderCommit: 4,
    entries: [
      { term: 7, index: 5, kind: 'normal', data: new Uint8Array([1, 2, 3]) },
      { term: 7, index: 6, kind: 'config', data: new Uint8Array([9]) },
      { term: 7, index: 7, kind: 'noop', data: new Uint8Array(0) },
    ],
  },
  { ...base(from, to), type: 'appendResponse', success: false, matchIndex: 0, rejectedIndex: 4, conflictTerm: 2, conflictIndex: 3 },
  { ...base(from, to), type: 'appendResponse', success: true, matchIndex: 7, rejectedIndex: 0, conflictTerm: 0, conflictIndex: 0, voterDirectoryId: 'dir-a' },
  { ...base(from, to), type: 'heartbeat', commitIndex: 9, readContext: 12 },
  { ...base(from, to), type: 'heartbeatResponse', readContext: 12, lastLogIndex: 9 },
  { ...base(from, to), type: 'heartbeatResponse', readContext: 12, lastLogIndex: 9, voterDirectoryId: 'dir-a' },
  { ...base(from, to), type: 'installSnapshot', meta: { index: 100, term: 5, config: cfg }, offset: 0, totalBytes: 3, data: new Uint8Array([7, 7, 7]), done: true },
  { ...base(from, to), type: 'installSnapshotResponse', snapshotIndex: 100, nextOffset: 3, done: true },
  { ...base(from, to), type: 'installSnapshotResponse', snapshotIndex: 100, nextOffset: 3, done: true, voterDirectoryId: 'dir-a' },
  { ...base(from, to), type: 'timeoutNow' },
  { ...base(from, to), type: 'readIndex', context: 'r-1' },
  { ...base(from, to), type: 'readIndexResponse', context: 'r-1', index: -1 },
];

/** Compares byte fields by content, whatever Uint8Array subclass (Buffer) carries them. */
function normalize(v: unknown): unknown {
  if (v instanceof Uint8Array) return { bytes: [...v] };
  if (Array.isArray(v)) return v.map(normalize);
  if (v !== null && typeof v === 'object') return Object.fromEntries(Object.entries(v).map(([k, x]) => [k, normalize(x)]));
  return v;
}

void test('every message type survives proto encoding unchanged', () => {
  const root = protobuf.loadSync(RAFT_PROTO_PATH);
  const T = root.lookupType('raftka.internal.RaftMessage');
  for (const m of samples(1, 2)) {
    const decoded = T.decode(T.encode(messageToWire(m)).finish());
    assert.deepEqual(normalize(messageFromWire(decoded as unknown as Record<string, unknown>)), normalize(m), m.type);
  }
});

void test('a message without a body is refused by the codec', () => {
  const root = protobuf.loadSync(RAFT_PROTO_PATH);
  const T = root.lookupType('raftka.internal.RaftMessage');
  const decoded = T.decode(T.encode({ clusterId: 'c1', from: 1, to: 2, term: 1 }).finish());
  assert.throws(() => messageFromWire(decoded as unknown as Record<string, unknown>), /without a known body/);
});

void test('transport delivers batches between peers and rejects another cluster and unknown nodes', async (t) => {
  const received = new Map<number, Array<{ from: number; messages: Message[] }>>();
  const logLines: string[] = [];
  const logger = createLogger({ level: 'warn', destination: { write: (s: string) => void logLines.push(s) } });
  const mk = (nodeId: number, clusterId: string, peers: Map<number, string>) => {
    const got: Array<{ from: number; messages: Message[] }> = [];
    received.set(nodeId, got);
    const tr = new RaftTransport<Message>({
      clusterId, nodeId, directoryId: `dir${nodeId}`, listen: '127.0.0.1:0', peers, codec: raftMessageCodec,
      onMessages: (from, messages) => got.push({ from, messages }), logger,
    });
    t.after(() => tr.close());
    return tr;
  };
  const peers = new Map<number, string>([[1, ''], [2, '']]);
  const a = mk(1, 'c1', peers);
  const b = mk(2, 'c1', peers);
  const pa = await a.start();
  const pb = await b.start();
  a.addPeer(2, `127.0.0.1:${pb}`);
  b.addPeer(1, `127.0.0.1:${pa}`);

  const msgs = samples(1, 2);
  a.send(2, msgs);
  a.send(2, [msgs[6]!]);
  await waitFor('two batches at node 2', () => (received.get(2)!.length >= 2 ? true : undefined), 5000);
  const got2 = received.get(2)!;
  assert.equal(got2[0]!.from, 1);
  assert.deepEqual(got2[0]!.messages.map(normalize), msgs.map(normalize));
  assert.deepEqual(got2[1]!.messages.map(normalize), [normalize(msgs[6]!)]);
  b.send(1, samples(2, 1).slice(0, 1));
  await waitFor('reply at node 1', () => (received.get(1)!.length >= 1 ? true : undefined), 5000);

  // Another cluster, same node id as a member: rejected at the door, nothing delivered.
  const foreign = mk(1, 'other-cluster', new Map([[2, `127.0.0.1:${pb}`]]));
  foreign.send(2, [msgs[6]!]);
  // A node of the right cluster that is not a member.
  const stranger = mk(9, 'c1', new Map([[2, `127.0.0.1:${pb}`]]));
  stranger.send(2, [msgs[6]!]);
  await waitFor('two rejections at node 2', () => (b.stats.batchesRejected >= 2 ? true : undefined), 5000);
  assert.equal(got2.length, 2, 'no rejected batch was delivered');
  const rejections = logLines.map((l) => JSON.parse(l) as { msg: string; why?: string; nodeId: number }).filter((l) => l.msg === 'rejected raft messages');
  assert.ok(rejections.some((l) => l.nodeId === 2 && /cluster id "other-cluster"/.test(l.why ?? '')), 'cluster-id rejection logged');
  assert.ok(rejections.some((l) => l.nodeId === 2 && /node 9 is not a member/.test(l.why ?? '')), 'unknown-node rejection logged');
  assert.ok(got2.every((g) => g.from === 1 && g.messages.every((m) => m.clusterId === 'c1')));

  // The member's stream still works after the rejections.
  a.send(2, [msgs[7]!]);
  await waitFor('third batch at node 2', () => (got2.length >= 3 ? true : undefined), 5000);
});

void test('sends to a peer that is down are dropped without throwing, and flow once it is up', async (t) => {
  const got: Message[] = [];
  const a = new RaftTransport<Message>({
    clusterId: 'c1', nodeId: 1, directoryId: 'd1', listen: '127.0.0.1:0', codec: raftMessageCodec,
    peers: new Map([[2, '127.0.0.1:1']]), onMessages: () => undefined,
  });
  t.after(() => a.close());
  await a.start();
  a.send(2, samples(1, 2).slice(6, 7)); // nothing listens on port 1
  a.send(3, samples(1, 3).slice(6, 7)); // no address at all
  assert.ok(a.stats.messagesDropped >= 1);
  const b = new RaftTransport<Message>({
    clusterId: 'c1', nodeId: 2, directoryId: 'd2', listen: '127.0.0.1:0', codec: raftMessageCodec,
    peers: new Map([[1, '']]), onMessages: (_f, ms) => got.push(...ms),
  });
  t.after(() => b.close());
  const pb = await b.start();
  a.addPeer(2, `127.0.0.1:${pb}`);
  await waitFor('heartbeat delivered once the peer is up', () => {
    a.send(2, samples(1, 2).slice(6, 7));
    return got.length > 0 ? true : undefined;
  }, 5000, 50);
});

void test('bytes queued towards a peer that never reads stay under peerBufferBytesMax', async (t) => {
  // Accepts TCP and never speaks HTTP/2: grpc-js would buffer everything sent to it.
  const sockets: net.Socket[] = [];
  const sink = net.createServer((s) => void sockets.push(s.pause()));
  await new Promise<void>((resolve) => sink.listen(0, '127.0.0.1', resolve));
  t.after(() => {
    for (const s of sockets) s.destroy();
    sink.close();
  });
  const bound = 1024 * 1024;
  const a = new RaftTransport<Message>({
    clusterId: 'c1', nodeId: 1, directoryId: 'd1', listen: '127.0.0.1:0', codec: raftMessageCodec,
    peers: new Map([[2, `127.0.0.1:${(sink.address() as net.AddressInfo).port}`]]), onMessages: () => undefined,
    peerBufferBytesMax: bound,
  });
  t.after(() => a.close());
  await a.start();
  const data = new Uint8Array(1024);
  const append: Message = {
    ...base(1, 2), type: 'append', prevLogIndex: 0, prevLogTerm: 0, leaderCommit: 0,
    entries: Array.from({ length: 64 }, (_, i) => ({ term: 1, index: i + 1, kind: 'normal' as const, data })),
  };
  for (let i = 0; i < 200; i++) a.send(2, [append]); // ~13 MiB offered
  assert.ok(a.stats.messagesDropped > 0, 'some batches were dropped');
  // At most one batch (~66 KiB) over the bound was accepted.
  assert.ok(a.stats.batchesSent * 66 * 1024 <= bound + 2 * 66 * 1024, `${a.stats.batchesSent} batches accepted`);
});
