// Offline readers for the checker's cluster checks: controller events from a node's log
// file, a voter's Raft metadata log from its stopped data dir, and a replica's log bytes
// below a high watermark. Pure reads; the cluster decides when the nodes are stopped.
import { existsSync, readFileSync } from 'node:fs';
import { createHash } from 'node:crypto';
import { join } from 'node:path';
import { crc32c } from '@node-rs/crc32';
import { Level } from 'level';
import { RAFT_DB_DIR } from '../io/raft-storage.ts';
import { inspectLogDir } from '../log/inspect.ts';
import type { ControllerEvent, MetadataLogEntry, ReplicaImage } from './checker.ts';

/** The message ControllerService logs (with the Raft `term`) when it becomes active. */
const BECAME_CONTROLLER = 'became the active controller';

/** `became-controller` events (epoch = Raft term) from one node's pino JSON log. */
export function readControllerEvents(logPath: string, node: number): ControllerEvent[] {
  if (!existsSync(logPath)) return [];
  const out: ControllerEvent[] = [];
  for (const line of readFileSync(logPath, 'utf8').split('\n')) {
    if (!line.includes(BECAME_CONTROLLER)) continue;
    try {
      const o = JSON.parse(line) as { msg?: unknown; term?: unknown };
      if (o.msg === BECAME_CONTROLLER && typeof o.term === 'number') out.push({ node, epoch: o.term, event: 'became-controller' });
    } catch {
      // a torn last line of a killed process
    }
  }
  return out;
}

export interface OfflineMetadataLog {
  readonly entries: MetadataLogEntry[];
  readonly snapshotIndex: number;
  /** The voter's persisted commit index (it may lag what the leader committed). */
  readonly commitIndex: number;
}

function unseal(value: Buffer, what: string): Buffer {
  if (value.length < 4 || crc32c(value.subarray(4)) !== value.readUInt32BE(0)) throw new Error(`${what}: CRC32C mismatch or truncated value`);
  return value.subarray(4);
}

/**
 * Reads a stopped voter's Raft log (the layout src/io/raft-storage.ts writes, read-only
 * like `raftka metadata dump`). Each entry's data is its kind byte followed by its
 * payload, so entries that differ only in kind differ in bytes too.
 */
export async function readMetadataLog(dataDir: string): Promise<OfflineMetadataLog> {
  const db = new Level<Buffer, Buffer>(join(dataDir, RAFT_DB_DIR), { keyEncoding: 'buffer', valueEncoding: 'buffer', createIfMissing: false });
  await db.open();
  try {
    let commitIndex = 0;
    let snapshotIndex = 0;
    const h = await db.get(Buffer.from('h'));
    if (h !== undefined) commitIndex = (JSON.parse(unseal(h, `${dataDir} hard state`).toString('utf8')) as { commitIndex: number }).commitIndex;
    const s = await db.get(Buffer.from('s'));
    if (s !== undefined) {
      const p = unseal(s, `${dataDir} snapshot`);
      const metaLen = p.readUInt32BE(0);
      snapshotIndex = (JSON.parse(p.subarray(4, 4 + metaLen).toString('utf8')) as { index: number }).index;
    }
    const byIndex = new Map<number, MetadataLogEntry>();
    for await (const [key, value] of db.iterator({ gte: Buffer.from([0x65]), lt: Buffer.from([0x66]) })) {
      if (key.length !== 9) continue;
      const first = Number(key.readBigUInt64BE(1));
      const p = unseal(value, `${dataDir} entry run @${first}`);
      const count = p.readUInt32BE(0);
      let off = 4;
      for (let i = 0; i < count; i++) {
        const term = p.readDoubleBE(off);
        const len = p.readUInt32BE(off + 9);
        const index = first + i;
        if (index > snapshotIndex) byIndex.set(index, { index, term, data: new Uint8Array(Buffer.concat([p.subarray(off + 8, off + 9), p.subarray(off + 13, off + 13 + len)])) });
        off += 13 + len;
      }
    }
    const entries = [...byIndex.values()].sort((a, b) => a.index - b.index);
    return { entries, snapshotIndex, commitIndex };
  } finally {
    await db.close();
  }
}

/** Bytes above which a replica image is carried as a digest instead. */
const BYTES_MAX = 8 * 1024 * 1024;

export interface ReplicaLog {
  readonly node: number;
  readonly batches: readonly { readonly baseOffset: number; readonly lastOffset: number; readonly bytes: Buffer }[];
}

/** Every whole batch of a partition directory (a torn tail ends the read). */
export async function readReplicaLog(dir: string, node: number): Promise<ReplicaLog> {
  const batches: { baseOffset: number; lastOffset: number; bytes: Buffer }[] = [];
  if (existsSync(dir)) {
    for await (const b of inspectLogDir(dir)) {
      if (b.kind !== 'batch') break;
      batches.push({ baseOffset: b.header.baseOffset, lastOffset: b.header.lastOffset, bytes: b.bytes });
    }
  }
  return { node, batches };
}

/**
 * The replicas' images below `highWatermark`, from the first offset all of them still
 * hold (retention may have removed more on one replica than on another).
 */
export function replicaImages(logs: readonly ReplicaLog[], highWatermark: number): ReplicaImage[] {
  const from = Math.max(0, ...logs.map((l) => l.batches[0]?.baseOffset ?? 0));
  const cut = logs.map((l) => ({ node: l.node, bytes: Buffer.concat(l.batches.filter((b) => b.baseOffset >= from && b.lastOffset < highWatermark).map((b) => b.bytes)) }));
  if (cut.every((c) => c.bytes.length <= BYTES_MAX)) return cut.map((c) => ({ node: c.node, bytes: new Uint8Array(c.bytes) }));
  return cut.map((c) => ({ node: c.node, digest: createHash('sha256').update(c.bytes).digest('hex') }));
}
