/**
 * The schedule of a Jepsen run as a fast-check arbitrary: the workload mix (topics,
 * partitions, producers, consumers) and the fault steps (fault-api.ts FaultStep) with
 * kinds limited to `--nemesis`, every fault healed before the run's time is up. A run is
 * determined by its seed: `scheduleFor(seed, …)` is the first value fast-check draws
 * from the arbitrary with that seed, the same value `fc.assert(…, { seed, numRuns: 1 })`
 * runs first, so a printed seed replays the run and fast-check can shrink it.
 *
 * Faults do not overlap: each starts after the previous one healed, so a shrunk schedule
 * keeps the cause of a failure readable and the nemesis never has to combine faults.
 */
import fc from 'fast-check';
import { RaftkaError } from '../common/errors.ts';
import { FAULT_KINDS, type FaultKind, type FaultStep, type FaultTarget, type PartitionShape } from './fault-api.ts';

export interface ScheduleOptions {
  /** Node count (3 or 5). */
  readonly nodes: number;
  /** Workload duration (ms). */
  readonly timeMs: number;
  /** Fault kinds allowed; none means a run without faults. */
  readonly kinds: readonly FaultKind[];
  /** Unsafe mode: the fixed schedule `unsafeSchedule` rather than a drawn one. */
  readonly unsafe?: boolean;
  /** false: the topics do not fsync before acknowledging, so no power loss hits every node. */
  readonly flushBeforeAck?: boolean;
}

export interface Schedule {
  readonly topics: number;
  readonly partitions: number;
  readonly producers: number;
  readonly consumers: number;
  readonly faults: readonly FaultStep[];
}

/** Time left without faults at the start (the workload warms up) and at the end. */
export const LEAD_IN_MS = 1000;
export const LEAD_OUT_MS = 1500;
const MIN_FAULT_MS = 500;
const MAX_FAULT_MS = 8000;

const TARGETS: readonly FaultTarget[] = ['random', 'controller', 'partition-leader'];
const SHAPES: readonly PartitionShape[] = ['random-halves', 'isolate-controller', 'isolate-leader-from-followers', 'majorities-ring', 'one-way'];

interface DrawnFault {
  readonly kind: FaultKind;
  readonly gapMs: number;
  readonly durationMs: number;
  readonly target: FaultTarget;
  readonly shape: PartitionShape;
  readonly clockOffsetMs: number;
  readonly allNodes: boolean;
}

function drawnFault(kinds: readonly FaultKind[], allNodesPowerLoss: boolean): fc.Arbitrary<DrawnFault> {
  return fc.record({
    kind: fc.constantFrom(...kinds),
    gapMs: fc.integer({ min: 0, max: 4000 }),
    durationMs: fc.integer({ min: MIN_FAULT_MS, max: MAX_FAULT_MS }),
    target: fc.constantFrom(...TARGETS),
    shape: fc.constantFrom(...SHAPES),
    // Jumps both ways, up to a minute: larger than any timeout the nodes use.
    clockOffsetMs: fc.integer({ min: -60_000, max: 60_000 }).filter((x) => x !== 0),
    allNodes: allNodesPowerLoss ? fc.boolean() : fc.constant(false),
  });
}

/** Lays drawn faults one after another, each healed before the next, dropping those past the end. */
export function layOut(drawn: readonly DrawnFault[], timeMs: number): FaultStep[] {
  const end = timeMs - LEAD_OUT_MS;
  const steps: FaultStep[] = [];
  let at = LEAD_IN_MS;
  for (const d of drawn) {
    // A gap never pushes a fault out of the run: a drawn schedule always has a fault.
    const atMs = at + Math.min(d.gapMs, Math.max(0, end - at - MIN_FAULT_MS));
    const durationMs = Math.min(d.durationMs, end - atMs);
    if (durationMs < MIN_FAULT_MS) break;
    steps.push(toStep(d, atMs, durationMs));
    at = atMs + durationMs;
  }
  return steps;
}

function toStep(d: DrawnFault, atMs: number, durationMs: number): FaultStep {
  switch (d.kind) {
    case 'partition':
      return { kind: d.kind, atMs, durationMs, shape: d.shape };
    case 'clock':
      return { kind: d.kind, atMs, durationMs, target: d.target, clockOffsetMs: d.clockOffsetMs };
    case 'power-loss':
      return d.allNodes ? { kind: d.kind, atMs, durationMs, target: 'all', allNodes: true } : { kind: d.kind, atMs, durationMs, target: d.target };
    default:
      return { kind: d.kind, atMs, durationMs, target: d.target };
  }
}

export function scheduleArbitrary(opts: ScheduleOptions): fc.Arbitrary<Schedule> {
  // Enough draws to fill the run with faults (layOut drops what does not fit): a long run
  // must not go quiet after its first few faults.
  const minFaults = Math.max(1, Math.floor(opts.timeMs / 5000));
  const maxFaults = Math.max(minFaults, Math.floor(opts.timeMs / 2500));
  const faults =
    opts.kinds.length === 0
      ? fc.constant<FaultStep[]>([])
      : fc.array(drawnFault(opts.kinds, opts.flushBeforeAck !== false), { minLength: minFaults, maxLength: maxFaults, size: 'max' }).map((d) => layOut(d, opts.timeMs));
  return fc.record({
    topics: fc.integer({ min: 1, max: 2 }),
    partitions: fc.integer({ min: 1, max: 3 }),
    producers: fc.integer({ min: 1, max: 3 }),
    consumers: fc.integer({ min: 1, max: 2 }),
    faults,
    // A plain object whatever prototype fc.record gives, so a schedule equals its JSON.
  }).map((s): Schedule => ({ topics: s.topics, partitions: s.partitions, producers: s.producers, consumers: s.consumers, faults: s.faults }));
}

/**
 * `--unsafe`: a schedule built to lose acknowledged writes when producers ack on the
 * leader only (acks=1) and unclean leader election is on. A partition's leader is cut
 * off from its followers while it keeps its clients, so it goes on acknowledging acks=1
 * writes no follower ever copies while the rest of the cluster elects a new leader;
 * then that old leader is killed and, after the heal, truncates to the new leader's
 * log. Every key is in one topic-partition so that all faults aim at the partition the
 * producers write.
 */
export function unsafeSchedule(timeMs: number): Schedule {
  const faults: FaultStep[] = [];
  let at = LEAD_IN_MS;
  while (at + 6000 <= timeMs - LEAD_OUT_MS) {
    faults.push({ kind: 'partition', atMs: at, durationMs: 4000, shape: 'isolate-leader-from-followers' });
    faults.push({ kind: 'kill', atMs: at + 4000, durationMs: 1500, target: 'partition-leader' });
    at += 6000;
  }
  return { topics: 1, partitions: 1, producers: 2, consumers: 1, faults };
}

/** The schedule a seed determines (see the file comment). */
export function scheduleFor(seed: number, opts: ScheduleOptions): Schedule {
  if (opts.unsafe) return unsafeSchedule(opts.timeMs);
  return fc.sample(scheduleArbitrary(opts), { seed, numRuns: 1 })[0]!;
}

/** The keys of a schedule's topics: `jepsen<t>-<p>`. */
export function scheduleKeys(s: Schedule): string[] {
  const keys: string[] = [];
  for (let t = 0; t < s.topics; t++) for (let p = 0; p < s.partitions; p++) keys.push(`jepsen${t}-${p}`);
  return keys;
}

/** One line per fault, for the summary and the failure message. */
export function describeSchedule(s: Schedule): string {
  const lines = [`${s.topics} topic(s) x ${s.partitions} partition(s), ${s.producers} producer(s), ${s.consumers} consumer(s), ${s.faults.length} fault(s)`];
  for (const f of s.faults) {
    const extra = [f.target, f.shape, f.clockOffsetMs !== undefined ? `${f.clockOffsetMs} ms` : undefined, f.allNodes ? 'all nodes' : undefined].filter((x) => x !== undefined);
    lines.push(`  ${(f.atMs / 1000).toFixed(1)}s +${(f.durationMs / 1000).toFixed(1)}s ${f.kind}${extra.length > 0 ? ` (${extra.join(', ')})` : ''}`);
  }
  return lines.join('\n');
}

/**
 * Reads a schedule as the runner prints it (the JSON line of a failure), to run a shrunk
 * schedule again exactly. Throws INVALID_CONFIG naming the first bad field.
 */
export function parseSchedule(text: string): Schedule {
  let o: unknown;
  try {
    o = JSON.parse(text);
  } catch (e) {
    throw new RaftkaError('INVALID_CONFIG', `schedule is not JSON: ${(e as Error).message}`);
  }
  const bad = (what: string): never => {
    throw new RaftkaError('INVALID_CONFIG', `schedule: ${what}`);
  };
  if (typeof o !== 'object' || o === null || Array.isArray(o)) bad('must be an object');
  const r = o as Record<string, unknown>;
  for (const f of ['topics', 'partitions', 'producers', 'consumers'] as const) {
    const v = r[f];
    if (typeof v !== 'number' || !Number.isInteger(v) || v < 1 || v > 64) bad(`${f} must be an integer from 1 to 64, got ${JSON.stringify(v)}`);
  }
  if (!Array.isArray(r['faults'])) bad('faults must be an array');
  const faults = (r['faults'] as unknown[]).map((x, i) => {
    const f = x as Record<string, unknown>;
    if (typeof f !== 'object' || f === null) bad(`faults[${i}] must be an object`);
    if (!(FAULT_KINDS as readonly unknown[]).includes(f['kind'])) bad(`faults[${i}].kind must be one of ${FAULT_KINDS.join(', ')}, got ${JSON.stringify(f['kind'])}`);
    for (const t of ['atMs', 'durationMs']) {
      const v = f[t];
      if (typeof v !== 'number' || !Number.isFinite(v) || v < 0) bad(`faults[${i}].${t} must be a non-negative number, got ${JSON.stringify(v)}`);
    }
    if (f['target'] !== undefined && !([...TARGETS, 'all'] as unknown[]).includes(f['target'])) bad(`faults[${i}].target ${JSON.stringify(f['target'])} is unknown`);
    if (f['shape'] !== undefined && !(SHAPES as unknown[]).includes(f['shape'])) bad(`faults[${i}].shape ${JSON.stringify(f['shape'])} is unknown`);
    return f as unknown as FaultStep;
  });
  return { topics: r['topics'] as number, partitions: r['partitions'] as number, producers: r['producers'] as number, consumers: r['consumers'] as number, faults };
}
