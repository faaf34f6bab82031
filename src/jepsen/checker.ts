/**
 * The checker: a pure function from a history (history.ts) and, optionally, what the
 * runner observed of the cluster after healing, to a verdict. It never reads files,
 * clocks or randomness, so a history replays to the same result forever.
 *
 * The anomalies, named as in Jepsen's kafka workload (jepsen.tests.kafka) where it has
 * one:
 *
 * | name | what it means |
 * |------|---------------|
 * | `lost-write` | an acknowledged send never read, though some read of its key reached an offset at or past it, or the final reads covered its key; or read once but missing from the final reads |
 * | `duplicate` | one value at more than one offset of a key |
 * | `inconsistent-offsets` | one offset of a key holding different values in different reads or acks |
 * | `nonmonotonic-send` | a producer's successive acknowledged sends to a key got offsets that do not increase |
 * | `int-nonmonotonic-send` | the same, within one send op |
 * | `nonmonotonic-poll` | a consumer's next read of a key is at or before its previous read, with no assign, subscribe, seek, crash, rebalance or info poll between |
 * | `int-nonmonotonic-poll` | the same, within one poll |
 * | `poll-skip` | a consumer's next read of a key jumps over offsets that other reads or acks show exist, with nothing between that may move its position (as above) |
 * | `int-poll-skip` | the same, within one poll |
 * | `unexpected-value` | a value read that no one ever sent to that key |
 * | `failed-send-read` | a value read whose send failed (Jepsen's G1a, aborted read) |
 * | `committed-offset-regression` | a group's committed offset for a key went back: a commit invoked after another commit of the group and key was acknowledged set a lower offset |
 * | `multiple-controllers` | two nodes became the active controller in one epoch |
 * | `metadata-log-divergence` | two voters hold different entries at one index at or below the committed index |
 * | `metadata-log-missing` | a voter lacks entries at or below the committed index (not compacted into its snapshot) |
 * | `replica-divergence` | replicas of a partition differ below the high watermark |
 *
 * Indeterminate (info) sends may or may not appear, so they are never lost and are fine
 * when read. Failed sends must never appear.
 *
 * Cost: two passes over the history with maps by key, O(n log n) for sorting each key's
 * offsets; no pairwise scans. A million ops check in a few seconds.
 */
import {
  HistoryError,
  NEMESIS,
  topicOf,
  validateHistory,
  type ClientOp,
  type CommitOp,
  type History,
  type Key,
  type Offset,
  type Process,
  type Value,
} from './history.ts';

export const ANOMALY_NAMES = [
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
  'multiple-controllers',
  'metadata-log-divergence',
  'metadata-log-missing',
  'replica-divergence',
] as const;
export type AnomalyName = (typeof ANOMALY_NAMES)[number];

/** One instance of an anomaly, with the op indexes (history lines - 1) that show it. */
export interface AnomalyExample {
  /** One line a person can read. */
  readonly message: string;
  /** Indexes of the ops involved: the writer, the readers, the earlier and later op. */
  readonly ops: readonly number[];
  readonly key?: Key;
  readonly process?: Process;
  readonly group?: string;
  readonly offsets?: readonly Offset[];
  readonly values?: readonly Value[];
  readonly epoch?: number;
  readonly index?: number;
  readonly nodes?: readonly (number | string)[];
}

export interface AnomalyReport {
  /** Every instance found; `examples` holds at most `examplesMax` of them. */
  readonly count: number;
  readonly examples: readonly AnomalyExample[];
}

export type Anomalies = Partial<Record<AnomalyName, AnomalyReport>>;

export interface HistoryStats {
  readonly ops: number;
  readonly nemesisOps: number;
  readonly sendsOk: number;
  readonly sendsFail: number;
  readonly sendsInfo: number;
  /** Sends invoked but never completed (counted as info). */
  readonly sendsPending: number;
  /** Records in ok sends. */
  readonly recordsAcked: number;
  readonly pollsOk: number;
  readonly pollsFail: number;
  readonly pollsInfo: number;
  /** Records returned by ok polls, repeats included. */
  readonly reads: number;
  readonly keys: number;
  /** Acknowledged records no one read, not counted lost (no read reached them). */
  readonly unseen: number;
  /** Records from info (or pending) sends that were read. */
  readonly infoRecordsRead: number;
  readonly commitsOk: number;
}

export interface CheckResult {
  readonly valid: boolean;
  /** Only the anomalies found; empty when valid. */
  readonly anomalies: Anomalies;
  readonly stats?: HistoryStats;
}

export interface CheckOptions {
  /** Examples kept per anomaly (the count is always complete). Default 10. */
  readonly examplesMax?: number;
}

const EXAMPLES_MAX_DEFAULT = 10;

class AnomalyLog {
  private readonly found = new Map<AnomalyName, { count: number; examples: AnomalyExample[] }>();
  constructor(private readonly examplesMax: number) {}

  /** Counts one instance; builds the example lazily, as most are never shown. */
  add(name: AnomalyName, example: () => AnomalyExample): void {
    let a = this.found.get(name);
    if (a === undefined) {
      a = { count: 0, examples: [] };
      this.found.set(name, a);
    }
    a.count++;
    if (a.examples.length < this.examplesMax) a.examples.push(example());
  }

  result(stats?: HistoryStats): CheckResult {
    const anomalies: Anomalies = {};
    for (const name of ANOMALY_NAMES) {
      const a = this.found.get(name);
      if (a !== undefined) anomalies[name] = a;
    }
    return { valid: this.found.size === 0, anomalies, ...(stats ? { stats } : {}) };
  }
}

function show(v: Value): string {
  return typeof v === 'string' ? JSON.stringify(v) : String(v);
}

// ---------------------------------------------------------------------------------
// History checks.

type SendStatus = 'ok' | 'fail' | 'info' | 'pending';

interface Sent {
  status: SendStatus;
  /** The completion's index, or the invoke's while pending. */
  op: number;
  /** The acknowledged offset (ok only). */
  offset: Offset;
  process: number;
}

/** Everything known about one key (topic-partition), built in the first pass. */
interface KeyState {
  /** Every value any send to this key asked for. */
  readonly sent: Map<Value, Sent>;
  /** The version order: offset → the first value seen there, and the op that showed it. */
  readonly atOffset: Map<Offset, Value>;
  readonly atOffsetOp: Map<Offset, number>;
  /** Offsets where more than one value was seen: value → first op showing it. */
  readonly conflicts: Map<Offset, Map<Value, number>>;
  /** value → the first offset it was seen at. */
  readonly offsetOf: Map<Value, Offset>;
  readonly offsetOfOp: Map<Value, number>;
  /** Values seen at more than one offset: value → offset → first op. */
  readonly duplicates: Map<Value, Map<Offset, number>>;
  /** Values read by any ok poll → the first such poll. */
  readonly readBy: Map<Value, number>;
  maxReadOffset: Offset;
  maxReadOp: number;
  /** offset → its rank among all known offsets of the key (filled after the first pass). */
  rank: Map<Offset, number>;
  sortedOffsets: Offset[];
}

function newKeyState(): KeyState {
  return {
    sent: new Map(),
    atOffset: new Map(),
    atOffsetOp: new Map(),
    conflicts: new Map(),
    offsetOf: new Map(),
    offsetOfOp: new Map(),
    duplicates: new Map(),
    readBy: new Map(),
    maxReadOffset: -1,
    maxReadOp: -1,
    rank: new Map(),
    sortedOffsets: [],
  };
}

/** Adds an (offset, value) observation from a read or an ack to the version order. */
function observe(ks: KeyState, offset: Offset, value: Value, op: number): void {
  const there = ks.atOffset.get(offset);
  if (there === undefined) {
    ks.atOffset.set(offset, value);
    ks.atOffsetOp.set(offset, op);
  } else if (there !== value) {
    let c = ks.conflicts.get(offset);
    if (c === undefined) {
      c = new Map([[there, ks.atOffsetOp.get(offset) as number]]);
      ks.conflicts.set(offset, c);
    }
    if (!c.has(value)) c.set(value, op);
  }
  const at = ks.offsetOf.get(value);
  if (at === undefined) {
    ks.offsetOf.set(value, offset);
    ks.offsetOfOp.set(value, op);
  } else if (at !== offset) {
    let d = ks.duplicates.get(value);
    if (d === undefined) {
      d = new Map([[at, ks.offsetOfOp.get(value) as number]]);
      ks.duplicates.set(value, d);
    }
    if (!d.has(offset)) d.set(offset, op);
  }
}

interface FinalReads {
  readonly process: number;
  readonly invokeIndex: number;
  readonly op: number;
  readonly keys: readonly Key[];
}

type Rec = readonly [Offset, Value];

interface ConsumerState {
  /** key → offset and op of this process's last read, while its position is known. */
  readonly lastRead: Map<Key, { record: Rec; op: number }>;
}

/**
 * Checks a history. Throws a `HistoryError` if it is not well formed (see
 * `validateHistory`) or a value was sent to one key twice (values must be unique per
 * key, or reads could not be traced to their send).
 */
export function checkHistory(history: History, options: CheckOptions = {}): CheckResult {
  validateHistory(history);
  const anomalies = new AnomalyLog(options.examplesMax ?? EXAMPLES_MAX_DEFAULT);
  const keys = new Map<Key, KeyState>();
  const keyState = (k: Key): KeyState => {
    let ks = keys.get(k);
    if (ks === undefined) {
      ks = newKeyState();
      keys.set(k, ks);
    }
    return ks;
  };

  // Final readers are known up front so the first pass can keep their reads apart.
  const finalReaderReads = new Map<number, Map<Key, Set<Value>>>();
  for (const op of history) {
    if (op.f === 'final-reads' && op.type === 'ok' && op.process !== NEMESIS) finalReaderReads.set(op.process, new Map());
  }

  const stats = {
    ops: history.length,
    nemesisOps: 0,
    sendsOk: 0,
    sendsFail: 0,
    sendsInfo: 0,
    sendsPending: 0,
    recordsAcked: 0,
    pollsOk: 0,
    pollsFail: 0,
    pollsInfo: 0,
    reads: 0,
    keys: 0,
    unseen: 0,
    infoRecordsRead: 0,
    commitsOk: 0,
  };

  // First pass, in history order: the version order of every key, who sent and read
  // what, and the per-process checks that need no global knowledge (sends, commits).
  const pending = new Map<number, number>();
  const lastSend = new Map<number, Map<Key, { offset: Offset; op: number }>>();
  const committed = new Map<string, { offset: Offset; op: number }>();
  const commitSnapshot = new Map<number, Map<Key, { offset: Offset; op: number }>>();
  const finals: FinalReads[] = [];

  for (const op of history) {
    if (op.process === NEMESIS) {
      stats.nemesisOps++;
      continue;
    }
    const cop = op as ClientOp;
    if (cop.type === 'invoke') {
      pending.set(cop.process, cop.index);
      if (cop.f === 'send') {
        for (const [k, v] of cop.value) {
          const ks = keyState(k);
          const prior = ks.sent.get(v);
          if (prior !== undefined) {
            throw new HistoryError(`history op ${cop.index}: value ${show(v)} was already sent to ${k} by op ${prior.op}; values must be unique per key`, undefined, cop.index);
          }
          ks.sent.set(v, { status: 'pending', op: cop.index, offset: -1, process: cop.process });
        }
      } else if (cop.f === 'commit') {
        commitSnapshot.set(cop.process, snapshotCommits(committed, cop));
      }
      continue;
    }
    const invokeIndex = pending.get(cop.process) as number;
    pending.delete(cop.process);

    switch (cop.f) {
      case 'send': {
        if (cop.type === 'ok') {
          stats.sendsOk++;
          const mine = lastSend.get(cop.process) ?? new Map<Key, { offset: Offset; op: number }>();
          lastSend.set(cop.process, mine);
          for (const [k, [offset, v]] of cop.value) {
            stats.recordsAcked++;
            const ks = keyState(k);
            const sent = ks.sent.get(v) as Sent;
            sent.status = 'ok';
            sent.op = cop.index;
            sent.offset = offset;
            observe(ks, offset, v, cop.index);
            const prev = mine.get(k);
            if (prev !== undefined && offset <= prev.offset) {
              const internal = prev.op === cop.index;
              anomalies.add(internal ? 'int-nonmonotonic-send' : 'nonmonotonic-send', () => ({
                message: `process ${cop.process} sent to ${k} at offset ${prev.offset} (op ${prev.op}) and then at offset ${offset} (op ${cop.index})`,
                ops: internal ? [cop.index] : [prev.op, cop.index],
                key: k,
                process: cop.process,
                offsets: [prev.offset, offset],
              }));
            }
            mine.set(k, { offset, op: cop.index });
          }
        } else {
          if (cop.type === 'fail') stats.sendsFail++;
          else stats.sendsInfo++;
          for (const [k, v] of cop.value) {
            const sent = keyState(k).sent.get(v) as Sent;
            sent.status = cop.type;
            sent.op = cop.index;
          }
        }
        break;
      }
      case 'poll': {
        if (cop.type !== 'ok') {
          if (cop.type === 'fail') stats.pollsFail++;
          else stats.pollsInfo++;
          break;
        }
        stats.pollsOk++;
        const finalReads = finalReaderReads.get(cop.process);
        for (const k of Object.keys(cop.value)) {
          const records = cop.value[k] as readonly (readonly [Offset, Value])[];
          if (records.length === 0) continue;
          const ks = keyState(k);
          let finalSet: Set<Value> | undefined;
          if (finalReads !== undefined) {
            finalSet = finalReads.get(k);
            if (finalSet === undefined) finalReads.set(k, (finalSet = new Set()));
          }
          for (const [offset, v] of records) {
            stats.reads++;
            observe(ks, offset, v, cop.index);
            if (!ks.readBy.has(v)) ks.readBy.set(v, cop.index);
            if (offset > ks.maxReadOffset) {
              ks.maxReadOffset = offset;
              ks.maxReadOp = cop.index;
            }
            finalSet?.add(v);
          }
        }
        break;
      }
      case 'commit': {
        const before = commitSnapshot.get(cop.process);
        commitSnapshot.delete(cop.process);
        if (cop.type !== 'ok') break;
        stats.commitsOk++;
        checkCommit(cop, before, committed, anomalies);
        break;
      }
      case 'final-reads':
        if (cop.type === 'ok') finals.push({ process: cop.process, invokeIndex, op: cop.index, keys: cop.value });
        break;
      case 'assign':
      case 'subscribe':
      case 'seek':
      case 'crash':
        break;
    }
  }
  for (const ks of keys.values()) {
    for (const s of ks.sent.values()) if (s.status === 'pending') stats.sendsPending++;
  }
  stats.keys = keys.size;

  // Ranks of known offsets per key: a consumer skipped iff another known offset lies
  // strictly between two of its successive reads (offsets may have gaps, e.g. after a
  // truncation, so "next offset" means next known one, as Jepsen's version order does).
  for (const ks of keys.values()) {
    const offsets = [...ks.atOffset.keys()].sort((a, b) => a - b);
    ks.sortedOffsets = offsets;
    for (let i = 0; i < offsets.length; i++) ks.rank.set(offsets[i] as number, i);
  }

  checkVersionOrders(keys, anomalies);
  checkReadValues(keys, anomalies, stats);
  checkLostWrites(keys, finals, finalReaderReads, anomalies, stats);
  checkPollOrder(history, keys, anomalies);
  return anomalies.result(stats);
}

function commitKey(group: string, key: Key): string {
  return `${group}\u0000${key}`;
}

/** The highest acknowledged commit per key of this group when the commit was invoked. */
function snapshotCommits(committed: Map<string, { offset: Offset; op: number }>, op: CommitOp): Map<Key, { offset: Offset; op: number }> {
  const snap = new Map<Key, { offset: Offset; op: number }>();
  for (const k of Object.keys(op.value.offsets)) {
    const c = committed.get(commitKey(op.value.group, k));
    if (c !== undefined) snap.set(k, c);
  }
  return snap;
}

/**
 * Concurrent commits may land in either order, so only a commit invoked after another
 * was acknowledged must not go below it. Info commits may or may not have landed, so
 * they neither raise the bar nor are held to it.
 */
function checkCommit(
  op: CommitOp,
  before: Map<Key, { offset: Offset; op: number }> | undefined,
  committed: Map<string, { offset: Offset; op: number }>,
  anomalies: AnomalyLog,
): void {
  const { group, offsets } = op.value;
  for (const k of Object.keys(offsets)) {
    const offset = offsets[k] as Offset;
    const prev = before?.get(k);
    if (prev !== undefined && offset < prev.offset) {
      anomalies.add('committed-offset-regression', () => ({
        message: `group ${group} committed ${k} at ${prev.offset} (op ${prev.op}), then at ${offset} (op ${op.index})`,
        ops: [prev.op, op.index],
        key: k,
        group,
        process: op.process,
        offsets: [prev.offset, offset],
      }));
    }
    const ck = commitKey(group, k);
    const cur = committed.get(ck);
    if (cur === undefined || offset > cur.offset) committed.set(ck, { offset, op: op.index });
  }
}

function checkVersionOrders(keys: Map<Key, KeyState>, anomalies: AnomalyLog): void {
  for (const [k, ks] of keys) {
    for (const [offset, values] of ks.conflicts) {
      anomalies.add('inconsistent-offsets', () => ({
        message: `${k} offset ${offset} holds ${[...values.keys()].map(show).join(' and ')} (ops ${[...values.values()].join(', ')})`,
        ops: [...values.values()],
        key: k,
        offsets: [offset],
        values: [...values.keys()],
      }));
    }
    for (const [v, at] of ks.duplicates) {
      anomalies.add('duplicate', () => ({
        message: `${k} value ${show(v)} is at offsets ${[...at.keys()].join(', ')} (ops ${[...at.values()].join(', ')})`,
        ops: [...at.values()],
        key: k,
        offsets: [...at.keys()],
        values: [v],
      }));
    }
  }
}

function checkReadValues(keys: Map<Key, KeyState>, anomalies: AnomalyLog, stats: { infoRecordsRead: number }): void {
  for (const [k, ks] of keys) {
    for (const [v, reader] of ks.readBy) {
      const sent = ks.sent.get(v);
      if (sent === undefined) {
        anomalies.add('unexpected-value', () => ({
          message: `${k} value ${show(v)} was read (op ${reader}, offset ${ks.offsetOf.get(v)}) but never sent to ${k}`,
          ops: [reader],
          key: k,
          offsets: [ks.offsetOf.get(v) as Offset],
          values: [v],
        }));
      } else if (sent.status === 'fail') {
        anomalies.add('failed-send-read', () => ({
          message: `${k} value ${show(v)} was read (op ${reader}) though its send failed (op ${sent.op})`,
          ops: [sent.op, reader],
          key: k,
          offsets: [ks.offsetOf.get(v) as Offset],
          values: [v],
        }));
      } else if (sent.status !== 'ok') {
        stats.infoRecordsRead++;
      }
    }
  }
}

function checkLostWrites(
  keys: Map<Key, KeyState>,
  finals: readonly FinalReads[],
  finalReaderReads: Map<number, Map<Key, Set<Value>>>,
  anomalies: AnomalyLog,
  stats: { unseen: number },
): void {
  const lost = new Map<Key, Set<Value>>();
  const report = (k: Key, v: Value, sent: Sent, why: string, witness: number): void => {
    let l = lost.get(k);
    if (l === undefined) lost.set(k, (l = new Set()));
    if (l.has(v)) return;
    l.add(v);
    anomalies.add('lost-write', () => ({
      message: `${k} value ${show(v)} acknowledged at offset ${sent.offset} (op ${sent.op}) ${why}`,
      ops: [sent.op, witness],
      key: k,
      offsets: [sent.offset],
      values: [v],
    }));
  };
  // The final readers first: they can also show a write read early and gone later.
  for (const fin of finals) {
    const reads = finalReaderReads.get(fin.process) as Map<Key, Set<Value>>;
    for (const k of fin.keys) {
      const ks = keys.get(k);
      if (ks === undefined) continue;
      const seen = reads.get(k);
      for (const [v, sent] of ks.sent) {
        if (sent.status !== 'ok' || sent.op > fin.invokeIndex || seen?.has(v)) continue;
        report(k, v, sent, `is missing from the final reads of ${k} by process ${fin.process} (op ${fin.op})`, fin.op);
      }
    }
  }
  for (const [k, ks] of keys) {
    for (const [v, sent] of ks.sent) {
      if (sent.status !== 'ok' || ks.readBy.has(v)) continue;
      if (sent.offset <= ks.maxReadOffset) {
        report(k, v, sent, `was never read, though op ${ks.maxReadOp} read ${k} up to offset ${ks.maxReadOffset}`, ks.maxReadOp);
      } else if (!lost.get(k)?.has(v)) {
        stats.unseen++;
      }
    }
  }
}

/**
 * Second pass: each consumer's reads of a key must move forward one known offset at a
 * time. Its position is forgotten (no check across the gap) when it is reassigned,
 * seeks, crashes or is rebalanced, since each of those may legitimately move it
 * anywhere. A failed poll leaves it unchanged (nothing was consumed); an info poll may
 * have consumed records the history never saw, so it forgets them too.
 */
function checkPollOrder(history: History, keys: Map<Key, KeyState>, anomalies: AnomalyLog): void {
  const consumers = new Map<number, ConsumerState>();
  const stateOf = (p: number): ConsumerState => {
    let s = consumers.get(p);
    if (s === undefined) {
      s = { lastRead: new Map() };
      consumers.set(p, s);
    }
    return s;
  };
  for (const op of history) {
    if (op.process === NEMESIS || op.type === 'invoke') continue;
    const cop = op as ClientOp;
    switch (cop.f) {
      case 'assign': {
        if (cop.type === 'fail') break;
        // An info assign may have happened: forgetting positions is the safe reading.
        const s = stateOf(cop.process);
        if (cop.seekToBeginning === true) s.lastRead.clear();
        else retain(s.lastRead, new Set(cop.value));
        break;
      }
      case 'subscribe': {
        if (cop.type === 'fail') break;
        const topics = new Set(cop.value.map(topicOf));
        const s = stateOf(cop.process);
        for (const k of [...s.lastRead.keys()]) if (!topics.has(topicOf(k))) s.lastRead.delete(k);
        break;
      }
      case 'seek':
        if (cop.type !== 'fail') for (const k of Object.keys(cop.value)) stateOf(cop.process).lastRead.delete(k);
        break;
      case 'crash':
        if (cop.type !== 'fail') stateOf(cop.process).lastRead.clear();
        break;
      case 'poll': {
        const s = stateOf(cop.process);
        // A rebalance during the poll happened whether or not the poll then failed.
        const rebalanced = new Set<Key>();
        for (const r of cop.rebalanceLog ?? []) for (const k of r.keys) rebalanced.add(k);
        for (const k of rebalanced) s.lastRead.delete(k);
        if (cop.type === 'info') s.lastRead.clear();
        if (cop.type !== 'ok') break;
        for (const k of Object.keys(cop.value)) {
          const records = cop.value[k] as readonly (readonly [Offset, Value])[];
          if (records.length === 0) continue;
          const ks = keys.get(k) as KeyState;
          const last = s.lastRead.get(k);
          if (last !== undefined) orderCheck(anomalies, ks, k, cop.process, last.record, records[0] as Rec, [last.op, cop.index], false);
          // Within one poll a rebalance may have moved the position mid-way (Jepsen
          // exempts rebalanced keys too).
          if (!rebalanced.has(k)) {
            for (let i = 1; i < records.length; i++) orderCheck(anomalies, ks, k, cop.process, records[i - 1] as Rec, records[i] as Rec, [cop.index], true);
          }
          s.lastRead.set(k, { record: records[records.length - 1] as Rec, op: cop.index });
        }
        break;
      }
      case 'send':
      case 'commit':
      case 'final-reads':
        break;
    }
  }
}

/** How many known offsets of the key lie strictly between two known offsets a < b. */
function between(ks: KeyState, a: Offset, b: Offset): number {
  return (ks.rank.get(b) as number) - (ks.rank.get(a) as number) - 1;
}

/** The first few known offsets strictly between a and b. */
function skipped(ks: KeyState, a: Offset, b: Offset): Offset[] {
  const from = (ks.rank.get(a) as number) + 1;
  return ks.sortedOffsets.slice(from, Math.min(ks.rank.get(b) as number, from + 10));
}

/** Checks that record `next` directly follows `prev` in a consumer's reads of key k. */
function orderCheck(anomalies: AnomalyLog, ks: KeyState, k: Key, process: number, prev: Rec, next: Rec, ops: number[], internal: boolean): void {
  const [a, va] = prev;
  const [b, vb] = next;
  const where = internal ? `within op ${ops[0]}` : `from op ${ops[0]} to op ${ops[1]}`;
  if (b <= a) {
    anomalies.add(internal ? 'int-nonmonotonic-poll' : 'nonmonotonic-poll', () => ({
      message: `process ${process} read ${k} at offset ${a} and then at offset ${b} ${where}`,
      ops,
      key: k,
      process,
      offsets: [a, b],
      values: [va, vb],
    }));
  } else if (between(ks, a, b) > 0) {
    anomalies.add(internal ? 'int-poll-skip' : 'poll-skip', () => {
      const gap = skipped(ks, a, b);
      return {
        message: `process ${process} read ${k} at offset ${a} and then at offset ${b} ${where}, skipping ${between(ks, a, b)} known offset(s): ${gap.join(', ')}${between(ks, a, b) > gap.length ? ', …' : ''}`,
        ops,
        key: k,
        process,
        offsets: [a, b, ...gap],
        values: gap.map((o) => ks.atOffset.get(o) as Value),
      };
    });
  }
}

function retain<V>(m: Map<Key, V>, keep: ReadonlySet<Key>): void {
  for (const k of [...m.keys()]) if (!keep.has(k)) m.delete(k);
}

// ---------------------------------------------------------------------------------
// Cluster checks: pure functions over what the runner collected after healing.

/** A line of a node's log; only `became-controller` events are checked. */
export interface ControllerEvent {
  readonly node: number | string;
  readonly epoch: number;
  readonly event: string;
}

/** At most one node becomes the active controller per epoch [Raft §5.2: one leader per term]. */
export function checkControllers(events: readonly ControllerEvent[], options: CheckOptions = {}): CheckResult {
  const anomalies = new AnomalyLog(options.examplesMax ?? EXAMPLES_MAX_DEFAULT);
  const byEpoch = new Map<number, Set<number | string>>();
  for (const e of events) {
    if (e.event !== 'became-controller') continue;
    let nodes = byEpoch.get(e.epoch);
    if (nodes === undefined) byEpoch.set(e.epoch, (nodes = new Set()));
    nodes.add(e.node);
  }
  for (const [epoch, nodes] of [...byEpoch].sort((a, b) => a[0] - b[0])) {
    if (nodes.size > 1) {
      anomalies.add('multiple-controllers', () => ({
        message: `nodes ${[...nodes].join(', ')} all became controller in epoch ${epoch}`,
        ops: [],
        epoch,
        nodes: [...nodes],
      }));
    }
  }
  return anomalies.result();
}

export interface MetadataLogEntry {
  readonly index: number;
  readonly term: number;
  readonly data: string | Uint8Array;
}

export interface VoterLog {
  readonly node: number | string;
  /** The voter's log entries in index order (they may start after its snapshot). */
  readonly entries: readonly MetadataLogEntry[];
  /** Entries at or below this index live in the voter's snapshot; 0 when none. */
  readonly snapshotIndex?: number;
}

const utf8 = new TextEncoder();

function bytesOf(d: string | Uint8Array): Uint8Array {
  return typeof d === 'string' ? utf8.encode(d) : d;
}

/** The first byte position where a and b differ, or -1 when equal. */
function firstDifference(a: Uint8Array, b: Uint8Array): number {
  const n = Math.min(a.length, b.length);
  for (let i = 0; i < n; i++) if (a[i] !== b[i]) return i;
  return a.length === b.length ? -1 : n;
}

/**
 * Voters agree on every entry up to the committed index [Raft §5.3, Log Matching], and
 * each voter holds all of them (after healing every voter should have caught up).
 */
export function checkMetadataLogs(voters: readonly VoterLog[], committedIndex: number, options: CheckOptions = {}): CheckResult {
  const anomalies = new AnomalyLog(options.examplesMax ?? EXAMPLES_MAX_DEFAULT);
  const logs = voters.map((v) => {
    const byIndex = new Map<number, MetadataLogEntry>();
    let prev = 0;
    for (const e of v.entries) {
      if (e.index <= prev) throw new HistoryError(`metadata log of node ${v.node}: entry index ${e.index} after ${prev}; indexes must increase`);
      prev = e.index;
      byIndex.set(e.index, e);
    }
    return { voter: v, byIndex };
  });
  for (const { voter, byIndex } of logs) {
    const from = (voter.snapshotIndex ?? 0) + 1;
    let missing = 0;
    let firstMissing = -1;
    for (let i = from; i <= committedIndex; i++) {
      if (!byIndex.has(i)) {
        if (missing === 0) firstMissing = i;
        missing++;
      }
    }
    if (missing > 0) {
      anomalies.add('metadata-log-missing', () => ({
        message: `node ${voter.node} lacks ${missing} committed entries starting at index ${firstMissing} (committed index ${committedIndex})`,
        ops: [],
        index: firstMissing,
        nodes: [voter.node],
      }));
    }
  }
  for (let i = 1; i <= committedIndex; i++) {
    let ref: { node: number | string; entry: MetadataLogEntry } | undefined;
    const differ: (number | string)[] = [];
    for (const { voter, byIndex } of logs) {
      const e = byIndex.get(i);
      if (e === undefined) continue;
      if (ref === undefined) ref = { node: voter.node, entry: e };
      else if (e.term !== ref.entry.term || firstDifference(bytesOf(e.data), bytesOf(ref.entry.data)) !== -1) differ.push(voter.node);
    }
    if (ref !== undefined && differ.length > 0) {
      const r = ref;
      anomalies.add('metadata-log-divergence', () => ({
        message: `at index ${i} (committed ${committedIndex}) node(s) ${differ.join(', ')} differ from node ${r.node} (term ${r.entry.term})`,
        ops: [],
        index: i,
        nodes: [r.node, ...differ],
      }));
    }
  }
  return anomalies.result();
}

export interface ReplicaImage {
  readonly node: number | string;
  /** The replica's log bytes for offsets below the high watermark… */
  readonly bytes?: Uint8Array;
  /** …or a digest of them, when the bytes are too large to carry. */
  readonly digest?: string;
}

export interface PartitionReplicas {
  readonly key: Key;
  readonly highWatermark: Offset;
  readonly replicas: readonly ReplicaImage[];
}

/**
 * Replicas of a partition are byte-identical below the high watermark (invariant 3:
 * one offset, one record, on every replica). The caller cuts each replica's log at the
 * high watermark; every replica of a partition must come as bytes, or every one as a
 * digest.
 */
export function checkReplicas(partitions: readonly PartitionReplicas[], options: CheckOptions = {}): CheckResult {
  const anomalies = new AnomalyLog(options.examplesMax ?? EXAMPLES_MAX_DEFAULT);
  for (const p of partitions) {
    const [ref, ...rest] = p.replicas;
    if (ref === undefined) continue;
    const useBytes = ref.bytes !== undefined;
    for (const r of p.replicas) {
      if ((r.bytes !== undefined) !== useBytes || (r.bytes === undefined && r.digest === undefined)) {
        throw new HistoryError(`replicas of ${p.key}: give every replica as bytes or every replica as a digest (node ${r.node})`);
      }
    }
    for (const r of rest) {
      let detail: string | undefined;
      if (useBytes) {
        const at = firstDifference(ref.bytes as Uint8Array, r.bytes as Uint8Array);
        if (at !== -1) detail = `first differs at byte ${at} (lengths ${(ref.bytes as Uint8Array).length} and ${(r.bytes as Uint8Array).length})`;
      } else if (r.digest !== ref.digest) {
        detail = `digests ${ref.digest} and ${r.digest}`;
      }
      if (detail !== undefined) {
        const d = detail;
        anomalies.add('replica-divergence', () => ({
          message: `${p.key} below high watermark ${p.highWatermark}: node ${r.node} differs from node ${ref.node}, ${d}`,
          ops: [],
          key: p.key,
          offsets: [p.highWatermark],
          nodes: [ref.node, r.node],
        }));
      }
    }
  }
  return anomalies.result();
}

export interface ClusterObservations {
  readonly controllerEvents?: readonly ControllerEvent[];
  readonly metadataLogs?: { readonly voters: readonly VoterLog[]; readonly committedIndex: number };
  readonly replicas?: readonly PartitionReplicas[];
}

/** The whole verdict of a run: the history checks plus whatever cluster checks have data. */
export function check(history: History, observations: ClusterObservations = {}, options: CheckOptions = {}): CheckResult {
  const parts = [checkHistory(history, options)];
  if (observations.controllerEvents) parts.push(checkControllers(observations.controllerEvents, options));
  if (observations.metadataLogs) parts.push(checkMetadataLogs(observations.metadataLogs.voters, observations.metadataLogs.committedIndex, options));
  if (observations.replicas) parts.push(checkReplicas(observations.replicas, options));
  const anomalies: Anomalies = {};
  for (const p of parts) Object.assign(anomalies, p.anomalies);
  return { valid: parts.every((p) => p.valid), anomalies, ...(parts[0]?.stats ? { stats: parts[0].stats } : {}) };
}
