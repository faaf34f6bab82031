// Follower truncation by leader epoch [KIP-101, KIP-279, KIP-320]: a follower's fetch
// names the epoch of its last batch; when the leader's log ended that epoch earlier (or
// never had it), the leader answers with a diverging epoch and its end offset, and the
// follower cuts its log there. This removes a tail written under an older leader even if
// it lies below a high watermark the follower had seen.

export interface EpochLookup {
  /** This log's end offset for `epoch` (the largest known epoch <= it), -1/-1 when none. */
  endOffsetFor(epoch: number): { epoch: number; endOffset: number };
}

/**
 * Where to truncate given the leader's diverging epoch: both logs agree at most up to
 * the smaller of the two end offsets for that epoch (for us, the largest epoch at or
 * below it). With no common epoch there is no common history: truncate everything. The
 * next fetch re-checks, so repeated answers converge on the common prefix.
 */
export function divergenceTruncationOffset(
  local: EpochLookup,
  logEndOffset: number,
  diverging: { epoch: number; endOffset: number },
): number {
  if (diverging.epoch < 0 || diverging.endOffset < 0) return 0;
  const mine = local.endOffsetFor(diverging.epoch);
  if (mine.epoch < 0) return 0;
  return Math.min(diverging.endOffset, mine.endOffset, logEndOffset);
}
