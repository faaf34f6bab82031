// Durable Raft state in LevelDB (through `level`): hard state (term, vote, commit), log
// entries, the latest snapshot (whose meta carries the configuration in effect at its
// index; later configurations are config entries in the log), and the directory id the
// log belongs to.
//
// Durability: every `persist` is one LevelDB batch written with `sync: true`, so the
// batch is on disk (WAL fsynced) before the promise resolves; the driver sends the
// Ready's messages (vote grants, append acknowledgements) only after that [Raft §5.1;
// types.ts "persistence rule"]. A batch is atomic: a crash leaves all of it or none.
//
// Integrity: every value starts with a CRC32C of the rest, checked on load. A value that
// fails its check, cannot be parsed, or a log with a hole refuses to load with
// CORRUPT_STORAGE naming the database directory and the key, rather than letting the
// node vote or serve with lost state. A LevelDB that will not open (damaged CURRENT or
// MANIFEST, say) is reported the same way.
//
// Keys (one byte of kind first, so kinds sort apart):
//   'i'            identity: {directoryId}, written once when the database is created
//   'h'            hard state JSON
//   's'            snapshot: u32 meta length | meta JSON | data
//   'e' + u64 BE   a run of consecutive entries starting at that index:
//                  u32 count | count x (f64 term | u8 kind | u32 length | data)
// Entries are stored in runs, one per Ready, rather than one key per entry: a LevelDB
// operation costs far more CPU than copying an entry, and a Ready under load carries
// hundreds of entries. Truncation rewrites the run it cuts through (read back from
// disk) and deletes the runs after it; compaction deletes the runs a snapshot covers
// entirely and leaves the one it cuts through, whose covered entries load skips.
import { join } from 'node:path';
import { Level } from 'level';
import { crc32c } from '@node-rs/crc32';
import { RaftkaError, assert } from '../common/errors.ts';
import { componentLogger, silentLogger, type Logger } from '../common/logger.ts';
import {
  EMPTY_HARD_STATE,
  type ClusterConfig,
  type Entry,
  type EntryKind,
  type HardState,
  type PersistedState,
  type Ready,
  type Snapshot,
  type SnapshotMeta,
} from '../raft/types.ts';

export const RAFT_DB_DIR = 'raft-log';

const K_IDENTITY = Buffer.from('i');
const K_HARD = Buffer.from('h');
const K_SNAPSHOT = Buffer.from('s');
const P_ENTRY = 0x65; // 'e'

const KINDS: readonly EntryKind[] = ['normal', 'config', 'noop'];
const KIND_CODE: Record<EntryKind, number> = { normal: 0, config: 1, noop: 2 };

/** Key of the run of entries that starts at `index`. */
export function entryKey(index: number): Buffer {
  const k = Buffer.allocUnsafe(9);
  k[0] = P_ENTRY;
  k.writeBigUInt64BE(BigInt(index), 1);
  return k;
}

function seal(payload: Buffer): Buffer {
  const out = Buffer.allocUnsafe(4 + payload.length);
  out.writeUInt32BE(crc32c(payload), 0);
  payload.copy(out, 4);
  return out;
}

function encodeRun(entries: readonly Entry[]): Buffer {
  let size = 4 + 4;
  for (const e of entries) size += 13 + e.data.byteLength;
  const out = Buffer.allocUnsafe(size);
  out.writeUInt32BE(entries.length, 4);
  let off = 8;
  for (const e of entries) {
    out.writeDoubleBE(e.term, off);
    out[off + 8] = KIND_CODE[e.kind];
    out.writeUInt32BE(e.data.byteLength, off + 9);
    out.set(e.data, off + 13);
    off += 13 + e.data.byteLength;
  }
  out.writeUInt32BE(crc32c(out.subarray(4)), 0);
  return out;
}

/** A stored run: entries first..last under entryKey(first). */
interface Run {
  readonly first: number;
  last: number;
}

function encodeJson(v: unknown): Buffer {
  return seal(Buffer.from(JSON.stringify(v), 'utf8'));
}

function encodeSnapshot(s: Snapshot): Buffer {
  const meta = Buffer.from(JSON.stringify(s.meta), 'utf8');
  const payload = Buffer.allocUnsafe(4 + meta.length + s.data.length);
  payload.writeUInt32BE(meta.length, 0);
  meta.copy(payload, 4);
  payload.set(s.data, 4 + meta.length);
  return seal(payload);
}

function keyName(key: Buffer): string {
  if (key[0] === P_ENTRY && key.length === 9) return `entry run @${key.readBigUInt64BE(1)}`;
  return `key ${JSON.stringify(key.toString('latin1'))}`;
}

export interface RaftStorageOptions {
  /** The metadata data dir (formatted, holding meta.properties); the db lives inside. */
  dir: string;
  /** From meta.properties: a log copied from another directory refuses to open. */
  directoryId: string;
  logger?: Logger;
}

export class RaftStorage {
  readonly path: string;
  private readonly db: Level<Buffer, Buffer>;
  private readonly log: Logger;
  private state: PersistedState = { hardState: EMPTY_HARD_STATE, snapshot: null, entries: [] };
  /** Index of the first stored entry (snapshot index + 1, or 1). */
  private first = 1;
  /** Index of the last stored entry (first - 1 when none). */
  private last = 0;
  private snapshotIndex = 0;
  /** The stored runs, ascending and contiguous. */
  private runs: Run[] = [];
  private writing = false;
  private closed = false;
  /** Term and vote as last written: a change to either must be synced. */
  private syncedTerm = 0;
  private syncedVote: HardState['votedFor'] = null;

  private constructor(path: string, logger: Logger) {
    this.path = path;
    this.log = logger;
    this.db = new Level<Buffer, Buffer>(path, { keyEncoding: 'buffer', valueEncoding: 'buffer' });
  }

  /** Opens (creating on first start) and loads everything; throws CORRUPT_STORAGE if unreadable. */
  static async open(opts: RaftStorageOptions): Promise<RaftStorage> {
    const s = new RaftStorage(join(opts.dir, RAFT_DB_DIR), componentLogger(opts.logger ?? silentLogger(), 'raft-storage'));
    try {
      await s.db.open();
    } catch (e) {
      const cause = (e as { cause?: { message?: string; code?: string } }).cause;
      // A lock held by another process is an operator mistake (two nodes, one dir),
      // not damage: say so rather than call the data corrupt.
      if (cause?.code === 'LEVEL_LOCKED') {
        throw new RaftkaError('KAFKA_STORAGE_ERROR', `raft log ${s.path} is in use by another process`, { cause: e });
      }
      const why = cause?.message ?? (e as Error).message;
      throw new RaftkaError('CORRUPT_STORAGE', `raft log ${s.path} cannot be opened: ${why}`, { cause: e });
    }
    try {
      await s.load(opts.directoryId);
    } catch (e) {
      await s.db.close();
      throw e;
    }
    return s;
  }

  private corrupt(key: Buffer, why: string): RaftkaError {
    return new RaftkaError('CORRUPT_STORAGE', `raft log ${this.path}: ${keyName(key)} is unreadable: ${why}`);
  }

  private unseal(key: Buffer, value: Buffer): Buffer {
    if (value.length < 4) throw this.corrupt(key, `value of ${value.length} bytes is too short`);
    const payload = value.subarray(4);
    if (crc32c(payload) !== value.readUInt32BE(0)) throw this.corrupt(key, 'CRC32C mismatch');
    return payload;
  }

  private parseJson(key: Buffer, payload: Buffer): unknown {
    try {
      return JSON.parse(payload.toString('utf8'));
    } catch (e) {
      throw this.corrupt(key, (e as Error).message);
    }
  }

  private async load(directoryId: string): Promise<void> {
    let identity: string | undefined;
    let hardState: HardState = EMPTY_HARD_STATE;
    let snapshot: Snapshot | null = null;
    const entries: Entry[] = [];
    const runs: Run[] = [];
    for await (const [key, value] of this.db.iterator()) {
      const payload = this.unseal(key, value);
      if (key.equals(K_IDENTITY)) {
        const v = this.parseJson(key, payload) as { directoryId?: unknown };
        if (typeof v.directoryId !== 'string') throw this.corrupt(key, 'directoryId missing');
        identity = v.directoryId;
      } else if (key.equals(K_HARD)) {
        hardState = this.parseHardState(key, this.parseJson(key, payload));
      } else if (key.equals(K_SNAPSHOT)) {
        snapshot = this.parseSnapshot(key, payload);
      } else if (key[0] === P_ENTRY && key.length === 9) {
        const first = Number(key.readBigUInt64BE(1));
        const run = this.decodeRun(key, first, payload);
        if (run.length === 0) throw this.corrupt(key, 'empty run');
        runs.push({ first, last: first + run.length - 1 });
        for (const e of run) entries.push(e);
      } else {
        throw this.corrupt(key, 'unknown key');
      }
    }
    // Keys sort 'e' < 'h' < 'i' < 's', so runs arrive in index order, before the
    // snapshot: drop what the snapshot covers, then check the rest is contiguous.
    const snapIndex = snapshot?.meta.index ?? 0;
    const stale = runs.filter((r) => r.last <= snapIndex);
    const liveRuns = runs.filter((r) => r.last > snapIndex);
    const kept = snapIndex > 0 ? entries.filter((e) => e.index > snapIndex) : entries;
    for (let i = 0; i < liveRuns.length; i++) {
      const r = liveRuns[i]!;
      const expected = i === 0 ? snapIndex + 1 : liveRuns[i - 1]!.last + 1;
      // The first live run may start at or before the snapshot (compaction keeps a run it cuts).
      if (i === 0 ? r.first > expected : r.first !== expected) {
        throw this.corrupt(entryKey(r.first), `log has a hole: expected entry ${expected} next`);
      }
    }
    if (identity === undefined) {
      if (entries.length > 0 || snapshot !== null || hardState !== EMPTY_HARD_STATE) {
        throw this.corrupt(K_IDENTITY, 'missing, but the log holds state');
      }
      await this.db.put(K_IDENTITY, encodeJson({ directoryId }), { sync: true });
    } else if (identity !== directoryId) {
      throw new RaftkaError(
        'CORRUPT_STORAGE',
        `raft log ${this.path} belongs to directory ${identity}, but meta.properties says ${directoryId}`,
      );
    }
    if (stale.length > 0) await this.db.batch(stale.map((r) => ({ type: 'del' as const, key: entryKey(r.first) })));
    this.runs = liveRuns;
    this.state = { hardState, snapshot, entries: kept };
    this.syncedTerm = hardState.term;
    this.syncedVote = hardState.votedFor;
    this.snapshotIndex = snapIndex;
    this.first = snapIndex + 1;
    this.last = kept.length > 0 ? kept[kept.length - 1]!.index : snapIndex;
    this.log.info(
      { path: this.path, term: hardState.term, commitIndex: hardState.commitIndex, snapshotIndex: snapIndex, lastIndex: this.last },
      'raft log loaded',
    );
  }

  private decodeRun(key: Buffer, first: number, payload: Buffer): Entry[] {
    if (payload.length < 4) throw this.corrupt(key, 'run header truncated');
    const count = payload.readUInt32BE(0);
    const out: Entry[] = [];
    let off = 4;
    for (let i = 0; i < count; i++) {
      if (off + 13 > payload.length) throw this.corrupt(key, `entry ${first + i} header truncated`);
      const term = payload.readDoubleBE(off);
      const kind = KINDS[payload[off + 8]!];
      const len = payload.readUInt32BE(off + 9);
      if (kind === undefined) throw this.corrupt(key, `entry ${first + i} has unknown kind ${payload[off + 8]}`);
      if (!Number.isSafeInteger(term) || term < 1) throw this.corrupt(key, `entry ${first + i} has bad term ${term}`);
      if (off + 13 + len > payload.length) throw this.corrupt(key, `entry ${first + i} data truncated`);
      out.push({ index: first + i, term, kind, data: payload.subarray(off + 13, off + 13 + len) });
      off += 13 + len;
    }
    if (off !== payload.length) throw this.corrupt(key, `${payload.length - off} trailing bytes`);
    return out;
  }

  private parseHardState(key: Buffer, v: unknown): HardState {
    const h = v as { term?: unknown; votedFor?: unknown; commitIndex?: unknown };
    const vf = h.votedFor as { nodeId?: unknown; directoryId?: unknown } | null | undefined;
    if (typeof h.term !== 'number' || typeof h.commitIndex !== 'number') throw this.corrupt(key, 'bad hard state');
    if (vf !== null && (typeof vf?.nodeId !== 'number' || typeof vf.directoryId !== 'string')) {
      throw this.corrupt(key, 'bad votedFor');
    }
    return {
      term: h.term,
      commitIndex: h.commitIndex,
      votedFor: vf === null ? null : { nodeId: vf.nodeId as number, directoryId: vf.directoryId as string },
    };
  }

  private parseSnapshot(key: Buffer, payload: Buffer): Snapshot {
    if (payload.length < 4) throw this.corrupt(key, 'snapshot header truncated');
    const metaLen = payload.readUInt32BE(0);
    if (4 + metaLen > payload.length) throw this.corrupt(key, 'snapshot meta truncated');
    const m = this.parseJson(key, payload.subarray(4, 4 + metaLen)) as Partial<SnapshotMeta>;
    const config = m.config as ClusterConfig | undefined;
    if (typeof m.index !== 'number' || typeof m.term !== 'number' || !Array.isArray(config?.voters)) {
      throw this.corrupt(key, 'bad snapshot meta');
    }
    return { meta: { index: m.index, term: m.term, config }, data: payload.subarray(4 + metaLen) };
  }

  /** What was on disk at open: hand it to the core. */
  loaded(): PersistedState {
    return this.state;
  }

  firstIndex(): number {
    return this.first;
  }

  lastIndex(): number {
    return this.last;
  }

  /**
   * Makes a Ready's state durable in one synced batch: snapshot, truncation, entries,
   * hard state (types.ts, persistence rule step 1). One call at a time.
   */
  async persist(ready: Pick<Ready, 'hardState' | 'snapshot' | 'truncateFrom' | 'entries'>): Promise<void> {
    const { hardState, snapshot, truncateFrom, entries } = ready;
    if (hardState === undefined && snapshot === undefined && truncateFrom === undefined && entries.length === 0) return;
    this.beginWrite();
    try {
      const ops: Array<{ type: 'put'; key: Buffer; value: Buffer } | { type: 'del'; key: Buffer }> = [];
      const runs = this.runs.slice();
      let last = this.last;
      let snapIndex = this.snapshotIndex;
      if (snapshot !== undefined) {
        ops.push({ type: 'put', key: K_SNAPSHOT, value: encodeSnapshot(snapshot) });
        snapIndex = snapshot.meta.index;
        // Runs it covers entirely go; one it cuts through stays (load skips the covered part).
        while (runs.length > 0 && runs[0]!.last <= snapIndex) ops.push({ type: 'del', key: entryKey(runs.shift()!.first) });
        if (last < snapIndex) last = snapIndex;
      }
      const appendFrom = entries.length > 0 ? entries[0]!.index : Infinity;
      const cut = Math.min(truncateFrom ?? Infinity, appendFrom);
      if (cut <= last) {
        // Drop the conflicting tail in the same atomic batch as the new entries [Raft §5.3].
        while (runs.length > 0 && runs[runs.length - 1]!.first >= cut) {
          ops.push({ type: 'del', key: entryKey(runs.pop()!.first) });
        }
        const straddle = runs[runs.length - 1];
        if (straddle !== undefined && straddle.last >= cut) {
          const key = entryKey(straddle.first);
          const stored = await this.db.get(key);
          assert(stored !== undefined, () => `run at ${straddle.first} vanished`);
          const keep = this.decodeRun(key, straddle.first, this.unseal(key, stored)).filter((e) => e.index < cut);
          ops.push({ type: 'put', key, value: encodeRun(keep) });
          runs[runs.length - 1] = { first: straddle.first, last: cut - 1 };
        }
        last = Math.max(cut - 1, snapIndex);
      }
      if (entries.length > 0) {
        assert(appendFrom === last + 1, () => `append at ${appendFrom} would leave a hole after ${last}`);
        ops.push({ type: 'put', key: entryKey(appendFrom), value: encodeRun(entries) });
        last = entries[entries.length - 1]!.index;
        runs.push({ first: appendFrom, last });
      }
      let sync = snapshot !== undefined || entries.length > 0 || truncateFrom !== undefined;
      if (hardState !== undefined) {
        ops.push({ type: 'put', key: K_HARD, value: encodeJson(hardState) });
        const v = hardState.votedFor;
        const s = this.syncedVote;
        const sameVote = v === s || (v !== null && s !== null && v.nodeId === s.nodeId && v.directoryId === s.directoryId);
        if (hardState.term !== this.syncedTerm || !sameVote) sync = true;
      }
      // A Ready that only moves the commit index need not wait for the disk: the stored
      // commit index may lag (it is relearned from the leader), it must only never lead,
      // and it cannot, since the entries it covers were synced before. This saves a
      // second fsync per commit on the leader.
      await this.db.batch(ops, { sync });
      if (hardState !== undefined) {
        this.syncedTerm = hardState.term;
        this.syncedVote = hardState.votedFor;
      }
      this.runs = runs;
      this.first = snapIndex + 1;
      this.last = last;
      this.snapshotIndex = snapIndex;
    } finally {
      this.writing = false;
    }
  }

  /**
   * Stores a snapshot the local state machine took at applied index `meta.index`
   * (synced), then deletes the entries it covers. Call `core.compact` between the two
   * if the core must not see the log shrink first; a crash in between is harmless
   * because load skips entries the snapshot covers.
   */
  async saveSnapshot(snapshot: Snapshot): Promise<void> {
    this.beginWrite();
    try {
      await this.db.put(K_SNAPSHOT, encodeSnapshot(snapshot), { sync: true });
    } finally {
      this.writing = false;
    }
    this.snapshotIndex = Math.max(this.snapshotIndex, snapshot.meta.index);
    this.first = this.snapshotIndex + 1;
    if (this.last < this.snapshotIndex) this.last = this.snapshotIndex;
    // Not synced: runs left behind by a crash here are covered and skipped on load.
    const covered: Buffer[] = [];
    while (this.runs.length > 0 && this.runs[0]!.last <= this.snapshotIndex) covered.push(entryKey(this.runs.shift()!.first));
    if (covered.length > 0) await this.db.batch(covered.map((key) => ({ type: 'del' as const, key })));
  }

  /** The stored snapshot, if any (for a restarting node or a lagging follower). */
  async readSnapshot(): Promise<Snapshot | null> {
    const v = await this.db.get(K_SNAPSHOT);
    return v === undefined ? null : this.parseSnapshot(K_SNAPSHOT, this.unseal(K_SNAPSHOT, v));
  }

  private beginWrite(): void {
    if (this.closed) throw new RaftkaError('KAFKA_STORAGE_ERROR', `raft log ${this.path} is closed`);
    // The driver persists one Ready at a time; overlapping writes would reorder them.
    assert(!this.writing, 'concurrent raft storage writes');
    this.writing = true;
  }

  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    await this.db.close();
  }
}

/** Test and tooling helper: the raw LevelDB of a raft log, e.g. to damage a value. */
export function openRawRaftDb(dir: string): Level<Buffer, Buffer> {
  return new Level<Buffer, Buffer>(join(dir, RAFT_DB_DIR), { keyEncoding: 'buffer', valueEncoding: 'buffer' });
}
