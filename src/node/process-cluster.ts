// A cluster of real Raftka processes on 127.0.0.1: formats data dirs on first start,
// writes each node's server.properties, spawns `raftka broker` per node (from the broker
// bundle, see broker-bundle.ts), and stops every process it started by PID. Used by
// `raftka dev`, the multi-process tests and the benchmarks.
import { spawn, type ChildProcess } from 'node:child_process';
import { closeSync, existsSync, fstatSync, mkdirSync, openSync, readFileSync, readSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { createServer } from 'node:net';
import { join } from 'node:path';
import { formatDir, readMetaProperties } from '../io/meta-properties.ts';
import { randomUuid } from '../common/ids.ts';
import { RawClient } from '../client/raw-client.ts';
import type { DescribeClusterResponse } from '../proto/raftka.ts';
import { brokerLaunch } from './broker-bundle.ts';

export interface ProcessClusterSpec {
  root: string;
  nodeIds: readonly number[];
  clientPorts: readonly number[];
  controllerPorts: readonly number[];
  /** Extra configuration for every node. */
  overrides?: Record<string, string>;
  /** Per-node extra configuration. */
  nodeOverrides?: Record<number, Record<string, string>>;
  /** Nodes that run as brokers only (Raft observers); the rest are voters. */
  brokerOnly?: readonly number[];
  /** Environment for the node processes (e.g. RAFTKA_LOG_LEVEL). */
  env?: NodeJS.ProcessEnv;
  /** Extra node flags for the node processes (e.g. `--cpu-prof`, which NODE_OPTIONS refuses). */
  nodeArgs?: readonly string[];
  /** Fixed REPLICATION listener ports (default: any free port, advertised as bound). */
  replicationPorts?: readonly number[];
  /**
   * The Raft address node `from` dials for voter `to`, `to === from` included (default:
   * `to`'s own listener); the Jepsen cluster points it at a per-link fault proxy.
   */
  raftAddress?: (from: number, to: number) => string;
}

/** Defaults that make a local cluster fail over quickly (Kafka's are for real networks). */
export const DEV_OVERRIDES: Record<string, string> = {
  'broker.session.timeout.ms': '2000',
  'broker.heartbeat.interval.ms': '250',
  'replica.lag.time.max.ms': '10000',
  'min.insync.replicas': '2',
  'default.replication.factor': '3',
  'num.partitions': '3',
  'controlled.shutdown.timeout.ms': '5000',
  'group.min.session.timeout.ms': '1000',
  'group.initial.rebalance.delay.ms': '0',
};

/**
 * Ports nobody listens on right now, for servers a test or benchmark starts moments later.
 * Chosen at random below the kernel's ephemeral range and checked by binding: a port the
 * kernel handed out for port 0 lies inside that range, where any process's outgoing
 * connection may take it as its local port before our server binds it (seen as
 * EADDRINUSE in parallel test runs). Each port is also reserved for the lifetime of this
 * process (see reservePort), so parallel test processes never pick the same one in the
 * seconds between the check and their nodes binding it, nor one a node of theirs will
 * bind again on a restart.
 */
export async function freePorts(n: number, random: () => number = Math.random): Promise<number[]> {
  const [low, high] = listenPortRange();
  const out: number[] = [];
  for (let attempt = 0; out.length < n; attempt++) {
    if (attempt > 100 * n + 1000) throw new Error(`no ${n} free ports found in [${low}, ${high})`);
    const port = low + Math.floor(random() * (high - low));
    if (out.includes(port) || !(await canListen(port))) continue;
    if (reservePort(port)) out.push(port);
  }
  return out;
}

/** Where freePorts reservations live: one file per port, named by it, holding the owner's pid. */
export const PORT_RESERVATIONS_DIR = join(tmpdir(), 'raftka-port-reservations');
const reservations = new Set<string>();
let reservationsReleasedAtExit = false;

/**
 * Claims `port` for this process by creating its reservation file exclusively; false when
 * another process (or an earlier call here) holds it. A holder that died without removing
 * its file keeps the port out of use: there is no race-free way to take a file over, and
 * the range has twenty thousand more. Reservations go when this process exits.
 */
function reservePort(port: number): boolean {
  const file = join(PORT_RESERVATIONS_DIR, String(port));
  try {
    if (!reservationsReleasedAtExit) {
      reservationsReleasedAtExit = true;
      mkdirSync(PORT_RESERVATIONS_DIR, { recursive: true });
      process.once('exit', releaseReservations);
    }
    writeFileSync(file, `${process.pid}\n`, { flag: 'wx' });
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code === 'EEXIST') return false;
    // No shared temp dir to coordinate through: the bind check alone decides.
    return true;
  }
  reservations.add(file);
  return true;
}

function releaseReservations(): void {
  for (const f of reservations) rmSync(f, { force: true });
  reservations.clear();
}

/** [low, high) for freePorts: from 10000 up to the start of the ephemeral range. */
export function listenPortRange(): [number, number] {
  let ephemeralLow = 32768;
  try {
    const first = Number(readFileSync('/proc/sys/net/ipv4/ip_local_port_range', 'utf8').trim().split(/\s+/)[0]);
    if (Number.isInteger(first) && first > 12_000) ephemeralLow = first;
  } catch {
    // Not Linux: keep the usual default.
  }
  return [10_000, ephemeralLow];
}

function canListen(port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const s = createServer();
    s.once('error', () => resolve(false));
    s.listen(port, '127.0.0.1', () => s.close(() => resolve(true)));
  });
}

const live = new Set<ChildProcess>();
let exitHook = false;
function track(child: ChildProcess): void {
  live.add(child);
  child.once('exit', () => live.delete(child));
  if (!exitHook) {
    exitHook = true;
    // Never leave a node running when the owner dies (test failure, Ctrl-C).
    process.once('exit', killLive);
    // A signal's default action ends the process without 'exit' handlers, and a SIGTERM
    // sent to the owner alone (a supervisor, `timeout`, a test runner) reaches no node.
    // Unless the owner handles the signal itself (then it exits through 'exit'), the
    // nodes are killed, the ports released and the signal raised again for its default
    // action. Prepended, so it sees the owner's handlers before any of them removes itself.
    for (const signal of ['SIGINT', 'SIGTERM', 'SIGHUP'] as const) {
      const onSignal = (): void => {
        if (signalHandledElsewhere(signal)) return;
        killLive();
        releaseReservations();
        process.off(signal, onSignal);
        process.kill(process.pid, signal);
      };
      safetyNets.add(onSignal);
      process.prependListener(signal, onSignal);
    }
  }
}

const safetyNets = new Set<unknown>();

/**
 * Whether `signal` has a handler besides ProcessCluster's own safety net: an owner that
 * handles a signal itself decides whether to exit, and must not count the safety net.
 */
export function signalHandledElsewhere(signal: NodeJS.Signals): boolean {
  return process.listeners(signal).some((l) => !safetyNets.has(l));
}

function killLive(): void {
  for (const c of live) c.kill('SIGKILL');
}

export class ProcessCluster {
  readonly procs = new Map<number, ChildProcess>();
  readonly clusterId: string;
  private readonly configPaths = new Map<number, string>();
  /** Per node: the length of its log when its current process started (what it logged since lies after). */
  private readonly logStart = new Map<number, number>();

  private constructor(
    readonly spec: ProcessClusterSpec,
    clusterId: string,
  ) {
    this.clusterId = clusterId;
  }

  /** Formats (first time only) and writes configs; does not start anything. */
  static prepare(spec: ProcessClusterSpec): ProcessCluster {
    mkdirSync(spec.root, { recursive: true });
    const idFile = join(spec.root, 'cluster.id');
    const clusterId = existsSync(idFile) ? readFileSync(idFile, 'utf8').trim() : randomUuid();
    if (!existsSync(idFile)) writeFileSync(idFile, `${clusterId}\n`);
    const c = new ProcessCluster(spec, clusterId);
    const dirIds = spec.nodeIds.map((id) => {
      const dir = c.dataDir(id);
      const meta = readMetaProperties(dir) ?? formatDir({ dir, clusterId, nodeId: id }).meta;
      return meta.directoryId;
    });
    const brokerOnly = new Set(spec.brokerOnly ?? []);
    const votersFor = (from: number) =>
      spec.nodeIds
        .map((id, i) => {
          if (brokerOnly.has(id)) return '';
          const addr = spec.raftAddress ? spec.raftAddress(from, id) : `127.0.0.1:${spec.controllerPorts[i]}`;
          return `${id}@${addr}:${dirIds[i]}`;
        })
        .filter((v) => v !== '')
        .join(',');
    spec.nodeIds.forEach((id, i) => {
      const props: Record<string, string> = {
        'node.id': String(id),
        'process.roles': brokerOnly.has(id) ? 'broker' : 'broker,controller',
        listeners: `CLIENT://127.0.0.1:${spec.clientPorts[i]},REPLICATION://127.0.0.1:${spec.replicationPorts?.[i] ?? 0},CONTROLLER://127.0.0.1:${spec.controllerPorts[i]}`,
        'controller.quorum.voters': votersFor(id),
        'log.dirs': c.dataDir(id),
        ...spec.overrides,
        ...spec.nodeOverrides?.[id],
      };
      const path = join(spec.root, `node-${id}.properties`);
      writeFileSync(path, Object.entries(props).map(([k, v]) => `${k}=${v}`).join('\n') + '\n');
      c.configPaths.set(id, path);
    });
    return c;
  }

  dataDir(id: number): string {
    return join(this.spec.root, `node-${id}`);
  }

  logPath(id: number): string {
    return join(this.spec.root, `node-${id}.log`);
  }

  clientAddress(id: number): string {
    return `127.0.0.1:${this.spec.clientPorts[this.spec.nodeIds.indexOf(id)]}`;
  }

  get bootstrap(): string {
    return this.spec.nodeIds.map((id) => this.clientAddress(id)).join(',');
  }

  /** Starts node `id` (its log appends to node-<id>.log). */
  start(id: number): ChildProcess {
    const existing = this.procs.get(id);
    if (existing && existing.exitCode === null && existing.signalCode === null) return existing;
    const fd = openSync(this.logPath(id), 'a');
    this.logStart.set(id, fstatSync(fd).size);
    const launch = brokerLaunch({ ...process.env, ...this.spec.env });
    const child = spawn(process.execPath, [...(this.spec.nodeArgs ?? []), ...launch.args, 'broker', '--config', this.configPaths.get(id)!], {
      stdio: ['ignore', fd, fd],
      env: launch.env,
    });
    closeSync(fd);
    track(child);
    this.procs.set(id, child);
    return child;
  }

  startAll(): void {
    for (const id of this.spec.nodeIds) this.start(id);
  }

  isRunning(id: number): boolean {
    const p = this.procs.get(id);
    return p !== undefined && p.exitCode === null && p.signalCode === null;
  }

  runningIds(): number[] {
    return this.spec.nodeIds.filter((id) => this.isRunning(id));
  }

  pid(id: number): number | undefined {
    return this.procs.get(id)?.pid;
  }

  private exited(p: ChildProcess): Promise<void> {
    if (p.exitCode !== null || p.signalCode !== null) return Promise.resolve();
    return new Promise((resolve) => p.once('exit', () => resolve()));
  }

  /** kill -9: no shutdown of any kind. */
  async kill9(id: number): Promise<void> {
    const p = this.procs.get(id);
    if (!p || !this.isRunning(id)) return;
    p.kill('SIGKILL');
    await this.exited(p);
  }

  /** SIGTERM (controlled shutdown), then SIGKILL after `graceMs`. */
  async stop(id: number, graceMs = 15_000): Promise<void> {
    const p = this.procs.get(id);
    if (!p || !this.isRunning(id)) return;
    p.kill('SIGTERM');
    let timer: NodeJS.Timeout | undefined;
    const killed = new Promise<void>((resolve) => {
      timer = setTimeout(() => {
        p.kill('SIGKILL');
        resolve();
      }, graceMs);
    });
    await Promise.race([this.exited(p), killed]);
    clearTimeout(timer);
    await this.exited(p);
  }

  async stopAll(graceMs?: number): Promise<void> {
    await Promise.all(this.spec.nodeIds.map((id) => this.stop(id, graceMs)));
  }

  async killAll(): Promise<void> {
    await Promise.all(this.spec.nodeIds.map((id) => this.kill9(id)));
  }

  /** DescribeCluster from the first running node that answers. */
  async describe(timeoutMs = 2000): Promise<DescribeClusterResponse | undefined> {
    for (const id of this.runningIds()) {
      const client = new RawClient(this.clientAddress(id), { timeoutMs });
      try {
        const r = await client.describeCluster();
        if (r.errorCode === 0) return r;
      } catch {
        // try the next node
      } finally {
        client.close();
      }
    }
    return undefined;
  }

  /** Resolves when a controller is elected and every running node is registered and unfenced. */
  async waitReady(timeoutMs = 30_000, pollMs = 100): Promise<DescribeClusterResponse> {
    const deadline = Date.now() + timeoutMs;
    for (;;) {
      const ids = this.runningIds();
      const r = await this.describe();
      if (r && r.controllerId >= 0 && ids.every((id) => r.brokers.some((b) => b.id === id && !b.fenced) && this.processUnfenced(id))) return r;
      for (const id of this.spec.nodeIds) {
        const p = this.procs.get(id);
        if (p && p.exitCode !== null && p.exitCode !== 0) throw new Error(`node ${id} exited with code ${p.exitCode}; see ${this.logPath(id)}:\n${this.logTail(id, 20)}`);
      }
      if (Date.now() > deadline) {
        const tails = ids.map((id) => `--- node ${id} (${this.logPath(id)}) ---\n${this.logTail(id, 12)}`).join('\n');
        throw new Error(`cluster not ready after ${timeoutMs} ms (last view: ${JSON.stringify(r)})\n${tails}`);
      }
      await new Promise((res) => setTimeout(res, pollMs));
    }
  }

  /**
   * Whether node `id`'s current process has logged (since its start, see logStart) that it
   * is unfenced. The controller's view alone is not enough right after a kill -9 and
   * restart: the dead process's registration stays unfenced until its session times out
   * or the new process registers (a fast restart fell in that window and a test created a
   * topic with a broker short). Needs lifecycle logging (RAFTKA_LOG_LEVEL info or finer);
   * otherwise only the view counts.
   */
  processUnfenced(id: number): boolean {
    const level = this.spec.env?.['RAFTKA_LOG_LEVEL'] ?? process.env['RAFTKA_LOG_LEVEL'] ?? 'info';
    if (!['info', 'debug', 'trace'].includes(level)) return true;
    if (!this.procs.has(id)) return false;
    let text: string;
    try {
      const fd = openSync(this.logPath(id), 'r');
      try {
        const from = this.logStart.get(id) ?? 0;
        const buf = Buffer.alloc(Math.max(0, fstatSync(fd).size - from));
        readSync(fd, buf, 0, buf.length, from);
        text = buf.toString('utf8');
      } finally {
        closeSync(fd);
      }
    } catch {
      return false;
    }
    let state: unknown;
    for (const line of text.split('\n')) {
      // Only the current process has written since logStart.
      if (!line.includes('"msg":"broker state change"')) continue;
      try {
        state = (JSON.parse(line) as { to?: unknown }).to;
      } catch {
        // A line being written right now.
      }
    }
    return state === 'unfenced';
  }

  logTail(id: number, lines: number): string {
    try {
      return readFileSync(this.logPath(id), 'utf8').trimEnd().split('\n').slice(-lines).join('\n');
    } catch {
      return '(no log)';
    }
  }
}
