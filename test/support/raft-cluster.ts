// Runs a Raft quorum as real processes on 127.0.0.1 (src/io/raft-node-process.ts), for
// the multi-process test and the raft benchmark. Each node binds port 0 and reports its
// port; the harness then tells every node where the others are, so parallel runs never
// race for ports. Every process is tracked by PID and killed by PID in `stop()`, and, as
// a last resort, when this process exits.
import { spawn, type ChildProcess } from 'node:child_process';
import { closeSync, openSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { formatDir } from '../../src/io/meta-properties.ts';
import { randomUuid } from '../../src/common/ids.ts';
import type { ControlEvent, ControlRequest, NodeStatus } from '../../src/io/raft-node-process.ts';

const ROOT = fileURLToPath(new URL('../../', import.meta.url));
const NODE_SCRIPT = fileURLToPath(new URL('../../src/io/raft-node-process.ts', import.meta.url));

/** PIDs alive in this process's care, killed on exit whatever happened. */
const livePids = new Set<number>();
process.on('exit', () => {
  for (const pid of livePids) {
    try {
      process.kill(pid, 'SIGKILL');
    } catch {
      // already gone
    }
  }
});

type Req = ControlRequest extends infer R ? (R extends { id: number } ? Omit<R, 'id'> : never) : never;

export interface ProcNode {
  readonly nodeId: number;
  readonly dir: string;
  readonly directoryId: string;
  readonly logPath: string;
  child: ChildProcess | undefined;
  pid: number | undefined;
  port: number;
  /** Every event the current incarnation sent (listening, leader, leaderCommitted, fatal). */
  events: ControlEvent[];
}

export interface RaftClusterOptions {
  root: string;
  size?: number;
  clusterId?: string;
  electionTimeoutMs?: number;
  snapshotIntervalEntries?: number;
  requestTimeoutMs?: number;
  /** Extra node flags for every process (e.g. --cpu-prof for profiling). */
  nodeArgs?: readonly string[];
}

export class RaftProcessCluster {
  readonly nodes = new Map<number, ProcNode>();
  readonly clusterId: string;
  private readonly opts: RaftClusterOptions;
  private nextReq = 1;
  private readonly waiting = new Map<
    number,
    { nodeId: number; op: string; resolve(v: unknown): void; reject(e: Error): void; timer: NodeJS.Timeout }
  >();

  private constructor(opts: RaftClusterOptions) {
    this.opts = opts;
    this.clusterId = opts.clusterId ?? randomUuid();
  }

  static async start(opts: RaftClusterOptions): Promise<RaftProcessCluster> {
    const c = new RaftProcessCluster(opts);
    const size = opts.size ?? 3;
    for (let id = 1; id <= size; id++) {
      const dir = join(opts.root, `node-${id}`);
      const { meta } = formatDir({ dir, clusterId: c.clusterId, nodeId: id });
      c.nodes.set(id, {
        nodeId: id,
        dir,
        directoryId: meta.directoryId,
        logPath: join(opts.root, `node-${id}.log`),
        child: undefined,
        pid: undefined,
        port: 0,
        events: [],
      });
    }
    try {
      await Promise.all([...c.nodes.keys()].map((id) => c.spawnNode(id)));
      await c.broadcastPeers();
    } catch (e) {
      await c.stop();
      throw e;
    }
    return c;
  }

  private votersArg(): string {
    return [...this.nodes.values()].map((n) => `${n.nodeId}@${n.directoryId}`).join(',');
  }

  private async spawnNode(id: number): Promise<void> {
    const n = this.nodes.get(id)!;
    const args = [
      ...(this.opts.nodeArgs ?? []),
      '--import',
      'tsx',
      NODE_SCRIPT,
      '--node-id',
      String(id),
      '--cluster-id',
      this.clusterId,
      '--dir',
      n.dir,
      '--listen',
      '127.0.0.1:0',
      '--voters',
      this.votersArg(),
    ];
    if (this.opts.electionTimeoutMs !== undefined) args.push('--election-timeout-ms', String(this.opts.electionTimeoutMs));
    if (this.opts.snapshotIntervalEntries !== undefined) {
      args.push('--snapshot-interval-entries', String(this.opts.snapshotIntervalEntries));
    }
    const logFd = openSync(n.logPath, 'a');
    let child: ChildProcess;
    try {
      child = spawn(process.execPath, args, { cwd: ROOT, stdio: ['ignore', logFd, logFd, 'ipc'] });
    } finally {
      closeSync(logFd);
    }
    n.child = child;
    n.pid = child.pid;
    n.events = [];
    if (child.pid !== undefined) livePids.add(child.pid);
    const events = n.events;
    child.on('message', (raw) => {
      const ev = raw as ControlEvent;
      if (ev.ev === 'reply') {
        const w = this.waiting.get(ev.id);
        if (w === undefined) return;
        this.waiting.delete(ev.id);
        clearTimeout(w.timer);
        if (ev.ok) w.resolve(ev.result);
        else w.reject(Object.assign(new Error(`node ${id}: ${ev.error}`), { code: ev.code }));
      } else {
        events.push(ev);
      }
    });
    child.on('exit', () => {
      if (child.pid !== undefined) livePids.delete(child.pid);
      // A node killed with requests in flight never replies to them.
      for (const [reqId, w] of this.waiting) {
        if (w.nodeId !== id) continue;
        this.waiting.delete(reqId);
        clearTimeout(w.timer);
        w.reject(new Error(`node ${id} exited during ${w.op}`));
      }
      if (n.child === child) {
        n.child = undefined;
        n.pid = undefined;
      }
    });
    const started = new Promise<ControlEvent & { ev: 'listening' }>((resolve, reject) => {
      const timer = setTimeout(() => reject(new Error(`node ${id} did not start within 20 s; see ${n.logPath}`)), 20_000);
      const onMsg = (raw: unknown): void => {
        const ev = raw as ControlEvent;
        if (ev.ev === 'listening') done(() => resolve(ev));
        else if (ev.ev === 'fatal') done(() => reject(new Error(`node ${id} failed to start: ${ev.error}`)));
      };
      const onExit = (code: number | null): void => done(() => reject(new Error(`node ${id} exited (${code}) at start; see ${n.logPath}`)));
      const done = (f: () => void): void => {
        clearTimeout(timer);
        child.off('message', onMsg);
        child.off('exit', onExit);
        f();
      };
      child.on('message', onMsg);
      child.on('exit', onExit);
    });
    let listening: ControlEvent & { ev: 'listening' };
    try {
      listening = await started;
    } catch (e) {
      // A node that failed to start is gone before this returns (by PID if need be).
      await this.reap(child);
      throw e;
    }
    n.port = listening.port;
  }

  private async reap(child: ChildProcess): Promise<void> {
    if (child.exitCode !== null || child.signalCode !== null) return;
    const exited = new Promise<void>((resolve) => child.once('exit', () => resolve()));
    const t = setTimeout(() => {
      if (child.pid !== undefined) process.kill(child.pid, 'SIGKILL');
    }, 5_000);
    await exited;
    clearTimeout(t);
  }

  private async broadcastPeers(): Promise<void> {
    const peers: Record<string, string> = {};
    for (const n of this.nodes.values()) peers[String(n.nodeId)] = `127.0.0.1:${n.port}`;
    await Promise.all(this.aliveIds().map((id) => this.request(id, { op: 'peers', peers })));
  }

  aliveIds(): number[] {
    return [...this.nodes.values()].filter((n) => n.child !== undefined).map((n) => n.nodeId);
  }

  request<T = unknown>(id: number, req: Req, timeoutMs = this.opts.requestTimeoutMs ?? 30_000): Promise<T> {
    const n = this.nodes.get(id);
    const child = n?.child;
    if (child === undefined || !child.connected) return Promise.reject(new Error(`node ${id} is not running`));
    const reqId = this.nextReq++;
    return new Promise<T>((resolve, reject) => {
      const timer = setTimeout(() => {
        this.waiting.delete(reqId);
        reject(new Error(`node ${id}: ${req.op} timed out after ${timeoutMs} ms`));
      }, timeoutMs);
      this.waiting.set(reqId, { nodeId: id, op: req.op, resolve: resolve as (v: unknown) => void, reject, timer });
      child.send({ ...req, id: reqId } as ControlRequest, (err) => {
        if (err === null) return;
        clearTimeout(timer);
        this.waiting.delete(reqId);
        reject(err);
      });
    });
  }

  status(id: number): Promise<NodeStatus> {
    return this.request<NodeStatus>(id, { op: 'status' }, 5_000);
  }

  /** Statuses of the running nodes (a node that does not answer is left out). */
  async statuses(): Promise<NodeStatus[]> {
    const all = await Promise.all(this.aliveIds().map((id) => this.status(id).catch(() => undefined)));
    return all.filter((s): s is NodeStatus => s !== undefined);
  }

  /** The one running leader whose term every running node agrees on, if there is one. */
  async leader(): Promise<NodeStatus | undefined> {
    const ss = await this.statuses();
    const leaders = ss.filter((s) => s.role === 'leader');
    if (leaders.length !== 1) return undefined;
    const l = leaders[0]!;
    return ss.every((s) => s.leaderId === l.nodeId && s.term === l.term) ? l : undefined;
  }

  /** kill -9 by PID; resolves once the process is gone. */
  async kill9(id: number): Promise<number> {
    const n = this.nodes.get(id)!;
    const child = n.child;
    if (child === undefined || n.pid === undefined) throw new Error(`node ${id} is not running`);
    const exited = new Promise<void>((resolve) => child.once('exit', () => resolve()));
    const at = Date.now();
    process.kill(n.pid, 'SIGKILL');
    await exited;
    return at;
  }

  /** Starts a stopped node again on its data dir; it gets a new port, which every node learns. */
  async restart(id: number): Promise<void> {
    await this.spawnNode(id);
    await this.broadcastPeers();
  }

  logTail(id: number, lines = 40): string {
    try {
      return readFileSync(this.nodes.get(id)!.logPath, 'utf8').split('\n').slice(-lines).join('\n');
    } catch {
      return '';
    }
  }

  /** Stops every node: a graceful stop first, then SIGKILL by PID for any that lingers. */
  async stop(): Promise<void> {
    const alive = [...this.nodes.values()].filter((n) => n.child !== undefined);
    await Promise.all(
      alive.map(async (n) => {
        const child = n.child!;
        const pid = n.pid!;
        const exited = new Promise<void>((resolve) => {
          if (child.exitCode !== null || child.signalCode !== null) resolve();
          else child.once('exit', () => resolve());
        });
        const t = setTimeout(() => {
          try {
            process.kill(pid, 'SIGKILL');
          } catch {
            // gone already
          }
        }, 3_000);
        try {
          process.kill(pid, 'SIGTERM');
        } catch {
          // gone already
        }
        await exited;
        clearTimeout(t);
      }),
    );
    for (const w of this.waiting.values()) {
      clearTimeout(w.timer);
      w.reject(new Error('cluster stopped'));
    }
    this.waiting.clear();
  }
}
