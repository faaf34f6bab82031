// The nemesis: runs a schedule's faults against a JepsenCluster and records each as a
// pair of nemesis ops (invoke, then ok, or info when the action failed and its effect is
// unknown). Faults run one at a time, each healed before the next starts: the history
// has one nemesis process, and a fault healed by a later one's heal would blur which
// fault an anomaly belongs to. A step due while another is active starts after it.
//
// Targets are resolved when the fault starts (who is the controller, which node leads a
// key, which random nodes) and written into the op's value, so the history says exactly
// what was done. Random choices come from a SeededRandom per step, derived from the seed
// and the step's index: a replay makes the same choices given the same cluster state.
import { SeededRandom, type Random } from '../common/random.ts';
import type { HistoryRecorder, Json } from './history.ts';
import type { CreateNemesis, FaultStep, JepsenCluster, Nemesis, PartitionShape } from './fault-api.ts';

/** Clock jump used when a clock step names none: up to ±5 minutes, never 0. */
const DEFAULT_CLOCK_JUMP_MS = 300_000;

type Link = readonly [from: number, to: number];

/** What a fault did, so its heal undoes exactly that. */
interface Active {
  readonly healF: string;
  readonly value: { readonly [k: string]: Json };
  heal(): Promise<void>;
}

function shuffled<T>(xs: readonly T[], rnd: Random): T[] {
  const out = [...xs];
  for (let i = out.length - 1; i > 0; i--) {
    const j = rnd.int(i + 1);
    [out[i], out[j]] = [out[j]!, out[i]!];
  }
  return out;
}

function pick<T>(xs: readonly T[], rnd: Random): T {
  return xs[rnd.int(xs.length)]!;
}

/** Every link between the two sides, both directions. */
export function linksBetween(a: readonly number[], b: readonly number[]): Link[] {
  const out: Link[] = [];
  for (const x of a) for (const y of b) out.push([x, y], [y, x]);
  return out;
}

/**
 * Jepsen's majorities ring: nodes in a ring, each hears from the majority-sized window of
 * the ring around itself, so every node sees a majority and no two see the same one (for
 * odd sizes of at least 3). Returns each node's view and the one-way cuts that make it:
 * [from, to] for every `from` outside `to`'s view.
 */
export function majoritiesRing(ring: readonly number[]): { views: Map<number, number[]>; cuts: Link[] } {
  const n = ring.length;
  const m = Math.floor(n / 2) + 1;
  const lo = -Math.floor((m - 1) / 2);
  const views = new Map<number, number[]>();
  const cuts: Link[] = [];
  ring.forEach((node, k) => {
    const view = Array.from({ length: m }, (_, d) => ring[(((k + lo + d) % n) + n) % n]!);
    views.set(node, view);
    for (const other of ring) if (!view.includes(other)) cuts.push([other, node]);
  });
  return { views, cuts };
}

/** A per-step random source: independent of how many draws other steps made. */
function stepRandom(seed: number, index: number): Random {
  return new SeededRandom((seed ^ Math.imul(index + 1, 0x9e3779b1)) >>> 0);
}

function abortable(ms: number, signal: AbortSignal): Promise<void> {
  if (signal.aborted || ms <= 0) return Promise.resolve();
  return new Promise((resolve) => {
    const done = () => {
      clearTimeout(timer);
      signal.removeEventListener('abort', done);
      resolve();
    };
    const timer = setTimeout(done, ms);
    signal.addEventListener('abort', done, { once: true });
  });
}

function errorJson(e: unknown): Json {
  return e instanceof Error ? e.message : String(e);
}

export class ClusterNemesis implements Nemesis {
  /** With powerLossOneNode: the node every power loss of this run hits (the first one's). */
  private powerLossNode: number | undefined;

  constructor(
    private readonly cluster: JepsenCluster,
    private readonly recorder: HistoryRecorder,
    private readonly seed: number,
    private readonly keys: readonly string[],
    /** The wall clock the schedule's `atMs` are measured on (injectable for tests). */
    private readonly nowMs: () => number = () => performance.now(),
    /** See NemesisOptions.powerLossOneNode. */
    private readonly powerLossOneNode = false,
  ) {}

  async run(steps: readonly FaultStep[], signal: AbortSignal): Promise<void> {
    const t0 = this.nowMs();
    const order = steps.map((s, i) => ({ s, i })).sort((a, b) => a.s.atMs - b.s.atMs || a.i - b.i);
    for (const { s, i } of order) {
      await abortable(t0 + s.atMs - this.nowMs(), signal);
      if (signal.aborted) return;
      const active = await this.begin(s, stepRandom(this.seed, i));
      if (active === undefined) continue;
      await abortable(s.durationMs, signal);
      await this.end(active);
    }
  }

  /**
   * Records and performs one op; info (with the error) when it threw. What the action
   * resolves with (what it found doing it) is added to the ok op's value.
   */
  private async op(f: string, value: { readonly [k: string]: Json }, action: () => Promise<void | { readonly [k: string]: Json }>): Promise<boolean> {
    this.recorder.nemesis('invoke', f, value);
    try {
      const found = await action();
      this.recorder.nemesis('ok', f, found ? { ...value, ...found } : value);
      return true;
    } catch (e) {
      this.recorder.nemesis('info', f, value, errorJson(e));
      return false;
    }
  }

  private async end(a: Active): Promise<void> {
    await this.op(a.healF, a.value, () => a.heal());
  }

  private async targetNodes(step: FaultStep, rnd: Random): Promise<number[]> {
    const ids = this.cluster.nodeIds;
    // Drawn first and always, so the stream of choices does not depend on the cluster.
    const random = pick(ids, rnd);
    const key = this.keys.length > 0 ? pick(this.keys, rnd) : undefined;
    switch (step.target ?? 'random') {
      case 'all':
        return [...ids];
      case 'controller':
        return [(await this.cluster.controllerId().catch(() => null)) ?? random];
      case 'partition-leader':
        return [(key === undefined ? null : await this.cluster.leaderOf(key).catch(() => null)) ?? random];
      case 'random':
        return [random];
    }
  }

  /**
   * The nodes a power loss hits: `chosen`, or with powerLossOneNode the run's one such
   * node (the first time, one of `chosen`).
   */
  private pinPowerLoss(chosen: number[], rnd: Random): number[] {
    if (!this.powerLossOneNode) return chosen;
    this.powerLossNode ??= chosen.length === 1 ? chosen[0]! : pick(chosen, rnd);
    return [this.powerLossNode];
  }

  /** Starts a fault; returns how to heal it, or undefined when nothing needs healing. */
  private async begin(step: FaultStep, rnd: Random): Promise<Active | undefined> {
    const c = this.cluster;
    switch (step.kind) {
      case 'kill': {
        const nodes = await this.targetNodes(step, rnd);
        await this.op('kill', { nodes }, () => Promise.all(nodes.map((id) => c.kill(id))).then(() => undefined));
        return { healF: 'start', value: { nodes, of: 'kill' }, heal: () => Promise.all(nodes.map((id) => c.start(id))).then(() => undefined) };
      }
      case 'pause': {
        const nodes = await this.targetNodes(step, rnd);
        await this.op('pause', { nodes }, () => Promise.all(nodes.map((id) => c.pause(id))).then(() => undefined));
        return { healF: 'resume', value: { nodes, of: 'pause' }, heal: () => Promise.all(nodes.map((id) => c.resume(id))).then(() => undefined) };
      }
      case 'clock': {
        const nodes = await this.targetNodes(step, rnd);
        const drawn = (1 + rnd.int(DEFAULT_CLOCK_JUMP_MS)) * (rnd.int(2) === 0 ? -1 : 1);
        const offsetMs = step.clockOffsetMs ?? drawn;
        await this.op('clock', { nodes, offsetMs }, () => Promise.all(nodes.map((id) => c.shiftClock(id, offsetMs))).then(() => undefined));
        return {
          healF: 'clock-reset',
          value: { nodes, offsetMs: -offsetMs, of: 'clock' },
          heal: () => Promise.all(nodes.map((id) => c.shiftClock(id, -offsetMs))).then(() => undefined),
        };
      }
      case 'power-loss': {
        const nodes = this.pinPowerLoss(step.allNodes ? [...c.nodeIds] : await this.targetNodes(step, rnd), rnd);
        await this.op('power-loss', { nodes }, async () => ({ ...(await c.powerLoss(nodes)) }));
        return { healF: 'start', value: { nodes, of: 'power-loss' }, heal: () => Promise.all(nodes.map((id) => c.start(id))).then(() => undefined) };
      }
      case 'partition': {
        const plan = await this.partitionPlan(step.shape ?? 'random-halves', rnd);
        // A failed cut may still have cut some links: it is healed like any other.
        await this.op('partition', plan.value, () => c.cut(plan.links, plan.mode));
        return { healF: 'heal', value: { of: 'partition' }, heal: () => c.healAll() };
      }
    }
  }

  private async partitionPlan(shape: PartitionShape, rnd: Random): Promise<{ links: Link[]; mode: 'drop' | 'one-way'; value: { readonly [k: string]: Json } }> {
    const ids = this.cluster.nodeIds;
    // Drawn up front for every shape, so each shape's choices replay alike.
    const order = shuffled(ids, rnd);
    const key = this.keys.length > 0 ? pick(this.keys, rnd) : undefined;
    const isolate = (node: number) => {
      const rest = ids.filter((id) => id !== node);
      return { links: linksBetween([node], rest), halves: [[node], rest] };
    };
    switch (shape) {
      case 'random-halves': {
        const cut = Math.max(1, Math.floor(ids.length / 2));
        const halves = [order.slice(0, cut).sort((a, b) => a - b), order.slice(cut).sort((a, b) => a - b)];
        return { links: linksBetween(halves[0]!, halves[1]!), mode: 'drop', value: { shape, halves } };
      }
      case 'isolate-controller': {
        const ctl = (await this.cluster.controllerId().catch(() => null)) ?? order[0]!;
        const { links, halves } = isolate(ctl);
        return { links, mode: 'drop', value: { shape, controller: ctl, halves } };
      }
      case 'isolate-leader-from-followers': {
        const leader = (key === undefined ? null : await this.cluster.leaderOf(key).catch(() => null)) ?? order[0]!;
        const { links, halves } = isolate(leader);
        return { links, mode: 'drop', value: { shape, key: key ?? null, leader, halves } };
      }
      case 'majorities-ring': {
        const { views, cuts } = majoritiesRing(order);
        return { links: cuts, mode: 'one-way', value: { shape, ring: order, views: Object.fromEntries([...views].map(([k, v]) => [String(k), v])) } };
      }
      case 'one-way': {
        const [from, to] = order;
        if (from === undefined || to === undefined) return { links: [], mode: 'one-way', value: { shape, links: [] } };
        return { links: [[from, to]], mode: 'one-way', value: { shape, from, to } };
      }
    }
  }
}

export const createNemesis: CreateNemesis = (cluster, recorder, opts) => new ClusterNemesis(cluster, recorder, opts.seed, opts.keys, undefined, opts.powerLossOneNode ?? false);
