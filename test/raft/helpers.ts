// Small helpers for unit tests that drive cores by hand (the simulator in sim/ drives
// them at scale). "Persisting" a Ready here means taking it and calling advance(): the
// cores keep their log in memory, and these tests do not crash nodes unless they say so.
import { SeededRandom } from '../../src/common/random.ts';
import { RaftCore } from '../../src/raft/core.ts';
import {
  EMPTY_HARD_STATE,
  type ClusterConfig,
  type Message,
  type NodeId,
  type PersistedState,
  type RaftConfig,
  type Ready,
} from '../../src/raft/types.ts';
import { CLUSTER_ID, dirId } from './sim/cluster.ts';

export const EMPTY: PersistedState = { hardState: EMPTY_HARD_STATE, snapshot: null, entries: [] };

export function configOf(voters: NodeId[], observers: NodeId[] = []): ClusterConfig {
  return { voters: voters.map((id) => ({ nodeId: id, directoryId: dirId(id) })), observers };
}

export interface CoreOptions {
  voters?: NodeId[];
  observers?: NodeId[];
  persisted?: PersistedState;
  raft?: Partial<RaftConfig>;
  seed?: number;
  nowMs?: number;
  directoryId?: string;
  clusterId?: string;
}

export function newCore(id: NodeId, o: CoreOptions = {}): RaftCore {
  return new RaftCore({
    nodeId: id,
    directoryId: o.directoryId ?? dirId(id),
    clusterId: o.clusterId ?? CLUSTER_ID,
    bootstrapConfig: configOf(o.voters ?? [1, 2, 3], o.observers ?? []),
    persisted: o.persisted ?? EMPTY,
    nowMs: o.nowMs ?? 0,
    random: new SeededRandom(o.seed ?? id),
    config: { electionTimeoutMs: 1000, heartbeatIntervalMs: 100, checkQuorumTimeoutMs: 2000, ...o.raft },
  });
}

/** Takes the core's Ready (if any), "persists" it and returns it. */
export function take(core: RaftCore): Ready | null {
  if (!core.hasReady()) return null;
  const rd = core.ready();
  core.advance(rd);
  return rd;
}

/** Takes every pending Ready and returns all their messages; `onReady` sees each Ready. */
export function outbox(core: RaftCore, onReady?: (rd: Ready) => void): Message[] {
  const out: Message[] = [];
  for (let rd = take(core); rd !== null; rd = take(core)) {
    onReady?.(rd);
    out.push(...rd.messages);
  }
  return out;
}

/**
 * Delivers messages among `cores` until none are left; `filter` may drop some. Returns
 * every message delivered, for assertions about what was said.
 */
export function exchange(
  cores: Map<NodeId, RaftCore>,
  filter: (m: Message) => boolean = () => true,
  onReady?: (id: NodeId, rd: Ready) => void,
): Message[] {
  const delivered: Message[] = [];
  for (let round = 0; round < 1000; round++) {
    const msgs: Message[] = [];
    for (const [id, c] of cores) msgs.push(...outbox(c, (rd) => onReady?.(id, rd)));
    if (msgs.length === 0) return delivered;
    for (const m of msgs) {
      const to = cores.get(m.to);
      if (to === undefined || !filter(m)) continue;
      delivered.push(m);
      to.step(m);
    }
  }
  throw new Error('exchange did not quiesce');
}

export function cluster(ids: NodeId[], o: CoreOptions = {}): Map<NodeId, RaftCore> {
  return new Map(ids.map((id) => [id, newCore(id, { voters: ids, ...o })]));
}

export function bytes(s: string): Uint8Array {
  return new TextEncoder().encode(s);
}

export function text(b: Uint8Array): string {
  return new TextDecoder().decode(b);
}
