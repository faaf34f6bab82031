// Partition assignors, run by the group leader after JoinGroup: pure functions from the
// members' subscriptions (and, for the sticky assignor, what each member owns now) to
// every member's partitions. Kafka's semantics:
//
// - range [RangeAssignor]: per topic, the members subscribed to it sorted by member id;
//   with P partitions and M members each gets P/M consecutive partitions and the first
//   P%M members one more.
// - roundrobin [RoundRobinAssignor]: every topic-partition sorted by (topic, partition),
//   dealt to the members sorted by id in a circle, skipping members not subscribed to
//   the partition's topic.
// - cooperative-sticky [CooperativeStickyAssignor, KIP-429]: a balanced assignment that
//   moves as few partitions as possible from their current owners, then, because the
//   protocol is cooperative, a partition that must change owner is only revoked in this
//   generation (assigned to nobody); the old owner rejoins after giving it up and the
//   follow-up rebalance assigns it. So no partition is ever owned by two members at once.
//
// Assignments are deterministic: the same input gives the same output.

export interface TopicPartitions {
  topic: string;
  partitions: number[];
}

export interface MemberSubscription {
  memberId: string;
  topics: string[];
  /** What the member owns now (cooperative members say so in their subscription). */
  ownedPartitions?: TopicPartitions[];
  /** The generation `ownedPartitions` were assigned in (-1: unknown); higher wins a claim conflict. */
  generation?: number;
}

/** Member id → topic → sorted partitions. Every member appears, possibly with nothing. */
export type GroupAssignment = Record<string, Record<string, number[]>>;

export interface AssignInput {
  members: MemberSubscription[];
  /** Partition count per topic; topics missing here (unknown) are not assigned. */
  partitionsPerTopic: Record<string, number>;
}

export type RebalanceProtocol = 'EAGER' | 'COOPERATIVE';

export interface PartitionAssigner {
  /** The protocol name members send in JoinGroup, as Kafka names it. */
  readonly name: string;
  readonly protocol: RebalanceProtocol;
  assign(input: AssignInput): GroupAssignment;
}

const byId = (a: string, b: string) => (a < b ? -1 : a > b ? 1 : 0);

function emptyAssignment(members: MemberSubscription[]): GroupAssignment {
  const out: GroupAssignment = {};
  for (const m of members) out[m.memberId] = {};
  return out;
}

function add(out: GroupAssignment, member: string, topic: string, partition: number): void {
  const t = (out[member] ??= {});
  (t[topic] ??= []).push(partition);
}

function sortAll(out: GroupAssignment): GroupAssignment {
  for (const m of Object.values(out)) for (const ps of Object.values(m)) ps.sort((a, b) => a - b);
  return out;
}

export function rangeAssign({ members, partitionsPerTopic }: AssignInput): GroupAssignment {
  const out = emptyAssignment(members);
  const topics = [...new Set(members.flatMap((m) => m.topics))].sort(byId);
  for (const topic of topics) {
    const n = partitionsPerTopic[topic];
    if (n === undefined) continue;
    const subs = members.filter((m) => m.topics.includes(topic)).map((m) => m.memberId).sort(byId);
    const per = Math.floor(n / subs.length);
    const extra = n % subs.length;
    subs.forEach((member, i) => {
      const start = per * i + Math.min(i, extra);
      const len = per + (i < extra ? 1 : 0);
      for (let p = start; p < start + len; p++) add(out, member, topic, p);
    });
  }
  return sortAll(out);
}

export function roundRobinAssign({ members, partitionsPerTopic }: AssignInput): GroupAssignment {
  const out = emptyAssignment(members);
  const sorted = [...members].sort((a, b) => byId(a.memberId, b.memberId));
  const topics = [...new Set(members.flatMap((m) => m.topics))].filter((t) => partitionsPerTopic[t] !== undefined).sort(byId);
  let next = 0;
  for (const topic of topics) {
    for (let p = 0; p < partitionsPerTopic[topic]!; p++) {
      // Kafka's CircularIterator: advance until a member subscribed to the topic.
      for (let tries = 0; tries < sorted.length; tries++) {
        const m = sorted[next % sorted.length]!;
        next++;
        if (m.topics.includes(topic)) {
          add(out, m.memberId, topic, p);
          break;
        }
      }
    }
  }
  return sortAll(out);
}

const tpKey = (topic: string, partition: number) => `${topic}\u0000${partition}`;

/**
 * The sticky target: every partition kept by its current owner while that keeps the
 * group balanced, the rest dealt to the least-loaded eligible members, then moves from
 * the most to the least loaded member until no move lowers the spread. Members with
 * equal subscriptions end within one partition of each other.
 */
export function stickyTarget({ members, partitionsPerTopic }: AssignInput): GroupAssignment {
  const ids = members.map((m) => m.memberId).sort(byId);
  const subs = new Map(members.map((m) => [m.memberId, new Set(m.topics.filter((t) => partitionsPerTopic[t] !== undefined))]));
  const all: Array<[string, number]> = [];
  for (const t of [...new Set(members.flatMap((m) => m.topics))].sort(byId)) {
    const n = partitionsPerTopic[t];
    if (n !== undefined) for (let p = 0; p < n; p++) all.push([t, p]);
  }
  // Claims: a partition claimed by several members goes to the highest generation (then
  // the smallest member id); claims on partitions that no longer exist or are no longer
  // subscribed are dropped.
  const owner = new Map<string, { member: string; generation: number }>();
  for (const m of [...members].sort((a, b) => byId(a.memberId, b.memberId))) {
    const gen = m.generation ?? -1;
    for (const tp of m.ownedPartitions ?? []) {
      if (!subs.get(m.memberId)!.has(tp.topic)) continue;
      for (const p of tp.partitions) {
        if (!Number.isInteger(p) || p < 0 || p >= partitionsPerTopic[tp.topic]!) continue;
        const k = tpKey(tp.topic, p);
        const cur = owner.get(k);
        if (!cur || gen > cur.generation) owner.set(k, { member: m.memberId, generation: gen });
      }
    }
  }
  const held = new Map<string, Array<[string, number]>>(ids.map((id) => [id, []]));
  for (const [t, p] of all) {
    const o = owner.get(tpKey(t, p));
    if (o) held.get(o.member)!.push([t, p]);
  }
  // With equal subscriptions the balanced counts are known up front: `ceilSlots` members
  // may hold ceil(total/M), the rest floor. Owners keep up to their cap, in id order.
  const equalSubs = ids.every((id) => sameSet(subs.get(id)!, subs.get(ids[0]!)!));
  const assigned = new Map<string, Array<[string, number]>>(ids.map((id) => [id, []]));
  const unassigned: Array<[string, number]> = [];
  if (equalSubs && ids.length > 0) {
    const total = all.length;
    const floor = Math.floor(total / ids.length);
    let ceilSlots = total % ids.length;
    // Members owning more than floor get the ceil slots first (largest first), so as many
    // owned partitions as possible stay put.
    const order = [...ids].sort((a, b) => held.get(b)!.length - held.get(a)!.length || byId(a, b));
    for (const id of order) {
      const h = held.get(id)!;
      let cap = floor;
      if (ceilSlots > 0 && h.length > floor) {
        cap = floor + 1;
        ceilSlots--;
      }
      assigned.get(id)!.push(...h.slice(0, cap));
      unassigned.push(...h.slice(cap));
    }
  } else {
    for (const id of ids) assigned.get(id)!.push(...held.get(id)!);
  }
  for (const [t, p] of all) if (!owner.has(tpKey(t, p))) unassigned.push([t, p]);
  unassigned.sort((a, b) => byId(a[0], b[0]) || a[1] - b[1]);
  for (const [t, p] of unassigned) {
    let best: string | undefined;
    for (const id of ids) {
      if (!subs.get(id)!.has(t)) continue;
      if (best === undefined || assigned.get(id)!.length < assigned.get(best)!.length) best = id;
    }
    if (best !== undefined) assigned.get(best)!.push([t, p]);
  }
  // Unequal subscriptions: move single partitions from a fuller to an emptier eligible
  // member while that narrows the gap (terminates: the sum of squares drops each move).
  if (!equalSubs) {
    for (let moved = true; moved; ) {
      moved = false;
      for (const from of [...ids].sort((a, b) => assigned.get(b)!.length - assigned.get(a)!.length || byId(a, b))) {
        const list = assigned.get(from)!;
        for (let i = list.length - 1; i >= 0 && !moved; i--) {
          const [t, p] = list[i]!;
          const to = ids.filter((id) => subs.get(id)!.has(t) && assigned.get(id)!.length + 1 < list.length).sort((a, b) => assigned.get(a)!.length - assigned.get(b)!.length || byId(a, b))[0];
          if (to !== undefined) {
            list.splice(i, 1);
            assigned.get(to)!.push([t, p]);
            moved = true;
          }
        }
        if (moved) break;
      }
    }
  }
  const out = emptyAssignment(members);
  for (const [id, list] of assigned) for (const [t, p] of list) add(out, id, t, p);
  return sortAll(out);
}

function sameSet(a: Set<string>, b: Set<string>): boolean {
  if (a.size !== b.size) return false;
  for (const x of a) if (!b.has(x)) return false;
  return true;
}

/**
 * Cooperative-sticky: the sticky target minus every partition that another member still
 * owns. Those are revoked from their owner now (the owner's new assignment lacks them)
 * and assigned in the follow-up rebalance the owner triggers [KIP-429].
 */
export function cooperativeStickyAssign(input: AssignInput): GroupAssignment {
  const target = stickyTarget(input);
  const ownerOf = new Map<string, string>();
  for (const m of input.members) for (const tp of m.ownedPartitions ?? []) for (const p of tp.partitions) ownerOf.set(tpKey(tp.topic, p), m.memberId);
  const out = emptyAssignment(input.members);
  for (const [member, topics] of Object.entries(target)) {
    for (const [t, ps] of Object.entries(topics)) {
      for (const p of ps) {
        const o = ownerOf.get(tpKey(t, p));
        if (o === undefined || o === member) add(out, member, t, p);
      }
    }
  }
  return sortAll(out);
}

export const RangeAssigner: PartitionAssigner = { name: 'range', protocol: 'EAGER', assign: rangeAssign };
export const RoundRobinAssigner: PartitionAssigner = { name: 'roundrobin', protocol: 'EAGER', assign: roundRobinAssign };
export const CooperativeStickyAssigner: PartitionAssigner = { name: 'cooperative-sticky', protocol: 'COOPERATIVE', assign: cooperativeStickyAssign };

/** KafkaJS-style names: `partitionAssigners: [PartitionAssigners.cooperativeSticky]`. */
export const PartitionAssigners = { range: RangeAssigner, roundRobin: RoundRobinAssigner, cooperativeSticky: CooperativeStickyAssigner } as const;
