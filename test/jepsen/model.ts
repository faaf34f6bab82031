// A random but valid Kafka-workload history, from an in-memory model of the logs, and
// planters that each inject one kind of anomaly into such a history. The model is what a
// correct cluster does: offsets come from one append-only log per key, polls read
// contiguous ranges from each consumer's position, and group positions restart at the
// committed offset after a rebalance. It includes the tricky-but-valid things the checker
// must accept: interleaved processes, info sends that landed or not, assigns that start
// mid-log, seeks backwards, info assigns and polls, crashes, rebalances, keys no one
// reads, failed ops, and nemesis ops.
import type { Random } from '../../src/common/random.ts';
import type { AnomalyName } from '../../src/jepsen/checker.ts';
import type { Key, Offset, Op, OpType, Value } from '../../src/jepsen/history.ts';

export const KEYS: readonly Key[] = ['orders-0', 'orders-1', 'orders-2', 'audit-0'];
const GROUP = 'g1';
const PRODUCERS = [0, 1, 2];
const ASSIGNERS = [10, 11];
const MEMBERS = [20, 21, 22];
export const FINAL_READER = 99;
/** Processes the planters add start here, so they share no history with the model's. */
const FRESH_PROCESS = 500;

/** An op as the model builds it; planters edit these before the history is checked. */
export interface RawOp {
  index: number;
  time: number;
  process: number | 'nemesis';
  type: OpType;
  f: string;
  value: unknown;
  rebalanceLog?: { keys: Key[] }[];
  seekToBeginning?: boolean;
}

export interface ModelHistory {
  ops: RawOp[];
  /** The final log of each key (what the final reads read). */
  logs: Map<Key, Value[]>;
  nextValue: number;
}

type PendingOp = { f: string; invoke: RawOp; data?: unknown };

interface Consumer {
  /** key → position (next offset to read). */
  positions: Map<Key, Offset>;
  /** Group members: keys gained in a rebalance, announced on the next poll. */
  gained: Set<Key>;
  subscribed: boolean;
}

const pick = <T>(rng: Random, xs: readonly T[]): T => xs[rng.int(xs.length)] as T;
const chance = (rng: Random, p: number): boolean => rng.next() < p;

export function generateHistory(rng: Random, steps: number): ModelHistory {
  const ops: RawOp[] = [];
  const logs = new Map<Key, Value[]>(KEYS.map((k) => [k, []]));
  const committed = new Map<Key, Offset>();
  const owner = new Map<Key, number>();
  const consumers = new Map<number, Consumer>();
  for (const p of [...ASSIGNERS, ...MEMBERS, FINAL_READER]) consumers.set(p, { positions: new Map(), gained: new Set(), subscribed: false });
  const pending = new Map<number | 'nemesis', PendingOp>();
  let time = 0;
  let nextValue = 1;

  const emit = (process: number | 'nemesis', type: OpType, f: string, value: unknown, extra: Partial<RawOp> = {}): RawOp => {
    time += 1 + rng.int(1000);
    const op: RawOp = { index: ops.length, time, process, type, f, value, ...extra };
    ops.push(op);
    return op;
  };
  const logOf = (k: Key): Value[] => logs.get(k) as Value[];
  const outcome = (pOk: number, pFail: number): 'ok' | 'fail' | 'info' => {
    const r = rng.next();
    return r < pOk ? 'ok' : r < pOk + pFail ? 'fail' : 'info';
  };
  const consumer = (p: number): Consumer => consumers.get(p) as Consumer;

  // Reads up to a few records of every assigned key from its position.
  const read = (c: Consumer, maxPerKey: number): Record<Key, [Offset, Value][]> => {
    const out: Record<Key, [Offset, Value][]> = {};
    for (const [k, pos] of c.positions) {
      const log = logOf(k);
      const n = rng.int(maxPerKey + 1);
      const records: [Offset, Value][] = [];
      for (let o = pos; o < Math.min(pos + n, log.length); o++) records.push([o, log[o] as Value]);
      if (records.length > 0) {
        out[k] = records;
        c.positions.set(k, pos + records.length);
      }
    }
    return out;
  };

  const rebalance = (): void => {
    const members = MEMBERS.filter((m) => consumer(m).subscribed);
    if (members.length === 0) return;
    for (const k of KEYS) {
      const to = pick(rng, members);
      const from = owner.get(k);
      // A member keeping a key may keep its position (cooperative) or be told to
      // restart it from the committed offset (eager): both are legal.
      if (from === to && chance(rng, 0.5)) continue;
      if (from !== undefined) {
        consumer(from).positions.delete(k);
        consumer(from).gained.delete(k);
      }
      owner.set(k, to);
      consumer(to).gained.add(k);
    }
  };

  const applyGained = (c: Consumer): RawOp['rebalanceLog'] => {
    if (c.gained.size === 0) return undefined;
    const keys = [...c.gained];
    for (const k of keys) c.positions.set(k, committed.get(k) ?? 0);
    c.gained.clear();
    return [{ keys }];
  };

  const invoke = (p: number | 'nemesis'): void => {
    if (p === 'nemesis') {
      const f = pick(rng, ['kill', 'pause', 'partition']);
      const value = f === 'partition' ? { halves: [[1], [2, 3]] } : { nodes: [1 + rng.int(3)] };
      pending.set(p, { f, invoke: emit(p, 'invoke', f, value) });
      return;
    }
    if (PRODUCERS.includes(p)) {
      const pairs: [Key, Value][] = [];
      for (let i = 1 + rng.int(3); i > 0; i--) pairs.push([pick(rng, KEYS), nextValue++]);
      pending.set(p, { f: 'send', invoke: emit(p, 'invoke', 'send', pairs) });
      return;
    }
    const c = consumer(p);
    if (ASSIGNERS.includes(p)) {
      const r = rng.next();
      if (c.positions.size === 0 || r < 0.1) {
        const keys = KEYS.filter(() => chance(rng, 0.6));
        if (keys.length === 0) keys.push(pick(rng, KEYS));
        const seekToBeginning = chance(rng, 0.3);
        pending.set(p, { f: 'assign', invoke: emit(p, 'invoke', 'assign', keys, { seekToBeginning }) });
      } else if (r < 0.18) {
        const k = pick(rng, [...c.positions.keys()]);
        pending.set(p, { f: 'seek', invoke: emit(p, 'invoke', 'seek', { [k]: rng.int(logOf(k).length + 1) }) });
      } else if (r < 0.22) {
        pending.set(p, { f: 'crash', invoke: emit(p, 'invoke', 'crash', null) });
      } else {
        pending.set(p, { f: 'poll', invoke: emit(p, 'invoke', 'poll', null) });
      }
      return;
    }
    // A group member.
    if (!c.subscribed) {
      pending.set(p, { f: 'subscribe', invoke: emit(p, 'invoke', 'subscribe', [...KEYS]) });
    } else if (chance(rng, 0.25) && c.positions.size > 0) {
      // Commits complete at once: a commit racing a rebalance would be fenced by its
      // generation in Kafka, which this model does not track.
      const offsets = Object.fromEntries(c.positions);
      const value = { group: GROUP, offsets };
      emit(p, 'invoke', 'commit', value);
      const type = outcome(0.85, 0.1);
      if (type === 'ok' || (type === 'info' && chance(rng, 0.5))) for (const [k, o] of c.positions) committed.set(k, o);
      emit(p, type, 'commit', value);
    } else {
      pending.set(p, { f: 'poll', invoke: emit(p, 'invoke', 'poll', null) });
    }
  };

  const complete = (p: number | 'nemesis'): void => {
    const { f, invoke: inv } = pending.get(p) as PendingOp;
    pending.delete(p);
    if (p === 'nemesis') {
      emit(p, 'info', f, inv.value);
      return;
    }
    const c = consumers.get(p);
    switch (f) {
      case 'send': {
        const pairs = inv.value as [Key, Value][];
        const type = outcome(0.75, 0.1);
        if (type === 'ok') {
          emit(p, 'ok', 'send', pairs.map(([k, v]) => [k, [logOf(k).push(v) - 1, v]]));
        } else {
          // An indeterminate send may have landed; a failed one certainly did not.
          if (type === 'info' && chance(rng, 0.5)) for (const [k, v] of pairs) logOf(k).push(v);
          emit(p, type, 'send', pairs);
        }
        break;
      }
      case 'assign': {
        const cc = c as Consumer;
        const type = outcome(0.85, 0.1);
        if (type === 'ok' || (type === 'info' && chance(rng, 0.5))) {
          const keys = inv.value as Key[];
          const old = cc.positions;
          cc.positions = new Map();
          for (const k of keys) {
            // Kept partitions keep their position; new ones may start anywhere (an
            // auto.offset.reset to latest, or a committed offset mid-log).
            const start = inv.seekToBeginning ? 0 : (old.get(k) ?? rng.int(logOf(k).length + 1));
            cc.positions.set(k, start);
          }
        }
        emit(p, type, 'assign', inv.value, { seekToBeginning: inv.seekToBeginning === true });
        break;
      }
      case 'seek': {
        const type = outcome(0.85, 0.1);
        if (type === 'ok' || (type === 'info' && chance(rng, 0.5))) {
          for (const [k, o] of Object.entries(inv.value as Record<Key, Offset>)) if ((c as Consumer).positions.has(k)) (c as Consumer).positions.set(k, o);
        }
        emit(p, type, 'seek', inv.value);
        break;
      }
      case 'crash':
        (c as Consumer).positions.clear();
        emit(p, 'ok', 'crash', null);
        break;
      case 'subscribe': {
        const type = outcome(0.9, 0.1);
        if (type === 'ok') {
          (c as Consumer).subscribed = true;
          rebalance();
        }
        emit(p, type, 'subscribe', inv.value);
        break;
      }
      case 'poll': {
        const cc = c as Consumer;
        if (MEMBERS.includes(p as number) && chance(rng, 0.1)) rebalance();
        const rebalanceLog = applyGained(cc);
        const extra = rebalanceLog ? { rebalanceLog } : {};
        const type = outcome(0.85, 0.08);
        if (type === 'ok') {
          emit(p, 'ok', 'poll', read(cc, 4), extra);
        } else {
          // An info poll may have consumed records that were never recorded.
          if (type === 'info' && chance(rng, 0.5)) read(cc, 3);
          emit(p, type, 'poll', null, extra);
        }
        break;
      }
    }
  };

  const processes: (number | 'nemesis')[] = [...PRODUCERS, ...ASSIGNERS, ...MEMBERS, 'nemesis'];
  for (let i = 0; i < steps; i++) {
    const p = pick(rng, processes);
    if (pending.has(p)) complete(p);
    else invoke(p);
  }
  for (const p of [...pending.keys()]) complete(p);

  // Final reads: a fresh consumer reads every key from the beginning to its end.
  const fin = consumer(FINAL_READER);
  emit(FINAL_READER, 'invoke', 'assign', [...KEYS], { seekToBeginning: true });
  emit(FINAL_READER, 'ok', 'assign', [...KEYS], { seekToBeginning: true });
  for (const k of KEYS) fin.positions.set(k, 0);
  while ([...fin.positions].some(([k, o]) => o < logOf(k).length)) {
    emit(FINAL_READER, 'invoke', 'poll', null);
    emit(FINAL_READER, 'ok', 'poll', read(fin, 5));
  }
  emit(FINAL_READER, 'invoke', 'final-reads', [...KEYS]);
  emit(FINAL_READER, 'ok', 'final-reads', [...KEYS]);
  return { ops, logs, nextValue };
}

// ---------------------------------------------------------------------------------
// Planting. Each planter edits a copy of a model history so that exactly one kind of
// anomaly appears, and returns the op an example of it must cite, or undefined when
// this history offers no place for it. The model history itself is left as it was.

export type PlantKind = Extract<
  AnomalyName,
  | 'lost-write'
  | 'duplicate'
  | 'inconsistent-offsets'
  | 'nonmonotonic-send'
  | 'int-nonmonotonic-send'
  | 'nonmonotonic-poll'
  | 'int-nonmonotonic-poll'
  | 'poll-skip'
  | 'int-poll-skip'
  | 'unexpected-value'
  | 'failed-send-read'
  | 'committed-offset-regression'
>;
export const PLANT_KINDS: readonly PlantKind[] = [
  'lost-write',
  'duplicate',
  'inconsistent-offsets',
  'nonmonotonic-send',
  'int-nonmonotonic-send',
  'nonmonotonic-poll',
  'int-nonmonotonic-poll',
  'poll-skip',
  'int-poll-skip',
  'unexpected-value',
  'failed-send-read',
  'committed-offset-regression',
];

type Reads = Record<Key, [Offset, Value][]>;

function insertAt(ops: RawOp[], at: number, ...added: RawOp[]): void {
  const time = at > 0 ? (ops[at - 1] as RawOp).time : 0;
  for (const op of added) op.time = time;
  ops.splice(at, 0, ...added);
}

function pairOf(process: number, f: string, type: OpType, value: unknown, completion = value): RawOp[] {
  return [
    { index: -1, time: 0, process, type: 'invoke', f, value },
    { index: -1, time: 0, process, type, f, value: completion },
  ];
}

const isOkPoll = (op: RawOp): boolean => op.f === 'poll' && op.type === 'ok';
const firstFinalOp = (ops: RawOp[]): number => ops.findIndex((op) => op.process === FINAL_READER);
const rebalancedKeys = (op: RawOp): Set<Key> => new Set((op.rebalanceLog ?? []).flatMap((r) => r.keys));

/** Adds `[end, v]` to the final reader's reads of k, as if the log held one more record. */
function appendFinalRead(h: ModelHistory, k: Key, v: Value): RawOp {
  const ops = h.ops;
  const end = (h.logs.get(k) as Value[]).length;
  for (let i = ops.length - 1; i >= 0; i--) {
    const op = ops[i] as RawOp;
    if (op.process === FINAL_READER && isOkPoll(op) && (op.value as Reads)[k] !== undefined) {
      (op.value as Reads)[k]?.push([end, v]);
      return op;
    }
  }
  // The final reader never read k (it was empty): add a poll before final-reads.
  const at = ops.findIndex((op) => op.f === 'final-reads');
  const [inv, ok] = pairOf(FINAL_READER, 'poll', 'ok', null, { [k]: [[end, v]] }) as [RawOp, RawOp];
  insertAt(ops, at, inv, ok);
  return ok;
}

/** Completions per process, in order, for consecutive-op planters. */
function completionsByProcess(ops: RawOp[]): Map<number, RawOp[]> {
  const by = new Map<number, RawOp[]>();
  for (const op of ops) {
    if (op.process === 'nemesis' || op.type === 'invoke') continue;
    let l = by.get(op.process);
    if (l === undefined) by.set(op.process, (l = []));
    l.push(op);
  }
  return by;
}

/** Pairs (P1, P2, k): P2 is the process's next completion after ok poll P1, an ok poll, both read k, and k's position carries over. */
function consecutivePolls(ops: RawOp[]): [RawOp, RawOp, Key][] {
  const out: [RawOp, RawOp, Key][] = [];
  for (const list of completionsByProcess(ops).values()) {
    for (let i = 1; i < list.length; i++) {
      const a = list[i - 1] as RawOp;
      const b = list[i] as RawOp;
      if (!isOkPoll(a) || !isOkPoll(b)) continue;
      for (const k of Object.keys(b.value as Reads)) {
        if ((a.value as Reads)[k] !== undefined && !rebalancedKeys(b).has(k)) out.push([a, b, k]);
      }
    }
  }
  return out;
}

export function plant(kind: PlantKind, model: ModelHistory, rng: Random): { ops: RawOp[]; cited: RawOp } | undefined {
  const h: ModelHistory = { ops: structuredClone(model.ops), logs: model.logs, nextValue: model.nextValue };
  const ops = h.ops;
  const fresh = (): Value => h.nextValue++;
  const nonFinalPolls = ops.filter((op) => isOkPoll(op) && op.process !== FINAL_READER && Object.keys(op.value as Reads).length > 0);
  let cited: RawOp | undefined;

  switch (kind) {
    case 'lost-write': {
      // Acknowledged past the end the final reads found: a truncated tail.
      const k = pick(rng, KEYS);
      const v = fresh();
      const end = (h.logs.get(k) as Value[]).length;
      const [inv, ok] = pairOf(FRESH_PROCESS, 'send', 'ok', [[k, v]], [[k, [end, v]]]) as [RawOp, RawOp];
      insertAt(ops, rng.int(firstFinalOp(ops) + 1), inv, ok);
      cited = ok;
      break;
    }
    case 'duplicate': {
      const k = pick(rng, KEYS.filter((key) => (h.logs.get(key) as Value[]).length > 0));
      if (k === undefined) return undefined;
      cited = appendFinalRead(h, k, pick(rng, h.logs.get(k) as Value[]));
      break;
    }
    case 'unexpected-value':
      cited = appendFinalRead(h, pick(rng, KEYS), fresh());
      break;
    case 'failed-send-read': {
      const k = pick(rng, KEYS);
      const v = fresh();
      const [inv, failed] = pairOf(FRESH_PROCESS, 'send', 'fail', [[k, v]]) as [RawOp, RawOp];
      insertAt(ops, rng.int(firstFinalOp(ops) + 1), inv, failed);
      cited = appendFinalRead(h, k, v);
      break;
    }
    case 'inconsistent-offsets': {
      // One consumer sees an indeterminate send's value where everyone else sees another.
      if (nonFinalPolls.length === 0) return undefined;
      const poll = pick(rng, nonFinalPolls);
      const reads = poll.value as Reads;
      const k = pick(rng, Object.keys(reads));
      const records = reads[k] as [Offset, Value][];
      const v = fresh();
      (records[rng.int(records.length)] as [Offset, Value])[1] = v;
      insertAt(ops, rng.int(firstFinalOp(ops) + 1), ...pairOf(FRESH_PROCESS, 'send', 'info', [[k, v]]));
      cited = poll;
      break;
    }
    case 'nonmonotonic-send': {
      // Swap a producer's two successive acknowledged sends to one key.
      const candidates: [RawOp, RawOp][] = [];
      for (const list of completionsByProcess(ops).values()) {
        const lastOk = new Map<Key, RawOp>();
        for (const op of list) {
          if (op.f !== 'send' || op.type !== 'ok') continue;
          for (const [k] of op.value as [Key, unknown][]) {
            const prev = lastOk.get(k);
            if (prev !== undefined && prev !== op) candidates.push([prev, op]);
            lastOk.set(k, op);
          }
        }
      }
      if (candidates.length === 0) return undefined;
      const [a, b] = pick(rng, candidates);
      const invokeOf = (op: RawOp): RawOp => {
        const i = ops.indexOf(op);
        for (let j = i - 1; ; j--) if ((ops[j] as RawOp).process === op.process) return ops[j] as RawOp;
      };
      const [ai, bi] = [invokeOf(a), invokeOf(b)];
      [ai.value, bi.value] = [bi.value, ai.value];
      [a.value, b.value] = [b.value, a.value];
      cited = b;
      break;
    }
    case 'int-nonmonotonic-send': {
      const candidates: [RawOp, number, number][] = [];
      for (const op of ops) {
        if (op.f !== 'send' || op.type !== 'ok') continue;
        const pairs = op.value as [Key, unknown][];
        for (let i = 0; i < pairs.length; i++) {
          for (let j = i + 1; j < pairs.length; j++) if ((pairs[i] as [Key, unknown])[0] === (pairs[j] as [Key, unknown])[0]) candidates.push([op, i, j]);
        }
      }
      if (candidates.length === 0) return undefined;
      const [ok, i, j] = pick(rng, candidates);
      const inv = ops.slice(0, ops.indexOf(ok)).reverse().find((op) => op.process === ok.process) as RawOp;
      for (const op of [inv, ok]) {
        const pairs = op.value as unknown[];
        [pairs[i], pairs[j]] = [pairs[j], pairs[i]];
      }
      cited = ok;
      break;
    }
    case 'nonmonotonic-poll': {
      // The next poll starts by re-reading the previous poll's last record.
      const candidates = consecutivePolls(ops);
      if (candidates.length === 0) return undefined;
      const [a, b, k] = pick(rng, candidates);
      const prev = (a.value as Reads)[k] as [Offset, Value][];
      ((b.value as Reads)[k] as [Offset, Value][]).unshift([...(prev[prev.length - 1] as [Offset, Value])]);
      cited = b;
      break;
    }
    case 'poll-skip': {
      // The next poll misses the record right after where the previous one stopped.
      const candidates = consecutivePolls(ops).filter(([, b, k]) => b.process !== FINAL_READER && ((b.value as Reads)[k] as unknown[]).length >= 2);
      if (candidates.length === 0) return undefined;
      const [, b, k] = pick(rng, candidates);
      ((b.value as Reads)[k] as unknown[]).shift();
      cited = b;
      break;
    }
    case 'int-nonmonotonic-poll': {
      const candidates = nonFinalPolls.flatMap((op) => Object.keys(op.value as Reads).filter((k) => !rebalancedKeys(op).has(k)).map((k) => [op, k] as const));
      if (candidates.length === 0) return undefined;
      const [op, k] = pick(rng, candidates);
      const records = (op.value as Reads)[k] as [Offset, Value][];
      const i = rng.int(records.length);
      records.splice(i, 0, [...(records[i] as [Offset, Value])]);
      cited = op;
      break;
    }
    case 'int-poll-skip': {
      const candidates = nonFinalPolls.flatMap((op) =>
        Object.keys(op.value as Reads)
          .filter((k) => !rebalancedKeys(op).has(k) && ((op.value as Reads)[k] as unknown[]).length >= 3)
          .map((k) => [op, k] as const),
      );
      if (candidates.length === 0) return undefined;
      const [op, k] = pick(rng, candidates);
      const records = (op.value as Reads)[k] as unknown[];
      records.splice(1 + rng.int(records.length - 2), 1);
      cited = op;
      break;
    }
    case 'committed-offset-regression': {
      const candidates = ops.filter((op) => op.f === 'commit' && op.type === 'ok' && Object.values((op.value as { offsets: Record<Key, Offset> }).offsets).some((o) => o > 0));
      if (candidates.length === 0) return undefined;
      const c = pick(rng, candidates);
      const { group, offsets } = c.value as { group: string; offsets: Record<Key, Offset> };
      const k = pick(rng, Object.keys(offsets).filter((key) => (offsets[key] as Offset) > 0));
      const [inv, ok] = pairOf(FRESH_PROCESS, 'commit', 'ok', { group, offsets: { [k]: (offsets[k] as Offset) - 1 } }) as [RawOp, RawOp];
      insertAt(ops, ops.indexOf(c) + 1, inv, ok);
      cited = ok;
      break;
    }
  }
  ops.forEach((op, i) => (op.index = i));
  return cited === undefined ? undefined : { ops, cited };
}

export const asHistory = (ops: RawOp[]): Op[] => ops as unknown as Op[];
