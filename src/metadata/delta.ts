// MetadataDelta: replays records on top of a base image and builds the next image
// [KRaft's MetadataDelta]. The base is never touched: each map is copied the first time
// a record changes it, and a topic's partition list the first time one of its partitions
// changes, so a delta costs what its records touch, and untouched parts are shared.
//
// Replay is strict. A record that does not fit the image (a change to an unknown topic,
// an ISR outside the replicas, a stale broker epoch) means the log was written by a
// buggy controller or is corrupt; replaying it anyway would fork this node's image from
// the others, so replay throws CORRUPT_STORAGE naming the record instead.
import { RaftkaError, unreachable } from '../common/errors.ts';
import { MetadataImage, configKey, type BrokerRegistration, type PartitionState, type TopicImage } from './image.ts';
import { NO_LEADER, type MetadataRecord, type PartitionChangeRecord, type PartitionRecord } from './records.ts';

export class MetadataDelta {
  readonly base: MetadataImage;
  private brokers: Map<number, BrokerRegistration> | undefined;
  private topicsById: Map<string, TopicImage> | undefined;
  private topicIdsByName: Map<string, string> | undefined;
  /** Topics whose partition list this delta already copied. */
  private readonly ownPartitions = new Map<string, PartitionState[]>();
  private configs: Map<string, ReadonlyMap<string, string>> | undefined;
  private readonly ownConfigs = new Set<string>();
  private features: Map<string, number> | undefined;
  private nextProducerId: number;
  private lastBrokerEpoch: number;
  private replayed = 0;

  constructor(base: MetadataImage) {
    this.base = base;
    this.nextProducerId = base.nextProducerId;
    this.lastBrokerEpoch = base.lastBrokerEpoch;
  }

  /** How many records this delta replayed. */
  get size(): number {
    return this.replayed;
  }

  replay(r: MetadataRecord): void {
    this.replayed++;
    switch (r.type) {
      case 'registerBroker': {
        const brokers = this.ownBrokers();
        const prev = brokers.get(r.brokerId);
        if (prev !== undefined && r.brokerEpoch <= prev.brokerEpoch) {
          throw bad(r, `broker epoch ${r.brokerEpoch} is not above the current ${prev.brokerEpoch}`);
        }
        brokers.set(
          r.brokerId,
          Object.freeze({
            brokerId: r.brokerId,
            incarnationId: r.incarnationId,
            brokerEpoch: r.brokerEpoch,
            endpoints: Object.freeze(r.endpoints.map((e) => Object.freeze({ name: e.name, host: e.host, port: e.port }))),
            rack: r.rack,
            fenced: r.fenced,
          }),
        );
        this.lastBrokerEpoch = Math.max(this.lastBrokerEpoch, r.brokerEpoch);
        return;
      }
      case 'unregisterBroker': {
        this.currentBroker(r);
        this.ownBrokers().delete(r.brokerId);
        return;
      }
      case 'fenceBroker':
      case 'unfenceBroker': {
        const b = this.currentBroker(r);
        this.ownBrokers().set(r.brokerId, Object.freeze({ ...b, fenced: r.type === 'fenceBroker' }));
        return;
      }
      case 'topic': {
        if (this.topicIdsByNameView().has(r.name)) throw bad(r, `topic ${r.name} already exists`);
        if (this.topicsByIdView().has(r.topicId)) throw bad(r, `topic id ${r.topicId} already exists`);
        this.ownTopicsById().set(r.topicId, Object.freeze({ name: r.name, topicId: r.topicId, partitions: Object.freeze([]) }));
        this.ownTopicIdsByName().set(r.name, r.topicId);
        this.ownPartitions.set(r.topicId, []);
        return;
      }
      case 'removeTopic': {
        const t = this.topicsByIdView().get(r.topicId);
        if (t === undefined) throw bad(r, `topic id ${r.topicId} does not exist`);
        this.ownTopicsById().delete(r.topicId);
        this.ownTopicIdsByName().delete(t.name);
        this.ownPartitions.delete(r.topicId);
        const key = configKey('topic', t.name);
        if (this.configsView().has(key)) {
          this.ownConfigsMap().delete(key);
          this.ownConfigs.delete(key);
        }
        return;
      }
      case 'partition': {
        const parts = this.partitionsOf(r);
        if (r.partition > parts.length) throw bad(r, `partition ${r.partition} skips partition ${parts.length}`);
        parts[r.partition] = checkedPartition(r, {
          topicId: r.topicId,
          partition: r.partition,
          replicas: r.replicas,
          isr: r.isr,
          elr: r.elr,
          lastKnownElr: r.lastKnownElr,
          leader: r.leader,
          leaderEpoch: r.leaderEpoch,
          partitionEpoch: r.partitionEpoch,
        });
        return;
      }
      case 'partitionChange': {
        const parts = this.partitionsOf(r);
        const p = parts[r.partition];
        if (p === undefined) throw bad(r, `partition ${r.partition} does not exist`);
        parts[r.partition] = checkedPartition(r, applyPartitionChange(p, r));
        return;
      }
      case 'config': {
        if (r.resourceType === 'topic' && !this.topicIdsByNameView().has(r.resourceName)) {
          throw bad(r, `topic ${r.resourceName} does not exist`);
        }
        const key = configKey(r.resourceType, r.resourceName);
        const configs = this.ownConfigsMap();
        let entries = configs.get(key) as Map<string, string> | undefined;
        if (!this.ownConfigs.has(key)) {
          entries = new Map(entries ?? []);
          configs.set(key, entries);
          this.ownConfigs.add(key);
        }
        if (r.value === null) entries!.delete(r.name);
        else entries!.set(r.name, r.value);
        if (entries!.size === 0) {
          configs.delete(key);
          this.ownConfigs.delete(key);
        }
        return;
      }
      case 'producerIds': {
        if (r.nextProducerId <= this.nextProducerId) {
          throw bad(r, `nextProducerId ${r.nextProducerId} is not above the current ${this.nextProducerId}`);
        }
        this.nextProducerId = r.nextProducerId;
        return;
      }
      case 'featureLevel': {
        this.features ??= new Map(this.base.features);
        if (r.featureLevel === 0) this.features.delete(r.name);
        else this.features.set(r.name, r.featureLevel);
        return;
      }
      case 'noOp':
        return;
      default:
        unreachable(r);
    }
  }

  /** Builds the image at `offset` written by controller epoch `controllerEpoch`. */
  apply(offset: number, controllerEpoch: number): MetadataImage {
    let topicsById = this.topicsById ?? this.base.topicsById;
    if (this.ownPartitions.size > 0) {
      const own = this.ownTopicsById();
      for (const [topicId, parts] of this.ownPartitions) {
        const t = own.get(topicId)!;
        own.set(topicId, Object.freeze({ ...t, partitions: Object.freeze([...parts]) }));
      }
      topicsById = own;
    }
    return new MetadataImage({
      offset,
      controllerEpoch,
      brokers: this.brokers ?? this.base.brokers,
      topicsById,
      topicIdsByName: this.topicIdsByName ?? this.base.topicIdsByName,
      configs: this.configs ?? this.base.configs,
      nextProducerId: this.nextProducerId,
      lastBrokerEpoch: this.lastBrokerEpoch,
      features: this.features ?? this.base.features,
    });
  }

  /** Overrides the highest broker epoch (snapshots carry it: the broker may be gone). */
  setLastBrokerEpoch(epoch: number): void {
    this.lastBrokerEpoch = Math.max(this.lastBrokerEpoch, epoch);
  }

  setNextProducerId(next: number): void {
    this.nextProducerId = Math.max(this.nextProducerId, next);
  }

  private currentBroker(r: { brokerId: number; brokerEpoch: number; type: string }): BrokerRegistration {
    const b = (this.brokers ?? this.base.brokers).get(r.brokerId);
    if (b === undefined) throw bad(r, `broker ${r.brokerId} is not registered`);
    if (b.brokerEpoch !== r.brokerEpoch) throw bad(r, `broker epoch ${r.brokerEpoch} is not the current ${b.brokerEpoch}`);
    return b;
  }

  private partitionsOf(r: PartitionRecord | PartitionChangeRecord): PartitionState[] {
    let parts = this.ownPartitions.get(r.topicId);
    if (parts === undefined) {
      const t = this.topicsByIdView().get(r.topicId);
      if (t === undefined) throw bad(r, `topic id ${r.topicId} does not exist`);
      parts = [...t.partitions];
      this.ownPartitions.set(r.topicId, parts);
    }
    return parts;
  }

  private ownBrokers(): Map<number, BrokerRegistration> {
    return (this.brokers ??= new Map(this.base.brokers));
  }
  private ownTopicsById(): Map<string, TopicImage> {
    return (this.topicsById ??= new Map(this.base.topicsById));
  }
  private ownTopicIdsByName(): Map<string, string> {
    return (this.topicIdsByName ??= new Map(this.base.topicIdsByName));
  }
  private ownConfigsMap(): Map<string, ReadonlyMap<string, string>> {
    return (this.configs ??= new Map(this.base.configs));
  }
  private topicsByIdView(): ReadonlyMap<string, TopicImage> {
    return this.topicsById ?? this.base.topicsById;
  }
  private topicIdsByNameView(): ReadonlyMap<string, string> {
    return this.topicIdsByName ?? this.base.topicIdsByName;
  }
  private configsView(): ReadonlyMap<string, ReadonlyMap<string, string>> {
    return this.configs ?? this.base.configs;
  }
}

/**
 * The partition after a PartitionChange: the partition epoch always grows, the leader
 * epoch grows when the leader changes (a new leader must fence the old one's writes).
 */
export function applyPartitionChange(p: PartitionState, r: PartitionChangeRecord): PartitionState {
  const leaderChanged = r.leader !== undefined && r.leader !== p.leader;
  return {
    topicId: p.topicId,
    partition: p.partition,
    replicas: r.replicas ?? p.replicas,
    isr: r.isr ?? p.isr,
    elr: r.elr ?? p.elr,
    lastKnownElr: r.lastKnownElr ?? p.lastKnownElr,
    leader: r.leader ?? p.leader,
    leaderEpoch: leaderChanged ? p.leaderEpoch + 1 : p.leaderEpoch,
    partitionEpoch: p.partitionEpoch + 1,
  };
}

function checkedPartition(r: MetadataRecord, p: PartitionState): PartitionState {
  const replicas = new Set(p.replicas);
  if (replicas.size !== p.replicas.length || replicas.size === 0) throw bad(r, `replicas ${JSON.stringify(p.replicas)} are empty or repeat a broker`);
  for (const [name, list] of [
    ['isr', p.isr],
    ['elr', p.elr],
    ['lastKnownElr', p.lastKnownElr],
  ] as const) {
    if (new Set(list).size !== list.length) throw bad(r, `${name} ${JSON.stringify(list)} repeats a broker`);
    if (!list.every((b) => replicas.has(b))) throw bad(r, `${name} ${JSON.stringify(list)} is not a subset of replicas ${JSON.stringify(p.replicas)}`);
  }
  if (p.elr.some((b) => p.isr.includes(b))) throw bad(r, `elr ${JSON.stringify(p.elr)} overlaps isr ${JSON.stringify(p.isr)}`);
  if (p.leader !== NO_LEADER && !p.isr.includes(p.leader)) throw bad(r, `leader ${p.leader} is not in isr ${JSON.stringify(p.isr)}`);
  return Object.freeze({
    ...p,
    replicas: Object.freeze([...p.replicas]),
    isr: Object.freeze([...p.isr]),
    elr: Object.freeze([...p.elr]),
    lastKnownElr: Object.freeze([...p.lastKnownElr]),
  });
}

function bad(r: { type: string }, why: string): RaftkaError {
  return new RaftkaError('CORRUPT_STORAGE', `Metadata record ${r.type} does not apply to the image: ${why}`);
}

/** The image after one record (a one-record delta). */
export function replay(image: MetadataImage, r: MetadataRecord): MetadataImage {
  return replayAll(image, [r]);
}

/** Replays a batch on an image: the image at `offset` (atomic: all records or none). */
export function replayAll(
  image: MetadataImage,
  records: readonly MetadataRecord[],
  offset = image.offset,
  controllerEpoch = image.controllerEpoch,
): MetadataImage {
  const d = new MetadataDelta(image);
  for (const r of records) d.replay(r);
  return d.apply(offset, controllerEpoch);
}
