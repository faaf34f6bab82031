// The Jepsen cluster under test: N real node processes (ProcessCluster) whose every
// directed inter-node link and every client→node link runs through its own FaultProxy.
//
// Links, per ordered pair of nodes (a, b): the Raft/controller connection a opens to b
// (a's `controller.quorum.voters` names the proxy), and the replica fetch connection a
// opens to b (`test.replication.peer.addresses`). Per node b: one clients→b proxy, which
// b advertises as its CLIENT endpoint, so clients that learn addresses from metadata
// still go through it. The harness itself (readiness, controller and leader lookups)
// talks to the nodes directly: it observes, it is not a client.
//
// Nodes listen on port 0 and publish the ports they got (`test.ports.file`); every start
// points the proxies towards that node at its new ports, and while it is down they
// refuse connections, as its host would.
//
// Cut semantics, for a directed link from → to:
// - `drop`: the connections `from` opens to `to` stall both ways (to's own connections
//   to `from` are a separate link).
// - `one-way`: bytes travelling from `from` to `to` are held on every connection between
//   them (requests on from's connections, answers on to's), the other direction flows.
// Cuts only add blocks; `healAll` removes all of them.
import { existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { constants } from 'node:os';
import type { ChildProcess } from 'node:child_process';
import { pino } from 'pino';
import { RaftkaError } from '../common/errors.ts';
import { componentLogger, createLogger, type Logger } from '../common/logger.ts';
import { RawClient } from '../client/raw-client.ts';
import { DEV_OVERRIDES, ProcessCluster, signalHandledElsewhere } from '../node/process-cluster.ts';
import { cutToFsyncedLengths, readClockAck, readPortsFile, writeClockControl, type PortsFile, type PowerLossCut } from '../node/test-hooks.ts';
import type { DescribeClusterResponse, MetadataResponse } from '../proto/raftka.ts';
import type { ClusterObservations, PartitionReplicas, VoterLog } from './checker.ts';
import type { JepsenCluster, JepsenClusterOptions, PowerLossResult, StartJepsenCluster } from './fault-api.ts';
import { readControllerEvents, readMetadataLog, readReplicaLog, replicaImages } from './observations.ts';
import { FaultProxy, type ProxyMode } from './proxy.ts';

type From = number | 'clients';

/** Blocks on one proxy: bytes towards the target (requests), towards the client (answers). */
interface ProxyState {
  readonly proxy: FaultProxy;
  toTarget: boolean;
  toClient: boolean;
}

function modeOf(s: ProxyState): ProxyMode {
  if (s.toTarget && s.toClient) return 'drop';
  if (s.toTarget) return 'to-client-only';
  if (s.toClient) return 'to-target-only';
  return 'pass';
}

/** Polls with a deadline (the harness's own waits: process states, acknowledgements). */
async function until(what: string, cond: () => boolean | Promise<boolean>, timeoutMs: number, intervalMs = 20): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!(await cond())) {
    if (Date.now() > deadline) throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}`);
    await new Promise((r) => setTimeout(r, intervalMs));
  }
}

/** Without /proc (not Linux) pause and resume return once the signal is sent. */
const HAS_PROC = existsSync('/proc/self/stat');

/** The process state letter from /proc (T = stopped by a signal). */
function procState(pid: number): string | undefined {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
    return stat.slice(stat.lastIndexOf(')') + 2, stat.lastIndexOf(')') + 3);
  } catch {
    return undefined;
  }
}

function splitKey(key: string): { topic: string; partition: number } {
  const i = key.lastIndexOf('-');
  const partition = Number(key.slice(i + 1));
  if (i <= 0 || !Number.isInteger(partition) || partition < 0) throw new RaftkaError('INVALID_REQUEST', `partition key must be <topic>-<partition>, got ${JSON.stringify(key)}`);
  return { topic: key.slice(0, i), partition };
}

/** What the Jepsen tests need beyond the runner's contract. */
export interface ProcessJepsenCluster extends JepsenCluster {
  pid(id: number): number | undefined;
  isRunning(id: number): boolean;
  isPaused(id: number): boolean;
  dataDir(id: number): string;
  logPath(id: number): string;
  ledgerPath(id: number): string;
  /** Client address of node `id` through its clients→node proxy. */
  clientAddress(id: number): string;
  /** The files the last `powerLoss` cut or removed. */
  lastPowerLoss(): readonly PowerLossCut[];
  /** The current mode of every proxy, keyed "a->b raft", "a->b replication", "clients->b". */
  linkModes(): Record<string, ProxyMode>;
  linkConnections(): Record<string, number>;
}

/** The signals that stop a run: Ctrl-C, and a supervisor's or `timeout`'s SIGTERM. */
export const STOP_SIGNALS = ['SIGINT', 'SIGTERM'] as const;

/** A shell's exit code for a process ended by `signal` (130 for SIGINT, 143 for SIGTERM). */
export function signalExitCode(signal: NodeJS.Signals): number {
  return 128 + constants.signals[signal];
}

class JepsenProcessCluster implements ProcessJepsenCluster {
  readonly nodeIds: readonly number[];
  readonly bootstrap: readonly string[];
  private readonly paused = new Set<number>();
  private readonly skew = new Map<number, number>();
  private clockSeq = 0;
  private cuts: PowerLossCut[] = [];
  private stopping: Promise<void> | undefined;
  private readonly onSignal = (signal: NodeJS.Signals) => this.emergencyStop(signal);
  /** The ports each running node listens on (learned at its start). */
  private readonly ports = new Map<number, PortsFile>();

  constructor(
    readonly root: string,
    private readonly pc: ProcessCluster,
    private readonly raftProxies: Map<string, ProxyState>,
    private readonly fetchProxies: Map<string, ProxyState>,
    private readonly clientProxies: Map<number, ProxyState>,
    private readonly log: Logger,
    private readonly closeLog: () => void,
  ) {
    this.nodeIds = pc.spec.nodeIds;
    this.bootstrap = this.nodeIds.map((id) => this.clientAddress(id));
    // Ctrl-C (or a SIGTERM from a supervisor) must not leave nodes running or ports bound.
    for (const s of STOP_SIGNALS) process.on(s, this.onSignal);
  }

  // ---- identity ----

  pid(id: number): number | undefined {
    return this.pc.isRunning(id) ? this.pc.pid(id) : undefined;
  }
  isRunning(id: number): boolean {
    return this.pc.isRunning(id);
  }
  isPaused(id: number): boolean {
    return this.paused.has(id);
  }
  dataDir(id: number): string {
    return this.pc.dataDir(id);
  }
  logPath(id: number): string {
    return this.pc.logPath(id);
  }
  ledgerPath(id: number): string {
    return join(this.root, `node-${id}.fsync-ledger`);
  }
  private clockPath(id: number): string {
    return join(this.root, `node-${id}.clock`);
  }
  clientAddress(id: number): string {
    return this.clientProxies.get(id)!.proxy.address;
  }
  lastPowerLoss(): readonly PowerLossCut[] {
    return this.cuts;
  }
  linkModes(): Record<string, ProxyMode> {
    const out: Record<string, ProxyMode> = {};
    for (const [k, s] of this.raftProxies) out[`${k} raft`] = modeOf(s);
    for (const [k, s] of this.fetchProxies) out[`${k} replication`] = modeOf(s);
    for (const [id, s] of this.clientProxies) out[`clients->${id}`] = modeOf(s);
    return out;
  }

  /** Open connections per proxy, same keys as `linkModes` (evidence the links are used). */
  linkConnections(): Record<string, number> {
    const out: Record<string, number> = {};
    for (const [k, s] of this.raftProxies) out[`${k} raft`] = s.proxy.connections;
    for (const [k, s] of this.fetchProxies) out[`${k} replication`] = s.proxy.connections;
    for (const [id, s] of this.clientProxies) out[`clients->${id}`] = s.proxy.connections;
    return out;
  }

  private checkId(id: number): void {
    if (!this.nodeIds.includes(id)) throw new RaftkaError('INVALID_REQUEST', `no node ${id} in this cluster (nodes ${this.nodeIds.join(', ')})`);
  }

  /** Running and not paused: the nodes that can answer. */
  private upIds(): number[] {
    return this.nodeIds.filter((id) => this.pc.isRunning(id) && !this.paused.has(id));
  }

  private async ask<T>(id: number, f: (c: RawClient) => Promise<T>, timeoutMs = 1500): Promise<T | undefined> {
    const port = this.ports.get(id)?.CLIENT;
    if (port === undefined) return undefined;
    const c = new RawClient(`127.0.0.1:${port}`, { timeoutMs });
    try {
      return await f(c);
    } catch {
      return undefined;
    } finally {
      c.close();
    }
  }

  // ---- readiness and lookups ----

  async waitReady(timeoutMs: number): Promise<void> {
    const deadline = Date.now() + timeoutMs;
    let last: DescribeClusterResponse | undefined;
    for (;;) {
      const up = this.upIds();
      for (const id of this.nodeIds) {
        const p = this.pc.procs.get(id);
        if (p && p.exitCode !== null && p.exitCode !== 0) throw new Error(`node ${id} exited with code ${p.exitCode}; see ${this.logPath(id)}:\n${this.pc.logTail(id, 20)}`);
      }
      for (const id of up) {
        const r = await this.ask(id, (c) => c.describeCluster());
        if (!r || r.errorCode !== 0) continue;
        last = r;
        // The view alone may show a killed process's registration, unfenced until the
        // restarted one registers; the process's own log says when it is unfenced.
        if (r.controllerId >= 0 && up.every((u) => r.brokers.some((b) => b.id === u && !b.fenced) && this.pc.processUnfenced(u))) return;
        break;
      }
      if (Date.now() > deadline) {
        const tails = up.map((id) => `--- node ${id} (${this.logPath(id)}) ---\n${this.pc.logTail(id, 12)}`).join('\n');
        throw new Error(`jepsen cluster not ready after ${timeoutMs} ms (last view: ${JSON.stringify(last)})\n${tails}`);
      }
      await new Promise((r) => setTimeout(r, 100));
    }
  }

  /** The answer most nodes give: an isolated ex-leader may still name itself. */
  async controllerId(): Promise<number | null> {
    const answers = await Promise.all(this.upIds().map((id) => this.ask(id, (c) => c.describeCluster())));
    const votes = new Map<number, number>();
    for (const r of answers) if (r && r.errorCode === 0 && r.controllerId >= 0) votes.set(r.controllerId, (votes.get(r.controllerId) ?? 0) + 1);
    let best: number | null = null;
    let bestVotes = 0;
    for (const [id, n] of votes) {
      if (n > bestVotes) [best, bestVotes] = [id, n];
    }
    return best;
  }

  /** The leader in the newest leader epoch any node reports. */
  async leaderOf(key: string): Promise<number | null> {
    const { topic, partition } = splitKey(key);
    const answers = await Promise.all(this.upIds().map((id) => this.ask(id, (c) => c.metadata({ topics: [topic] }))));
    let best: { leader: number; epoch: number } | undefined;
    for (const r of answers) {
      const p = r?.topics.find((t) => t.name === topic && t.errorCode === 0)?.partitions.find((x) => x.partition === partition && x.errorCode === 0);
      if (p && p.leaderId >= 0 && (!best || p.leaderEpoch > best.epoch)) best = { leader: p.leaderId, epoch: p.leaderEpoch };
    }
    return best?.leader ?? null;
  }

  // ---- processes ----

  async kill(id: number): Promise<void> {
    this.checkId(id);
    await this.pc.kill9(id);
    this.paused.delete(id);
  }

  /** Points every proxy towards node `id` at its current ports, or at nothing while it is down. */
  private retarget(id: number, ports: PortsFile | undefined): void {
    const at = (port: number | undefined) => (port === undefined ? undefined : `127.0.0.1:${port}`);
    if (ports) this.ports.set(id, ports);
    else this.ports.delete(id);
    this.clientProxies.get(id)!.proxy.setTarget(at(ports?.CLIENT));
    for (const a of this.nodeIds) {
      this.raftProxies.get(`${a}->${id}`)?.proxy.setTarget(at(ports?.CONTROLLER));
      this.fetchProxies.get(`${a}->${id}`)?.proxy.setTarget(at(ports?.REPLICATION));
    }
  }

  /** Spawns node `id` and waits until it listens (it publishes its ports), at most 60 s. */
  async start(id: number): Promise<void> {
    this.checkId(id);
    if (this.pc.isRunning(id)) return;
    const child: ChildProcess = this.pc.start(id);
    child.once('exit', () => {
      if (this.pc.procs.get(id) === child) this.retarget(id, undefined);
    });
    await new Promise<void>((resolve, reject) => {
      child.once('spawn', resolve);
      child.once('error', reject);
    });
    const path = join(this.root, `node-${id}.ports`);
    let ports: PortsFile | undefined;
    await until(
      `node ${id} (pid ${child.pid}) to listen`,
      () => {
        if (child.exitCode !== null || child.signalCode !== null) throw new Error(`node ${id} exited (${child.exitCode ?? child.signalCode}) while starting; see ${this.logPath(id)}:\n${this.pc.logTail(id, 20)}`);
        ports = readPortsFile(path);
        return ports?.pid === child.pid;
      },
      60_000,
    );
    this.retarget(id, ports);
  }

  async pause(id: number): Promise<void> {
    this.checkId(id);
    const pid = this.pid(id);
    if (pid === undefined || this.paused.has(id)) return;
    process.kill(pid, 'SIGSTOP');
    this.paused.add(id);
    if (!HAS_PROC) return;
    await until(`node ${id} (pid ${pid}) to stop`, () => procState(pid) === 'T' || !this.pc.isRunning(id), 5000, 5);
  }

  async resume(id: number): Promise<void> {
    this.checkId(id);
    const pid = this.pid(id);
    this.paused.delete(id);
    if (pid === undefined) return;
    process.kill(pid, 'SIGCONT');
    if (!HAS_PROC) return;
    await until(`node ${id} (pid ${pid}) to continue`, () => procState(pid) !== 'T', 5000, 5);
  }

  // ---- network ----

  private proxiesBetween(a: number, b: number): ProxyState[] {
    const k = `${a}->${b}`;
    return [this.raftProxies.get(k), this.fetchProxies.get(k)].filter((s): s is ProxyState => s !== undefined);
  }

  async cut(links: readonly (readonly [from: From, to: number])[], mode: 'drop' | 'one-way' = 'drop'): Promise<void> {
    const touched = new Set<ProxyState>();
    const block = (s: ProxyState | undefined, dir: 'toTarget' | 'toClient') => {
      if (!s) return;
      s[dir] = true;
      touched.add(s);
    };
    for (const [from, to] of links) {
      this.checkId(to);
      if (from !== 'clients') this.checkId(from);
      if (from === to) continue;
      if (from === 'clients') {
        const s = this.clientProxies.get(to);
        block(s, 'toTarget');
        if (mode === 'drop') block(s, 'toClient');
      } else if (mode === 'drop') {
        for (const s of this.proxiesBetween(from, to)) {
          block(s, 'toTarget');
          block(s, 'toClient');
        }
      } else {
        for (const s of this.proxiesBetween(from, to)) block(s, 'toTarget');
        for (const s of this.proxiesBetween(to, from)) block(s, 'toClient');
      }
    }
    for (const s of touched) s.proxy.setMode(modeOf(s));
    this.log.info({ links, mode }, 'links cut');
  }

  private allProxies(): ProxyState[] {
    return [...this.raftProxies.values(), ...this.fetchProxies.values(), ...this.clientProxies.values()];
  }

  // ---- clock ----

  private async setSkew(id: number, skewMs: number, wait: boolean): Promise<void> {
    this.skew.set(id, skewMs);
    const seq = ++this.clockSeq;
    const path = this.clockPath(id);
    writeClockControl(path, skewMs, seq);
    // A stopped or paused node applies it when it runs again; nothing to wait for.
    if (wait && this.pc.isRunning(id) && !this.paused.has(id)) {
      await until(`node ${id} to apply clock skew ${skewMs} ms`, () => readClockAck(path) === seq || !this.pc.isRunning(id), 10_000);
    }
  }

  async shiftClock(id: number, offsetMs: number): Promise<void> {
    this.checkId(id);
    if (!Number.isFinite(offsetMs)) throw new RaftkaError('INVALID_REQUEST', `clock offset must be a finite number of ms, got ${offsetMs}`);
    await this.setSkew(id, (this.skew.get(id) ?? 0) + offsetMs, true);
    this.log.info({ node: id, offsetMs, skewMs: this.skew.get(id) }, 'clock shifted');
  }

  // ---- power loss ----

  async powerLoss(ids: readonly number[]): Promise<PowerLossResult> {
    for (const id of ids) this.checkId(id);
    // All at once: a shared power failure stops every node before any file is cut.
    await Promise.all(ids.map((id) => this.kill(id)));
    const cuts: PowerLossCut[] = [];
    for (const id of ids) cuts.push(...cutToFsyncedLengths(this.dataDir(id), this.ledgerPath(id)));
    this.cuts = cuts;
    this.log.info({ nodes: ids, files: cuts.length }, 'power loss: segment files cut to their fsynced lengths');
    return { cutFiles: cuts.length, cutBytes: cuts.reduce((n, c) => n + c.from - Math.max(0, c.to), 0) };
  }

  // ---- heal ----

  async healAll(): Promise<void> {
    for (const s of this.allProxies()) {
      s.toTarget = false;
      s.toClient = false;
      s.proxy.setMode('pass');
    }
    const skewed = this.nodeIds.filter((id) => (this.skew.get(id) ?? 0) !== 0);
    // Written before any start, so a restarted node boots with the true clock.
    const running = new Set(this.nodeIds.filter((id) => this.pc.isRunning(id)));
    for (const id of [...this.paused]) await this.resume(id);
    await Promise.all(skewed.map((id) => this.setSkew(id, 0, running.has(id))));
    await Promise.all(this.nodeIds.filter((id) => !this.pc.isRunning(id)).map((id) => this.start(id)));
    this.log.info('healed: links restored, nodes resumed and started, clocks reset');
  }

  // ---- observations ----

  /**
   * Quiesces (waits, bounded, for every voter and every replica to catch up), reads each
   * partition's high watermark from its leader and the ISR, then stops every node and
   * reads their metadata logs and replica logs offline. Leaves the cluster stopped.
   */
  async observations(): Promise<ClusterObservations> {
    const partitions: { topic: string; partition: number; leader: number; isr: number[]; hw: number }[] = [];
    try {
      await this.quiesce(30_000);
    } catch (e) {
      this.log.warn({ err: (e as Error).message }, 'cluster did not quiesce; observing it as it is');
    }
    const meta = await this.metadataFromController();
    for (const t of meta?.topics ?? []) {
      for (const p of t.partitions) {
        if (p.leaderId < 0) continue;
        const r = await this.ask(p.leaderId, (c) => c.listOffsets({ topics: [{ name: t.name, partitions: [{ partition: p.partition, timestamp: -1 }] }] }));
        const o = r?.topics[0]?.partitions[0];
        if (o && o.errorCode === 0) partitions.push({ topic: t.name, partition: p.partition, leader: p.leaderId, isr: p.isr, hw: o.offset });
        else this.log.warn({ key: `${t.name}-${p.partition}`, leader: p.leaderId, error: o?.errorMessage ?? 'no answer' }, 'no high watermark from the leader; replicas of this partition not compared');
      }
    }
    // SIGKILL, all at once: a controlled shutdown would move leaderships and append
    // metadata records that the voters stopping first could never receive.
    await this.stopProcesses(true);
    const controllerEvents = this.nodeIds.flatMap((id) => readControllerEvents(this.logPath(id), id));
    const voters: VoterLog[] = [];
    let committedIndex = 0;
    for (const id of this.nodeIds) {
      try {
        const l = await readMetadataLog(this.dataDir(id));
        voters.push({ node: id, entries: l.entries, snapshotIndex: l.snapshotIndex });
        committedIndex = Math.max(committedIndex, l.commitIndex);
      } catch (e) {
        this.log.warn({ node: id, err: (e as Error).message }, 'cannot read the metadata log');
      }
    }
    const replicas: PartitionReplicas[] = [];
    for (const p of partitions) {
      // ISR members must hold every record below the high watermark; others may lag.
      const logs = await Promise.all(p.isr.map((id) => readReplicaLog(join(this.dataDir(id), `${p.topic}-${p.partition}`), id)));
      replicas.push({ key: `${p.topic}-${p.partition}`, highWatermark: p.hw, replicas: replicaImages(logs, p.hw) });
    }
    return { controllerEvents, metadataLogs: { voters, committedIndex }, replicas };
  }

  private async metadataFromController(): Promise<MetadataResponse | undefined> {
    const ctl = await this.controllerId();
    const order = ctl === null ? this.upIds() : [ctl, ...this.upIds().filter((id) => id !== ctl)];
    for (const id of order) {
      const r = await this.ask(id, (c) => c.metadata({}));
      if (r && r.errorCode === 0) return r;
    }
    return undefined;
  }

  /** Every voter caught up with the Raft leader and every partition's ISR complete. */
  private async quiesce(timeoutMs: number): Promise<void> {
    let waitingFor = 'a controller';
    try {
      await until(
        'voters and replicas to catch up',
        async () => {
          const ctl = await this.controllerId();
          if (ctl === null) return false;
          const d = await this.ask(ctl, (c) => c.describeCluster());
          const lagging = d?.voters.filter((v) => v.lag !== 0).map((v) => `${v.id} (lag ${v.lag})`);
          if (!d || lagging!.length > 0) {
            waitingFor = `voters ${lagging?.join(', ') ?? '?'} of controller ${ctl}`;
            return false;
          }
          const m = await this.ask(ctl, (c) => c.metadata({}));
          if (!m) return false;
          const behind = m.topics.flatMap((t) =>
            t.partitions.filter((p) => p.leaderId < 0 || !p.replicas.every((r) => p.isr.includes(r))).map((p) => `${t.name}-${p.partition} (leader ${p.leaderId}, replicas ${p.replicas}, isr ${p.isr})`),
          );
          waitingFor = `partitions ${behind.join(', ')}`;
          return behind.length === 0;
        },
        timeoutMs,
        200,
      );
    } catch (e) {
      throw new Error(`${(e as Error).message}; still waiting for ${waitingFor}`, { cause: e });
    }
  }

  // ---- stop ----

  private async stopProcesses(kill = false): Promise<void> {
    for (const id of [...this.paused]) {
      const pid = this.pid(id);
      if (pid !== undefined) process.kill(pid, 'SIGCONT');
    }
    this.paused.clear();
    // The data is thrown away or read offline: no controlled shutdown needed, but a short
    // grace lets logs flush their last lines.
    if (kill) await this.pc.killAll();
    else await this.pc.stopAll(2000);
  }

  stop(): Promise<void> {
    return (this.stopping ??= (async () => {
      for (const s of STOP_SIGNALS) process.off(s, this.onSignal);
      await this.stopProcesses();
      await Promise.all(this.allProxies().map((s) => s.proxy.close()));
      this.log.info('jepsen cluster stopped');
      this.closeLog();
    })());
  }

  /** SIGINT/SIGTERM: kill synchronously, then let any other handler run or exit as the signal would. */
  private emergencyStop(signal: NodeJS.Signals): void {
    for (const id of this.nodeIds) {
      const p = this.pc.procs.get(id);
      if (p && p.exitCode === null && p.signalCode === null) p.kill('SIGKILL');
    }
    void this.stop();
    if (!signalHandledElsewhere(signal)) process.exit(signalExitCode(signal));
  }
}

export const startJepsenCluster: StartJepsenCluster = async (opts: JepsenClusterOptions) => {
  const n = opts.nodes;
  if (!Number.isInteger(n) || n < 1 || n > 9) throw new RaftkaError('INVALID_CONFIG', `a jepsen cluster has 1 to 9 nodes, got ${n}`);
  // The harness's own log sits next to the nodes' logs, not on the runner's stdout.
  const destination = pino.destination({ dest: join(opts.root, 'jepsen.log'), sync: true, mkdir: true });
  const logger = createLogger({ name: 'jepsen', destination });
  let logOpen = true;
  const endLog = () => {
    if (logOpen) destination.end();
    logOpen = false;
  };
  const log = componentLogger(logger, 'jepsen-cluster');
  const ids = Array.from({ length: n }, (_, i) => i + 1);
  const raftProxies = new Map<string, ProxyState>();
  const fetchProxies = new Map<string, ProxyState>();
  const clientProxies = new Map<number, ProxyState>();
  const all: FaultProxy[] = [];
  // Targets are set when each node has started and published its ports.
  const proxy = async (name: string): Promise<ProxyState> => {
    const p = await FaultProxy.start({ target: undefined, name, logger });
    all.push(p);
    return { proxy: p, toTarget: false, toClient: false };
  };
  try {
    for (const b of ids) {
      clientProxies.set(b, await proxy(`clients->${b}`));
      for (const a of ids) {
        // A node reaches itself as a voter too (its controller client when it leads);
        // that link is never cut.
        raftProxies.set(`${a}->${b}`, await proxy(`${a}->${b} raft`));
        if (a !== b) fetchProxies.set(`${a}->${b}`, await proxy(`${a}->${b} replication`));
      }
    }
    const nodeOverrides: Record<number, Record<string, string>> = {};
    for (const id of ids) {
      nodeOverrides[id] = {
        // Port 0 advertises the bound port; clients get the proxy.
        'advertised.listeners': `CLIENT://127.0.0.1:${clientProxies.get(id)!.proxy.port},REPLICATION://127.0.0.1:0,CONTROLLER://127.0.0.1:0`,
        'test.replication.peer.addresses': ids
          .filter((p) => p !== id)
          .map((p) => `${p}@${fetchProxies.get(`${id}->${p}`)!.proxy.address}`)
          .join(','),
        'test.fsync.ledger': join(opts.root, `node-${id}.fsync-ledger`),
        'test.clock.control': join(opts.root, `node-${id}.clock`),
        'test.ports.file': join(opts.root, `node-${id}.ports`),
      };
    }
    const pc = ProcessCluster.prepare({
      root: opts.root,
      nodeIds: ids,
      // Every listener on port 0: a port picked in advance can be taken while its node is
      // down (even as the local port of an outgoing connection), failing the restart.
      clientPorts: ids.map(() => 0),
      controllerPorts: ids.map(() => 0),
      replicationPorts: ids.map(() => 0),
      raftAddress: (from, to) => raftProxies.get(`${from}->${to}`)!.proxy.address,
      overrides: { ...DEV_OVERRIDES, 'raft.election.timeout.ms': '500', ...opts.overrides },
      nodeOverrides,
    });
    const cluster = new JepsenProcessCluster(opts.root, pc, raftProxies, fetchProxies, clientProxies, log, endLog);
    try {
      await Promise.all(ids.map((id) => cluster.start(id)));
    } catch (e) {
      await cluster.stop();
      throw e;
    }
    log.info({ nodes: ids, root: opts.root, bootstrap: cluster.bootstrap }, 'jepsen cluster started');
    return cluster;
  } catch (e) {
    await Promise.all(all.map((p) => p.close()));
    endLog();
    throw e;
  }
};

/** The same, typed with the test-facing extras. */
export const startProcessJepsenCluster = startJepsenCluster as (opts: JepsenClusterOptions) => Promise<ProcessJepsenCluster>;
