// A leader that stops answering without closing its sockets (a frozen process, a
// partitioned host) must fail the follower's parked fetch within the failover budget.
// gRPC: the channel's keepalive (ping after 1 s, 1 s to answer) notices it, not the
// fetch's own 20 s wait. TCP transport: the call's deadline (max wait + 1.5 s) does. A
// killed process closes its sockets, which fails the call at once on both.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import * as grpc from '@grpc/grpc-js';
import { GrpcReplicaFetchClient } from '../../src/io/replica-fetch-transport.ts';
import { TcpReplicaFetchClient } from '../../src/io/replica-fetch-tcp.ts';
import { isRaftkaError } from '../../src/common/errors.ts';
import { defer, waitFor } from '../support/tmp.ts';

const root = fileURLToPath(new URL('../..', import.meta.url));

// The leader: an internal server whose replica fetch handler never answers.
const LEADER = `
import { startInternalServer } from '${root}/src/io/internal-server.ts';
import { silentLogger } from '${root}/src/common/logger.ts';
import { startTcpReplicaFetchServer } from '${root}/src/io/replica-fetch-tcp.ts';
const handler = { handleReplicaFetch: () => { process.stdout.write('parked\\n'); return new Promise(() => {}); } };
const s = await startInternalServer({ listen: '127.0.0.1:0', logger: silentLogger(), replicaFetch: handler });
const tcp = await startTcpReplicaFetchServer({ listen: '127.0.0.1:0', logger: silentLogger(), handler });
process.stdout.write(JSON.stringify({ port: s.port, tcpPort: tcp.port }) + '\\n');
`;

function startLeader(t: Parameters<typeof defer>[0]) {
  const child = spawn(process.execPath, ['--import', 'tsx', '--input-type=module', '-e', LEADER], { stdio: ['ignore', 'pipe', 'inherit'], cwd: root });
  defer(t, () => {
    child.kill('SIGCONT');
    child.kill('SIGKILL');
  });
  const lines: string[] = [];
  let partial = '';
  child.stdout.on('data', (d: Buffer) => {
    partial += d.toString();
    const parts = partial.split('\n');
    partial = parts.pop()!;
    lines.push(...parts);
  });
  return { child, lines };
}

const request = {
  replicaId: 2,
  brokerEpoch: 1,
  maxWaitMs: 20_000,
  minBytes: 1,
  maxBytes: 1 << 20,
  sessionId: 0,
  sessionEpoch: 0,
  forgotten: [],
  partitions: [{ topicId: 'AAAAAAAAAAAAAAAAAAAAAA', partition: 0, currentLeaderEpoch: 1, fetchOffset: 0, lastFetchedEpoch: -1, flushedOffset: 0, maxBytes: 1 << 20 }],
};

test('a frozen leader fails the parked fetch within about 2 s (keepalive)', async (t) => {
  const { child, lines } = startLeader(t);
  const { port } = JSON.parse(await waitFor('the leader to listen', () => lines.find((l) => l.startsWith('{')), 20_000)) as { port: number };
  const client = new GrpcReplicaFetchClient({ addresses: new Map([[1, `127.0.0.1:${port}`]]) });
  defer(t, () => client.close());
  const fetch = client.fetch(1, request, new AbortController().signal).then(
    () => ({ ok: true as const }),
    (e: unknown) => ({ ok: false as const, e, atMs: performance.now() }),
  );
  await waitFor('the fetch parked on the leader', () => lines.includes('parked'), 10_000);
  const frozenAt = performance.now();
  child.kill('SIGSTOP');
  const r = await fetch;
  assert.equal(r.ok, false, 'the fetch answered from a frozen leader');
  if (r.ok) return;
  const tookMs = r.atMs - frozenAt;
  assert.equal((r.e as grpc.ServiceError).code, grpc.status.UNAVAILABLE, String(r.e));
  // Keepalive: ping after 1 s without data, 1 s to answer, plus scheduling slack on a busy machine.
  assert.ok(tookMs < 4_000, `noticed after ${Math.round(tookMs)} ms`);
});

test('a killed leader fails the parked fetch at once', async (t) => {
  const { child, lines } = startLeader(t);
  const { port } = JSON.parse(await waitFor('the leader to listen', () => lines.find((l) => l.startsWith('{')), 20_000)) as { port: number };
  const client = new GrpcReplicaFetchClient({ addresses: new Map([[1, `127.0.0.1:${port}`]]) });
  defer(t, () => client.close());
  const fetch = client.fetch(1, request, new AbortController().signal).then(
    () => ({ ok: true as const }),
    (e: unknown) => ({ ok: false as const, e, atMs: performance.now() }),
  );
  await waitFor('the fetch parked on the leader', () => lines.includes('parked'), 10_000);
  const killedAt = performance.now();
  child.kill('SIGKILL');
  const r = await fetch;
  assert.equal(r.ok, false);
  if (r.ok) return;
  assert.equal((r.e as grpc.ServiceError).code, grpc.status.UNAVAILABLE, String(r.e));
  assert.ok(r.atMs - killedAt < 1_000, `noticed after ${Math.round(r.atMs - killedAt)} ms`);
});

test('tcp transport: a frozen leader fails the fetch by its deadline, a killed one at once', async (t) => {
  const { child, lines } = startLeader(t);
  const { tcpPort } = JSON.parse(await waitFor('the leader to listen', () => lines.find((l) => l.startsWith('{')), 20_000)) as { tcpPort: number };
  const client = new TcpReplicaFetchClient({ addresses: new Map([[1, `127.0.0.1:${tcpPort}`]]) });
  defer(t, () => client.close());
  // The replica fetcher's max wait: 500 ms.
  const fetchOnce = () =>
    client.fetch(1, { ...request, maxWaitMs: 500 }, new AbortController().signal).then(
      () => ({ ok: true as const }),
      (e: unknown) => ({ ok: false as const, e, atMs: performance.now() }),
    );
  const frozen = fetchOnce();
  await waitFor('the fetch parked on the leader', () => lines.includes('parked'), 10_000);
  const frozenAt = performance.now();
  child.kill('SIGSTOP');
  const r = await frozen;
  assert.equal(r.ok, false);
  if (r.ok) return;
  assert.ok(isRaftkaError(r.e, 'REQUEST_TIMED_OUT'), String(r.e));
  assert.ok(r.atMs - frozenAt < 3_000, `noticed after ${Math.round(r.atMs - frozenAt)} ms`);

  child.kill('SIGCONT');
  const killed = fetchOnce();
  await waitFor('the second fetch parked on the leader', () => lines.filter((l) => l === 'parked').length === 2, 10_000);
  const killedAt = performance.now();
  child.kill('SIGKILL');
  const k = await killed;
  assert.equal(k.ok, false);
  if (k.ok) return;
  assert.ok(isRaftkaError(k.e, 'NETWORK_EXCEPTION'), String(k.e));
  assert.ok(k.atMs - killedAt < 1_000, `noticed after ${Math.round(k.atMs - killedAt)} ms`);
});
