// Image snapshots for Raft [Raft §7]. As in KRaft, a snapshot is a list of ordinary
// records that rebuild the image when replayed on an empty one [KIP-630], plus a small
// header for what records cannot carry (the log position, the highest broker epoch ever
// handed out — that broker may have been unregistered since). Reusing the record codec
// means one decoder, one set of checks, and a snapshot readable with the same tools.
//
// The encoding is canonical: brokers, topics and configs in sorted order, so two equal
// images have byte-identical snapshots (tests compare images this way).
//
// Format: one format byte (SNAPSHOT_FORMAT), then UTF-8 JSON
//   { "offset", "controllerEpoch", "lastBrokerEpoch", "nextProducerId", "records": [...] }.
import { MetadataDelta } from './delta.ts';
import { checkRecord, failer, parseJson, type DecodeOptions } from './codec.ts';
import { MetadataImage } from './image.ts';
import { record, type ConfigResourceType, type MetadataRecord } from './records.ts';

export const SNAPSHOT_FORMAT = 0x02;

const encoder = new TextEncoder();

/** Records that rebuild `image` from the empty image (canonical order). */
export function imageToRecords(image: MetadataImage): MetadataRecord[] {
  const out: MetadataRecord[] = [];
  for (const [name, featureLevel] of [...image.features].sort(([a], [b]) => cmp(a, b))) {
    out.push(record({ type: 'featureLevel', name, featureLevel }));
  }
  for (const b of [...image.brokers.values()].sort((x, y) => x.brokerId - y.brokerId)) {
    out.push(
      record({
        type: 'registerBroker',
        brokerId: b.brokerId,
        incarnationId: b.incarnationId,
        brokerEpoch: b.brokerEpoch,
        endpoints: b.endpoints.map((e) => ({ name: e.name, host: e.host, port: e.port })),
        rack: b.rack,
        fenced: b.fenced,
      }),
    );
  }
  for (const t of [...image.topicsById.values()].sort((x, y) => cmp(x.topicId, y.topicId))) {
    out.push(record({ type: 'topic', name: t.name, topicId: t.topicId }));
    for (const p of t.partitions) {
      out.push(
        record({
          type: 'partition',
          topicId: p.topicId,
          partition: p.partition,
          replicas: [...p.replicas],
          isr: [...p.isr],
          elr: [...p.elr],
          lastKnownElr: [...p.lastKnownElr],
          leader: p.leader,
          leaderEpoch: p.leaderEpoch,
          partitionEpoch: p.partitionEpoch,
        }),
      );
    }
  }
  for (const key of [...image.configs.keys()].sort(cmp)) {
    const colon = key.indexOf(':');
    const resourceType = key.slice(0, colon) as ConfigResourceType;
    const resourceName = key.slice(colon + 1);
    for (const [name, value] of [...image.configs.get(key)!].sort(([a], [b]) => cmp(a, b))) {
      out.push(record({ type: 'config', resourceType, resourceName, name, value }));
    }
  }
  return out;
}

export function encodeSnapshot(image: MetadataImage): Uint8Array {
  const json = encoder.encode(
    JSON.stringify({
      offset: image.offset,
      controllerEpoch: image.controllerEpoch,
      lastBrokerEpoch: image.lastBrokerEpoch,
      nextProducerId: image.nextProducerId,
      records: imageToRecords(image),
    }),
  );
  const out = new Uint8Array(json.length + 1);
  out[0] = SNAPSHOT_FORMAT;
  out.set(json, 1);
  return out;
}

/** Rebuilds an image from snapshot bytes; bad bytes throw CORRUPT_STORAGE (by default). */
export function decodeSnapshot(bytes: Uint8Array, opts: DecodeOptions = {}): MetadataImage {
  const fail = failer({ where: 'metadata snapshot', ...opts });
  if (bytes.length === 0) throw fail('empty snapshot');
  if (bytes[0] !== SNAPSHOT_FORMAT) throw fail(`unknown snapshot format ${bytes[0]} (expected ${SNAPSHOT_FORMAT})`);
  const raw = parseJson(bytes.subarray(1), fail);
  if (typeof raw !== 'object' || raw === null || Array.isArray(raw)) throw fail('not an object');
  const o = raw as Record<string, unknown>;
  const num = (key: string): number => {
    const v = o[key];
    if (typeof v !== 'number' || !Number.isSafeInteger(v) || v < 0) throw fail(`${key} ${JSON.stringify(v)} is not a non-negative integer`);
    return v;
  };
  const offset = num('offset');
  const controllerEpoch = num('controllerEpoch');
  const lastBrokerEpoch = num('lastBrokerEpoch');
  const nextProducerId = num('nextProducerId');
  const records = o['records'];
  if (!Array.isArray(records)) throw fail('records is not a list');
  const delta = new MetadataDelta(MetadataImage.EMPTY);
  records.forEach((r, i) => {
    const rec = checkRecord(r, (why) => fail(`record ${i}: ${why}`));
    try {
      delta.replay(rec);
    } catch (e) {
      throw fail(`record ${i}: ${(e as Error).message}`);
    }
  });
  delta.setLastBrokerEpoch(lastBrokerEpoch);
  delta.setNextProducerId(nextProducerId);
  return delta.apply(offset, controllerEpoch);
}

/** Two images hold the same metadata at the same position (canonical encodings agree). */
export function imagesEqual(a: MetadataImage, b: MetadataImage): boolean {
  const x = encodeSnapshot(a);
  const y = encodeSnapshot(b);
  return x.length === y.length && x.every((v, i) => v === y[i]);
}

function cmp(a: string, b: string): number {
  return a < b ? -1 : a > b ? 1 : 0;
}
