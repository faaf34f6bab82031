import { test } from 'node:test';
import assert from 'node:assert/strict';
import fc from 'fast-check';
import { ClusterNemesis, createNemesis, linksBetween, majoritiesRing } from '../../src/jepsen/nemesis.ts';
import { HistoryRecorder, type NemesisOp } from '../../src/jepsen/history.ts';
import type { FaultStep, JepsenCluster, PowerLossResult } from '../../src/jepsen/fault-api.ts';
import type { ClusterObservations } from '../../src/jepsen/checker.ts';
import { startProcessJepsenCluster } from '../../src/jepsen/cluster.ts';
import { assertProperty } from '../support/property.ts';
import { defer, tempDir, waitFor } from '../support/tmp.ts';

type Link = readonly [number | 'clients', number];

/** An in-memory cluster: records what the nemesis asked for and keeps the resulting state. */
class FakeCluster implements JepsenCluster {
  readonly bootstrap: readonly string[] = [];
  readonly root = '/nonexistent';
  readonly running: Set<number>;
  readonly paused = new Set<number>();
  readonly skew = new Map<number, number>();
  cuts: { links: Link[]; mode: string }[] = [];
  readonly calls: string[] = [];
  failOn = new Set<string>();

  constructor(
    readonly nodeIds: readonly number[],
    private readonly controller: number | null = 1,
    private readonly leaders: Record<string, number> = {},
  ) {
    this.running = new Set(nodeIds);
  }

  private call(what: string): void {
    this.calls.push(what);
    if (this.failOn.has(what.split(' ')[0]!)) throw new Error(`${what} failed`);
  }
  waitReady(): Promise<void> {
    return Promise.resolve();
  }
  controllerId(): Promise<number | null> {
    return Promise.resolve(this.controller);
  }
  leaderOf(key: string): Promise<number | null> {
    return Promise.resolve(this.leaders[key] ?? null);
  }
  async kill(id: number): Promise<void> {
    this.call(`kill ${id}`);
    this.running.delete(id);
  }
  async start(id: number): Promise<void> {
    this.call(`start ${id}`);
    this.running.add(id);
  }
  async pause(id: number): Promise<void> {
    this.call(`pause ${id}`);
    this.paused.add(id);
  }
  async resume(id: number): Promise<void> {
    this.call(`resume ${id}`);
    this.paused.delete(id);
  }
  async cut(links: readonly (readonly [number | 'clients', number])[], mode: 'drop' | 'one-way' = 'drop'): Promise<void> {
    this.call(`cut ${mode}`);
    this.cuts.push({ links: links.map((l) => [l[0], l[1]] as const), mode });
  }
  async shiftClock(id: number, offsetMs: number): Promise<void> {
    this.call(`clock ${id} ${offsetMs}`);
    this.skew.set(id, (this.skew.get(id) ?? 0) + offsetMs);
  }
  async powerLoss(ids: readonly number[]): Promise<PowerLossResult> {
    this.call(`power-loss ${ids.join(',')}`);
    for (const id of ids) this.running.delete(id);
    // As if each node lost the last 100 bytes of one segment.
    return { cutFiles: ids.length, cutBytes: 100 * ids.length };
  }
  async healAll(): Promise<void> {
    this.call('heal');
    this.cuts = [];
  }
  observations(): Promise<ClusterObservations> {
    return Promise.resolve({});
  }
  stop(): Promise<void> {
    return Promise.resolve();
  }
}

function recorder(): HistoryRecorder {
  let t = 0;
  return new HistoryRecorder(() => ++t);
}

function nemesisOps(r: HistoryRecorder): NemesisOp[] {
  return r.history.filter((o): o is NemesisOp => o.process === 'nemesis');
}

/** The ops without times and indexes: what a replay must reproduce. */
function shape(r: HistoryRecorder): unknown[] {
  return nemesisOps(r).map((o) => [o.type, o.f, o.value, o.error ?? null]);
}

const never = new AbortController().signal;

test('every fault kind is recorded as invoke/ok with resolved targets and healed afterwards', async () => {
  const c = new FakeCluster([1, 2, 3], 2, { 'orders-0': 3 });
  const r = recorder();
  const steps: FaultStep[] = [
    { kind: 'kill', atMs: 0, durationMs: 1, target: 'controller' },
    { kind: 'pause', atMs: 0, durationMs: 1, target: 'partition-leader' },
    { kind: 'clock', atMs: 0, durationMs: 1, target: 'all', clockOffsetMs: -5000 },
    { kind: 'power-loss', atMs: 0, durationMs: 1, allNodes: true },
    { kind: 'partition', atMs: 0, durationMs: 1, shape: 'isolate-controller' },
    { kind: 'partition', atMs: 0, durationMs: 1, shape: 'isolate-leader-from-followers' },
  ];
  await createNemesis(c, r, { seed: 7, keys: ['orders-0'] }).run(steps, never);
  const ops = nemesisOps(r);
  assert.deepEqual(
    ops.map((o) => `${o.type} ${o.f}`),
    ['kill', 'start', 'pause', 'resume', 'clock', 'clock-reset', 'power-loss', 'start', 'partition', 'heal', 'partition', 'heal'].flatMap((f) => [`invoke ${f}`, `ok ${f}`]),
  );
  assert.deepEqual(ops[0]!.value, { nodes: [2] }, 'controller target resolved');
  assert.deepEqual(ops[4]!.value, { nodes: [3] }, 'partition-leader target resolved');
  assert.deepEqual(ops[8]!.value, { nodes: [1, 2, 3], offsetMs: -5000 });
  assert.deepEqual(ops[12]!.value, { nodes: [1, 2, 3] });
  assert.deepEqual(ops[13]!.value, { nodes: [1, 2, 3], cutFiles: 3, cutBytes: 300 }, 'the ok op says what the power loss cut');
  assert.deepEqual(ops[16]!.value, { shape: 'isolate-controller', controller: 2, halves: [[2], [1, 3]] });
  assert.deepEqual(ops[20]!.value, { shape: 'isolate-leader-from-followers', key: 'orders-0', leader: 3, halves: [[3], [1, 2]] });
  assert.deepEqual(c.calls.slice(0, 4), ['kill 2', 'start 2', 'pause 3', 'resume 3']);
  assert.ok(c.calls.includes('power-loss 1,2,3'));
  // Everything healed: all running, none paused, clocks back, links restored.
  assert.deepEqual([...c.running].sort(), [1, 2, 3]);
  assert.equal(c.paused.size, 0);
  assert.ok([...c.skew.values()].every((s) => s === 0));
  assert.equal(c.cuts.length, 0);
  assert.ok(c.calls.filter((x) => x === 'heal').length === 2);
});

test('powerLossOneNode: every power loss hits the node the first one hit; kills go where the schedule says', async () => {
  const c = new FakeCluster([1, 2, 3], 2, { 'orders-0': 3 });
  const steps: FaultStep[] = [
    { kind: 'power-loss', atMs: 0, durationMs: 1, target: 'partition-leader' },
    { kind: 'kill', atMs: 0, durationMs: 1, target: 'controller' },
    { kind: 'kill', atMs: 0, durationMs: 1, target: 'all' },
    { kind: 'power-loss', atMs: 0, durationMs: 1, allNodes: true },
  ];
  await createNemesis(c, recorder(), { seed: 7, keys: ['orders-0'], powerLossOneNode: true }).run(steps, never);
  assert.deepEqual(c.calls, ['power-loss 3', 'start 3', 'kill 2', 'start 2', 'kill 1', 'kill 2', 'kill 3', 'start 1', 'start 2', 'start 3', 'power-loss 3', 'start 3']);
  // Without it the power losses go where the schedule says.
  const spread = new FakeCluster([1, 2, 3], 2, { 'orders-0': 3 });
  await createNemesis(spread, recorder(), { seed: 7, keys: ['orders-0'] }).run(steps, never);
  assert.deepEqual(spread.calls.filter((x) => x.startsWith('power-loss')), ['power-loss 3', 'power-loss 1,2,3']);
});

test('partition shapes cut the right links and never the clients', async () => {
  const c = new FakeCluster([1, 2, 3, 4, 5], 1, { 'k-0': 4 });
  const r = recorder();
  const seen: { links: Link[]; mode: string }[] = [];
  const cut = c.cut.bind(c);
  c.cut = async (links, mode) => {
    await cut(links, mode);
    seen.push(c.cuts.at(-1)!);
  };
  const shapes = ['random-halves', 'isolate-controller', 'isolate-leader-from-followers', 'majorities-ring', 'one-way'] as const;
  await new ClusterNemesis(c, r, 3, ['k-0']).run(
    shapes.map((shape, i) => ({ kind: 'partition', shape, atMs: i, durationMs: 1 })),
    never,
  );
  const [halves, ctl, leader, ring, oneWay] = seen;
  for (const s of seen) assert.ok(s.links.every(([from]) => from !== 'clients'));
  const v = nemesisOps(r).filter((o) => o.type === 'ok' && o.f === 'partition').map((o) => o.value as Record<string, unknown>);
  const [a, b] = v[0]!['halves'] as number[][];
  assert.deepEqual([...a!, ...b!].sort(), [1, 2, 3, 4, 5]);
  assert.deepEqual(new Set(halves!.links.map((l) => l.join('>'))), new Set(linksBetween(a!, b!).map((l) => l.join('>'))));
  assert.equal(halves!.mode, 'drop');
  assert.equal(ctl!.links.length, 8);
  assert.ok(ctl!.links.every(([f, t]) => f === 1 || t === 1));
  assert.ok(leader!.links.every(([f, t]) => f === 4 || t === 4));
  assert.equal(ring!.mode, 'one-way');
  // 5 nodes, majority 3: each node stops hearing from 2 others.
  assert.equal(ring!.links.length, 10);
  assert.equal(oneWay!.mode, 'one-way');
  assert.equal(oneWay!.links.length, 1);
  const ow = v[4]!;
  assert.deepEqual(oneWay!.links[0], [ow['from'], ow['to']]);
});

test('the same seed makes the same choices; another seed other ones', async () => {
  const steps: FaultStep[] = [
    ...Array.from({ length: 8 }, (_, i): FaultStep => ({ kind: 'partition', shape: 'random-halves', atMs: i, durationMs: 1 })),
    { kind: 'kill', atMs: 9, durationMs: 1 },
    { kind: 'clock', atMs: 10, durationMs: 1 },
    { kind: 'partition', shape: 'majorities-ring', atMs: 11, durationMs: 1 },
  ];
  const runWith = async (seed: number) => {
    const r = recorder();
    await createNemesis(new FakeCluster([1, 2, 3, 4, 5]), r, { seed, keys: [] }).run(steps, never);
    return shape(r);
  };
  const a = await runWith(42);
  assert.deepEqual(await runWith(42), a);
  assert.notDeepEqual(await runWith(43), a);
});

test('a failing action is recorded as info and its fault is still healed', async () => {
  const c = new FakeCluster([1, 2, 3]);
  c.failOn.add('pause');
  const r = recorder();
  await createNemesis(c, r, { seed: 1, keys: [] }).run([{ kind: 'pause', atMs: 0, durationMs: 1, target: 'all' }], never);
  const ops = nemesisOps(r);
  assert.deepEqual(ops.map((o) => `${o.type} ${o.f}`), ['invoke pause', 'info pause', 'invoke resume', 'ok resume']);
  assert.match(String(ops[1]!.error), /pause 1 failed/);
});

test('abort heals the active fault at once and skips the rest of the schedule', async () => {
  const c = new FakeCluster([1, 2, 3]);
  const r = recorder();
  const ac = new AbortController();
  const started = performance.now();
  const run = createNemesis(c, r, { seed: 5, keys: [] }).run(
    [
      { kind: 'kill', atMs: 0, durationMs: 60_000, target: 'random' },
      { kind: 'pause', atMs: 61_000, durationMs: 1000 },
    ],
    ac.signal,
  );
  await waitFor('the kill to be recorded', () => nemesisOps(r).some((o) => o.type === 'ok' && o.f === 'kill'));
  ac.abort();
  await run;
  assert.ok(performance.now() - started < 10_000, 'returned long before the fault would have ended');
  assert.deepEqual(nemesisOps(r).map((o) => `${o.type} ${o.f}`), ['invoke kill', 'ok kill', 'invoke start', 'ok start']);
  assert.equal(c.running.size, 3);
});

test('majorities ring: every node sees a majority including itself, no two the same one, cuts are the complement', async () => {
  await assertProperty(
    'majorities ring',
    fc.property(
      fc.integer({ min: 1, max: 4 }).chain((h) => fc.shuffledSubarray(Array.from({ length: 2 * h + 1 }, (_, i) => i + 1), { minLength: 2 * h + 1, maxLength: 2 * h + 1 })),
      (ring) => {
        const { views, cuts } = majoritiesRing(ring);
        const m = Math.floor(ring.length / 2) + 1;
        const keys = new Set<string>();
        for (const node of ring) {
          const view = views.get(node)!;
          assert.equal(new Set(view).size, m);
          assert.ok(view.includes(node));
          keys.add([...view].sort().join(','));
          for (const other of ring) assert.equal(cuts.some(([f, t]) => f === other && t === node), !view.includes(other));
        }
        if (ring.length >= 3) assert.equal(keys.size, ring.length);
      },
    ),
  );
});

test('nemesis on a real cluster: every fault kind, power loss of every node included, is applied and healed; the cluster recovers', async (t) => {
  const root = tempDir(t, 'raftka-nemesis-');
  const cluster = await startProcessJepsenCluster({ nodes: 3, root });
  defer(t, () => cluster.stop());
  await cluster.waitReady(30_000);
  const r = recorder();
  const ctl = await cluster.controllerId();
  await createNemesis(cluster, r, { seed: 9, keys: [] }).run(
    [
      { kind: 'partition', shape: 'isolate-controller', atMs: 0, durationMs: 300 },
      { kind: 'kill', target: 'controller', atMs: 0, durationMs: 300 },
      { kind: 'power-loss', allNodes: true, atMs: 0, durationMs: 300 },
      { kind: 'partition', shape: 'majorities-ring', atMs: 0, durationMs: 300 },
      { kind: 'partition', shape: 'one-way', atMs: 0, durationMs: 300 },
      { kind: 'pause', target: 'random', atMs: 0, durationMs: 300 },
      { kind: 'clock', target: 'all', clockOffsetMs: 60_000, atMs: 0, durationMs: 300 },
    ],
    never,
  );
  const ops = nemesisOps(r);
  assert.ok(ops.every((o) => o.type !== 'info'), JSON.stringify(ops));
  assert.deepEqual(ops[0]!.value, { shape: 'isolate-controller', controller: ctl, halves: [[ctl!], cluster.nodeIds.filter((id) => id !== ctl)] });
  assert.equal(ops.filter((o) => o.type === 'ok').length, 14);
  assert.ok(Object.values(cluster.linkModes()).every((m) => m === 'pass'));
  for (const id of cluster.nodeIds) assert.ok(cluster.isRunning(id));
  await cluster.waitReady(30_000);
  assert.notEqual(await cluster.controllerId(), null);
});
