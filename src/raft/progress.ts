// What a leader knows about each follower's log [Raft §5.3 nextIndex/matchIndex], plus
// the flow-control state that makes replication pipelined but bounded (etcd raft's
// Progress). States and transitions:
//   probe     → replicate (an append succeeded) | snapshot (next entry compacted away)
//   replicate → probe (a reject, or in-flight appends timed out)
//   snapshot  → probe (the snapshot was installed)
//   any       → probe from its log end, match forgotten (its disk was lost: a new
//               directory id, or a log shorter than it acknowledged)
// In probe one append is outstanding at a time (we are searching for the match point);
// in replicate up to maxInflightAppends are, each optimistically advancing `next`.
import type { NodeId } from './types.ts';

export type ProgressState = 'probe' | 'replicate' | 'snapshot';

export interface Inflight {
  /** The last index the append carried. */
  readonly lastIndex: number;
  readonly sentMs: number;
}

export interface SnapshotTransfer {
  /** The snapshot being sent; the leader restarts if it compacts to a newer one. */
  index: number;
  /** The next byte to send (the follower tells us where to resume). */
  offset: number;
  /** A chunk is outstanding since this time (one chunk at a time), or null. */
  sentMs: number | null;
}

export class Progress {
  match = 0;
  next: number;
  state: ProgressState = 'probe';
  /** Probe state: an append is outstanding; cleared by a response or a heartbeat response. */
  probeSent = false;
  readonly inflight: Inflight[] = [];
  snapshot: SnapshotTransfer | null = null;
  /** Last time any response came from this node (check-quorum). */
  lastHeardMs: number;
  /** The highest read-index context this node echoed in a heartbeat response. */
  readAck = 0;
  /** The highest commit index this follower has been told it may use. */
  commitSent = 0;
  /** Heartbeat responses in a row that showed a log shorter than `match` (a lost disk). */
  shortLogReports = 0;
  /** The directory id its responses carry (null until known, or if the wire lacks it). */
  directoryId: string | null = null;

  constructor(
    readonly nodeId: NodeId,
    next: number,
    nowMs: number,
  ) {
    this.next = next;
    // A new leader gives every voter a full timeout before counting it as lost.
    this.lastHeardMs = nowMs;
  }

  becomeProbe(): void {
    // After a snapshot the follower holds at least the snapshot index.
    this.next = this.match + 1;
    this.state = 'probe';
    this.probeSent = false;
    this.inflight.length = 0;
    this.snapshot = null;
  }

  becomeReplicate(): void {
    this.next = this.match + 1;
    this.state = 'replicate';
    this.probeSent = false;
    this.inflight.length = 0;
  }

  becomeSnapshot(index: number): void {
    this.state = 'snapshot';
    this.inflight.length = 0;
    this.snapshot = { index, offset: 0, sentMs: null };
  }

  /**
   * The follower's log is shorter than what it acknowledged: its disk was lost (wiped and
   * re-formatted, KIP-853). What it acknowledged is gone, so forget it and probe again
   * from where its log ends now.
   */
  resetAfterLostLog(lastLogIndex: number): void {
    this.match = 0;
    this.becomeProbe();
    this.next = lastLogIndex + 1;
    this.shortLogReports = 0;
  }

  /** A successful append response: returns whether it told us something new. */
  maybeUpdate(matchIndex: number): boolean {
    let updated = false;
    if (matchIndex > this.match) {
      this.match = matchIndex;
      updated = true;
      this.probeSent = false;
    }
    if (this.next < matchIndex + 1) this.next = matchIndex + 1;
    // Everything up to matchIndex arrived: free those in-flight slots.
    let k = 0;
    while (k < this.inflight.length && this.inflight[k]!.lastIndex <= matchIndex) k++;
    if (k > 0) this.inflight.splice(0, k);
    return updated;
  }

  /**
   * A rejected append for prevLogIndex `rejected`. Returns false for a stale reject
   * (one that answers an append we have since superseded). `hintedNext` is where the
   * leader computed the follower's log may match, from the follower's hint.
   */
  maybeDecrTo(rejected: number, hintedNext: number): boolean {
    if (this.state === 'replicate') {
      if (rejected <= this.match) return false;
    } else if (this.next - 1 !== rejected) {
      return false;
    }
    this.state = 'probe';
    this.inflight.length = 0;
    this.probeSent = false;
    this.next = Math.max(this.match + 1, Math.min(hintedNext, rejected));
    return true;
  }

  /** Whether another append may be sent now. */
  paused(maxInflight: number): boolean {
    switch (this.state) {
      case 'probe':
        return this.probeSent;
      case 'replicate':
        return this.inflight.length >= maxInflight;
      case 'snapshot':
        return true;
    }
  }
}
