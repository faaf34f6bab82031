// `npm run bench -- replica-transport [--json] [--seconds S] [--rounds R] [--partitions P] [--batch-kib K]`
//
// How fast can a follower pull record bytes from a leader on 127.0.0.1? The leader runs in
// a child process and answers every fetch with P partitions of one K KiB batch each
// (default 1 x 1 MiB) from memory, so this measures the transport alone, not the disk.
// The follower side is this process, one fetch in flight at a time (as the replica
// fetcher runs), for S seconds per variant (default 2), R interleaved rounds (default 3),
// median reported:
//   grpcDefaultMBs       GrpcReplicaFetchClient + addReplicaFetchService (the real code),
//                        channel with grpc's default HTTP/2 window (64 KiB)
//   grpcRaisedMBs        the same with DATA_CHANNEL_OPTIONS (grpc-node.flow_control_window
//                        raised to 16 MiB): what the broker uses
//   grpcRaised64MBs      a 64 MiB window, to see whether more window still helps
//   tcpMBs               raw Node TCP with minimal framing (the floor): the request and
//                        the response header are the same protobuf messages, the records
//                        follow the header as raw bytes (no protobuf copy)
//   tcpTransportMBs      TcpReplicaFetchClient + startTcpReplicaFetchServer
//                        (src/io/replica-fetch-tcp.ts): the same idea with correlation
//                        ids, deadlines and validation, as a broker would run it
//   grpcProduceMBs       the other direction, for comparison: the public Produce rpc
//                        (RawClient -> the real client API handlers, a replica manager
//                        stand-in that appends nothing), 1 request in flight, acks=1,
//                        with the server's receive window raised to 16 MiB (bindServer)
//   grpcProduceDefaultWindowMBs  the same with grpc-js's default 64 KiB server window
// plus ratios against raw TCP and the fetch round-trip p50 for each. MB = 10^6 bytes.
import { spawn, type ChildProcess } from 'node:child_process';
import net from 'node:net';
import { fileURLToPath } from 'node:url';
import * as grpc from '@grpc/grpc-js';
import type { BenchContext, BenchResult } from '../bench.ts';
import { median, numberArg } from '../bench-support/args.ts';
import type { ReplicaFetchRequest, ReplicaFetchResponse } from '../../src/broker/types.ts';
import { silentLogger } from '../../src/common/logger.ts';
import { addReplicaFetchService, GrpcReplicaFetchClient } from '../../src/io/replica-fetch-transport.ts';
import { startTcpReplicaFetchServer, TcpReplicaFetchClient } from '../../src/io/replica-fetch-tcp.ts';
import { BrokerReplicationRpc, type WireReplicaFetchRequest, type WireReplicaFetchResponse } from '../../src/proto/broker.ts';
import { RawClient } from '../../src/client/raw-client.ts';
import { startClientApiServer } from '../../src/server/client-api.ts';
import type { MetadataView, TopicView } from '../../src/server/types.ts';
import { bindServer, CHANNEL_OPTIONS, DATA_CHANNEL_OPTIONS, SERVER_OPTIONS, shutdownServer } from '../../src/proto/rpc.ts';

const SERVE_FLAG = '--replica-transport-server';
const TOPIC_ID = 'AAAAAAAAAAAAAAAAAAAAAA';

// ─── the leader process ───

function cannedResponse(req: { partitions: readonly { topicId: string; partition: number; fetchOffset: number }[] }, payload: Buffer): ReplicaFetchResponse {
  return {
    errorCode: 0,
    sessionId: 0,
    partitions: req.partitions.map((p) => ({
      topicId: p.topicId,
      partition: p.partition,
      errorCode: 0,
      highWatermark: p.fetchOffset + 1000,
      logStartOffset: 0,
      logEndOffset: p.fetchOffset + 1000,
      records: payload,
    })),
  };
}

/** TCP framing: [u32 length][protobuf request]; answer [u32 header length][u32 records length][protobuf header][records]. */
function serveTcp(payload: Buffer): Promise<net.Server> {
  const { request, response } = BrokerReplicationRpc.ReplicaFetch;
  const server = net.createServer((sock) => {
    sock.setNoDelay(true);
    let buf: Buffer = Buffer.alloc(0);
    sock.on('data', (chunk: Buffer) => {
      buf = buf.length === 0 ? chunk : Buffer.concat([buf, chunk]);
      while (buf.length >= 4) {
        const len = buf.readUInt32BE(0);
        if (buf.length < 4 + len) break;
        const req = request.decode(buf.subarray(4, 4 + len));
        buf = buf.subarray(4 + len);
        const resp = cannedResponse(req, payload);
        // Records travel after the header, once per partition, never copied into it.
        const header = response.encode({ errorCode: 0, sessionId: 0, partitions: resp.partitions.map((p) => ({ ...p, divergingEpoch: null, records: Buffer.alloc(0) })) });
        const lens = Buffer.alloc(8);
        lens.writeUInt32BE(header.length, 0);
        lens.writeUInt32BE(payload.length * resp.partitions.length, 4);
        sock.cork();
        sock.write(lens);
        sock.write(header);
        for (let i = 0; i < resp.partitions.length; i++) sock.write(payload);
        sock.uncork();
      }
    });
    sock.on('error', () => undefined);
  });
  return new Promise((resolve) => server.listen(0, '127.0.0.1', () => resolve(server)));
}

async function serve(): Promise<void> {
  const batchBytes = Number(process.argv[process.argv.indexOf(SERVE_FLAG) + 1]);
  const payload = Buffer.alloc(batchBytes, 0x5a);
  const server = new grpc.Server(SERVER_OPTIONS);
  addReplicaFetchService(server, { handleReplicaFetch: async (req) => cannedResponse(req, payload) }, silentLogger());
  const grpcPort = await bindServer(server, '127.0.0.1:0');
  const tcp = await serveTcp(payload);
  const tcpPort = (tcp.address() as net.AddressInfo).port;
  const topic: TopicView = { name: 't', topicId: TOPIC_ID, partitions: [{ partition: 0, leader: 1, leaderEpoch: 1, replicas: [1], isr: [1], elr: [], lastKnownElr: [] }] };
  const view: MetadataView = {
    clusterId: 'bench',
    controllerId: 1,
    brokers: () => [],
    broker: () => undefined,
    topics: () => [topic],
    topicByName: (n) => (n === 't' ? topic : undefined),
    topicById: (id) => (id === TOPIC_ID ? topic : undefined),
    topicConfigs: () => [],
    voters: () => [],
  };
  const unused = () => Promise.reject(new Error('not in this benchmark'));
  const apiOptions = {
    listen: '127.0.0.1:0',
    brokerId: 1,
    metadata: () => view,
    admin: { createTopics: unused, deleteTopics: unused, createPartitions: unused, incrementalAlterConfigs: unused, electLeaders: unused },
    replicaManager: {
      produce: async () => ({ baseOffset: 0, logAppendTimeMs: -1, logStartOffset: 0 }),
      fetch: async () => [],
      listOffset: async () => ({ offset: 0, timestamp: -1 }),
    },
    logger: silentLogger(),
  };
  const api = await startClientApiServer(apiOptions);
  const apiDefaultWindow = await startClientApiServer({ ...apiOptions, receiveWindowBytes: 0 });
  const tcpTransport = await startTcpReplicaFetchServer({ listen: '127.0.0.1:0', logger: silentLogger(), handler: { handleReplicaFetch: async (req) => cannedResponse(req, payload) } });
  process.stdout.write(`${JSON.stringify({ grpcPort, tcpPort, apiPort: api.port, apiDefaultWindowPort: apiDefaultWindow.port, tcpTransportPort: tcpTransport.port })}\n`);
  // The parent closes stdin when it is done (or dies): then stop.
  process.stdin.resume();
  process.stdin.on('end', () => {
    tcp.close();
    void Promise.all([shutdownServer(server, 100), api.close(), apiDefaultWindow.close(), tcpTransport.close()]).then(() => process.exit(0));
  });
}

if (process.argv.includes(SERVE_FLAG)) await serve();

// ─── the follower side ───

interface Fetcher {
  fetch(req: ReplicaFetchRequest): Promise<number>;
  close(): void;
}

function grpcFetcher(port: number, channelOptions: grpc.ChannelOptions): Fetcher {
  const client = new GrpcReplicaFetchClient({ addresses: new Map([[1, `127.0.0.1:${port}`]]), channelOptions: { ...channelOptions, 'grpc.use_local_subchannel_pool': 1 } });
  const signal = new AbortController().signal;
  return {
    fetch: async (req) => (await client.fetch(1, req, signal)).partitions.reduce((n, p) => n + p.records.length, 0),
    close: () => client.close(),
  };
}

function tcpTransportFetcher(port: number): Fetcher {
  const client = new TcpReplicaFetchClient({ addresses: new Map([[1, `127.0.0.1:${port}`]]) });
  const signal = new AbortController().signal;
  return {
    fetch: async (req) => (await client.fetch(1, req, signal)).partitions.reduce((n, p) => n + p.records.length, 0),
    close: () => client.close(),
  };
}

async function tcpFetcher(port: number): Promise<Fetcher> {
  const { request, response } = BrokerReplicationRpc.ReplicaFetch;
  const sock = net.connect(port, '127.0.0.1');
  sock.setNoDelay(true);
  await new Promise<void>((resolve, reject) => sock.once('connect', resolve).once('error', reject));
  let waiting: ((r: WireReplicaFetchResponse) => void) | undefined;
  let chunks: Buffer[] = [];
  let have = 0;
  let need = -1;
  let hlen = 0;
  let rlen = 0;
  sock.on('data', (chunk: Buffer) => {
    chunks.push(chunk);
    have += chunk.length;
    if (need < 0) {
      if (have < 8) return;
      const head = chunks.length === 1 ? chunks[0]! : Buffer.concat(chunks);
      chunks = [head];
      hlen = head.readUInt32BE(0);
      rlen = head.readUInt32BE(4);
      need = 8 + hlen + rlen;
    }
    if (have < need) return;
    // One copy of the frame into a contiguous buffer (one fetch in flight: nothing follows it).
    const frame = chunks.length === 1 ? chunks[0]! : Buffer.concat(chunks, have);
    const header = response.decode(frame.subarray(8, 8 + hlen));
    const records = frame.subarray(8 + hlen, 8 + hlen + rlen);
    // One partition's share each, as a real client would slice them.
    const per = header.partitions.length > 0 ? rlen / header.partitions.length : 0;
    header.partitions.forEach((p, i) => (p.records = records.subarray(i * per, (i + 1) * per)));
    chunks = [];
    have = 0;
    need = -1;
    const w = waiting;
    waiting = undefined;
    w?.(header);
  });
  return {
    fetch: (req) =>
      new Promise<number>((resolve) => {
        waiting = (r) => resolve(r.partitions.reduce((n, p) => n + p.records.length, 0));
        const body = request.encode(req as WireReplicaFetchRequest);
        const len = Buffer.alloc(4);
        len.writeUInt32BE(body.length);
        sock.write(Buffer.concat([len, body]));
      }),
    close: () => sock.destroy(),
  };
}

function produceFetcher(port: number, batchBytes: number, partitions: number): Fetcher {
  const client = new RawClient(`127.0.0.1:${port}`, { channelOptions: { ...DATA_CHANNEL_OPTIONS, 'grpc.use_local_subchannel_pool': 1 } });
  const records = Buffer.alloc(batchBytes, 0x5a);
  // One topic, `partitions` copies of the batch to partition 0 would be refused as
  // duplicates, so the bytes go as one request per partition's worth, sequentially.
  return {
    fetch: async () => {
      for (let i = 0; i < partitions; i++) {
        const r = await client.produce({ acks: 1, timeoutMs: 5_000, topicData: [{ topicId: TOPIC_ID, partitions: [{ partition: 0, records }] }] });
        if (r.responses[0]?.partitions[0]?.errorCode !== 0) throw new Error(`produce failed: ${JSON.stringify(r.responses[0]?.partitions[0])}`);
      }
      return records.length * partitions;
    },
    close: () => client.close(),
  };
}

const round = (x: number, d = 2): number => Math.round(x * 10 ** d) / 10 ** d;

async function measure(f: Fetcher, req: ReplicaFetchRequest, seconds: number): Promise<{ mbs: number; p50Ms: number }> {
  // Warm-up: connection set-up and window growth are not what we measure.
  const warmEnd = performance.now() + 300;
  while (performance.now() < warmEnd) await f.fetch(req);
  const samples: number[] = [];
  let bytes = 0;
  const t0 = performance.now();
  const end = t0 + seconds * 1000;
  while (performance.now() < end) {
    const s = performance.now();
    bytes += await f.fetch(req);
    samples.push(performance.now() - s);
  }
  const elapsed = (performance.now() - t0) / 1000;
  return { mbs: bytes / 1e6 / elapsed, p50Ms: median(samples) };
}

export async function run(ctx: BenchContext): Promise<BenchResult> {
  const seconds = numberArg(ctx.args, '--seconds', 2);
  const rounds = numberArg(ctx.args, '--rounds', 3);
  const partitions = numberArg(ctx.args, '--partitions', 1);
  const batchBytes = numberArg(ctx.args, '--batch-kib', 1024) * 1024;
  const child: ChildProcess = spawn(process.execPath, ['--import', 'tsx', fileURLToPath(import.meta.url), SERVE_FLAG, String(batchBytes)], {
    stdio: ['pipe', 'pipe', 'inherit'],
    cwd: fileURLToPath(new URL('../..', import.meta.url)),
  });
  const stop = () => {
    child.stdin?.end();
    const t = setTimeout(() => child.kill('SIGKILL'), 2_000);
    t.unref();
  };
  try {
    const ports = await new Promise<{ grpcPort: number; tcpPort: number; apiPort: number; apiDefaultWindowPort: number; tcpTransportPort: number }>((resolve, reject) => {
      let out = '';
      child.stdout!.on('data', (d: Buffer) => {
        out += d.toString();
        const nl = out.indexOf('\n');
        if (nl >= 0) resolve(JSON.parse(out.slice(0, nl)) as { grpcPort: number; tcpPort: number; apiPort: number; apiDefaultWindowPort: number; tcpTransportPort: number });
      });
      child.once('exit', (code) => reject(new Error(`leader process exited with ${code}`)));
    });
    const req: ReplicaFetchRequest = {
      replicaId: 2,
      brokerEpoch: 1,
      maxWaitMs: 500,
      minBytes: 1,
      maxBytes: 64 * 1024 * 1024,
      sessionId: 0,
      sessionEpoch: 0,
      forgotten: [],
      partitions: Array.from({ length: partitions }, (_, i) => ({ topicId: TOPIC_ID, partition: i, currentLeaderEpoch: 1, fetchOffset: 0, lastFetchedEpoch: -1, flushedOffset: 0, maxBytes: batchBytes })),
    };
    const variants: Array<[string, () => Promise<Fetcher> | Fetcher]> = [
      ['grpcDefault', () => grpcFetcher(ports.grpcPort, CHANNEL_OPTIONS)],
      ['grpcRaised', () => grpcFetcher(ports.grpcPort, DATA_CHANNEL_OPTIONS)],
      ['grpcRaised64', () => grpcFetcher(ports.grpcPort, { ...CHANNEL_OPTIONS, 'grpc-node.flow_control_window': 64 * 1024 * 1024 })],
      ['tcp', () => tcpFetcher(ports.tcpPort)],
      ['tcpTransport', () => tcpTransportFetcher(ports.tcpTransportPort)],
      ['grpcProduceDefault', () => produceFetcher(ports.apiDefaultWindowPort, batchBytes, partitions)],
      ['grpcProduce', () => produceFetcher(ports.apiPort, batchBytes, partitions)],
    ];
    const results = new Map<string, Array<{ mbs: number; p50Ms: number }>>();
    for (let r = 0; r < rounds; r++) {
      for (const [name, make] of variants) {
        const f = await make();
        try {
          const m = await measure(f, req, seconds);
          results.set(name, [...(results.get(name) ?? []), m]);
          ctx.progress(`round ${r + 1}/${rounds} ${name}: ${m.mbs.toFixed(0)} MB/s, p50 ${m.p50Ms.toFixed(2)} ms per fetch`);
        } finally {
          f.close();
        }
      }
    }
    const mbs = (n: string) => round(median(results.get(n)!.map((m) => m.mbs)), 0);
    const p50 = (n: string) => round(median(results.get(n)!.map((m) => m.p50Ms)), 2);
    const json = {
      batchBytes,
      partitionsPerFetch: partitions,
      grpcDefaultMBs: mbs('grpcDefault'),
      grpcRaisedMBs: mbs('grpcRaised'),
      grpcRaised64MBs: mbs('grpcRaised64'),
      tcpMBs: mbs('tcp'),
      tcpTransportMBs: mbs('tcpTransport'),
      grpcProduceDefaultWindowMBs: mbs('grpcProduceDefault'),
      grpcProduceMBs: mbs('grpcProduce'),
      grpcRaisedOverDefault: round(mbs('grpcRaised') / mbs('grpcDefault')),
      grpcRaisedOverTcp: round(mbs('grpcRaised') / mbs('tcp')),
      tcpTransportOverGrpcRaised: round(mbs('tcpTransport') / mbs('grpcRaised')),
      grpcDefaultP50Ms: p50('grpcDefault'),
      grpcRaisedP50Ms: p50('grpcRaised'),
      tcpP50Ms: p50('tcp'),
      tcpTransportP50Ms: p50('tcpTransport'),
    };
    return {
      rows: [
        ['response', `${partitions} x ${batchBytes / 1024} KiB, one fetch in flight`],
        ['gRPC, default window (MB/s)', json.grpcDefaultMBs],
        ['gRPC, 16 MiB window (MB/s)', json.grpcRaisedMBs],
        ['gRPC, 64 MiB window (MB/s)', json.grpcRaised64MBs],
        ['raw TCP framing, floor (MB/s)', json.tcpMBs],
        ['TCP transport, replica-fetch-tcp.ts (MB/s)', json.tcpTransportMBs],
        ['TCP transport / gRPC 16 MiB window', json.tcpTransportOverGrpcRaised],
        ['gRPC Produce, default server window (MB/s)', json.grpcProduceDefaultWindowMBs],
        ['gRPC Produce, 16 MiB server window (MB/s)', json.grpcProduceMBs],
        ['16 MiB window / default', json.grpcRaisedOverDefault],
        ['16 MiB window / raw TCP', json.grpcRaisedOverTcp],
        ['fetch p50 gRPC default / 16 MiB / TCP floor / TCP transport (ms)', `${json.grpcDefaultP50Ms} / ${json.grpcRaisedP50Ms} / ${json.tcpP50Ms} / ${json.tcpTransportP50Ms}`],
      ],
      json,
    };
  } finally {
    stop();
  }
}
