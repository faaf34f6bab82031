// Random fault schedules for the simulator, generated (and shrunk) by fast-check, and the
// runner that plays one: a fault phase, then a liveness phase that heals everything and
// demands a new commit within a bound. Safety invariants are checked by SimCluster as
// every effect happens; this file adds the liveness check.
import fc from 'fast-check';
import type { NodeId } from '../../../src/raft/types.ts';
import { InvariantViolation, SimCluster } from './cluster.ts';

export type Step =
  | { readonly do: 'run'; readonly ms: number }
  | { readonly do: 'net'; readonly dropRate: number; readonly dupRate: number; readonly maxDelayMs: number }
  /** Nodes at these positions form one side; the rest the other. */
  | { readonly do: 'partition'; readonly side: readonly number[] }
  | { readonly do: 'oneWay'; readonly from: number; readonly to: number }
  | { readonly do: 'heal' }
  | { readonly do: 'crash'; readonly node: number }
  /** Targeted faults: the current leader (highest term) crashes, or is cut off alone. */
  | { readonly do: 'crashLeader' }
  | { readonly do: 'isolateLeader' }
  | { readonly do: 'restart'; readonly node: number }
  /** Crash and restart at once: what survives is exactly what was durable. */
  | { readonly do: 'bounce'; readonly node: number }
  | { readonly do: 'propose'; readonly count: number }
  /** Every live node snapshots its state machine and compacts its log (a driver's periodic policy). */
  | { readonly do: 'snapshot' }
  /** The node's disk is lost; it comes back (at the next restart) with a new directory id. */
  | { readonly do: 'wipe'; readonly node: number }
  | { readonly do: 'addVoter'; readonly node: number }
  | { readonly do: 'removeVoter'; readonly node: number }
  | { readonly do: 'transfer'; readonly node: number }
  | { readonly do: 'read'; readonly node: number };

export interface Schedule {
  readonly nodes: 3 | 5;
  readonly voters: number;
  readonly seed: number;
  /** Chance per tick that a node's pending Ready becomes durable (lower: more lost on crash). */
  readonly persistRate: number;
  /** Flow control: in-flight append window and bytes per append (1: one entry each). */
  readonly maxInflightAppends: number;
  readonly maxAppendBytes: number;
  readonly steps: readonly Step[];
}

/** Liveness bound: after healing, a leader commits a new entry within this much time. */
export const LIVENESS_COMMIT_MS = 10_000;
/** ...and every member applies it within this much more (catch-up, snapshot installs). */
export const LIVENESS_CATCHUP_MS = 10_000;

const pos = fc.integer({ min: 0, max: 4 });

export const stepArb: fc.Arbitrary<Step> = fc.oneof(
  { weight: 10, arbitrary: fc.record({ do: fc.constant('run' as const), ms: fc.integer({ min: 10, max: 4000 }) }) },
  {
    weight: 2,
    arbitrary: fc.record({
      do: fc.constant('net' as const),
      dropRate: fc.constantFrom(0, 0.05, 0.2, 0.5),
      dupRate: fc.constantFrom(0, 0.05, 0.3),
      maxDelayMs: fc.constantFrom(5, 50, 300),
    }),
  },
  { weight: 2, arbitrary: fc.record({ do: fc.constant('partition' as const), side: fc.uniqueArray(pos, { minLength: 1, maxLength: 2 }) }) },
  { weight: 1, arbitrary: fc.record({ do: fc.constant('oneWay' as const), from: pos, to: pos }) },
  { weight: 2, arbitrary: fc.record({ do: fc.constant('heal' as const) }) },
  { weight: 2, arbitrary: fc.record({ do: fc.constant('crash' as const), node: pos }) },
  { weight: 2, arbitrary: fc.record({ do: fc.constant('crashLeader' as const) }) },
  { weight: 2, arbitrary: fc.record({ do: fc.constant('isolateLeader' as const) }) },
  { weight: 4, arbitrary: fc.record({ do: fc.constant('restart' as const), node: pos }) },
  { weight: 2, arbitrary: fc.record({ do: fc.constant('bounce' as const), node: pos }) },
  { weight: 5, arbitrary: fc.record({ do: fc.constant('propose' as const), count: fc.integer({ min: 1, max: 20 }) }) },
  { weight: 3, arbitrary: fc.record({ do: fc.constant('snapshot' as const) }) },
  { weight: 1, arbitrary: fc.record({ do: fc.constant('wipe' as const), node: pos }) },
  { weight: 1, arbitrary: fc.record({ do: fc.constant('addVoter' as const), node: pos }) },
  { weight: 1, arbitrary: fc.record({ do: fc.constant('removeVoter' as const), node: pos }) },
  { weight: 1, arbitrary: fc.record({ do: fc.constant('transfer' as const), node: pos }) },
  { weight: 2, arbitrary: fc.record({ do: fc.constant('read' as const), node: pos }) },
);

export function scheduleArb(nodes: 3 | 5, maxSteps = 40): fc.Arbitrary<Schedule> {
  return fc.record({
    nodes: fc.constant(nodes),
    voters: nodes === 3 ? fc.constant(3) : fc.integer({ min: 3, max: 5 }),
    seed: fc.integer({ min: 0, max: 2 ** 31 - 1 }),
    persistRate: fc.constantFrom(0.3, 0.8, 1),
    maxInflightAppends: fc.constantFrom(1, 4, 64),
    maxAppendBytes: fc.constantFrom(1, 64, 1 << 20),
    steps: fc.array(stepArb, { minLength: 1, maxLength: maxSteps, size: 'max' }),
  });
}

export interface RunResult {
  readonly cluster: SimCluster;
  readonly livenessMs: number;
}

/**
 * Plays a schedule; throws InvariantViolation (safety) or LivenessFailure, with the
 * nodes' final states appended to the message.
 */
export function runSchedule(s: Schedule): RunResult {
  let cluster: SimCluster | null = null;
  try {
    return play(s, (c) => (cluster = c));
  } catch (e) {
    if (e instanceof Error && cluster !== null) e.message += `\n${describe(cluster)}`;
    throw e;
  }
}

export class LivenessFailure extends Error {
  override name = 'LivenessFailure';
}

const KIND = { normal: '', noop: '·', config: 'c' } as const;

/** One line per node: role, term, commit, log and config, for failure reports. */
export function describe(c: SimCluster): string {
  const lines = [`  at t=${c.now} ms, cut links: ${[...c.cut].join(' ') || 'none'}`];
  for (const n of c.nodes.values()) {
    const k = n.core;
    const state = k === null ? 'down' : `${k.softState().role} term=${k.currentTerm} leader=${k.softState().leaderId ?? '-'} commit=${k.commitIndex} last=${k.lastIndex()}`;
    const cfg = k?.clusterConfig();
    const voters = cfg ? cfg.voters.map((v) => v.nodeId).join(',') : '?';
    const log = n.disk.entries.slice(-8).map((e) => `${e.index}/${e.term}${KIND[e.kind]}`).join(' ');
    lines.push(`  node ${n.id}: ${state} applied=${n.machine.applied} voters=[${voters}] disk: snap=${n.disk.snapshot?.meta.index ?? 0} …${log}`);
  }
  return lines.join('\n');
}

function play(s: Schedule, onCluster: (c: SimCluster) => void): RunResult {
  const ids: NodeId[] = Array.from({ length: s.nodes }, (_, i) => i + 1);
  const c = new SimCluster({
    nodeIds: ids,
    voterIds: ids.slice(0, s.voters),
    seed: s.seed,
    persistRate: s.persistRate,
    raft: { maxInflightAppends: s.maxInflightAppends, maxAppendBytes: s.maxAppendBytes },
  });
  onCluster(c);
  const at = (p: number): NodeId => ids[p % ids.length]!;
  const enc = (t: string): Uint8Array => new TextEncoder().encode(t);
  // Per run, so a replay proposes exactly the same bytes.
  let proposalSeq = 0;

  for (const step of s.steps) {
    switch (step.do) {
      case 'run':
        c.run(step.ms);
        break;
      case 'net':
        c.faults.dropRate = step.dropRate;
        c.faults.dupRate = step.dupRate;
        c.faults.maxDelayMs = step.maxDelayMs;
        break;
      case 'partition': {
        const side = [...new Set(step.side.map(at))];
        c.partition([side, ids.filter((id) => !side.includes(id))]);
        break;
      }
      case 'oneWay':
        if (at(step.from) !== at(step.to)) c.cutOneWay(at(step.from), at(step.to));
        break;
      case 'heal':
        c.heal();
        break;
      case 'crash':
        c.crash(at(step.node));
        break;
      case 'crashLeader': {
        const l = c.leader();
        if (l !== null) c.crash(l.id);
        break;
      }
      case 'isolateLeader': {
        const l = c.leader();
        if (l !== null) c.partition([[l.id], ids.filter((id) => id !== l.id)]);
        break;
      }
      case 'restart':
        c.restart(at(step.node));
        break;
      case 'wipe':
        c.wipe(at(step.node));
        break;
      case 'bounce':
        c.crash(at(step.node));
        c.restart(at(step.node));
        break;
      case 'propose':
        for (let i = 0; i < step.count; i++) c.propose(enc(`p${proposalSeq++}`));
        break;
      case 'snapshot':
        for (const id of ids) c.snapshot(id);
        break;
      case 'addVoter': {
        const id = at(step.node);
        // The operator adds the node with the directory it has now (after a wipe: the new one).
        c.leader()?.proposeConfigChange({ type: 'addVoter', voter: { nodeId: id, directoryId: c.node(id).directoryId } });
        break;
      }
      case 'removeVoter':
        c.leader()?.proposeConfigChange({ type: 'removeVoter', nodeId: at(step.node) });
        break;
      case 'transfer':
        c.leader()?.transferLeadership(at(step.node));
        break;
      case 'read':
        c.readIndex(at(step.node), `r${proposalSeq++}`);
        break;
    }
  }

  // Liveness: heal the network, bring every node back, and demand progress.
  c.heal();
  c.faults.dropRate = 0;
  c.faults.dupRate = 0;
  c.faults.maxDelayMs = 10;
  for (const id of ids) c.restart(id);
  if (!c.quorumIntact()) {
    // Wiped disks took a majority of some configuration's voters: no election can (or
    // may) succeed until an operator repairs it. Safety was checked throughout; run a
    // while longer healed to check it under recovery traffic too.
    c.run(LIVENESS_CATCHUP_MS);
    return { cluster: c, livenessMs: -1 };
  }
  const healedAt = c.now;
  let marker: { index: number; term: number } | null = null;
  const committed = (): boolean => {
    if (marker !== null && c.applied.get(marker.index)?.term === marker.term) return true;
    const l = c.leader();
    if (l !== null && (marker === null || marker.term !== l.currentTerm)) {
      const r = l.propose(enc(`live${proposalSeq++}`));
      if (r.ok) marker = { index: r.index, term: r.term };
    }
    return false;
  };
  if (!c.runUntil(LIVENESS_COMMIT_MS, committed)) {
    throw new LivenessFailure(`no new entry committed within ${LIVENESS_COMMIT_MS} ms of healing (leader ${c.leader()?.id ?? 'none'})`);
  }
  const livenessMs = c.now - healedAt;
  const target = marker!.index;
  const caughtUp = (): boolean => [...c.nodes.values()].every((n) => n.machine.applied >= target);
  if (!c.runUntil(LIVENESS_CATCHUP_MS, caughtUp)) {
    const lag = [...c.nodes.values()].map((n) => `${n.id}:${n.machine.applied}`).join(' ');
    throw new LivenessFailure(`not every node applied ${target} within ${LIVENESS_CATCHUP_MS} ms (${lag})`);
  }
  c.checkLogsAgree();
  return { cluster: c, livenessMs };
}

export { InvariantViolation };
