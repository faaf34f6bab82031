// Follower truncation by leader epoch [KIP-101, KIP-279]: before fetching from a new
// leader, a follower asks for the end offset of its latest epoch and cuts its log there,
// so a divergent tail written under an older leader is removed even if it lies below the
// high watermark the follower had seen.

export interface EpochLookup {
  latestEpoch(): number | undefined;
  /** This log's end offset for `epoch` (largest known epoch <= it), Kafka's OffsetsForLeaderEpoch. */
  endOffsetFor(epoch: number): { epoch: number; endOffset: number };
}

export type TruncationStep =
  /** Ask the leader for the end offset of this epoch. */
  | { readonly kind: 'ask'; readonly epoch: number }
  /** Truncate to this offset (may equal the log end: nothing to cut) and start fetching. */
  | { readonly kind: 'truncate'; readonly offset: number };

/** Where to start: with no epochs the follower's log is empty or pre-epoch; truncate to its end. */
export function firstTruncationStep(local: EpochLookup, logEndOffset: number): TruncationStep {
  const e = local.latestEpoch();
  return e === undefined ? { kind: 'truncate', offset: logEndOffset } : { kind: 'ask', epoch: e };
}

/**
 * Given the leader's answer for `askedEpoch`, the next step. When the leader's largest
 * epoch at or below ours is lower, both logs agree at most up to the smaller of the two
 * end offsets of that epoch [KIP-279]; an unknown epoch (-1) means no common history.
 */
export function nextTruncationStep(
  local: EpochLookup,
  logEndOffset: number,
  askedEpoch: number,
  leader: { epoch: number; endOffset: number },
): TruncationStep {
  if (leader.epoch < 0 || leader.endOffset < 0) return { kind: 'truncate', offset: 0 };
  if (leader.epoch === askedEpoch) return { kind: 'truncate', offset: Math.min(leader.endOffset, logEndOffset) };
  const mine = local.endOffsetFor(leader.epoch);
  if (mine.epoch === leader.epoch) return { kind: 'truncate', offset: Math.min(leader.endOffset, mine.endOffset, logEndOffset) };
  // We never had the leader's epoch: ask again about the epoch we do have below it.
  if (mine.epoch < 0) return { kind: 'truncate', offset: 0 };
  return { kind: 'ask', epoch: mine.epoch };
}
