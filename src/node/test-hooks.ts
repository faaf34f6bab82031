// Test-only hooks a node installs when its `test.*` keys are set (the Jepsen suite sets
// them; production configs never do): an fsync ledger for power-loss simulation, a wall
// clock whose skew is re-read from a control file, and replica fetch addresses that
// point at fault proxies instead of the peers' advertised endpoints.
import { closeSync, existsSync, openSync, readFileSync, readdirSync, renameSync, statSync, truncateSync, unlinkSync, writeFileSync, writeSync } from 'node:fs';
import { join } from 'node:path';
import { SkewedClock, type Clock } from '../common/clock.ts';
import { RaftkaError } from '../common/errors.ts';
import { componentLogger, type Logger } from '../common/logger.ts';
import type { NodeConfig } from '../node-config.ts';

export interface TestHooks {
  readonly clock: Clock;
  readonly onSync: ((path: string, length: number) => void) | undefined;
  /** The replica fetch address of `brokerId` when overridden, else undefined. */
  replicationAddress(brokerId: number): string | undefined;
  /** Every listener is bound: publishes the ports when `test.ports.file` asks for them. */
  listening(ports: BoundPorts): void;
  close(): void;
}

type SyncObserver = (path: string, length: number) => void;

export interface BoundPorts {
  readonly CLIENT: number;
  readonly REPLICATION: number;
  readonly CONTROLLER: number;
}

export function installTestHooks(cfg: NodeConfig, base: { clock: Clock; onSync?: SyncObserver | undefined; logger: Logger }): TestHooks {
  const log = componentLogger(base.logger, 'test-hooks');
  // Parsed first: a bad value must fail before anything below is opened.
  const peers = parsePeerAddresses(cfg['test.replication.peer.addresses']);
  const closers: Array<() => void> = [];
  let onSync = base.onSync;
  const ledgerPath = cfg['test.fsync.ledger'];
  if (ledgerPath !== '') {
    const ledger = openFsyncLedger(ledgerPath);
    closers.push(() => ledger.close());
    const inner = onSync;
    onSync = (path, length) => {
      ledger.record(path, length);
      inner?.(path, length);
    };
    log.warn({ ledger: ledgerPath }, 'test hook: recording fsynced segment lengths');
  }
  let clock = base.clock;
  const controlPath = cfg['test.clock.control'];
  if (controlPath !== '') {
    const skewed = new SkewedClock(base.clock);
    let seen = -1;
    const reread = () => {
      const c = readClockControl(controlPath);
      if (c === undefined || c.seq === seen) return;
      seen = c.seq;
      if (c.skewMs !== skewed.skewMs) log.warn({ skewMs: c.skewMs, seq: c.seq }, 'test hook: wall clock skew set');
      skewed.skewMs = c.skewMs;
      acknowledge(controlPath, c.seq);
    };
    reread();
    // Polled rather than watched: fs.watchFile misses a write that lands before its first
    // stat, and an inode watch would not survive the writer's atomic rename.
    const timer = setInterval(reread, 50);
    timer.unref();
    closers.push(() => clearInterval(timer));
    clock = skewed;
  }
  return {
    clock,
    onSync,
    replicationAddress: (id) => peers.get(id),
    listening: (ports) => {
      const path = cfg['test.ports.file'];
      if (path !== '') writePortsFile(path, { pid: process.pid, ...ports });
    },
    close: () => {
      for (const c of closers.splice(0)) c();
    },
  };
}

/** `ID@HOST:PORT,…` → id → host:port. */
export function parsePeerAddresses(text: string): Map<number, string> {
  const out = new Map<number, string>();
  for (const part of text.split(',').map((s) => s.trim()).filter((s) => s !== '')) {
    const m = /^(\d+)@(.+:\d+)$/.exec(part);
    if (!m) throw new RaftkaError('INVALID_CONFIG', `Invalid value ${JSON.stringify(part)} for configuration test.replication.peer.addresses: expected ID@HOST:PORT`);
    out.set(Number(m[1]), m[2]!);
  }
  return out;
}

// ---- fsync ledger ----

/**
 * Append-only, one line per fsync: `<length> <path>`. Written synchronously inside the
 * sync observer, which runs before the fsynced write is acknowledged, so a SIGKILL can
 * lose a ledger line only for bytes nobody was told are durable.
 */
export function openFsyncLedger(path: string): { record(file: string, length: number): void; close(): void } {
  const fd = openSync(path, 'a');
  let open = true;
  return {
    record: (file, length) => {
      if (open) writeSync(fd, `${length} ${file}\n`);
    },
    close: () => {
      if (open) closeSync(fd);
      open = false;
    },
  };
}

/** The last recorded length of every file in a ledger (missing ledger: empty). */
export function readFsyncLedger(path: string): Map<string, number> {
  const out = new Map<string, number>();
  if (!existsSync(path)) return out;
  for (const line of readFileSync(path, 'utf8').split('\n')) {
    const sp = line.indexOf(' ');
    // A torn last line (the writer died mid-write) carries no complete record.
    if (sp <= 0) continue;
    const length = Number(line.slice(0, sp));
    if (Number.isInteger(length) && length >= 0) out.set(line.slice(sp + 1), length);
  }
  return out;
}

const SEGMENT = /^\d{20}\.log$/;

export interface PowerLossCut {
  readonly file: string;
  readonly from: number;
  /** The fsynced length the file was cut to; -1 when it was removed. */
  readonly to: number;
}

/**
 * What a power failure does to the partition segment files of a stopped node's data dir:
 * each is cut back to its last fsynced length. A segment file never fsynced is removed,
 * not emptied: the log fsyncs the directory only together with a segment's data, so a
 * never-synced file's directory entry was never durable either, and a surviving empty
 * segment would claim a base offset past the data that did survive. Removal is also the
 * harsher of the two outcomes a real disk allows. Only `<20 digits>.log` files in
 * partition directories count (LevelDB's .log files of the Raft log have 6 digits and
 * its own durability). Returns what changed.
 */
export function cutToFsyncedLengths(dataDir: string, ledgerPath: string): PowerLossCut[] {
  const ledger = readFsyncLedger(ledgerPath);
  const cuts: PowerLossCut[] = [];
  for (const entry of readdirSync(dataDir, { withFileTypes: true })) {
    if (!entry.isDirectory()) continue;
    const dir = join(dataDir, entry.name);
    for (const name of readdirSync(dir)) {
      if (!SEGMENT.test(name)) continue;
      const file = join(dir, name);
      const size = statSync(file).size;
      const synced = ledger.get(file);
      if (synced === undefined) {
        unlinkSync(file);
        cuts.push({ file, from: size, to: -1 });
      } else if (size > synced) {
        truncateSync(file, synced);
        cuts.push({ file, from: size, to: synced });
      }
    }
  }
  return cuts;
}

// ---- bound ports ----

export interface PortsFile extends BoundPorts {
  /** Tells this start's file from the one an earlier process left. */
  readonly pid: number;
}

/**
 * A node whose listeners bind port 0 gets new ports at every start; the Jepsen cluster
 * learns them here. Port 0 because a port chosen in advance and free while the node is
 * down can be taken meanwhile, even as the local port of an outgoing connection.
 */
function writePortsFile(path: string, ports: PortsFile): void {
  const tmp = `${path}.tmp`;
  writeFileSync(tmp, JSON.stringify(ports));
  renameSync(tmp, path);
}

export function readPortsFile(path: string): PortsFile | undefined {
  try {
    const v = JSON.parse(readFileSync(path, 'utf8')) as Partial<PortsFile>;
    if ([v.pid, v.CLIENT, v.REPLICATION, v.CONTROLLER].every((n) => Number.isInteger(n))) return v as PortsFile;
  } catch {
    // not written yet
  }
  return undefined;
}

// ---- clock control ----

/** Writes the skew a node should apply; `seq` tells repeated writes of one value apart. */
export function writeClockControl(path: string, skewMs: number, seq: number): void {
  const tmp = `${path}.tmp`;
  writeFileSync(tmp, JSON.stringify({ skewMs, seq }));
  renameSync(tmp, path);
}

export function readClockControl(path: string): { skewMs: number; seq: number } | undefined {
  try {
    const v = JSON.parse(readFileSync(path, 'utf8')) as { skewMs?: unknown; seq?: unknown };
    if (typeof v.skewMs === 'number' && Number.isFinite(v.skewMs) && typeof v.seq === 'number') return { skewMs: v.skewMs, seq: v.seq };
  } catch {
    // missing or half-written: keep the current skew
  }
  return undefined;
}

/** The `seq` of the last control write the node applied, or -1. */
export function readClockAck(path: string): number {
  try {
    return Number(readFileSync(`${path}.applied`, 'utf8'));
  } catch {
    return -1;
  }
}

function acknowledge(path: string, seq: number): void {
  const tmp = `${path}.applied.tmp`;
  writeFileSync(tmp, String(seq));
  renameSync(tmp, `${path}.applied`);
}
