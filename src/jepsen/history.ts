/**
 * The history of a Jepsen-style run: what every client and the nemesis asked for and
 * what came back, in the order the runner saw it. The checker (checker.ts) reads only
 * this, so the format is the contract between the workload and the checker.
 *
 * # Format
 *
 * JSON Lines: one operation per line, UTF-8, `\n`-separated, no blank lines (one
 * trailing newline is allowed). The semantics are those of Jepsen's queue/kafka
 * workload (jepsen.tests.kafka), spelled in JSON with string keys.
 *
 * ```json
 * {"index":0,"time":1200,"process":3,"type":"invoke","f":"send","value":[["orders-0",17]]}
 * {"index":1,"time":4800,"process":3,"type":"ok","f":"send","value":[["orders-0",[41,17]]]}
 * ```
 *
 * Every operation has these fields; the only others are `rebalanceLog` on polls and
 * `seekToBeginning` on assigns (below). Anything else is rejected, so a typo cannot
 * silently drop information the checker needs.
 *
 * | field     | meaning |
 * |-----------|---------|
 * | `index`   | position in the file, 0, 1, 2, … with no gaps |
 * | `time`    | monotonic nanoseconds since the run started; never decreases down the file |
 * | `process` | a client's integer id (≥ 0), or `"nemesis"` |
 * | `type`    | `invoke` (asked), `ok` (happened), `fail` (definitely did not happen), `info` (indeterminate: may or may not have happened, e.g. a timeout) |
 * | `f`       | what was asked (below) |
 * | `value`   | the argument on `invoke`, the outcome on completion; `null` where there is none |
 * | `error`   | optional, completions only: why it failed or is indeterminate (any JSON) |
 *
 * A process runs one operation at a time: each `invoke` is followed, later in the file,
 * by exactly one completion (`ok`/`fail`/`info`) with the same `process` and `f`, and
 * the process invokes nothing in between. Other processes' operations interleave freely.
 * An invoke left without a completion at the end of the file counts as `info`.
 * Completions repeat their value in full (a `fail` or `info` send lists what was sent),
 * so the checker never has to look back at the invoke.
 *
 * Keys are topic-partitions written `"<topic>-<partition>"` (`"orders-0"`); values are the
 * record values, integers the producer makes unique per key and never sends twice, not
 * even after a fail or info, so every read traces back to one send (a string stands for
 * a value the consumer could not decode as an integer: still checked, never equal to an
 * integer). Offsets are non-negative integers.
 *
 * Client operations (`f`):
 *
 * - `send`: invoke, fail and info carry `[[key, value], …]` in the order the producer
 *   sent them; ok carries `[[key, [offset, value]], …]` with the offset the broker
 *   acknowledged. A fail must mean the records were certainly not appended (the producer
 *   records info whenever it is not sure: a timeout, a lost connection).
 * - `poll`: invoke, fail and info carry `null`; ok carries `{key: [[offset, value], …]}`,
 *   the records one poll returned, in the order returned. Optional `rebalanceLog`:
 *   `[{"keys": [key, …]}, …]`, the partitions (re)assigned to this consumer by group
 *   rebalances since its previous op, on any completion type; reads of those keys may
 *   restart anywhere. An info poll may have consumed records it could not report, so
 *   the consumer's next reads may start anywhere too.
 * - `assign`: value `[key, …]`, the partitions the consumer now reads (it replaces the
 *   previous assignment; positions of partitions kept are kept). Optional
 *   `seekToBeginning: true` when every position went back to the start.
 * - `subscribe`: value `[key, …]`; the consumer subscribes, in its group, to the topics
 *   of these keys. Which partitions it gets shows up in polls' `rebalanceLog`.
 * - `seek`: value `{key: offset}`; the consumer moved these positions (the workload also
 *   records an automatic reset after OFFSET_OUT_OF_RANGE as a seek).
 * - `commit`: value `{"group": id, "offsets": {key: offset}}`, the next offsets to read,
 *   committed for the consumer group.
 * - `crash`: value `null`; the client was torn down and recreated, so its consumer
 *   positions are gone (it resumes from committed offsets or a new assign).
 * - `final-reads`: value `[key, …]`. Recorded by the runner's final reader, a process
 *   used for nothing else, after the runner healed the cluster, stopped the workload,
 *   assigned these keys from the beginning and polled each of them up to its end
 *   offset. It states that this process's polls saw every record the partitions hold,
 *   so any acknowledged send completed before this op's invoke that the process did
 *   not read was lost.
 *
 * Nemesis operations have `"process": "nemesis"`, any `f` (`kill`, `start`, `pause`,
 * `resume`, `partition`, `heal`, `clock`, `power-loss`, …) and any JSON `value`
 * describing targets, e.g. `{"nodes": [2]}` or `{"halves": [[1], [2, 3]]}`. They pair up
 * like client operations; the checker does not interpret them (the report shades them).
 */

export type Key = string;
export type Value = number | string;
export type Offset = number;
export type OpType = 'invoke' | 'ok' | 'fail' | 'info';
export type CompletionType = Exclude<OpType, 'invoke'>;
export const NEMESIS = 'nemesis';
export type Process = number | typeof NEMESIS;

export type Json = null | boolean | number | string | readonly Json[] | { readonly [k: string]: Json };

/** `[key, value]`: one record a producer was asked to send. */
export type SendRequest = readonly (readonly [Key, Value])[];
/** `[key, [offset, value]]`: one acknowledged record. */
export type SendResult = readonly (readonly [Key, readonly [Offset, Value]])[];
/** key → the `[offset, value]` records one poll returned for it, in order. */
export type PollResult = { readonly [key: Key]: readonly (readonly [Offset, Value])[] };
export interface Rebalance {
  readonly keys: readonly Key[];
}
export interface CommitValue {
  readonly group: string;
  readonly offsets: { readonly [key: Key]: Offset };
}

interface Base<P extends Process> {
  readonly index: number;
  readonly time: number;
  readonly process: P;
  readonly error?: Json;
}
type Pending = 'invoke' | 'fail' | 'info';

export type SendOp = Base<number> &
  ({ readonly f: 'send'; readonly type: Pending; readonly value: SendRequest } | { readonly f: 'send'; readonly type: 'ok'; readonly value: SendResult });
export type PollOp = Base<number> & { readonly rebalanceLog?: readonly Rebalance[] } & (
    | { readonly f: 'poll'; readonly type: Pending; readonly value: null }
    | { readonly f: 'poll'; readonly type: 'ok'; readonly value: PollResult }
  );
export type AssignOp = Base<number> & { readonly f: 'assign'; readonly type: OpType; readonly value: readonly Key[]; readonly seekToBeginning?: boolean };
export type SubscribeOp = Base<number> & { readonly f: 'subscribe'; readonly type: OpType; readonly value: readonly Key[] };
export type SeekOp = Base<number> & { readonly f: 'seek'; readonly type: OpType; readonly value: { readonly [key: Key]: Offset } };
export type CommitOp = Base<number> & { readonly f: 'commit'; readonly type: OpType; readonly value: CommitValue };
export type CrashOp = Base<number> & { readonly f: 'crash'; readonly type: OpType; readonly value: null };
export type FinalReadsOp = Base<number> & { readonly f: 'final-reads'; readonly type: OpType; readonly value: readonly Key[] };
export type ClientOp = SendOp | PollOp | AssignOp | SubscribeOp | SeekOp | CommitOp | CrashOp | FinalReadsOp;
export type NemesisOp = Base<typeof NEMESIS> & { readonly f: string; readonly type: OpType; readonly value: Json };
export type Op = ClientOp | NemesisOp;
export type History = readonly Op[];

export const CLIENT_FS = ['send', 'poll', 'assign', 'subscribe', 'seek', 'commit', 'crash', 'final-reads'] as const;
export type ClientF = (typeof CLIENT_FS)[number];
const OP_TYPES: readonly OpType[] = ['invoke', 'ok', 'fail', 'info'];

export function isNemesisOp(op: Op): op is NemesisOp {
  return op.process === NEMESIS;
}

/** `"orders-12"` → `"orders"`: the topic a key belongs to. */
export function topicOf(key: Key): string {
  return key.slice(0, key.lastIndexOf('-'));
}

/**
 * A history that breaks the format. `line` (1-based) is set when it came from a file,
 * `opIndex` when it came from an op; the message names both where known.
 */
export class HistoryError extends Error {
  constructor(
    message: string,
    readonly line?: number,
    readonly opIndex?: number,
  ) {
    super(message);
    this.name = 'HistoryError';
  }
}

// ---------------------------------------------------------------------------------
// Parsing. Every rejection names the line, the field path and what was found, because
// the person reading it is debugging a workload that wrote a bad line.

const KEY_RE = /^.+-(0|[1-9][0-9]*)$/;

function preview(x: unknown): string {
  let s: string;
  try {
    s = x === undefined ? 'nothing' : JSON.stringify(x);
  } catch {
    s = String(x);
  }
  return s.length > 60 ? `${s.slice(0, 57)}...` : s;
}

class LineReader {
  constructor(readonly line: number) {}

  fail(path: string, what: string, got: unknown): never {
    throw new HistoryError(`history line ${this.line}: ${path} ${what}, got ${preview(got)}`, this.line);
  }

  object(x: unknown, path: string): Record<string, unknown> {
    if (typeof x !== 'object' || x === null || Array.isArray(x)) this.fail(path, 'must be an object', x);
    return x as Record<string, unknown>;
  }

  array(x: unknown, path: string): readonly unknown[] {
    if (!Array.isArray(x)) this.fail(path, 'must be an array', x);
    return x;
  }

  natural(x: unknown, path: string): number {
    if (typeof x !== 'number' || !Number.isSafeInteger(x) || x < 0) this.fail(path, 'must be a non-negative integer', x);
    return x;
  }

  key(x: unknown, path: string): Key {
    if (typeof x !== 'string' || !KEY_RE.test(x)) this.fail(path, 'must be a key "<topic>-<partition>"', x);
    return x;
  }

  value(x: unknown, path: string): Value {
    if (!((typeof x === 'number' && Number.isSafeInteger(x)) || typeof x === 'string')) this.fail(path, 'must be an integer or a string', x);
    return x;
  }

  keys(x: unknown, path: string): Key[] {
    return this.array(x, path).map((k, i) => this.key(k, `${path}[${i}]`));
  }

  offsetMap(x: unknown, path: string): Record<Key, Offset> {
    const o = this.object(x, path);
    for (const [k, v] of Object.entries(o)) {
      this.key(k, `${path} key`);
      this.natural(v, `${path}["${k}"]`);
    }
    return o as Record<Key, Offset>;
  }

  offsetValue(x: unknown, path: string): [Offset, Value] {
    const a = this.array(x, path);
    if (a.length !== 2) this.fail(path, 'must be [offset, value]', x);
    return [this.natural(a[0], `${path}[0] (offset)`), this.value(a[1], `${path}[1] (value)`)];
  }

  json(x: unknown, path: string): Json {
    // JSON.parse only yields JSON; this guards ops built in memory and passed to the writer.
    if (x === undefined || typeof x === 'function' || typeof x === 'symbol' || typeof x === 'bigint') this.fail(path, 'must be JSON', x);
    return x as Json;
  }
}

const COMMON_FIELDS = new Set(['index', 'time', 'process', 'type', 'f', 'value', 'error']);
const EXTRA_FIELDS: Partial<Record<string, ReadonlySet<string>>> = {
  poll: new Set(['rebalanceLog']),
  assign: new Set(['seekToBeginning']),
};

/** Checks one decoded line and returns it as a typed op. */
export function parseOp(raw: unknown, line: number): Op {
  // Explicitly typed so that r.fail(): never narrows like a throw.
  const r: LineReader = new LineReader(line);
  const o = r.object(raw, 'the line');
  for (const field of ['index', 'time', 'process', 'type', 'f', 'value']) {
    if (!Object.hasOwn(o, field)) r.fail(`field "${field}"`, 'is required', undefined);
  }
  r.natural(o['index'], 'index');
  const time = o['time'];
  if (typeof time !== 'number' || !Number.isFinite(time) || time < 0) r.fail('time', 'must be a non-negative number (monotonic ns)', time);
  const type = o['type'];
  if (typeof type !== 'string' || !OP_TYPES.includes(type as OpType)) r.fail('type', `must be one of ${OP_TYPES.join(', ')}`, type);
  const f = o['f'];
  if (typeof f !== 'string' || f === '') r.fail('f', 'must be a non-empty string', f);
  if (Object.hasOwn(o, 'error')) {
    if (type === 'invoke') r.fail('error', 'is only allowed on a completion (ok, fail, info)', o['error']);
    r.json(o['error'], 'error');
  }
  const process = o['process'];
  const value = o['value'];

  if (process === NEMESIS) {
    for (const field of Object.keys(o)) if (!COMMON_FIELDS.has(field)) r.fail(`field "${field}"`, 'is not part of the format', o[field]);
    r.json(value, 'value');
    return o as unknown as NemesisOp;
  }
  if (typeof process !== 'number' || !Number.isSafeInteger(process) || process < 0) {
    r.fail('process', `must be a non-negative integer or "${NEMESIS}"`, process);
  }
  if (!(CLIENT_FS as readonly string[]).includes(f)) r.fail('f', `of a client must be one of ${CLIENT_FS.join(', ')}`, f);
  const extra = EXTRA_FIELDS[f];
  for (const field of Object.keys(o)) {
    if (!COMMON_FIELDS.has(field) && !extra?.has(field)) r.fail(`field "${field}"`, `is not part of a ${f} op`, o[field]);
  }

  switch (f as ClientF) {
    case 'send': {
      const pairs = r.array(value, 'value');
      pairs.forEach((p, i) => {
        const path = `value[${i}]`;
        const pair = r.array(p, path);
        if (pair.length !== 2) r.fail(path, type === 'ok' ? 'must be [key, [offset, value]]' : 'must be [key, value]', p);
        r.key(pair[0], `${path}[0] (key)`);
        if (type === 'ok') r.offsetValue(pair[1], `${path}[1]`);
        else r.value(pair[1], `${path}[1] (value)`);
      });
      break;
    }
    case 'poll': {
      if (type === 'ok') {
        const reads = r.object(value, 'value');
        for (const [k, rs] of Object.entries(reads)) {
          r.key(k, 'value key');
          r.array(rs, `value["${k}"]`).forEach((x, i) => r.offsetValue(x, `value["${k}"][${i}]`));
        }
      } else if (value !== null) {
        r.fail('value', `of a ${type} poll must be null`, value);
      }
      if (Object.hasOwn(o, 'rebalanceLog')) {
        if (type === 'invoke') r.fail('rebalanceLog', 'is only allowed on a completion', o['rebalanceLog']);
        r.array(o['rebalanceLog'], 'rebalanceLog').forEach((e, i) => {
          const path = `rebalanceLog[${i}]`;
          const ev = r.object(e, path);
          for (const field of Object.keys(ev)) if (field !== 'keys') r.fail(`${path}.${field}`, 'is not part of a rebalance', ev[field]);
          r.keys(ev['keys'], `${path}.keys`);
        });
      }
      break;
    }
    case 'assign':
      r.keys(value, 'value');
      if (Object.hasOwn(o, 'seekToBeginning') && typeof o['seekToBeginning'] !== 'boolean') {
        r.fail('seekToBeginning', 'must be true or false', o['seekToBeginning']);
      }
      break;
    case 'subscribe':
    case 'final-reads':
      r.keys(value, 'value');
      break;
    case 'seek':
      r.offsetMap(value, 'value');
      break;
    case 'commit': {
      const c = r.object(value, 'value');
      for (const field of Object.keys(c)) if (field !== 'group' && field !== 'offsets') r.fail(`value.${field}`, 'is not part of a commit', c[field]);
      if (typeof c['group'] !== 'string' || c['group'] === '') r.fail('value.group', 'must be a non-empty string', c['group']);
      r.offsetMap(c['offsets'], 'value.offsets');
      break;
    }
    case 'crash':
      if (value !== null) r.fail('value', 'of a crash must be null', value);
      break;
  }
  return o as unknown as Op;
}

/**
 * Parses a JSON Lines history and checks that it is well formed (see `validateHistory`).
 * Throws a `HistoryError` naming the first bad line.
 */
export function parseHistory(text: string): Op[] {
  const lines = text.split('\n');
  if (lines[lines.length - 1] === '') lines.pop();
  return parseHistoryLines(lines);
}

/**
 * The same over lines already split (no newlines), e.g. from `readline` over a file too
 * large to hold as one string. Every line must hold an op.
 */
export function parseHistoryLines(lines: Iterable<string>): Op[] {
  const ops: Op[] = [];
  let lineNo = 0;
  for (const text of lines) {
    lineNo++;
    const line = text.endsWith('\r') ? text.slice(0, -1) : text;
    if (line.trim() === '') throw new HistoryError(`history line ${lineNo}: blank line (one operation per line)`, lineNo);
    let raw: unknown;
    try {
      raw = JSON.parse(line);
    } catch (e) {
      throw new HistoryError(`history line ${lineNo}: not valid JSON (${(e as Error).message})`, lineNo);
    }
    ops.push(parseOp(raw, lineNo));
  }
  // Ops are one per line, so op index i is on line i + 1 for the error message.
  validateHistory(ops, (index) => index + 1);
  return ops;
}

function sameSend(a: SendRequest, b: SendOp): boolean {
  if (a.length !== b.value.length) return false;
  for (let i = 0; i < a.length; i++) {
    const x = a[i] as SendRequest[number];
    const y = b.value[i] as readonly [Key, unknown];
    const v = b.type === 'ok' ? (y[1] as readonly [Offset, Value])[1] : y[1];
    if (x[0] !== y[0] || x[1] !== v) return false;
  }
  return true;
}

/**
 * Checks what no single line can: indexes are 0, 1, 2, …; time never decreases; each
 * process alternates invoke and completion with the same f; a send's completion lists
 * the records its invoke asked for, in order. Throws a `HistoryError`.
 * `lineOf` maps an op index to a file line for the message.
 */
export function validateHistory(ops: History, lineOf?: (index: number) => number): void {
  const pending = new Map<Process, Op>();
  let lastTime = 0;
  const bad: (i: number, msg: string) => never = (i, msg) => {
    const line = lineOf?.(i);
    throw new HistoryError(`${line !== undefined ? `history line ${line}` : `history op ${i}`}: ${msg}`, line, i);
  };
  for (let i = 0; i < ops.length; i++) {
    const op = ops[i] as Op;
    if (op.index !== i) bad(i, `index must be ${i} (indexes count up from 0 without gaps), got ${op.index}`);
    if (op.time < lastTime) bad(i, `time ${op.time} is before the previous op's ${lastTime} (time must be monotonic)`);
    lastTime = op.time;
    const open = pending.get(op.process);
    if (op.type === 'invoke') {
      if (open !== undefined) bad(i, `process ${op.process} invoked ${op.f} while its ${open.f} (op ${open.index}) is still pending`);
      pending.set(op.process, op);
      continue;
    }
    if (open === undefined) bad(i, `${op.type} ${op.f} for process ${op.process}, which has no pending invoke`);
    if (open.f !== op.f) bad(i, `${op.type} ${op.f} completes process ${op.process}'s ${open.f} (op ${open.index})`);
    if (op.f === 'send' && !sameSend((open as SendOp).value as SendRequest, op as SendOp)) {
      bad(i, `the send completion's records differ from those its invoke (op ${open.index}) sent`);
    }
    pending.delete(op.process);
  }
}

// ---------------------------------------------------------------------------------
// Writing.

/** One op as one JSON line (no newline), fields in the documented order. */
export function formatOp(op: Op): string {
  const { index, time, process, type, f, value, ...rest } = op as Op & Record<string, unknown>;
  return JSON.stringify({ index, time, process, type, f, value, ...rest });
}

/** A history as JSON Lines text, one op per line, with a trailing newline. */
export function formatHistory(ops: History): string {
  let out = '';
  for (const op of ops) out += `${formatOp(op)}\n`;
  return out;
}

// The value type of the ops with this f whose type admits T (distributes over ClientOp).
type ValueFor<O, F, T> = O extends { readonly f: F; readonly type: infer Ty; readonly value: infer V } ? (T extends Ty ? V : never) : never;
type ValueOf<F extends string, T extends OpType> = ValueFor<ClientOp, F, T>;
type ClientExtras = { rebalanceLog?: readonly Rebalance[]; seekToBeginning?: boolean; error?: Json };

/**
 * Builds a history as a run goes: numbers ops, stamps them with the injected monotonic
 * clock (nanoseconds), and refuses what `validateHistory` would reject, so the
 * workload fails at the bug instead of leaving a file the checker cannot read.
 * `onOp` sees each op as it is recorded (to stream it to `history.jsonl`).
 */
export class HistoryRecorder {
  private readonly ops: Op[] = [];
  private readonly pending = new Map<Process, Op>();
  private lastTime = 0;

  constructor(
    private readonly nowNs: () => number,
    private readonly onOp?: (op: Op) => void,
  ) {}

  get history(): History {
    return this.ops;
  }

  invoke<F extends ClientF>(process: number, f: F, value: ValueOf<F, 'invoke'>, extras: Omit<ClientExtras, 'error'> = {}): ClientOp {
    return this.record(process, 'invoke', f, value, extras) as ClientOp;
  }

  complete<F extends ClientF, T extends CompletionType>(process: number, type: T, f: F, value: ValueOf<F, T>, extras: ClientExtras = {}): ClientOp {
    return this.record(process, type, f, value, extras) as ClientOp;
  }

  nemesis(type: OpType, f: string, value: Json, error?: Json): NemesisOp {
    return this.record(NEMESIS, type, f, value, error === undefined ? {} : { error }) as NemesisOp;
  }

  /** Processes with an invoke still open (to complete them as info at the end). */
  pendingOps(): Op[] {
    return [...this.pending.values()];
  }

  private record(process: Process, type: OpType, f: string, value: unknown, extras: object): Op {
    const time = Math.max(this.lastTime, this.nowNs());
    const op = { index: this.ops.length, time, process, type, f, value, ...extras };
    // Validate exactly as a reader would, so what is written always parses back.
    const checked = parseOp(JSON.parse(JSON.stringify(op)), this.ops.length + 1);
    const open = this.pending.get(process);
    if (type === 'invoke' ? open !== undefined : open === undefined || open.f !== f) {
      throw new HistoryError(`op ${op.index}: ${type} ${f} for process ${process} does not follow ${open ? `its pending ${open.f}` : 'an invoke'}`, undefined, op.index);
    }
    if (f === 'send' && type !== 'invoke' && !sameSend((open as SendOp).value as SendRequest, checked as SendOp)) {
      throw new HistoryError(`op ${op.index}: the send completion's records differ from its invoke's`, undefined, op.index);
    }
    if (type === 'invoke') this.pending.set(process, checked);
    else this.pending.delete(process);
    this.lastTime = time;
    this.ops.push(checked);
    this.onOp?.(checked);
    return checked;
  }
}
