// A deterministic in-process cluster: N Raft cores, a simulated clock, a simulated
// network (drop, delay, duplication, reordering, symmetric and one-way partitions) and
// simulated disks where a Ready's writes are durable only once "persisted" (a crash
// before that loses them). Every effect is checked against the Raft safety invariants
// as it happens; a violation throws InvariantViolation.
//
// This is the driver contract of types.ts played out by a test: persist, then send, then
// apply, then advance.
import { SeededRandom } from '../../../src/common/random.ts';
import { RaftCore } from '../../../src/raft/core.ts';
import {
  EMPTY_HARD_STATE,
  type ClusterConfig,
  type Entry,
  type HardState,
  type Message,
  type NodeId,
  type RaftConfig,
  type Ready,
  type Snapshot,
} from '../../../src/raft/types.ts';

export class InvariantViolation extends Error {
  constructor(invariant: string, detail: string) {
    super(`${invariant}: ${detail}`);
    this.name = 'InvariantViolation';
  }
}

export const CLUSTER_ID = 'sim-cluster-0000000000';

export function dirId(id: NodeId, incarnation = 0): string {
  return `dir-${id}-${incarnation}`;
}

interface Disk {
  hard: HardState;
  snapshot: Snapshot | null;
  entries: Entry[];
}

/** The simulated state machine: a running hash of what was applied. */
interface Machine {
  applied: number;
  hash: number;
}

interface InFlight {
  readonly at: number;
  readonly seq: number;
  readonly msg: Message;
}

export interface NetworkFaults {
  /** Probability in [0, 1) that a message is lost. */
  dropRate: number;
  dupRate: number;
  /** Delivery delay is uniform in [minDelayMs, maxDelayMs]: different delays reorder. */
  minDelayMs: number;
  maxDelayMs: number;
}

export interface SimOptions {
  nodeIds: NodeId[];
  /** Initial voters; the other nodes start as observers. */
  voterIds?: NodeId[];
  seed: number;
  raft?: Partial<RaftConfig>;
  tickMs?: number;
  /** Probability a pending Ready is persisted at a given tick (the rest wait: a crash loses them). */
  persistRate?: number;
  /** Extra bytes in each snapshot so it travels in several chunks. */
  snapshotPaddingBytes?: number;
}

export const SIM_RAFT: Partial<RaftConfig> = {
  electionTimeoutMs: 1000,
  heartbeatIntervalMs: 100,
  checkQuorumTimeoutMs: 2000,
  maxInflightAppends: 4,
  maxAppendBytes: 64,
  snapshotChunkBytes: 48,
};

export class SimNode {
  core: RaftCore | null = null;
  pending: Ready | null = null;
  machine: Machine = { applied: 0, hash: 0 };
  disk: Disk = { hard: EMPTY_HARD_STATE, snapshot: null, entries: [] };
  incarnation = 0;
  /** How many times the disk was wiped and re-formatted. */
  formats = 0;
  /** Highest commit index seen in this incarnation (it must never move back). */
  lastCommit = 0;
  constructor(
    readonly id: NodeId,
    /** Changes when the disk is wiped and re-formatted. */
    public directoryId: string,
  ) {}
  get up(): boolean {
    return this.core !== null;
  }
}

function fnv(hash: number, bytes: Uint8Array, index: number): number {
  let h = (hash ^ index) >>> 0;
  for (const b of bytes) h = Math.imul(h ^ b, 16777619) >>> 0;
  return Math.imul(h ^ 0x9e, 16777619) >>> 0;
}

function hex(b: Uint8Array): string {
  return Buffer.from(b).toString('hex');
}

export class SimCluster {
  now = 0;
  readonly nodes = new Map<NodeId, SimNode>();
  readonly rng: SeededRandom;
  readonly faults: NetworkFaults = { dropRate: 0, dupRate: 0, minDelayMs: 1, maxDelayMs: 10 };
  /** Directed links that are cut: `${from}>${to}`. */
  readonly cut = new Set<string>();
  readonly tickMs: number;
  readonly raft: Partial<RaftConfig>;
  readonly bootstrap: ClusterConfig;
  persistRate: number;
  private readonly padding: number;
  /** Sees every message handed to the network; returning true drops it (targeted faults). */
  intercept: ((m: Message) => boolean | void) | null = null;
  private net: InFlight[] = [];
  private seq = 0;

  // Checker state.
  /** term → leader elected in it [Election Safety]. */
  readonly leaders = new Map<number, NodeId>();
  /** index → the committed entry applied there, by anyone [State Machine Safety]. */
  readonly applied = new Map<number, { term: number; data: string; hash: number }>();
  /** `${index}/${term}` → identity of that entry and its predecessor's term [Log Matching]. */
  private readonly logIndex = new Map<string, { prevTerm: number; data: string; kind: string }>();
  maxApplied = 0;
  readonly readResults: Array<{ node: NodeId; context: string; index: number; minIndex: number }> = [];
  private readonly readsIssued = new Map<string, number>();
  stats = { messages: 0, dropped: 0, rejected: 0, snapshotsInstalled: 0, elections: 0 };

  constructor(opts: SimOptions) {
    this.rng = new SeededRandom(opts.seed);
    this.tickMs = opts.tickMs ?? 10;
    this.raft = { ...SIM_RAFT, ...opts.raft };
    this.persistRate = opts.persistRate ?? 0.8;
    this.padding = opts.snapshotPaddingBytes ?? 100;
    const voterIds = opts.voterIds ?? opts.nodeIds;
    this.bootstrap = {
      voters: voterIds.map((id) => ({ nodeId: id, directoryId: dirId(id) })),
      observers: opts.nodeIds.filter((id) => !voterIds.includes(id)),
    };
    for (const id of opts.nodeIds) {
      const n = new SimNode(id, dirId(id));
      this.nodes.set(id, n);
      this.start(n);
    }
  }

  node(id: NodeId): SimNode {
    const n = this.nodes.get(id);
    if (n === undefined) throw new Error(`no node ${id}`);
    return n;
  }

  core(id: NodeId): RaftCore {
    const c = this.node(id).core;
    if (c === null) throw new Error(`node ${id} is down`);
    return c;
  }

  private start(n: SimNode): void {
    n.core = new RaftCore({
      nodeId: n.id,
      directoryId: n.directoryId,
      clusterId: CLUSTER_ID,
      bootstrapConfig: this.bootstrap,
      persisted: { hardState: n.disk.hard, snapshot: n.disk.snapshot, entries: [...n.disk.entries] },
      nowMs: this.now,
      // Each incarnation draws its own election timeouts, reproducibly.
      random: new SeededRandom(this.rng.int(2 ** 31)),
      config: this.raft,
    });
    n.pending = null;
    n.machine = { applied: 0, hash: 0 };
    if (n.disk.snapshot) this.restoreMachine(n, n.disk.snapshot);
    n.lastCommit = n.core.commitIndex;
  }

  crash(id: NodeId): void {
    const n = this.node(id);
    // Writes handed to the disk but not persisted are lost with the process.
    n.core = null;
    n.pending = null;
  }

  /**
   * The disk is lost and re-formatted: an empty log and a new directory id. The node
   * keeps its node id, so the configuration still names it, with the old directory id:
   * it must not vote or be counted as that voter any more [KIP-853].
   */
  wipe(id: NodeId): void {
    const n = this.node(id);
    this.crash(id);
    n.disk = { hard: EMPTY_HARD_STATE, snapshot: null, entries: [] };
    n.formats += 1;
    n.directoryId = dirId(id, n.formats);
  }

  /** Whether a majority of `id`'s current voters still have the disk they were added with. */
  quorumIntact(): boolean {
    for (const n of this.nodes.values()) {
      const cfg = n.core?.clusterConfig();
      if (cfg === undefined) continue;
      const intact = cfg.voters.filter((v) => this.nodes.get(v.nodeId)?.directoryId === v.directoryId).length;
      if (intact < Math.floor(cfg.voters.length / 2) + 1) return false;
    }
    return true;
  }

  restart(id: NodeId): void {
    const n = this.node(id);
    if (n.up) return;
    n.incarnation += 1;
    this.start(n);
  }

  leader(): RaftCore | null {
    let best: RaftCore | null = null;
    for (const n of this.nodes.values()) {
      const c = n.core;
      if (c !== null && c.softState().role === 'leader' && (best === null || c.currentTerm > best.currentTerm)) best = c;
    }
    return best;
  }

  // ─── Faults ─────────────────────────────────────────────────────────────────────

  /** Splits nodes into groups that cannot talk across (symmetric partition). */
  partition(groups: NodeId[][]): void {
    this.cut.clear();
    const groupOf = new Map<NodeId, number>();
    groups.forEach((g, i) => g.forEach((id) => groupOf.set(id, i)));
    for (const a of this.nodes.keys()) {
      for (const b of this.nodes.keys()) {
        if (a !== b && (groupOf.get(a) ?? -1) !== (groupOf.get(b) ?? -1)) this.cut.add(`${a}>${b}`);
      }
    }
  }

  cutOneWay(from: NodeId, to: NodeId): void {
    this.cut.add(`${from}>${to}`);
  }

  heal(): void {
    this.cut.clear();
  }

  isolate(id: NodeId): void {
    for (const other of this.nodes.keys()) {
      if (other === id) continue;
      this.cut.add(`${id}>${other}`);
      this.cut.add(`${other}>${id}`);
    }
  }

  // ─── Actions on nodes ───────────────────────────────────────────────────────────

  propose(data: Uint8Array): { ok: boolean; index: number } {
    const l = this.leader();
    if (l === null) return { ok: false, index: 0 };
    const r = l.propose(data);
    return r.ok ? { ok: true, index: r.index } : { ok: false, index: 0 };
  }

  readIndex(id: NodeId, context: string): void {
    const n = this.node(id);
    if (n.core === null) return;
    // Linearizability: the read point must cover every entry committed before the read
    // began, i.e. everything any node has applied by now.
    this.readsIssued.set(context, this.maxKnownCommit());
    n.core.readIndex(context);
  }

  /** Takes a snapshot of a node's state machine at its applied index, as a driver would. */
  snapshot(id: NodeId): boolean {
    const n = this.node(id);
    const c = n.core;
    if (c === null || n.pending !== null) return false;
    const index = n.machine.applied;
    if (index <= (n.disk.snapshot?.meta.index ?? 0)) return false;
    const data = this.encodeMachine(n.machine);
    const meta = c.compact(index, data);
    // The driver stores the snapshot durably, then drops the entries it covers.
    n.disk.snapshot = { meta, data };
    n.disk.entries = n.disk.entries.filter((e) => e.index > index);
    return true;
  }

  private maxKnownCommit(): number {
    let m = this.maxApplied;
    for (const n of this.nodes.values()) if (n.core) m = Math.max(m, n.core.commitIndex);
    return m;
  }

  // ─── Time ───────────────────────────────────────────────────────────────────────

  /** Runs the cluster for `ms` of simulated time. */
  run(ms: number): void {
    const end = this.now + ms;
    while (this.now < end) this.tick();
  }

  /** Runs until `cond` holds or `ms` pass; returns whether it held. */
  runUntil(ms: number, cond: () => boolean): boolean {
    const end = this.now + ms;
    while (this.now < end) {
      if (cond()) return true;
      this.tick();
    }
    return cond();
  }

  tick(): void {
    this.now += this.tickMs;
    // Deliver what has arrived, in arrival order (ties by send order).
    if (this.net.length > 0) {
      const due: InFlight[] = [];
      const rest: InFlight[] = [];
      for (const f of this.net) (f.at <= this.now ? due : rest).push(f);
      this.net = rest;
      due.sort((a, b) => a.at - b.at || a.seq - b.seq);
      for (const f of due) {
        const n = this.nodes.get(f.msg.to);
        if (n?.core) {
          n.core.step(f.msg);
          this.drain(n);
        }
      }
    }
    for (const n of this.nodes.values()) {
      if (n.core === null) continue;
      n.core.tick(this.now);
      this.drain(n);
    }
  }

  /** Hands Readies to the "disk", persisting them (now or at a later tick). */
  private drain(n: SimNode): void {
    for (let guard = 0; guard < 100; guard++) {
      const c = n.core;
      if (c === null) return;
      this.checkCommit(n);
      // Checked the moment a node wins, before anything else can commit.
      if (c.softState().role === 'leader' && this.leaders.get(c.currentTerm) !== n.id) this.onLeader(n, c, c.currentTerm);
      if (n.pending === null) {
        if (!c.hasReady()) return;
        n.pending = c.ready();
      }
      if (this.rng.next() >= this.persistRate) return;
      const rd = n.pending;
      n.pending = null;
      this.persist(n, rd);
      this.sendAll(rd.messages);
      this.applyReady(n, rd);
      c.advance(rd);
    }
  }

  private persist(n: SimNode, rd: Ready): void {
    const d = n.disk;
    if (rd.snapshot) {
      d.snapshot = rd.snapshot;
      d.entries = d.entries.filter((e) => e.index > rd.snapshot!.meta.index);
    }
    if (rd.truncateFrom !== undefined) d.entries = d.entries.filter((e) => e.index < rd.truncateFrom!);
    const stableLast = (): number => d.entries[d.entries.length - 1]?.index ?? d.snapshot?.meta.index ?? 0;
    const termAt = (i: number): number | undefined => {
      if (i === (d.snapshot?.meta.index ?? 0)) return d.snapshot?.meta.term ?? 0;
      const first = d.entries[0]?.index;
      return first === undefined ? undefined : d.entries[i - first]?.term;
    };
    for (const e of rd.entries) {
      if (e.index !== stableLast() + 1) {
        throw new InvariantViolation('ReadyContiguity', `node ${n.id} persists ${e.index} after ${stableLast()}`);
      }
      const prevTerm = termAt(e.index - 1) ?? -1;
      d.entries.push(e);
      // Log Matching [Raft §5.3]: an (index, term) names one entry with one predecessor
      // term, so by induction two logs that share it agree on every entry before it.
      const key = `${e.index}/${e.term}`;
      const seen = this.logIndex.get(key);
      const me = { prevTerm, data: hex(e.data), kind: e.kind };
      if (seen === undefined) this.logIndex.set(key, me);
      else if (prevTerm !== -1 && seen.prevTerm !== -1 && (seen.prevTerm !== me.prevTerm || seen.data !== me.data || seen.kind !== me.kind)) {
        throw new InvariantViolation('LogMatching', `node ${n.id} entry ${key}: ${JSON.stringify(me)} vs ${JSON.stringify(seen)}`);
      }
    }
    if (rd.hardState) {
      if (rd.hardState.commitIndex < d.hard.commitIndex) {
        throw new InvariantViolation('CommitMonotonic', `node ${n.id} persisted commit ${rd.hardState.commitIndex} < ${d.hard.commitIndex}`);
      }
      if (rd.hardState.term < d.hard.term) {
        throw new InvariantViolation('TermMonotonic', `node ${n.id} persisted term ${rd.hardState.term} < ${d.hard.term}`);
      }
      d.hard = rd.hardState;
    }
  }

  private sendAll(msgs: readonly Message[]): void {
    for (const m of msgs) {
      this.stats.messages++;
      if (this.intercept?.(m) === true) {
        this.stats.dropped++;
        continue;
      }
      if (this.cut.has(`${m.from}>${m.to}`) || this.rng.next() < this.faults.dropRate) {
        this.stats.dropped++;
        continue;
      }
      const copies = this.rng.next() < this.faults.dupRate ? 2 : 1;
      for (let i = 0; i < copies; i++) {
        const span = this.faults.maxDelayMs - this.faults.minDelayMs;
        const delay = this.faults.minDelayMs + (span > 0 ? this.rng.int(span + 1) : 0);
        this.net.push({ at: this.now + delay, seq: this.seq++, msg: m });
      }
    }
  }

  private applyReady(n: SimNode, rd: Ready): void {
    this.stats.rejected += rd.rejected.length;
    if (rd.snapshot) {
      this.restoreMachine(n, rd.snapshot);
      this.stats.snapshotsInstalled++;
    }
    for (const e of rd.committedEntries) this.applyEntry(n, e);
    for (const r of rd.readStates) {
      const minIndex = this.readsIssued.get(r.context) ?? 0;
      this.readResults.push({ node: n.id, context: r.context, index: r.index, minIndex });
      if (r.index !== -1 && r.index < minIndex) {
        throw new InvariantViolation('ReadIndexLinearizable', `read ${r.context} on ${n.id} got index ${r.index} < ${minIndex} committed before it began`);
      }
    }
  }

  private onLeader(n: SimNode, c: RaftCore, term: number): void {
    this.stats.elections++;
    const prev = this.leaders.get(term);
    if (prev !== undefined && prev !== n.id) {
      throw new InvariantViolation('ElectionSafety', `term ${term} has leaders ${prev} and ${n.id}`);
    }
    this.leaders.set(term, n.id);
    // Leader Completeness [Raft §5.4]: the new leader holds every committed entry.
    for (const [index, e] of this.applied) {
      if (index <= c.log.snapshotIndex) continue;
      const t = c.log.term(index);
      if (t !== e.term) {
        throw new InvariantViolation('LeaderCompleteness', `leader ${n.id} of term ${term} has term ${t} at committed index ${index} (term ${e.term})`);
      }
    }
  }

  private applyEntry(n: SimNode, e: Entry): void {
    if (e.index !== n.machine.applied + 1) {
      throw new InvariantViolation('ApplyOrder', `node ${n.id} applies ${e.index} after ${n.machine.applied}`);
    }
    n.machine.applied = e.index;
    n.machine.hash = fnv(n.machine.hash, e.data, e.index);
    const seen = this.applied.get(e.index);
    const data = hex(e.data);
    if (seen === undefined) {
      this.applied.set(e.index, { term: e.term, data, hash: n.machine.hash });
      if (e.index > this.maxApplied) this.maxApplied = e.index;
    } else if (seen.term !== e.term || seen.data !== data || seen.hash !== n.machine.hash) {
      throw new InvariantViolation('StateMachineSafety', `node ${n.id} applied ${e.index}/${e.term} ${data}, another node ${seen.term} ${seen.data}`);
    }
  }

  private encodeMachine(m: Machine): Uint8Array {
    const head = new TextEncoder().encode(JSON.stringify(m));
    const out = new Uint8Array(head.byteLength + this.padding + 1);
    out.set(head);
    out[head.byteLength] = 0x0a;
    return out;
  }

  private restoreMachine(n: SimNode, s: Snapshot): void {
    const end = s.data.indexOf(0x0a);
    const m = JSON.parse(new TextDecoder().decode(s.data.subarray(0, end))) as Machine;
    if (m.applied !== s.meta.index) throw new InvariantViolation('SnapshotIndex', `snapshot meta ${s.meta.index} vs state ${m.applied}`);
    const seen = this.applied.get(m.applied);
    if (seen !== undefined && seen.hash !== m.hash) {
      throw new InvariantViolation('StateMachineSafety', `node ${n.id} restored a snapshot at ${m.applied} whose state differs`);
    }
    n.machine = { ...m };
  }

  private checkCommit(n: SimNode): void {
    const c = n.core!;
    if (c.commitIndex < n.lastCommit) {
      throw new InvariantViolation('CommitMonotonic', `node ${n.id} commit ${c.commitIndex} < ${n.lastCommit}`);
    }
    n.lastCommit = c.commitIndex;
  }

  /** Checks that every node's durable log agrees with the committed prefix (end of run). */
  checkLogsAgree(): void {
    for (const n of this.nodes.values()) {
      for (const e of n.disk.entries) {
        const a = this.applied.get(e.index);
        if (a !== undefined && e.index <= n.disk.hard.commitIndex && (a.term !== e.term || a.data !== hex(e.data))) {
          throw new InvariantViolation('NoCommittedEntryLost', `node ${n.id} stores ${e.index}/${e.term} over committed ${a.term}`);
        }
      }
    }
  }
}
