// Producer state snapshot files of one partition directory, like Kafka's
// `<offset>.snapshot` files: `<20-digit offset>.producer-snapshot` holds the producer state
// (JSON, src/broker/producer-state.ts) reflecting every batch below that offset. Written
// atomically (temp file, fsync, rename, directory fsync), so a crash leaves a whole file
// or none. The log ignores these files (it opens only `*.log` segments).
import { readdir } from 'node:fs/promises';
import { join } from 'node:path';
import { readFileIfExists, unlinkIfExists, writeFileAtomic } from '../log/checkpoint.ts';
import { parseProducerSnapshot, type ProducerStateSnapshot } from './producer-state.ts';

const SUFFIX = '.producer-snapshot';
const NAME = /^(\d{20})\.producer-snapshot$/;

/** Snapshots kept per partition: the newest and one before it (in case the newest is past a truncated log end). */
export const PRODUCER_SNAPSHOTS_RETAINED = 2;

export function producerSnapshotPath(dir: string, offset: number): string {
  return join(dir, `${String(offset).padStart(20, '0')}${SUFFIX}`);
}

/** Snapshot offsets in `dir`, ascending. */
export async function listProducerSnapshots(dir: string): Promise<number[]> {
  const names = await readdir(dir).catch(() => [] as string[]);
  return names
    .map((n) => NAME.exec(n)?.[1])
    .filter((x): x is string => x !== undefined)
    .map(Number)
    .sort((a, b) => a - b);
}

/** The snapshot at `offset`, or undefined when it is missing or unreadable (the caller replays more of the log instead). */
export async function readProducerSnapshot(dir: string, offset: number): Promise<ProducerStateSnapshot | undefined> {
  try {
    const text = await readFileIfExists(producerSnapshotPath(dir, offset));
    if (text === undefined) return undefined;
    const s = parseProducerSnapshot(text);
    return s.offset === offset ? s : undefined;
  } catch {
    return undefined;
  }
}

export async function writeProducerSnapshot(dir: string, s: ProducerStateSnapshot): Promise<void> {
  await writeFileAtomic(producerSnapshotPath(dir, s.offset), JSON.stringify(s));
}

/** Deletes snapshots past `offset` (they describe batches the log no longer holds). */
export async function deleteProducerSnapshotsAbove(dir: string, offset: number): Promise<void> {
  for (const o of await listProducerSnapshots(dir)) if (o > offset) await unlinkIfExists(producerSnapshotPath(dir, o));
}

/** Keeps the newest PRODUCER_SNAPSHOTS_RETAINED snapshots. */
export async function pruneProducerSnapshots(dir: string): Promise<void> {
  const all = await listProducerSnapshots(dir);
  for (const o of all.slice(0, Math.max(0, all.length - PRODUCER_SNAPSHOTS_RETAINED))) await unlinkIfExists(producerSnapshotPath(dir, o));
}
