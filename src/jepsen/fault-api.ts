/**
 * The contract between the Jepsen runner (runner.ts, workload.ts) and the fault side
 * (cluster.ts, proxy.ts, nemesis.ts): what the runner may ask of a cluster under test and
 * of the nemesis. Keeping it in one small file lets both sides change independently.
 */
import type { HistoryRecorder } from './history.ts';
import type { ClusterObservations } from './checker.ts';

/** A fault kind the nemesis can inject (`--nemesis kill,pause,...`). */
export const FAULT_KINDS = ['kill', 'pause', 'partition', 'clock', 'power-loss'] as const;
export type FaultKind = (typeof FAULT_KINDS)[number];

/** Which node a fault aims at; resolved against the live cluster when the fault starts. */
export type FaultTarget = 'random' | 'controller' | 'partition-leader' | 'all';

/** How a partition fault cuts the links (all links run through per-link proxies). */
export type PartitionShape =
  | 'random-halves'
  | 'isolate-controller'
  /** The leader of a data partition loses its followers but keeps its clients. */
  | 'isolate-leader-from-followers'
  /** Each node sees a majority, no two see the same one (Jepsen's bridge/ring). */
  | 'majorities-ring'
  /** Packets from one random node to another are dropped in one direction only. */
  | 'one-way';

/** One fault in a schedule: start `atMs` after the workload starts, heal after `durationMs`. */
export interface FaultStep {
  readonly kind: FaultKind;
  readonly atMs: number;
  readonly durationMs: number;
  readonly target?: FaultTarget;
  /** partition faults only. */
  readonly shape?: PartitionShape;
  /** clock faults only: the jump (ms, may be negative). */
  readonly clockOffsetMs?: number;
  /** power-loss only: every node at once instead of one. */
  readonly allNodes?: boolean;
}

export interface JepsenClusterOptions {
  /** 3 or 5. */
  readonly nodes: number;
  /** A fresh directory the cluster owns (data dirs, configs, node logs). */
  readonly root: string;
  /** Extra broker config (e.g. `unclean.leader.election.enable=true` for --unsafe). */
  readonly overrides?: Readonly<Record<string, string>>;
}

/**
 * A cluster of real node processes whose every inter-node link and client→node link
 * runs through a fault proxy. All methods that change processes wait until the change
 * happened (the process exited, stopped or started), not until the cluster recovered.
 */
export interface JepsenCluster {
  readonly nodeIds: readonly number[];
  /** Client bootstrap addresses (through the client→node proxies). */
  readonly bootstrap: readonly string[];
  /** The directory of node logs, configs and data dirs (kept in the report on failure). */
  readonly root: string;
  /** Waits until a controller is elected and every running broker is unfenced. */
  waitReady(timeoutMs: number): Promise<void>;
  /** The active controller's node id as the cluster reports it now, or null. */
  controllerId(): Promise<number | null>;
  /** The leader of topic-partition `key` ("<topic>-<partition>") now, or null. */
  leaderOf(key: string): Promise<number | null>;
  kill(id: number): Promise<void>;
  start(id: number): Promise<void>;
  pause(id: number): Promise<void>;
  resume(id: number): Promise<void>;
  /** Cuts every directed link `from → to` listed; links not listed are left as they are. */
  cut(links: readonly (readonly [from: number | 'clients', to: number])[], mode?: 'drop' | 'one-way'): Promise<void>;
  /** Jumps node `id`'s wall clock by `offsetMs` (test-only injectable clock). */
  shiftClock(id: number, offsetMs: number): Promise<void>;
  /**
   * Kills the nodes with SIGKILL and cuts each partition segment file back to the length
   * last fsynced (what an unflushed page cache loses), then leaves them stopped. Resolves
   * with how much that cut: the history records it.
   */
  powerLoss(ids: readonly number[]): Promise<PowerLossResult>;
  /** Restores every link, resumes paused nodes, resets clocks and starts stopped nodes. */
  healAll(): Promise<void>;
  /**
   * What the checker's cluster checks need (controller events, metadata logs, replicas).
   * Call it last, after the final reads: it waits (bounded) for voters and replicas to
   * catch up, reads each partition's high watermark, then stops every node, because the
   * metadata logs and segment files are read offline. `stop()` is still needed after it.
   */
  observations(): Promise<ClusterObservations>;
  /** Stops every process by PID and closes every proxy; idempotent. */
  stop(): Promise<void>;
}

/** What a power loss took: segment files cut or removed, and the bytes they lost. */
export interface PowerLossResult {
  readonly cutFiles: number;
  readonly cutBytes: number;
}

/** Runs a schedule's faults against a cluster, recording each as nemesis ops. */
export interface Nemesis {
  /** Starts executing `steps` now (times relative to this call); resolves when all healed. */
  run(steps: readonly FaultStep[], signal: AbortSignal): Promise<void>;
}

export type StartJepsenCluster = (opts: JepsenClusterOptions) => Promise<JepsenCluster>;
export interface NemesisOptions {
  readonly seed: number;
  readonly keys: readonly string[];
  /**
   * Every power loss hits the node the first one hit (a power-loss step aimed at all
   * nodes included); kills go where the schedule says. Runs on flush.before.ack=false
   * topics need it: there an acknowledged write may sit unsynced on every replica, and
   * invariant 2 promises only that it survives while one in-sync replica keeps its
   * power. A kill keeps the page cache, so a killed replica still holds what it
   * acknowledged. But the controller cannot tell a kill from a power loss: a replica
   * restarted after either leaves those topics' eligible leader replicas [KIP-966], and
   * a partition whose replicas all stopped uncleanly waits for an unclean election,
   * which such runs hold after the heal (src/jepsen/recovery.ts).
   */
  readonly powerLossOneNode?: boolean;
}

export type CreateNemesis = (cluster: JepsenCluster, recorder: HistoryRecorder, opts: NemesisOptions) => Nemesis;
