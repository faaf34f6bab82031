// Replica placement for new partitions: spread replicas and leaders evenly over the
// usable brokers, and over racks when racks are set [KIP-36 rack awareness; KRaft's
// StripedReplicaPlacer has the same goals].
//
// Greedy, deterministic: partition by partition, each replica goes to the broker that
// (1) is on a rack this partition does not use yet (when any such broker is left),
// (2) holds the fewest replicas of this topic (for the first pick: then leads the
//     fewest partitions of this topic, so the leader choice below has a good candidate),
// (3) holds the fewest replicas in the whole cluster,
// (4) comes first in a rotation of the broker list that starts at `seed`.
// The leader (replicas[0], the preferred leader) is the chosen broker that leads the
// fewest partitions of this topic, then of the cluster. Choosing, for each partition,
// the brokers with the fewest replicas of the topic keeps per-topic replica counts within
// one of each other when racks do not constrain the choice (and leader counts too: the
// placement property tests check both); (3) spreads many small
// topics over the cluster; (4) keeps ties from always landing on the lowest broker id.
import { RaftkaError } from '../common/errors.ts';

export interface PlacementBroker {
  readonly brokerId: number;
  readonly rack: string | null;
}

/** Replicas and leaderships each broker already holds across the cluster. */
export interface ClusterLoad {
  readonly replicas: ReadonlyMap<number, number>;
  readonly leaders: ReadonlyMap<number, number>;
}

export interface PlacementRequest {
  /** Usable (unfenced) brokers. */
  readonly brokers: readonly PlacementBroker[];
  readonly numPartitions: number;
  readonly replicationFactor: number;
  readonly load?: ClusterLoad;
  /** This topic's existing partitions (CreatePartitions), counted as its load. */
  readonly existing?: readonly (readonly number[])[];
  /** Rotation start: any integer (e.g. a hash of the topic name). */
  readonly seed?: number;
}

/** Returns one replica list per new partition, preferred leader first. */
export function placeReplicas(req: PlacementRequest): number[][] {
  const brokers = [...req.brokers].sort((a, b) => a.brokerId - b.brokerId);
  const n = brokers.length;
  const rf = req.replicationFactor;
  if (rf < 1 || rf > n) {
    throw new RaftkaError(
      'INVALID_REPLICATION_FACTOR',
      `Unable to replicate the partition ${rf} time(s): the target replication factor of ${rf} cannot be reached because only ${n} broker(s) are unfenced`,
    );
  }
  const start = n === 0 ? 0 : (((req.seed ?? 0) % n) + n) % n;
  const rotation = new Map(brokers.map((b, i) => [b.brokerId, (i - start + n) % n]));
  // Brokers without a rack each count as a rack of their own: spreading over them is
  // still spreading over failure domains as far as we know.
  const rackOf = (b: PlacementBroker): string => (b.rack === null ? `\u0000${b.brokerId}` : `r:${b.rack}`);

  const topicReplicas = new Map<number, number>();
  const topicLeaders = new Map<number, number>();
  for (const replicas of req.existing ?? []) {
    replicas.forEach((b, i) => {
      topicReplicas.set(b, (topicReplicas.get(b) ?? 0) + 1);
      if (i === 0) topicLeaders.set(b, (topicLeaders.get(b) ?? 0) + 1);
    });
  }
  const clusterReplicas = new Map(req.load?.replicas ?? []);
  const clusterLeaders = new Map(req.load?.leaders ?? []);
  const get = (m: ReadonlyMap<number, number>, b: number): number => m.get(b) ?? 0;

  const out: number[][] = [];
  for (let p = 0; p < req.numPartitions; p++) {
    const chosen: PlacementBroker[] = [];
    const racks = new Set<string>();
    for (let r = 0; r < rf; r++) {
      let candidates = brokers.filter((b) => !chosen.includes(b));
      const newRack = candidates.filter((b) => !racks.has(rackOf(b)));
      if (newRack.length > 0) candidates = newRack;
      const best = minBy(candidates, (b) => [
        get(topicReplicas, b.brokerId),
        r === 0 ? get(topicLeaders, b.brokerId) : 0,
        get(clusterReplicas, b.brokerId),
        rotation.get(b.brokerId)!,
      ]);
      chosen.push(best);
      racks.add(rackOf(best));
    }
    const leader = minBy(chosen, (b) => [get(topicLeaders, b.brokerId), get(clusterLeaders, b.brokerId), rotation.get(b.brokerId)!]);
    const replicas = [leader.brokerId, ...chosen.filter((b) => b !== leader).map((b) => b.brokerId)];
    for (const b of replicas) {
      topicReplicas.set(b, get(topicReplicas, b) + 1);
      clusterReplicas.set(b, get(clusterReplicas, b) + 1);
    }
    topicLeaders.set(leader.brokerId, get(topicLeaders, leader.brokerId) + 1);
    clusterLeaders.set(leader.brokerId, get(clusterLeaders, leader.brokerId) + 1);
    out.push(replicas);
  }
  return out;
}

function minBy<T>(xs: readonly T[], key: (x: T) => readonly number[]): T {
  let best = xs[0]!;
  let bestKey = key(best);
  for (let i = 1; i < xs.length; i++) {
    const k = key(xs[i]!);
    if (lexLess(k, bestKey)) {
      best = xs[i]!;
      bestKey = k;
    }
  }
  return best;
}

function lexLess(a: readonly number[], b: readonly number[]): boolean {
  for (let i = 0; i < a.length; i++) {
    if (a[i]! !== b[i]!) return a[i]! < b[i]!;
  }
  return false;
}

/** A small deterministic string hash (FNV-1a), for placement seeds. */
export function hashString(s: string): number {
  let h = 0x811c9dc5;
  for (let i = 0; i < s.length; i++) {
    h ^= s.charCodeAt(i);
    h = Math.imul(h, 0x01000193);
  }
  return h >>> 0;
}
