// The SDK consumer against a real three-node cluster: assign mode (every codec, seek,
// pause/resume, OFFSET_OUT_OF_RANGE → autoOffsetReset), then groups with members as
// separate processes (test/support/consumer-proc.ts): one owner per partition, kill -9
// of a member moves its partitions within the session timeout, cooperative-sticky never
// has two owners at once and survivors keep consuming, at-least-once with no commit past
// an unprocessed record, static membership, and bad input.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawn, type ChildProcess } from 'node:child_process';
import { createInterface } from 'node:readline';
import { fileURLToPath } from 'node:url';
import { DEV_OVERRIDES, ProcessCluster, freePorts } from '../../src/node/process-cluster.ts';
import { Raftka, RaftkaClientError, type Consumer, type KafkaMessage } from '../../src/client/index.ts';
import { GroupRpc, fetchCommitted } from '../../src/client/consumer-group.ts';
import { Cluster } from '../../src/client/cluster.ts';
import { silentLogger } from '../../src/common/logger.ts';
import { defer, tempDir, waitFor } from '../support/tmp.ts';

const PROC = fileURLToPath(new URL('../support/consumer-proc.ts', import.meta.url));

async function startCluster(t: { after(fn: () => unknown): void }): Promise<ProcessCluster> {
  const root = tempDir(t, 'raftka-consumer-');
  const ports = await freePorts(6);
  const cluster = ProcessCluster.prepare({ root, nodeIds: [1, 2, 3], clientPorts: ports.slice(0, 3), controllerPorts: ports.slice(3), overrides: { ...DEV_OVERRIDES, 'offsets.topic.num.partitions': '3' } });
  defer(t, () => cluster.killAll());
  cluster.startAll();
  await cluster.waitReady(60_000);
  return cluster;
}

interface ProcEvent {
  t: number;
  ev: string;
  partitions?: Array<[string, number]>;
  topic?: string;
  partition?: number;
  offset?: number;
  generationId?: number;
  lost?: boolean;
  topics?: Array<{ topic: string; partitions: Array<{ partition: number; offset: string }> }>;
  error?: string;
}

class Member {
  readonly events: ProcEvent[] = [];
  readonly child: ChildProcess;
  exited = false;
  killedAt: number | undefined;

  constructor(
    readonly name: string,
    cfg: Record<string, unknown>,
  ) {
    this.child = spawn(process.execPath, ['--import', 'tsx', PROC, JSON.stringify(cfg)], { stdio: ['ignore', 'pipe', 'pipe'] });
    this.child.once('exit', () => (this.exited = true));
    createInterface({ input: this.child.stdout! }).on('line', (l) => {
      try {
        this.events.push(JSON.parse(l) as ProcEvent);
      } catch {
        // not ours
      }
    });
    this.child.stderr!.on('data', (d: Buffer) => process.stderr.write(`[${name}] ${d.toString()}`));
  }

  /** What this member owns now, from its own log. */
  owned(): Set<string> {
    const s = new Set<string>();
    if (this.killedAt !== undefined) return s;
    for (const e of this.events) {
      if (e.ev === 'assigned') for (const [t, p] of e.partitions!) s.add(`${t}-${p}`);
      if (e.ev === 'revoked') for (const [t, p] of e.partitions!) s.delete(`${t}-${p}`);
    }
    return s;
  }

  kill9(): void {
    this.killedAt = Date.now();
    this.child.kill('SIGKILL');
  }

  async stop(): Promise<void> {
    if (this.exited) return;
    this.child.kill('SIGTERM');
    await waitFor(`${this.name} to exit`, () => this.exited, 20_000, 50).catch(() => this.child.kill('SIGKILL'));
  }
}

/** Ownership intervals [from, to) per partition and member, from the logs. */
function intervals(members: Member[]): Map<string, Array<{ member: string; from: number; to: number }>> {
  const out = new Map<string, Array<{ member: string; from: number; to: number }>>();
  for (const m of members) {
    const open = new Map<string, number>();
    for (const e of m.events) {
      for (const [t, p] of e.partitions ?? []) {
        const k = `${t}-${p}`;
        if (e.ev === 'assigned') open.set(k, e.t);
        if (e.ev === 'revoked' && open.has(k)) {
          out.set(k, [...(out.get(k) ?? []), { member: m.name, from: open.get(k)!, to: e.t }]);
          open.delete(k);
        }
      }
    }
    const end = m.killedAt ?? Infinity;
    for (const [k, from] of open) out.set(k, [...(out.get(k) ?? []), { member: m.name, from, to: end }]);
  }
  return out;
}

function assertNoDoubleOwnership(members: Member[]): void {
  for (const [k, list] of intervals(members)) {
    const sorted = [...list].sort((a, b) => a.from - b.from);
    for (let i = 1; i < sorted.length; i++) {
      assert.ok(sorted[i]!.from >= sorted[i - 1]!.to, `${k} owned by ${sorted[i - 1]!.member} [${sorted[i - 1]!.from}, ${sorted[i - 1]!.to}) and ${sorted[i]!.member} from ${sorted[i]!.from}`);
    }
  }
}

function exactlyOneOwner(members: Member[], topic: string, n: number): boolean {
  const owners = new Map<string, number>();
  for (const m of members) for (const k of m.owned()) owners.set(k, (owners.get(k) ?? 0) + 1);
  for (let p = 0; p < n; p++) if (owners.get(`${topic}-${p}`) !== 1) return false;
  return owners.size === n;
}

test('SDK consumer against a three-node cluster', { timeout: 400_000 }, async (t) => {
  const cluster = await startCluster(t);
  const brokers = cluster.spec.nodeIds.map((id) => cluster.clientAddress(id));
  const raftka = new Raftka({ brokers, clientId: 'consumer-test', requestTimeout: 10_000 });
  const admin = raftka.admin();
  await admin.connect();
  defer(t, () => admin.disconnect());
  const producer = raftka.producer({ lingerMs: 1 });
  await producer.connect();
  defer(t, () => producer.disconnect());

  await t.test('assign mode: every codec, seek, pause/resume, out of range → autoOffsetReset', async (t) => {
    await admin.createTopics({ topics: [{ topic: 'assign', numPartitions: 2, replicationFactor: 3 }] });
    const codecs = ['none', 'gzip', 'snappy', 'lz4', 'zstd'] as const;
    for (const c of codecs) await producer.send({ topic: 'assign', compression: c, messages: Array.from({ length: 20 }, (_, i) => ({ partition: i % 2, key: `${c}-${i}`, value: `${c}-${i}`, headers: { codec: c } })) });
    const consumer = raftka.consumer({ maxWaitTimeInMs: 100, autoOffsetReset: 'earliest' });
    defer(t, () => consumer.disconnect());
    await consumer.connect();
    const seen: Array<{ partition: number; m: KafkaMessage }> = [];
    consumer.assign([
      { topic: 'assign', partition: 0 },
      { topic: 'assign', partition: 1, offset: 0 },
    ]);
    await consumer.run({ eachMessage: async ({ partition, message }) => void seen.push({ partition, m: message }) });
    await waitFor('100 records', () => seen.length >= 100, 20_000);
    for (const p of [0, 1]) {
      const offs = seen.filter((s) => s.partition === p).map((s) => Number(s.m.offset));
      assert.deepEqual(offs, Array.from({ length: 50 }, (_, i) => i), `partition ${p} in order, once`);
    }
    assert.deepEqual(new Set(seen.map((s) => s.m.value!.toString())), new Set(codecs.flatMap((c) => Array.from({ length: 20 }, (_, i) => `${c}-${i}`))));
    assert.equal(seen.find((s) => s.m.value!.toString() === 'zstd-3')!.m.headers['codec']!.toString(), 'zstd');
    // seek back: partition 0 is read again from offset 45.
    seen.length = 0;
    consumer.seek({ topic: 'assign', partition: 0, offset: 45 });
    await waitFor('5 records after seek', () => seen.length >= 5, 10_000);
    assert.deepEqual(seen.map((s) => [s.partition, Number(s.m.offset)]), [45, 46, 47, 48, 49].map((o) => [0, o]));
    // pause: new records of partition 1 are not delivered until resume.
    consumer.pause([{ topic: 'assign', partitions: [1] }]);
    seen.length = 0;
    await producer.send({ topic: 'assign', messages: [{ partition: 1, value: 'p1' }, { partition: 0, value: 'p0' }] });
    await waitFor('partition 0 record', () => seen.some((s) => s.partition === 0), 10_000);
    assert.ok(!seen.some((s) => s.partition === 1), 'paused partition delivered a record');
    assert.deepEqual(consumer.paused(), [{ topic: 'assign', partitions: [1] }]);
    consumer.resume([{ topic: 'assign', partitions: [1] }]);
    await waitFor('partition 1 record after resume', () => seen.some((s) => s.partition === 1 && s.m.value!.toString() === 'p1'), 10_000);
    // seek past the log end: OFFSET_OUT_OF_RANGE → earliest.
    seen.length = 0;
    consumer.seek({ topic: 'assign', partition: 1, offset: 10_000 });
    await waitFor('partition 1 from the start again', () => seen.some((s) => s.partition === 1 && s.m.offset === '0'), 10_000);
    assert.throws(() => consumer.seek({ topic: 'assign', partition: 7, offset: 0 }), (e: unknown) => e instanceof RaftkaClientError && e.type === 'INVALID_ARGUMENT');
  });

  await t.test('partitionsConsumedConcurrently bounds the handlers running at once across every broker; order per partition holds', async (t) => {
    await admin.createTopics({ topics: [{ topic: 'conc', numPartitions: 6, replicationFactor: 3 }] });
    await producer.send({ topic: 'conc', messages: Array.from({ length: 120 }, (_, i) => ({ partition: i % 6, value: String(i) })) });
    for (const limit of [1, 2]) {
      const consumer = raftka.consumer({ maxWaitTimeInMs: 100 });
      defer(t, () => consumer.disconnect());
      await consumer.connect();
      consumer.assign(Array.from({ length: 6 }, (_, partition) => ({ topic: 'conc', partition, offset: 0 })));
      let active = 0;
      let maxActive = 0;
      const order = new Map<number, number[]>();
      await consumer.run({
        partitionsConsumedConcurrently: limit,
        eachMessage: async ({ partition, message }) => {
          active++;
          maxActive = Math.max(maxActive, active);
          order.set(partition, [...(order.get(partition) ?? []), Number(message.offset)]);
          await new Promise((r) => setTimeout(r, 1)); // the handler's work
          active--;
        },
      });
      await waitFor('120 records', () => [...order.values()].reduce((n, l) => n + l.length, 0) >= 120, 30_000);
      assert.ok(maxActive <= limit, `limit ${limit}: ${maxActive} handlers ran at once`);
      for (const [p, l] of order) assert.deepEqual(l, Array.from({ length: 20 }, (_, i) => i), `partition ${p} in order`);
      await consumer.disconnect();
    }
  });

  await t.test('pause() from inside eachMessage: that record counts as processed, the rest waits for resume', async (t) => {
    const consumer = raftka.consumer({ maxWaitTimeInMs: 100 });
    defer(t, () => consumer.disconnect());
    await consumer.connect();
    consumer.assign([{ topic: 'conc', partition: 0, offset: 0 }]);
    const offsets: number[] = [];
    let resumeFn: (() => void) | undefined;
    await consumer.run({
      eachMessage: async ({ message, pause }) => {
        offsets.push(Number(message.offset));
        if (message.offset === '5' && !resumeFn) resumeFn = pause();
      },
    });
    await waitFor('paused at 5', () => resumeFn !== undefined && consumer.paused().length === 1, 10_000);
    assert.deepEqual(offsets, [0, 1, 2, 3, 4, 5], 'nothing after the pause');
    resumeFn!();
    await waitFor('all 20', () => offsets.length >= 20, 10_000);
    assert.deepEqual(offsets, Array.from({ length: 20 }, (_, i) => i), 'offset 5 not delivered again');
  });

  await admin.createTopics({ topics: [{ topic: 'grp', numPartitions: 6, replicationFactor: 3 }] });
  // A background producer keeps records flowing into every partition.
  let producing = true;
  let produced = 0;
  const producerDone = (async () => {
    while (producing) {
      await producer.send({ topic: 'grp', messages: Array.from({ length: 6 }, (_, p) => ({ partition: p, value: `v${produced}-${p}` })) });
      produced++;
      await new Promise((r) => setTimeout(r, 20)); // pacing of the load, not synchronization
    }
  })();
  defer(t, async () => {
    producing = false;
    await producerDone;
  });

  await t.test('three members over 6 partitions; kill -9 of one; cooperative-sticky never double-owns; at-least-once', async (t) => {
    const cfg = (name: string) => ({ brokers, groupId: 'g1', topics: ['grp'], assignor: 'cooperative-sticky', sessionTimeout: 3_000, heartbeatInterval: 300, autoCommitInterval: 300, name });
    const members = ['a', 'b', 'c'].map((n) => new Member(n, cfg(n)));
    for (const m of members) defer(t, () => m.stop());
    await waitFor('every partition owned by exactly one member', () => exactlyOneOwner(members, 'grp', 6), 60_000, 50);
    await waitFor('every member owns 2', () => members.every((m) => m.owned().size === 2), 30_000, 50);
    assertNoDoubleOwnership(members);
    const victim = members[1]!;
    const survivors = [members[0]!, members[2]!];
    const keptBefore = survivors.map((m) => new Set(m.owned()));
    // Everyone is consuming before the kill.
    await waitFor('messages flowing', () => members.every((m) => m.events.filter((e) => e.ev === 'msg').length > 20), 30_000, 50);
    victim.kill9();
    const killAt = Date.now();
    await waitFor('survivors own all 6', () => exactlyOneOwner(survivors, 'grp', 6), 3_000 + 10_000, 20);
    const movedMs = Date.now() - killAt;
    assert.ok(movedMs < 3_000 + 5_000, `partitions moved after ${movedMs} ms (session timeout 3000)`);
    assertNoDoubleOwnership(members);
    // Survivors kept their partitions and never stopped reading them: for each kept
    // partition, records were processed throughout the rebalance (no gap near the session
    // timeout while the group rebalanced).
    for (const [i, m] of survivors.entries()) {
      for (const k of keptBefore[i]!) {
        assert.ok(m.owned().has(k), `${m.name} lost ${k}`);
        // Cooperative: a kept partition is never revoked, not even for a moment (an eager
        // member gives up everything before rejoining).
        assert.ok(!m.events.some((e) => e.ev === 'revoked' && e.t >= killAt && e.partitions!.some(([tp, pp]) => `${tp}-${pp}` === k)), `${m.name} revoked its kept partition ${k}`);
        const times = m.events.filter((e) => e.ev === 'msg' && `${e.topic}-${e.partition}` === k && e.t >= killAt - 500).map((e) => e.t);
        const end = Date.now();
        let maxGap = 0;
        for (let j = 1; j < times.length; j++) maxGap = Math.max(maxGap, times[j]! - times[j - 1]!);
        maxGap = Math.max(maxGap, end - times[times.length - 1]!);
        assert.ok(times.length > 0 && maxGap < 2_000, `${m.name} stopped consuming ${k} for ${maxGap} ms during the rebalance`);
      }
    }
    // At-least-once: stop producing; every produced record is processed by someone; no
    // commit ever went past a record its member had not processed.
    producing = false;
    await producerDone;
    const hw = (await admin.fetchTopicOffsets('grp')).map((o) => o.high);
    await waitFor('every record processed', () => hw.every((h, p) => {
      const done = new Set<number>();
      for (const m of members) for (const e of m.events) if (e.ev === 'msg' && e.partition === p) done.add(e.offset!);
      return done.size === h;
    }), 30_000, 100);
    for (const m of survivors) await m.stop();
    for (const m of members) {
      const processed = new Map<number, number[]>();
      for (const e of m.events) {
        if (e.ev === 'msg') processed.set(e.partition!, [...(processed.get(e.partition!) ?? []), e.offset!]);
        if (e.ev === 'commit') {
          for (const tp of e.topics!) {
            for (const p of tp.partitions) {
              const o = Number(p.offset);
              assert.ok(o === 0 || (processed.get(p.partition) ?? []).includes(o - 1), `${m.name} committed ${tp.topic}-${p.partition} at ${o} before processing ${o - 1}`);
            }
          }
        }
      }
    }
    const rpc = new GroupRpc(new Cluster({ brokers, requestTimeoutMs: 5_000, connectionTimeoutMs: 1_000, metadataMaxAgeMs: 60_000, logger: silentLogger() }), 'g1', 5_000, silentLogger());
    defer(t, () => rpc.close());
    const committed = await fetchCommitted(rpc, [{ topic: 'grp', partitions: [0, 1, 2, 3, 4, 5] }], 10_000);
    for (let p = 0; p < 6; p++) assert.equal(committed.get(`grp:${p}`), hw[p], `partition ${p}: committed offset after a graceful stop`);
  });

  await t.test('eager (range): three members, kill -9 of one, its partitions move, no double ownership, every record processed', async (t) => {
    const cfg = (name: string) => ({ brokers, groupId: 'g-range', topics: ['grp'], assignor: 'range', sessionTimeout: 3_000, heartbeatInterval: 300, autoCommitInterval: 300, processMs: 2, name });
    // Records keep coming during this test too (the earlier load has stopped).
    let flowing = true;
    const load = (async () => {
      while (flowing) {
        await producer.send({ topic: 'grp', messages: Array.from({ length: 6 }, (_, p) => ({ partition: p, value: `r-${p}` })) });
        await new Promise((r) => setTimeout(r, 20)); // pacing of the load, not synchronization
      }
    })();
    defer(t, async () => {
      flowing = false;
      await load;
    });
    const members = ['a', 'b', 'c'].map((n) => new Member(n, cfg(n)));
    for (const m of members) defer(t, () => m.stop());
    await waitFor('every partition owned by exactly one member', () => exactlyOneOwner(members, 'grp', 6) && members.every((m) => m.owned().size === 2), 60_000, 50);
    await waitFor('messages flowing', () => members.every((m) => m.events.some((e) => e.ev === 'msg')), 30_000, 50);
    members[0]!.kill9();
    const killAt = Date.now();
    await waitFor('survivors own all 6', () => exactlyOneOwner(members.slice(1), 'grp', 6), 13_000, 20);
    assert.ok(Date.now() - killAt < 8_000, `moved after ${Date.now() - killAt} ms`);
    assertNoDoubleOwnership(members);
    // Eager: the survivors gave up everything before rejoining (what cooperative avoids).
    for (const m of members.slice(1)) assert.ok(m.events.some((e) => e.ev === 'revoked' && e.t >= killAt && e.partitions!.length === 2), `${m.name} did not revoke before rejoining`);
    flowing = false;
    await load;
    const hw = (await admin.fetchTopicOffsets('grp')).map((o) => o.high);
    await waitFor('every record processed', () => hw.every((h, p) => {
      const done = new Set<number>();
      for (const m of members) for (const e of m.events) if (e.ev === 'msg' && e.partition === p) done.add(e.offset!);
      return done.size === h;
    }), 60_000, 100);
  });

  await t.test('static membership: a member restarted with its groupInstanceId within the session timeout gets its partitions back, no rebalance of the others', async (t) => {
    await admin.createTopics({ topics: [{ topic: 'st', numPartitions: 4, replicationFactor: 3 }] });
    const cfg = (id: string) => ({ brokers, groupId: 'g-static', topics: ['st'], assignor: 'range', sessionTimeout: 8_000, heartbeatInterval: 300, groupInstanceId: id, logMessages: false });
    const a = new Member('a', cfg('pod-a'));
    const b = new Member('b', cfg('pod-b'));
    defer(t, () => a.stop());
    defer(t, () => b.stop());
    await waitFor('both own 2', () => a.owned().size === 2 && b.owned().size === 2, 60_000, 50);
    const bOwned = [...b.owned()].sort();
    const aJoins = a.events.filter((e) => e.ev === 'join').length;
    b.kill9();
    const killAt = Date.now();
    const b2 = new Member('b2', cfg('pod-b'));
    defer(t, () => b2.stop());
    await waitFor('restarted member owns its partitions', () => b2.owned().size === 2, 7_000, 50);
    assert.deepEqual([...b2.owned()].sort(), bOwned);
    assert.equal(a.events.filter((e) => e.ev === 'join').length, aJoins, 'the other member rebalanced');
    assert.equal(a.events.filter((e) => e.ev === 'revoked' && e.t >= killAt).length, 0, 'the other member gave up partitions');
  });

  await t.test('bad input: commit of an unowned partition, bad regex, unknown group', async (t) => {
    const consumer: Consumer = raftka.consumer({ groupId: 'g-bad', sessionTimeout: 3_000, heartbeatInterval: 300, maxWaitTimeInMs: 100 });
    defer(t, () => consumer.disconnect());
    await consumer.connect();
    await consumer.subscribe({ topic: /^grp$/, fromBeginning: true });
    await consumer.run({ eachMessage: async () => undefined });
    await waitFor('assigned', () => consumer.assignment().length > 0 && consumer.assignment()[0]!.partitions.length === 6, 30_000, 50);
    await assert.rejects(consumer.commitOffsets([{ topic: 'st', partition: 0, offset: '5' }]), (e: unknown) => e instanceof RaftkaClientError && e.type === 'INVALID_ARGUMENT' && /not assigned/.test(e.message));
    const rpc = new GroupRpc(new Cluster({ brokers, requestTimeoutMs: 5_000, connectionTimeoutMs: 1_000, metadataMaxAgeMs: 60_000, logger: silentLogger() }), 'g-bad', 5_000, silentLogger());
    defer(t, () => rpc.close());
    assert.equal((await fetchCommitted(rpc, [{ topic: 'st', partitions: [0] }], 10_000)).get('st:0'), -1, 'nothing committed for st-0');
    await assert.rejects(consumer.subscribe({ topics: ['no-such-topic'] }), /does not exist/);
    // An unknown group has no committed offsets and no error.
    const unknown = new GroupRpc(new Cluster({ brokers, requestTimeoutMs: 5_000, connectionTimeoutMs: 1_000, metadataMaxAgeMs: 60_000, logger: silentLogger() }), 'never-seen', 5_000, silentLogger());
    defer(t, () => unknown.close());
    assert.equal((await fetchCommitted(unknown, [{ topic: 'grp', partitions: [0] }], 10_000)).get('grp:0'), -1);
    assert.throws(() => raftka.consumer({ groupId: 'x', heartbeatInterval: 5_000, sessionTimeout: 3_000 }), /heartbeatInterval/);
  });

  await t.test('kill -9 of the coordinator broker: committed offsets survive and the group carries on', async (t) => {
    await admin.createTopics({ topics: [{ topic: 'fo', numPartitions: 3, replicationFactor: 3 }] });
    await producer.send({ topic: 'fo', messages: Array.from({ length: 30 }, (_, i) => ({ partition: i % 3, value: `a${i}` })) });
    const seen: string[] = [];
    const consumer = raftka.consumer({ groupId: 'g-fo', sessionTimeout: 10_000, heartbeatInterval: 300, maxWaitTimeInMs: 100, autoOffsetReset: 'earliest' });
    defer(t, () => consumer.disconnect());
    await consumer.connect();
    await consumer.subscribe({ topic: 'fo' });
    await consumer.run({ autoCommitInterval: 200, eachMessage: async ({ message }) => void seen.push(message.value!.toString()) });
    await waitFor('30 records', () => seen.length >= 30, 30_000, 50);
    await consumer.commitOffsets();
    const rpc = new GroupRpc(new Cluster({ brokers, requestTimeoutMs: 5_000, connectionTimeoutMs: 1_000, metadataMaxAgeMs: 60_000, logger: silentLogger() }), 'g-fo', 5_000, silentLogger());
    defer(t, () => rpc.close());
    await waitFor('commits of all 30', async () => {
      const c = await fetchCommitted(rpc, [{ topic: 'fo', partitions: [0, 1, 2] }], 10_000);
      return [0, 1, 2].every((p) => c.get(`fo:${p}`) === 10);
    }, 10_000, 100);
    const address = await rpc.findCoordinator(Date.now() + 10_000);
    const victim = cluster.spec.nodeIds.find((id) => cluster.clientAddress(id) === address)!;
    cluster.procs.get(victim)!.kill('SIGKILL');
    const committedAfter = await waitFor('committed offsets from the new coordinator', async () => {
      try {
        const c = await fetchCommitted(rpc, [{ topic: 'fo', partitions: [0, 1, 2] }], 2_000);
        return [0, 1, 2].every((p) => (c.get(`fo:${p}`) ?? -1) >= 10) ? c : undefined;
      } catch {
        return undefined;
      }
    }, 20_000, 100);
    assert.deepEqual([0, 1, 2].map((p) => committedAfter.get(`fo:${p}`)), [10, 10, 10], 'no committed offset lost');
    // The group carries on: new records are consumed and committed through the new coordinator.
    await producer.send({ topic: 'fo', messages: Array.from({ length: 6 }, (_, i) => ({ partition: i % 3, value: `b${i}` })) });
    await waitFor('new records consumed', () => [0, 1, 2, 3, 4, 5].every((i) => seen.includes(`b${i}`)), 30_000, 50);
    await waitFor('new records committed', async () => {
      const c = await fetchCommitted(rpc, [{ topic: 'fo', partitions: [0, 1, 2] }], 2_000).catch(() => undefined);
      return c !== undefined && [0, 1, 2].every((p) => c.get(`fo:${p}`) === 12);
    }, 30_000, 100);
    assert.equal(new Set(seen).size, 36, 'every record consumed');
  });
});
