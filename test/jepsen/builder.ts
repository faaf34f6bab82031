// Hand-written histories for checker tests: each helper appends an invoke and its
// completion, stamps time, and returns the completion's index, which examples must cite.
import type { Json, Key, Offset, Op, OpType, Value } from '../../src/jepsen/history.ts';

type Pair = readonly [Key, Value];
type Ack = readonly [Key, Offset, Value];

export class HistoryBuilder {
  readonly ops: Op[] = [];
  private time = 0;

  /** Appends one raw op; returns its index. */
  op(process: number | 'nemesis', type: OpType, f: string, value: unknown, extra: Record<string, unknown> = {}): number {
    const index = this.ops.length;
    this.time += 1000;
    this.ops.push({ index, time: this.time, process, type, f, value, ...extra } as unknown as Op);
    return index;
  }

  send(p: number, acks: readonly Ack[]): number {
    this.op(p, 'invoke', 'send', acks.map(([k, , v]) => [k, v]));
    return this.op(p, 'ok', 'send', acks.map(([k, o, v]) => [k, [o, v]]));
  }

  sendFailed(p: number, pairs: readonly Pair[], type: 'fail' | 'info' = 'fail'): number {
    this.op(p, 'invoke', 'send', pairs);
    return this.op(p, type, 'send', pairs);
  }

  poll(p: number, reads: Record<Key, readonly (readonly [Offset, Value])[]>, rebalanced?: readonly Key[]): number {
    this.op(p, 'invoke', 'poll', null);
    return this.op(p, 'ok', 'poll', reads, rebalanced ? { rebalanceLog: [{ keys: rebalanced }] } : {});
  }

  pollFailed(p: number, type: 'fail' | 'info', rebalanced?: readonly Key[]): number {
    this.op(p, 'invoke', 'poll', null);
    return this.op(p, type, 'poll', null, rebalanced ? { rebalanceLog: [{ keys: rebalanced }] } : {});
  }

  assign(p: number, keys: readonly Key[], seekToBeginning?: boolean, type: 'ok' | 'info' | 'fail' = 'ok'): number {
    const extra = seekToBeginning === undefined ? {} : { seekToBeginning };
    this.op(p, 'invoke', 'assign', keys, extra);
    return this.op(p, type, 'assign', keys, extra);
  }

  subscribe(p: number, keys: readonly Key[]): number {
    this.op(p, 'invoke', 'subscribe', keys);
    return this.op(p, 'ok', 'subscribe', keys);
  }

  seek(p: number, offsets: Record<Key, Offset>): number {
    this.op(p, 'invoke', 'seek', offsets);
    return this.op(p, 'ok', 'seek', offsets);
  }

  crash(p: number): number {
    this.op(p, 'invoke', 'crash', null);
    return this.op(p, 'ok', 'crash', null);
  }

  commit(p: number, group: string, offsets: Record<Key, Offset>, type: 'ok' | 'fail' | 'info' = 'ok'): number {
    this.op(p, 'invoke', 'commit', { group, offsets });
    return this.op(p, type, 'commit', { group, offsets });
  }

  finalReads(p: number, keys: readonly Key[]): number {
    this.op(p, 'invoke', 'final-reads', keys);
    return this.op(p, 'ok', 'final-reads', keys);
  }

  nemesis(f: string, value: Json): number {
    this.op('nemesis', 'invoke', f, value);
    return this.op('nemesis', 'info', f, value);
  }
}

/** `[[o, v], …]` for values read at consecutive offsets starting at `from`. */
export function run(from: Offset, values: readonly Value[]): [Offset, Value][] {
  return values.map((v, i) => [from + i, v]);
}
