// Leader-epoch checkpoint [KIP-101]: for every leader epoch, the first offset written in
// it. A follower asks the leader for the end offset of its latest epoch and truncates its
// log to that point, so divergent tails are removed by epoch, not by high watermark.
// File format as Kafka's leader-epoch-checkpoint: version, count, then "epoch offset" lines.
import { RaftkaError, assert } from '../common/errors.ts';
import { readFileIfExists, writeFileAtomic } from './checkpoint.ts';

export interface EpochEntry {
  epoch: number;
  startOffset: number;
}

export class LeaderEpochCache {
  private entries: EpochEntry[] = [];

  constructor(private readonly path: string) {}

  static async load(path: string): Promise<LeaderEpochCache> {
    const cache = new LeaderEpochCache(path);
    const text = await readFileIfExists(path);
    if (text === undefined) return cache;
    const lines = text.split('\n').filter((l) => l.trim() !== '');
    const bad = (why: string) => new RaftkaError('CORRUPT_STORAGE', `leader epoch checkpoint ${path} is unreadable: ${why}`);
    if (lines[0] !== '0') throw bad(`unknown version ${JSON.stringify(lines[0])}`);
    const count = Number(lines[1]);
    if (!Number.isInteger(count) || count !== lines.length - 2) throw bad(`count ${lines[1]} does not match ${lines.length - 2} entries`);
    for (const line of lines.slice(2)) {
      const [e, o] = line.trim().split(/\s+/).map(Number);
      if (!Number.isInteger(e) || !Number.isInteger(o)) throw bad(`bad entry ${JSON.stringify(line)}`);
      cache.entries.push({ epoch: e!, startOffset: o! });
    }
    return cache;
  }

  all(): readonly EpochEntry[] {
    return this.entries;
  }

  latestEpoch(): number | undefined {
    return this.entries.at(-1)?.epoch;
  }

  /** Records that `epoch` starts at `startOffset`; returns true when the cache changed. */
  assign(epoch: number, startOffset: number): boolean {
    const last = this.entries.at(-1);
    if (last && epoch <= last.epoch) return false;
    assert(!last || startOffset >= last.startOffset, () => `epoch ${epoch} start ${startOffset} precedes epoch ${last!.epoch} start ${last!.startOffset}`);
    this.entries.push({ epoch, startOffset });
    return true;
  }

  /**
   * The end offset of `epoch` in this log: the start offset of the next higher epoch, or
   * the log end offset when `epoch` is the latest. If `epoch` is unknown, the largest
   * epoch below it answers (Kafka's OffsetsForLeaderEpoch semantics).
   */
  endOffsetFor(epoch: number, logEndOffset: number): { epoch: number; endOffset: number } {
    let i = this.entries.length - 1;
    while (i >= 0 && this.entries[i]!.epoch > epoch) i--;
    if (i < 0) return { epoch: -1, endOffset: -1 };
    const next = this.entries[i + 1];
    return { epoch: this.entries[i]!.epoch, endOffset: next ? next.startOffset : logEndOffset };
  }

  /** Drops epochs starting at or after `offset` (the log was truncated to `offset`). */
  truncateFromEnd(offset: number): boolean {
    const before = this.entries.length;
    this.entries = this.entries.filter((e) => e.startOffset < offset);
    return this.entries.length !== before;
  }

  /** The log start moved to `offset`: epochs wholly before it go, the one spanning it starts there. */
  truncateFromStart(offset: number): boolean {
    let changed = false;
    while (this.entries.length > 1 && this.entries[1]!.startOffset <= offset) {
      this.entries.shift();
      changed = true;
    }
    const first = this.entries[0];
    if (first && first.startOffset < offset) {
      first.startOffset = offset;
      changed = true;
    }
    return changed;
  }

  clear(): void {
    this.entries = [];
  }

  async persist(): Promise<void> {
    const body = ['0', String(this.entries.length), ...this.entries.map((e) => `${e.epoch} ${e.startOffset}`)].join('\n');
    await writeFileAtomic(this.path, `${body}\n`);
  }
}
