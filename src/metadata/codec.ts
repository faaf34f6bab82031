// Metadata record batches to and from bytes (the `data` of a Raft entry).
//
// Format: one format byte (BATCH_FORMAT), then UTF-8 JSON `[record, ...]`. JSON keeps the
// log readable with `raftka metadata` and costs little: metadata is small next to
// partition data. Every decoded record is checked field by field against its type and
// version, because a record that replays wrongly would fork the image on one node; a
// batch that fails the check is refused whole with a typed error naming the record and
// field, never a crash or a half-applied batch.
import { RaftkaError, type ErrorName } from '../common/errors.ts';
import { isUuid } from '../common/ids.ts';
import {
  RECORD_VERSIONS,
  type ConfigResourceType,
  type Endpoint,
  type MetadataRecord,
  type MetadataRecordType,
} from './records.ts';

export const BATCH_FORMAT = 0x01;

/** Limits on decoded input, so a corrupt or hostile batch cannot exhaust memory. */
export const RECORDS_PER_BATCH_MAX = 1_000_000;
export const NAME_LENGTH_MAX = 1024;
export const CONFIG_VALUE_LENGTH_MAX = 64 * 1024;
export const REPLICAS_MAX = 1024;

const encoder = new TextEncoder();
const decoder = new TextDecoder('utf-8', { fatal: true });

export function encodeRecords(records: readonly MetadataRecord[]): Uint8Array {
  const json = encoder.encode(JSON.stringify(records));
  const out = new Uint8Array(json.length + 1);
  out[0] = BATCH_FORMAT;
  out.set(json, 1);
  return out;
}

export interface DecodeOptions {
  /**
   * The error to throw on bad bytes: CORRUPT_STORAGE (the default) for the metadata log
   * and snapshots, INVALID_REQUEST for bytes that came from a client.
   */
  readonly errorName?: ErrorName;
  /** Names the source in error messages (e.g. "metadata log index 42"). */
  readonly where?: string;
}

export function decodeRecords(bytes: Uint8Array, opts: DecodeOptions = {}): MetadataRecord[] {
  const fail = failer(opts);
  if (bytes.length === 0) throw fail('empty batch');
  if (bytes[0] !== BATCH_FORMAT) throw fail(`unknown batch format ${bytes[0]} (expected ${BATCH_FORMAT})`);
  const raw = parseJson(bytes.subarray(1), fail);
  if (!Array.isArray(raw)) throw fail('batch is not a list of records');
  if (raw.length > RECORDS_PER_BATCH_MAX) throw fail(`batch holds ${raw.length} records (max ${RECORDS_PER_BATCH_MAX})`);
  return raw.map((r, i) => checkRecord(r, (why) => fail(`record ${i}: ${why}`)));
}

export function parseJson(bytes: Uint8Array, fail: (why: string) => RaftkaError): unknown {
  let text: string;
  try {
    text = decoder.decode(bytes);
  } catch {
    throw fail('not valid UTF-8');
  }
  try {
    return JSON.parse(text) as unknown;
  } catch (e) {
    throw fail(`not valid JSON (${(e as Error).message})`);
  }
}

export function failer(opts: DecodeOptions): (why: string) => RaftkaError {
  const errorName = opts.errorName ?? 'CORRUPT_STORAGE';
  const where = opts.where ?? 'metadata batch';
  return (why) => new RaftkaError(errorName, `Undecodable ${where}: ${why}`);
}

type Fail = (why: string) => RaftkaError;
type Obj = Record<string, unknown>;

/** Checks one decoded record: known type, known version, every field well-typed. */
export function checkRecord(raw: unknown, fail: Fail): MetadataRecord {
  if (typeof raw !== 'object' || raw === null || Array.isArray(raw)) throw fail('not an object');
  const o = raw as Obj;
  const type = o['type'];
  if (typeof type !== 'string' || !Object.hasOwn(RECORD_VERSIONS, type)) {
    throw fail(`unknown record type ${JSON.stringify(type)}`);
  }
  const t = type as MetadataRecordType;
  const version = o['version'];
  if (version !== RECORD_VERSIONS[t]) {
    throw fail(`${t} record version ${JSON.stringify(version)} is not supported (this node reads ${RECORD_VERSIONS[t]})`);
  }
  const f = (why: string): RaftkaError => fail(`${t}: ${why}`);
  const c = new Checker(o, f);
  switch (t) {
    case 'registerBroker':
      return {
        type: t,
        version: 0,
        brokerId: c.brokerId('brokerId'),
        incarnationId: c.uuid('incarnationId'),
        brokerEpoch: c.int('brokerEpoch', 0),
        endpoints: c.endpoints('endpoints'),
        rack: c.nullableString('rack'),
        fenced: c.bool('fenced'),
      };
    case 'unregisterBroker':
    case 'fenceBroker':
    case 'unfenceBroker':
      return { type: t, version: 0, brokerId: c.brokerId('brokerId'), brokerEpoch: c.int('brokerEpoch', 0) };
    case 'topic':
      return { type: t, version: 0, name: c.string('name'), topicId: c.uuid('topicId') };
    case 'removeTopic':
      return { type: t, version: 0, topicId: c.uuid('topicId') };
    case 'partition':
      return {
        type: t,
        version: 0,
        topicId: c.uuid('topicId'),
        partition: c.int('partition', 0),
        replicas: c.brokerList('replicas'),
        isr: c.brokerList('isr'),
        elr: c.brokerList('elr'),
        lastKnownElr: c.brokerList('lastKnownElr'),
        leader: c.int('leader', -1),
        leaderEpoch: c.int('leaderEpoch', 0),
        partitionEpoch: c.int('partitionEpoch', 0),
      };
    case 'partitionChange': {
      const out: {
        type: 'partitionChange';
        version: 0;
        topicId: string;
        partition: number;
        replicas?: readonly number[];
        isr?: readonly number[];
        elr?: readonly number[];
        lastKnownElr?: readonly number[];
        leader?: number;
      } = { type: t, version: 0, topicId: c.uuid('topicId'), partition: c.int('partition', 0) };
      if (o['replicas'] !== undefined) out.replicas = c.brokerList('replicas');
      if (o['isr'] !== undefined) out.isr = c.brokerList('isr');
      if (o['elr'] !== undefined) out.elr = c.brokerList('elr');
      if (o['lastKnownElr'] !== undefined) out.lastKnownElr = c.brokerList('lastKnownElr');
      if (o['leader'] !== undefined) out.leader = c.int('leader', -1);
      return out;
    }
    case 'config': {
      const resourceType = o['resourceType'];
      if (resourceType !== 'topic' && resourceType !== 'broker' && resourceType !== 'cluster') {
        throw f(`resourceType ${JSON.stringify(resourceType)} is not topic, broker or cluster`);
      }
      return {
        type: t,
        version: 0,
        resourceType: resourceType satisfies ConfigResourceType,
        resourceName: c.string('resourceName', true),
        name: c.string('name'),
        value: c.nullableString('value', CONFIG_VALUE_LENGTH_MAX),
      };
    }
    case 'producerIds':
      return {
        type: t,
        version: 0,
        brokerId: c.brokerId('brokerId'),
        brokerEpoch: c.int('brokerEpoch', 0),
        nextProducerId: c.int('nextProducerId', 0),
      };
    case 'featureLevel':
      return { type: t, version: 0, name: c.string('name'), featureLevel: c.int('featureLevel', 0, 0x7fff) };
    case 'noOp':
      return { type: t, version: 0 };
  }
}

class Checker {
  constructor(
    private readonly o: Obj,
    private readonly fail: Fail,
  ) {}

  int(key: string, min: number, max = Number.MAX_SAFE_INTEGER): number {
    const v = this.o[key];
    if (typeof v !== 'number' || !Number.isSafeInteger(v) || v < min || v > max) {
      throw this.fail(`${key} ${JSON.stringify(v)} is not an integer in [${min}, ${max}]`);
    }
    return v;
  }

  brokerId(key: string): number {
    return this.int(key, 0, 2 ** 31 - 1);
  }

  bool(key: string): boolean {
    const v = this.o[key];
    if (typeof v !== 'boolean') throw this.fail(`${key} ${JSON.stringify(v)} is not a boolean`);
    return v;
  }

  string(key: string, allowEmpty = false): string {
    return checkString(this.o[key], key, this.fail, allowEmpty);
  }

  nullableString(key: string, lengthMax = NAME_LENGTH_MAX): string | null {
    const v = this.o[key];
    return v === null ? null : checkString(v, key, this.fail, true, lengthMax);
  }

  uuid(key: string): string {
    const v = this.o[key];
    if (typeof v !== 'string' || !isUuid(v)) throw this.fail(`${key} ${JSON.stringify(v)} is not a uuid`);
    return v;
  }

  brokerList(key: string): readonly number[] {
    const v = this.o[key];
    if (!Array.isArray(v) || v.length > REPLICAS_MAX) throw this.fail(`${key} is not a list of at most ${REPLICAS_MAX} broker ids`);
    const seen = new Set<number>();
    for (const id of v) {
      if (typeof id !== 'number' || !Number.isInteger(id) || id < 0 || id > 2 ** 31 - 1) {
        throw this.fail(`${key} holds ${JSON.stringify(id)}, not a broker id`);
      }
      if (seen.has(id)) throw this.fail(`${key} holds broker ${id} twice`);
      seen.add(id);
    }
    return v as number[];
  }

  endpoints(key: string): readonly Endpoint[] {
    const v = this.o[key];
    if (!Array.isArray(v) || v.length > 64) throw this.fail(`${key} is not a list of at most 64 endpoints`);
    return v.map((e: unknown, i) => {
      if (typeof e !== 'object' || e === null) throw this.fail(`${key}[${i}] is not an object`);
      const c = new Checker(e as Obj, (why) => this.fail(`${key}[${i}]: ${why}`));
      return { name: c.string('name'), host: c.string('host'), port: c.int('port', 0, 65535) };
    });
  }
}

function checkString(v: unknown, key: string, fail: Fail, allowEmpty: boolean, lengthMax = NAME_LENGTH_MAX): string {
  if (typeof v !== 'string') throw fail(`${key} ${JSON.stringify(v)} is not a string`);
  if (!allowEmpty && v.length === 0) throw fail(`${key} is empty`);
  if (v.length > lengthMax) throw fail(`${key} is longer than ${lengthMax} characters`);
  return v;
}
