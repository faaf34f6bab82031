// The core's view of the Raft log: a snapshot point followed by every entry after it,
// all in memory (the metadata log is compacted by snapshots, so this stays small), plus
// the bookkeeping that tells which entries are durable.
//
// Index pointers, always: snapshotIndex <= applied <= committed <= lastIndex, and
// persistedIndex <= handedIndex <= lastIndex.
//  - persistedIndex: entries up to here are durable (their Ready was advanced).
//  - handedIndex: entries up to here were handed to the driver in a Ready; the ones
//    after it go in the next Ready.
//  - pendingTruncateFrom: stored entries from here on must be deleted by the next Ready
//    (a follower replaced a conflicting tail, or installed a snapshot).
import { assert } from '../common/errors.ts';
import type { Entry } from './types.ts';

export class RaftLog {
  private snapIndex: number;
  private snapTerm: number;
  private ents: Entry[];
  committed: number;
  applied: number;
  persistedIndex: number;
  handedIndex: number;
  pendingTruncateFrom: number | null = null;

  constructor(snapshotIndex: number, snapshotTerm: number, entries: readonly Entry[], commitIndex: number) {
    this.snapIndex = snapshotIndex;
    this.snapTerm = snapshotTerm;
    this.ents = [...entries];
    for (let i = 0; i < this.ents.length; i++) {
      assert(this.ents[i]!.index === snapshotIndex + 1 + i, () => `stored entries not contiguous at ${snapshotIndex + 1 + i}`);
    }
    this.persistedIndex = this.lastIndex();
    this.handedIndex = this.lastIndex();
    this.applied = snapshotIndex;
    // A persisted commit index never exceeds the persisted log (both are written by the
    // same Ready); clamp anyway so a damaged hard state cannot make us apply garbage.
    this.committed = Math.max(snapshotIndex, Math.min(commitIndex, this.lastIndex()));
  }

  get snapshotIndex(): number {
    return this.snapIndex;
  }
  get snapshotTerm(): number {
    return this.snapTerm;
  }
  firstIndex(): number {
    return this.snapIndex + 1;
  }
  lastIndex(): number {
    return this.snapIndex + this.ents.length;
  }
  lastTerm(): number {
    return this.ents.length === 0 ? this.snapTerm : this.ents[this.ents.length - 1]!.term;
  }

  /** The term of the entry at `index`, or undefined if compacted away or beyond the end. */
  term(index: number): number | undefined {
    if (index === this.snapIndex) return this.snapTerm;
    if (index < this.snapIndex || index > this.lastIndex()) return undefined;
    return this.ents[index - this.snapIndex - 1]!.term;
  }

  entry(index: number): Entry | undefined {
    if (index <= this.snapIndex || index > this.lastIndex()) return undefined;
    return this.ents[index - this.snapIndex - 1];
  }

  matchTerm(index: number, term: number): boolean {
    return this.term(index) === term;
  }

  /** Entries in [lo, hi), which must be within the log. */
  slice(lo: number, hi: number): Entry[] {
    assert(lo > this.snapIndex && hi <= this.lastIndex() + 1 && lo <= hi, () => `slice [${lo}, ${hi}) outside log`);
    return this.ents.slice(lo - this.snapIndex - 1, hi - this.snapIndex - 1);
  }

  /** [Raft §5.4.1] election restriction: is (lastIndex, lastTerm) at least as up to date as ours? */
  isUpToDate(lastIndex: number, lastTerm: number): boolean {
    const myTerm = this.lastTerm();
    return lastTerm > myTerm || (lastTerm === myTerm && lastIndex >= this.lastIndex());
  }

  /** The last index holding `term`, searching down from `from`; 0 if none is found. */
  lastIndexOfTerm(term: number, from: number): number {
    for (let i = Math.min(from, this.lastIndex()); i >= this.snapIndex; i--) {
      const t = this.term(i)!;
      if (t === term) return i;
      if (t < term) return 0;
    }
    return 0;
  }

  /** The first index of the run of `term` that contains `index` (fast backtracking hint). */
  firstIndexOfTermAt(index: number): number {
    const term = this.term(index);
    assert(term !== undefined, 'firstIndexOfTermAt outside log');
    let i = index;
    while (i - 1 > this.snapIndex && this.term(i - 1) === term) i--;
    return i;
  }

  /** Appends at the end (the leader's own proposals). */
  append(entry: Entry): void {
    assert(entry.index === this.lastIndex() + 1, () => `append at ${entry.index}, last is ${this.lastIndex()}`);
    this.ents.push(entry);
  }

  /**
   * Follower append after a successful consistency check [Raft §5.3]: skips entries it
   * already has, truncates at the first conflict, appends the rest. Returns how the log
   * changed. Committed entries are never truncated (a leader that sends a conflict
   * there would violate Leader Completeness: assert it).
   */
  appendFromLeader(entries: readonly Entry[]): 'none' | 'appended' | 'truncated' {
    let truncated = false;
    let i = 0;
    for (; i < entries.length; i++) {
      const e = entries[i]!;
      if (e.index <= this.snapIndex) continue;
      const t = this.term(e.index);
      if (t === undefined) break;
      if (t !== e.term) {
        assert(e.index > this.committed, () => `conflict at committed index ${e.index} (commit ${this.committed})`);
        this.truncateFrom(e.index);
        truncated = true;
        break;
      }
    }
    if (i >= entries.length) return 'none';
    for (; i < entries.length; i++) {
      const e = entries[i]!;
      if (e.index <= this.snapIndex) continue;
      this.append(e);
    }
    return truncated ? 'truncated' : 'appended';
  }

  /** Drops entries >= index from memory and schedules their deletion from storage. */
  private truncateFrom(index: number): void {
    this.ents.length = index - this.snapIndex - 1;
    if (index <= this.handedIndex) {
      this.pendingTruncateFrom = Math.min(this.pendingTruncateFrom ?? index, index);
    }
    this.handedIndex = Math.min(this.handedIndex, index - 1);
    this.persistedIndex = Math.min(this.persistedIndex, index - 1);
  }

  /** Entries not yet handed to the driver. */
  unstableEntries(): Entry[] {
    return this.handedIndex >= this.lastIndex() ? [] : this.slice(this.handedIndex + 1, this.lastIndex() + 1);
  }

  commitTo(index: number): boolean {
    if (index <= this.committed) return false;
    assert(index <= this.lastIndex(), () => `commit ${index} beyond last index ${this.lastIndex()}`);
    this.committed = index;
    return true;
  }

  /** The driver stored a snapshot at `index` (<= applied): drop entries up to it. */
  compact(index: number): void {
    assert(index <= this.applied && index > this.snapIndex, () => `compact(${index}) outside (${this.snapIndex}, ${this.applied}]`);
    const term = this.term(index)!;
    this.ents = this.ents.slice(index - this.snapIndex);
    this.snapIndex = index;
    this.snapTerm = term;
  }

  /**
   * Installs a snapshot received from the leader whose last entry we do not have (or
   * that conflicts): the whole log is replaced [Raft §7].
   */
  restore(index: number, term: number): void {
    assert(index > this.committed, 'restore behind commit');
    // Everything stored after the snapshot goes; the Ready's snapshot rule drops the rest.
    this.pendingTruncateFrom = Math.min(this.pendingTruncateFrom ?? index + 1, index + 1);
    this.ents = [];
    this.snapIndex = index;
    this.snapTerm = term;
    this.committed = index;
    this.handedIndex = index;
    this.persistedIndex = index;
  }
}
