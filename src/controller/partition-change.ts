// One place decides every partition change: ISR shrink and expansion, the eligible
// leader replicas (ELR) and leader election [KRaft's PartitionChangeBuilder, KIP-966].
// Fencing, controlled shutdown, re-registration, AlterPartition, config changes and
// admin elections all describe what they want (a target ISR, brokers to drop from the
// ELR, an election mode) and get back the one PartitionChangeRecord that realises it, or
// null when nothing changes.
//
// ELR rule [KIP-966]: the high watermark only advances while |ISR| >= min.insync.replicas
// (strict min ISR), and it is bounded by every ISR member's log end. So a replica removed
// from the ISR while the remaining ISR is below min.insync.replicas holds every record up
// to the (now frozen) high watermark: it stays electable, in the ELR. Once the ISR is back
// at min.insync.replicas the high watermark moves again and ELR members fall behind it, so
// the ELR is cleared. A replica that restarts after an unclean shutdown may have lost
// unflushed records: it leaves the ELR for lastKnownElr (only a hint for unclean
// recovery).
//
// Election order when the partition needs a leader (none, or the current one fenced or
// dropped from the ISR):
//   1. clean: the first usable ISR member in replica (preference) order;
//   2. ELR:   the first usable ELR member; it joins the ISR [KIP-966];
//   3. unclean (only if unclean.leader.election.enable, or an admin's unclean election):
//      the usable replica with the most complete log, as the replicas last reported it
//      (the highest last written leader epoch, then the highest log end offset: the
//      Raft up-to-date rule [KIP-966 unclean recovery]); replicas without a report come
//      after those with one, and ties go to lastKnownElr members first, then replica
//      order. The ISR becomes [leader] and acknowledged records may be lost: the other
//      replicas truncate to the new leader's log. An admin's unclean election waits
//      (elects nothing) until every usable replica has reported and no replica's broker
//      is still starting (registered and heartbeating, not yet unfenced), so it never
//      passes over a longer log it has not heard of yet; the topic-config one does not
//      wait, like Kafka's, which elects any live replica;
//   4. otherwise NO_LEADER: the partition is offline until a candidate comes back.
// Invariants of the result: isr ⊆ replicas, elr ⊆ replicas, isr ∩ elr = ∅, and the leader
// is NO_LEADER or an ISR member that `usable` accepts.
import { applyPartitionChange } from '../metadata/delta.ts';
import type { PartitionState } from '../metadata/image.ts';
import { NO_LEADER, record, type PartitionChangeRecord } from '../metadata/records.ts';

/**
 * - `ifNeeded`: keep a usable ISR leader; elect only if there is none.
 * - `preferred`: also move leadership to the preferred replica (replicas[0]) when it is
 *   usable and in the ISR (preferred-leader rebalancing).
 * - `unclean`: as ifNeeded, with unclean election allowed regardless of the topic config
 *   (an operator's explicit ElectLeaders UNCLEAN).
 */
export type ElectionMode = 'ifNeeded' | 'preferred' | 'unclean';

export type ElectionOutcome = 'unchanged' | 'preferred' | 'clean' | 'elr' | 'unclean' | 'offline';

/** What a replica reported of its log while its partition had no leader. */
export interface ReplicaLogEnd {
  /** The leader epoch of the last batch in the log (-1 when empty). */
  readonly lastWrittenEpoch: number;
  readonly logEndOffset: number;
}

export interface PartitionChangeInput {
  readonly partition: PartitionState;
  /** May this broker lead and stay in an ISR (registered, unfenced)? */
  readonly usable: (brokerId: number) => boolean;
  readonly minInsyncReplicas: number;
  readonly uncleanLeaderElectionEnable: boolean;
  /** The ISR wanted; defaults to the current ISR. Must be a subset of the replicas. */
  readonly targetIsr?: readonly number[];
  /** Brokers that lost ELR eligibility (unclean shutdown). */
  readonly dropFromElr?: ReadonlySet<number>;
  readonly election?: ElectionMode;
  /** The replica's reported log, for an unclean election; undefined when it sent none. */
  readonly replicaLogEnd?: (brokerId: number) => ReplicaLogEnd | undefined;
  /** Is this broker fenced but heartbeating (starting up, soon usable)? */
  readonly starting?: (brokerId: number) => boolean;
}

export interface PartitionChangePlan {
  /** Null when nothing changes. */
  readonly record: PartitionChangeRecord | null;
  /** The partition as it will be once the record is replayed. */
  readonly after: PartitionState;
  readonly outcome: ElectionOutcome;
  /** An admin's unclean election is waiting for these replicas: usable but unreported, or starting. */
  readonly awaitingLogEnds?: readonly number[];
}

export function planPartitionChange(input: PartitionChangeInput): PartitionChangePlan {
  const p = input.partition;
  const order = (set: Iterable<number>): number[] => {
    const s = new Set(set);
    return p.replicas.filter((b) => s.has(b));
  };
  const drop = input.dropFromElr ?? new Set<number>();
  let isr = order(input.targetIsr ?? p.isr);
  const removed = p.isr.filter((b) => !isr.includes(b));
  let lastKnownElr = order([...p.lastKnownElr, ...p.elr.filter((b) => drop.has(b))]);
  let elr = recomputeElr(isr, [...p.elr, ...removed].filter((b) => !drop.has(b)));

  let leader = p.leader;
  let outcome: ElectionOutcome = 'unchanged';
  let awaitingLogEnds: number[] = [];
  const mode = input.election ?? 'ifNeeded';
  if (mode === 'preferred') {
    const preferred = p.replicas[0]!;
    if (preferred !== leader && isr.includes(preferred) && input.usable(preferred)) {
      leader = preferred;
      outcome = 'preferred';
    }
  }
  if (leader === NO_LEADER || !isr.includes(leader) || !input.usable(leader)) {
    const clean = isr.find((b) => input.usable(b));
    const fromElr = elr.find((b) => input.usable(b));
    if (clean !== undefined) {
      leader = clean;
      outcome = 'clean';
    } else if (fromElr !== undefined) {
      // No ISR member can lead, so any left are unusable: they step into the ELR
      // beside the others (they held the high watermark too) and the ISR restarts
      // from the elected replica [KIP-966].
      leader = fromElr;
      outcome = 'elr';
      const unusable = isr;
      isr = [fromElr];
      elr = recomputeElr(isr, [...elr, ...unusable]);
    } else if (input.uncleanLeaderElectionEnable || mode === 'unclean') {
      const candidates = [...new Set([...lastKnownElr, ...p.replicas])].filter((b) => input.usable(b));
      const logEnd = input.replicaLogEnd ?? (() => undefined);
      if (mode === 'unclean') {
        const starting = input.starting ?? (() => false);
        awaitingLogEnds = p.replicas.filter((b) => (input.usable(b) ? logEnd(b) === undefined : starting(b)));
      }
      const unclean = awaitingLogEnds.length > 0 ? undefined : mostCompleteLog(candidates, logEnd);
      if (unclean !== undefined) {
        leader = unclean;
        outcome = 'unclean';
        isr = [unclean];
        elr = [];
      }
    }
    if (outcome === 'unchanged' || outcome === 'preferred') {
      leader = NO_LEADER;
      outcome = 'offline';
    }
  }
  // Hints for unclean recovery matter only while there is nothing better.
  if (isr.length > 0) lastKnownElr = [];

  const changes: {
    isr?: readonly number[];
    elr?: readonly number[];
    lastKnownElr?: readonly number[];
    leader?: number;
  } = {};
  if (!sameList(isr, p.isr)) changes.isr = isr;
  if (!sameList(elr, p.elr)) changes.elr = elr;
  if (!sameList(lastKnownElr, p.lastKnownElr)) changes.lastKnownElr = lastKnownElr;
  if (leader !== p.leader) changes.leader = leader;
  const awaiting = awaitingLogEnds.length > 0 ? { awaitingLogEnds } : {};
  if (Object.keys(changes).length === 0) return { record: null, after: p, outcome: 'unchanged', ...awaiting };
  if (outcome === 'offline' && p.leader === NO_LEADER) outcome = 'unchanged';
  const rec = record({ type: 'partitionChange', topicId: p.topicId, partition: p.partition, ...changes });
  return { record: rec, after: applyPartitionChange(p, rec), outcome, ...awaiting };

  function recomputeElr(newIsr: readonly number[], candidates: readonly number[]): number[] {
    if (newIsr.length >= input.minInsyncReplicas) return [];
    return order(candidates.filter((b) => !newIsr.includes(b)));
  }
}

/**
 * The candidate whose reported log is the most complete: the highest last written epoch,
 * then the highest log end offset; a report beats none; ties keep the candidates' order.
 */
function mostCompleteLog(candidates: readonly number[], logEnd: (brokerId: number) => ReplicaLogEnd | undefined): number | undefined {
  let best: number | undefined;
  let bestEnd: ReplicaLogEnd | undefined;
  for (const b of candidates) {
    const end = logEnd(b);
    if (best === undefined || (end !== undefined && (bestEnd === undefined || compareLogEnds(end, bestEnd) > 0))) {
      best = b;
      bestEnd = end;
    }
  }
  return best;
}

function compareLogEnds(a: ReplicaLogEnd, b: ReplicaLogEnd): number {
  return a.lastWrittenEpoch !== b.lastWrittenEpoch ? a.lastWrittenEpoch - b.lastWrittenEpoch : a.logEndOffset - b.logEndOffset;
}

function sameList(a: readonly number[], b: readonly number[]): boolean {
  return a.length === b.length && a.every((x, i) => x === b[i]);
}
