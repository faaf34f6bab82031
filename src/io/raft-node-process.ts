// A runnable Raft quorum member for multi-process tests and the raft benchmark:
//
//   node --import tsx src/io/raft-node-process.ts --node-id 1 --cluster-id C \
//     --dir /data/1 --listen 127.0.0.1:0 --voters 1@DIR1,2@127.0.0.1:9102:DIR2,3@...
//
// Its state machine is `AppliedLog`: it records every applied entry into a CRC32C hash
// chain, so two members that applied the same entries at the same indexes hold the same
// hash. When started with an IPC channel (child_process.spawn with 'ipc' in stdio) it
// answers a small control protocol (ControlRequest / ControlReply below) so a test can
// propose, read, inspect and learn peer ports; it exits when the channel closes, so a
// dead test runner leaves no process behind. The cluster issue replaces this with the
// real node.
import { parseArgs } from 'node:util';
import { crc32c } from '@node-rs/crc32';
import { RaftkaError, assert } from '../common/errors.ts';
import { createLogger } from '../common/logger.ts';
import type { Entry, Snapshot, StateMachine } from '../raft/types.ts';
import { parseVoters, startRaftNode, type RaftNodeHandle } from './raft-node.ts';

const RECENT_MAX = 10_000;

/** The toy state machine: a hash chain over applied entries plus the most recent ones. */
export class AppliedLog implements StateMachine {
  appliedIndex = 0;
  /** Normal entries applied, ever (carried through snapshots). */
  count = 0;
  hash = 0;
  /** [index, term, text of data] of the last RECENT_MAX normal entries. */
  recent: Array<[number, number, string]> = [];
  onApply: ((index: number, entry: Entry) => void) | undefined;

  apply(index: number, entry: Entry): void {
    // The driver must apply every index once, in order.
    assert(index === this.appliedIndex + 1, () => `applied ${index} after ${this.appliedIndex}`);
    assert(entry.index === index, 'entry index mismatch');
    const header = Buffer.allocUnsafe(17);
    header.writeDoubleBE(index, 0);
    header.writeDoubleBE(entry.term, 8);
    header[16] = entry.kind === 'normal' ? 0 : entry.kind === 'config' ? 1 : 2;
    this.hash = crc32c(entry.data, crc32c(header, this.hash));
    this.appliedIndex = index;
    if (entry.kind === 'normal') {
      this.count++;
      const text = entry.data.byteLength <= 64 ? Buffer.from(entry.data).toString('utf8') : `<${entry.data.byteLength} bytes>`;
      this.recent.push([index, entry.term, text]);
      if (this.recent.length > RECENT_MAX * 2) this.recent = this.recent.slice(-RECENT_MAX);
    }
    this.onApply?.(index, entry);
  }

  snapshot(): Uint8Array {
    const recent = this.recent.slice(-RECENT_MAX);
    return Buffer.from(JSON.stringify({ appliedIndex: this.appliedIndex, count: this.count, hash: this.hash, recent }));
  }

  restore(snapshot: Snapshot): void {
    const s = JSON.parse(Buffer.from(snapshot.data).toString('utf8')) as {
      appliedIndex: number;
      count: number;
      hash: number;
      recent: Array<[number, number, string]>;
    };
    assert(s.appliedIndex === snapshot.meta.index, 'snapshot data does not match its index');
    this.appliedIndex = s.appliedIndex;
    this.count = s.count;
    this.hash = s.hash;
    this.recent = s.recent;
  }
}

// ─── Control protocol (IPC) ───────────────────────────────────────────────────────

export type ControlRequest = { id: number } & (
  | { op: 'status' }
  | { op: 'peers'; peers: Record<string, string> }
  | { op: 'propose'; data: string }
  /** Pipelined: keeps `inflight` proposals of `sizeBytes` outstanding until `count` committed. */
  | { op: 'burst'; count: number; sizeBytes: number; inflight: number }
  /** One at a time: proposal-to-commit latency of each. */
  | { op: 'latency'; count: number; sizeBytes: number }
  | { op: 'read' }
  | { op: 'state' }
  | { op: 'stop' }
);

export interface NodeStatus {
  nodeId: number;
  role: string;
  leaderId: number | null;
  term: number;
  commitIndex: number;
  appliedIndex: number;
  count: number;
  hash: number;
  pendingProposals: number;
}

export type ControlEvent =
  | { ev: 'listening'; port: number; directoryId: string }
  | { ev: 'reply'; id: number; ok: true; result: unknown }
  | { ev: 'reply'; id: number; ok: false; error: string; code?: string }
  | { ev: 'leader'; leaderId: number | null; term: number; role: string }
  /** This node, as leader, applied the first entry of its term (its noop): wall-clock ms. */
  | { ev: 'leaderCommitted'; term: number; index: number; atMs: number }
  /** The leader's snapshot replaced this node's state (so it caught up by snapshot, not by log). */
  | { ev: 'snapshotInstalled'; index: number; term: number }
  | { ev: 'fatal'; error: string };

function send(ev: ControlEvent): void {
  if (process.send !== undefined && process.connected) process.send(ev);
}

function status(h: RaftNodeHandle, sm: AppliedLog, nodeId: number): NodeStatus {
  const d = h.driver;
  return {
    nodeId,
    role: d.role,
    leaderId: d.leaderId,
    term: d.term,
    commitIndex: d.commitIndex,
    appliedIndex: sm.appliedIndex,
    count: sm.count,
    hash: sm.hash,
    pendingProposals: d.pendingProposals,
  };
}

async function burst(h: RaftNodeHandle, count: number, sizeBytes: number, inflight: number) {
  const payload = Buffer.alloc(sizeBytes, 0x61);
  let proposed = 0;
  let committed = 0;
  let failed = 0;
  let firstError: string | undefined;
  const t0 = performance.now();
  await new Promise<void>((resolve) => {
    const next = (): void => {
      while (proposed < count && proposed - committed - failed < inflight) {
        proposed++;
        h.driver.propose(payload).then(
          () => {
            committed++;
            if (committed + failed === count) resolve();
            else next();
          },
          (e: Error) => {
            failed++;
            firstError ??= e.message;
            if (committed + failed === count) resolve();
            else next();
          },
        );
      }
    };
    next();
  });
  return { committed, failed, firstError, elapsedMs: performance.now() - t0 };
}

async function latency(h: RaftNodeHandle, count: number, sizeBytes: number) {
  const payload = Buffer.alloc(sizeBytes, 0x62);
  const samples: number[] = [];
  for (let i = 0; i < count; i++) {
    const t0 = performance.now();
    await h.driver.propose(payload);
    samples.push(performance.now() - t0);
  }
  return { samplesMs: samples };
}

async function handle(h: RaftNodeHandle, sm: AppliedLog, nodeId: number, req: ControlRequest): Promise<unknown> {
  switch (req.op) {
    case 'status':
      return status(h, sm, nodeId);
    case 'peers':
      for (const [id, address] of Object.entries(req.peers)) if (Number(id) !== nodeId) h.setPeerAddress(Number(id), address);
      return null;
    case 'propose':
      return h.driver.propose(Buffer.from(req.data, 'utf8'));
    case 'burst':
      return burst(h, req.count, req.sizeBytes, req.inflight);
    case 'latency':
      return latency(h, req.count, req.sizeBytes);
    case 'read': {
      const index = await h.driver.readIndex();
      return { index, ...status(h, sm, nodeId) };
    }
    case 'state':
      return { ...status(h, sm, nodeId), recent: sm.recent.slice(-RECENT_MAX) };
    case 'stop':
      return null;
  }
}

async function main(): Promise<void> {
  const { values } = parseArgs({
    options: {
      'node-id': { type: 'string' },
      'cluster-id': { type: 'string' },
      dir: { type: 'string' },
      listen: { type: 'string', default: '127.0.0.1:0' },
      voters: { type: 'string' },
      'election-timeout-ms': { type: 'string' },
      'snapshot-interval-entries': { type: 'string' },
    },
  });
  const required = (k: 'node-id' | 'cluster-id' | 'dir' | 'voters'): string => {
    const v = values[k];
    if (v === undefined) throw new RaftkaError('INVALID_CONFIG', `--${k} is required`);
    return v;
  };
  const nodeId = Number(required('node-id'));
  const logger = createLogger({ name: 'raftka', base: { nodeId } });
  const sm = new AppliedLog();
  const electionTimeoutMs = values['election-timeout-ms'];
  const snapshotEvery = values['snapshot-interval-entries'];
  const h = await startRaftNode({
    nodeId,
    clusterId: required('cluster-id'),
    dir: required('dir'),
    listen: values.listen,
    voters: parseVoters(required('voters')),
    stateMachine: sm,
    logger,
    ...(electionTimeoutMs !== undefined ? { raftConfig: { electionTimeoutMs: Number(electionTimeoutMs) } } : {}),
    ...(snapshotEvery !== undefined ? { snapshotIntervalEntries: Number(snapshotEvery) } : {}),
  });
  let leaderTermReported = 0;
  sm.onApply = (index, entry) => {
    const d = h.driver;
    if (entry.kind === 'noop' && d.isLeader && entry.term === d.term && leaderTermReported < entry.term) {
      leaderTermReported = entry.term;
      send({ ev: 'leaderCommitted', term: entry.term, index, atMs: Date.now() });
    }
  };
  h.driver.on('leaderChange', (c) => send({ ev: 'leader', leaderId: c.leaderId, term: c.term, role: c.role }));
  h.driver.on('snapshotInstalled', (m) => send({ ev: 'snapshotInstalled', index: m.index, term: m.term }));
  let closing = false;
  const shutdown = async (code: number): Promise<void> => {
    if (closing) return;
    closing = true;
    try {
      await h.close();
    } finally {
      logger.flush();
      process.exit(code);
    }
  };
  h.driver.on('fatal', (e) => {
    send({ ev: 'fatal', error: e.message });
    void shutdown(1);
  });
  process.on('SIGTERM', () => void shutdown(0));
  process.on('SIGINT', () => void shutdown(0));
  process.on('disconnect', () => void shutdown(0));
  process.on('message', (raw) => {
    const req = raw as ControlRequest;
    handle(h, sm, nodeId, req).then(
      (result) => {
        send({ ev: 'reply', id: req.id, ok: true, result });
        if (req.op === 'stop') void shutdown(0);
      },
      (e: unknown) => {
        const err = e as Error;
        send({ ev: 'reply', id: req.id, ok: false, error: err.message, ...(e instanceof RaftkaError ? { code: e.errorName } : {}) });
      },
    );
  });
  send({ ev: 'listening', port: h.port, directoryId: h.meta.directoryId });
}

main().catch((e: unknown) => {
  // Start-up failures (unformatted dir, CORRUPT_STORAGE) end the process with the reason.
  const err = e as Error;
  send({ ev: 'fatal', error: err.message });
  process.stderr.write(`raft node failed to start: ${err instanceof RaftkaError ? `${err.errorName}: ` : ''}${err.message}\n`);
  process.exit(1);
});
