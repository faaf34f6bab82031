// `raftka metadata dump --dir <data dir>`: decodes a node's Raft metadata log OFFLINE
// (like kafka-dump-log --cluster-metadata-decoder): the hard state, the snapshot (its
// image as records), then every stored entry with its index, term, kind and decoded
// metadata records.
//
// It reads the LevelDB that src/io/raft-storage.ts writes, with the same key layout and
// CRC checks (duplicated here, read-only, because RaftStorage.open would also write: it
// stamps the directory id and deletes runs a snapshot covers). LevelDB allows one process
// per database, so a running node's log is refused with a clear error; stop the node or
// dump a copy. Opening replays LevelDB's own write-ahead log, as the node's next start
// would; the Raft data is not changed.
import { existsSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { crc32c } from '@node-rs/crc32';
import type { Command } from 'commander';
import { Level } from 'level';
import { RAFT_DB_DIR } from '../io/raft-storage.ts';
import { decodeRecords, type MetadataRecord } from '../metadata/index.ts';
import { decodeSnapshot, imageToRecords } from '../metadata/snapshot.ts';
import { decodeConfig, type ClusterConfig } from '../raft/types.ts';
import { action, CliError, oneLineErrors } from './common.ts';

const KINDS = ['normal', 'config', 'noop'] as const;

interface Flags {
  dir: string;
  json?: boolean;
}

type Item =
  | { type: 'identity'; directoryId: string }
  | { type: 'hardState'; term: number; votedFor: unknown; commitIndex: number }
  | { type: 'snapshot'; index: number; term: number; config: ClusterConfig; offset: number; records: MetadataRecord[] }
  | { type: 'entry'; index: number; term: number; kind: (typeof KINDS)[number]; records?: MetadataRecord[]; config?: ClusterConfig; error?: string }
  | { type: 'defect'; key: string; error: string };

function keyName(key: Buffer): string {
  if (key[0] === 0x65 && key.length === 9) return `entry run @${key.readBigUInt64BE(1)}`;
  return `key ${JSON.stringify(key.toString('latin1'))}`;
}

/** The value without its CRC32C prefix, or an error string. */
function unseal(value: Buffer): Buffer | string {
  if (value.length < 4) return `value of ${value.length} bytes is too short`;
  const payload = value.subarray(4);
  return crc32c(payload) === value.readUInt32BE(0) ? payload : 'CRC32C mismatch';
}

function decodeEntryData(kind: (typeof KINDS)[number], index: number, data: Buffer): Pick<Extract<Item, { type: 'entry' }>, 'records' | 'config' | 'error'> {
  try {
    if (kind === 'normal') return { records: decodeRecords(data, { where: `metadata log index ${index}` }) };
    if (kind === 'config') return { config: decodeConfig(data) };
    return {};
  } catch (e) {
    return { error: (e as Error).message };
  }
}

/** Decodes one stored run of entries (u32 count | count x (f64 term | u8 kind | u32 length | data)). */
function* decodeRun(first: number, payload: Buffer): Generator<Item> {
  if (payload.length < 4) {
    yield { type: 'defect', key: keyName(Buffer.from([0x65])), error: 'run header truncated' };
    return;
  }
  const count = payload.readUInt32BE(0);
  let off = 4;
  for (let i = 0; i < count; i++) {
    const index = first + i;
    if (off + 13 > payload.length) {
      yield { type: 'defect', key: `entry ${index}`, error: 'entry header truncated' };
      return;
    }
    const term = payload.readDoubleBE(off);
    const kind = KINDS[payload[off + 8]!];
    const len = payload.readUInt32BE(off + 9);
    if (kind === undefined || off + 13 + len > payload.length) {
      yield { type: 'defect', key: `entry ${index}`, error: kind === undefined ? `unknown kind ${payload[off + 8]}` : 'entry data truncated' };
      return;
    }
    yield { type: 'entry', index, term, kind, ...decodeEntryData(kind, index, payload.subarray(off + 13, off + 13 + len)) };
    off += 13 + len;
  }
}

async function* readRaftLog(dbPath: string): AsyncGenerator<Item> {
  const db = new Level<Buffer, Buffer>(dbPath, { keyEncoding: 'buffer', valueEncoding: 'buffer', createIfMissing: false });
  try {
    await db.open();
  } catch (e) {
    const cause = (e as { cause?: { code?: string; message?: string } }).cause;
    if (cause?.code === 'LEVEL_LOCKED') throw new CliError(`${dbPath} is locked by a running node: stop the node (or copy the directory) and try again`);
    throw new CliError(`cannot open ${dbPath}: ${cause?.message ?? (e as Error).message}`);
  }
  try {
    // Keys sort 'e' (entry runs) < 'h' (hard state) < 'i' (identity) < 's' (snapshot):
    // read the small keys first so the snapshot index is known before the entries.
    const misc: Item[] = [];
    let snapshotIndex = 0;
    for (const k of ['i', 'h', 's']) {
      const key = Buffer.from(k);
      const v = await db.get(key);
      if (v === undefined) continue;
      const payload = unseal(v);
      if (typeof payload === 'string') {
        misc.push({ type: 'defect', key: keyName(key), error: payload });
        continue;
      }
      try {
        if (k === 'i') misc.push({ type: 'identity', directoryId: String((JSON.parse(payload.toString('utf8')) as { directoryId?: unknown }).directoryId) });
        else if (k === 'h') {
          const h = JSON.parse(payload.toString('utf8')) as { term: number; votedFor: unknown; commitIndex: number };
          misc.push({ type: 'hardState', term: h.term, votedFor: h.votedFor, commitIndex: h.commitIndex });
        } else {
          const metaLen = payload.readUInt32BE(0);
          const meta = JSON.parse(payload.subarray(4, 4 + metaLen).toString('utf8')) as { index: number; term: number; config: ClusterConfig };
          const image = decodeSnapshot(payload.subarray(4 + metaLen), { where: `metadata snapshot at index ${meta.index}` });
          snapshotIndex = meta.index;
          misc.push({ type: 'snapshot', index: meta.index, term: meta.term, config: meta.config, offset: image.offset, records: imageToRecords(image) });
        }
      } catch (e) {
        misc.push({ type: 'defect', key: keyName(key), error: (e as Error).message });
      }
    }
    yield* misc;
    for await (const [key, value] of db.iterator({ gte: Buffer.from([0x65]), lt: Buffer.from([0x66]) })) {
      if (key.length !== 9) {
        yield { type: 'defect', key: keyName(key), error: 'unknown key' };
        continue;
      }
      const payload = unseal(value);
      if (typeof payload === 'string') {
        yield { type: 'defect', key: keyName(key), error: payload };
        continue;
      }
      for (const item of decodeRun(Number(key.readBigUInt64BE(1)), payload)) {
        // Entries a snapshot covers are garbage the node skips on load (and deletes).
        if (item.type === 'entry' && item.index <= snapshotIndex) continue;
        yield item;
      }
    }
  } finally {
    await db.close();
  }
}

function recordLine(r: MetadataRecord): string {
  const { type, version: _version, ...fields } = r;
  return `${type} ${JSON.stringify(fields)}`;
}

function configLine(c: ClusterConfig): string {
  return `voters ${c.voters.map((v) => `${v.nodeId}:${v.directoryId}`).join(',') || '-'} observers ${c.observers.join(',') || '-'}`;
}

/** The raft-log LevelDB of a data dir (or the path itself when it is the database). */
function dbPathOf(dir: string): string {
  const abs = resolve(dir);
  if (existsSync(join(abs, RAFT_DB_DIR, 'CURRENT'))) return join(abs, RAFT_DB_DIR);
  if (existsSync(join(abs, 'CURRENT'))) return abs;
  if (!existsSync(abs)) throw new CliError(`${abs} does not exist`);
  throw new CliError(`${abs} holds no metadata log (expected ${join(abs, RAFT_DB_DIR)})`);
}

export function registerMetadataCommands(program: Command): void {
  const metadata = oneLineErrors(program.command('metadata').description('inspect the cluster metadata log'), 'metadata');
  oneLineErrors(
    metadata
      .command('dump')
      .description("decode a stopped node's metadata log offline: hard state, snapshot, and every entry (index, term, kind, metadata records)")
      .requiredOption('-d, --dir <dir>', "the node's data dir (holding raft-log/), or the raft-log directory itself")
      .option('--json', 'one JSON object per item (identity, hardState, snapshot, entry, defect)')
      .addHelpText('after', '\nExit code 0; 1 with one line when the log cannot be opened (a running node holds its lock); 3 when a stored value is damaged.'),
    'metadata dump',
  ).action(
    action('metadata dump', async (flags: Flags) => {
      const path = dbPathOf(flags.dir);
      let entries = 0;
      let defects = 0;
      for await (const item of readRaftLog(path)) {
        if (item.type === 'entry') entries++;
        if (item.type === 'defect' || (item.type === 'entry' && item.error !== undefined)) defects++;
        if (flags.json) {
          console.log(JSON.stringify(item));
          continue;
        }
        switch (item.type) {
          case 'identity':
            console.log(`Metadata log ${path} (directory id ${item.directoryId})`);
            break;
          case 'hardState':
            console.log(`hard state: term ${item.term}, voted for ${item.votedFor === null ? 'nobody' : JSON.stringify(item.votedFor)}, commit index ${item.commitIndex}`);
            break;
          case 'snapshot':
            console.log(`snapshot: index ${item.index} term ${item.term} ${configLine(item.config)}, ${item.records.length} records`);
            for (const r of item.records) console.log(`  | ${recordLine(r)}`);
            break;
          case 'entry':
            if (item.error !== undefined) console.log(`index ${item.index} term ${item.term} ${item.kind} DEFECT: ${item.error}`);
            else if (item.kind === 'config') console.log(`index ${item.index} term ${item.term} config ${configLine(item.config!)}`);
            else if (item.kind === 'noop') console.log(`index ${item.index} term ${item.term} noop`);
            else {
              console.log(`index ${item.index} term ${item.term} normal, ${item.records!.length} records`);
              for (const r of item.records!) console.log(`  | ${recordLine(r)}`);
            }
            break;
          case 'defect':
            console.log(`DEFECT at ${item.key}: ${item.error}`);
            break;
        }
      }
      if (!flags.json) console.log(`${entries} entries, ${defects} defects`);
      if (defects > 0) process.exitCode = 3;
    }),
  );
}
