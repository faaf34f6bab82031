// What brokers last reported, in their heartbeats, of the logs of replicas whose
// partition has no leader: what an unclean election weighs to lose the least [KIP-966
// unclean recovery, where the controller asks the replicas instead]. Volatile like the
// broker sessions: a newly active controller starts with none and has every live
// broker's within one heartbeat interval.
import type { ReplicaLogEnd } from './partition-change.ts';
import type { LeaderlessReplicaReport } from './types.ts';

interface BrokerReports {
  readonly brokerEpoch: number;
  readonly byPartition: ReadonlyMap<string, LeaderlessReplicaReport>;
}

export class ReplicaLogEnds {
  private readonly byBroker = new Map<number, BrokerReports>();

  /** Replaces everything `brokerId` reported before (each heartbeat carries all its leaderless replicas). */
  note(brokerId: number, brokerEpoch: number, reports: readonly LeaderlessReplicaReport[]): void {
    if (reports.length === 0) {
      this.byBroker.delete(brokerId);
      return;
    }
    this.byBroker.set(brokerId, { brokerEpoch, byPartition: new Map(reports.map((r) => [key(r.topicId, r.partition), r])) });
  }

  /**
   * The log `brokerId` reported for the partition, if the report comes from the broker's
   * current registration (a restart may have lost the log's tail since) and was made at
   * the partition's current leader epoch (a leader since may have changed the log).
   */
  get(brokerId: number, registeredEpoch: number | undefined, topicId: string, partition: number, leaderEpoch: number): ReplicaLogEnd | undefined {
    const b = this.byBroker.get(brokerId);
    if (b === undefined || b.brokerEpoch !== registeredEpoch) return undefined;
    const r = b.byPartition.get(key(topicId, partition));
    return r !== undefined && r.leaderEpoch === leaderEpoch ? { lastWrittenEpoch: r.lastWrittenEpoch, logEndOffset: r.logEndOffset } : undefined;
  }

  forget(brokerId: number): void {
    this.byBroker.delete(brokerId);
  }

  clear(): void {
    this.byBroker.clear();
  }
}

function key(topicId: string, partition: number): string {
  return `${topicId}:${partition}`;
}
