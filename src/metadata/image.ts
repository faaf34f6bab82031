// The immutable metadata image: the cluster's metadata as of one offset of the metadata
// log [KIP-500, KRaft's MetadataImage]. It is never changed in place: a MetadataDelta
// (delta.ts) replays records and builds the next image, sharing every untouched part, so
// a reader (the broker's request handlers, the replica manager) may hold an image for as
// long as it likes without locks and always sees one consistent offset.
//
// Invariants of every image built by replay (checked on replay, see delta.ts):
//  - a partition's isr, elr and lastKnownElr are subsets of its replicas, without
//    duplicates; isr and elr are disjoint;
//  - leader is NO_LEADER or a member of the isr;
//  - topicIdsByName and topicsById describe the same topics;
//  - nextProducerId only grows; broker epochs only grow.
import { parseConfig } from '../common/config.ts';
import { NO_LEADER, type ConfigResourceType, type Endpoint } from './records.ts';
import { TOPIC_CONFIG_DEFS, type TopicConfig } from './topic-config.ts';

export interface BrokerRegistration {
  readonly brokerId: number;
  readonly incarnationId: string;
  readonly brokerEpoch: number;
  readonly endpoints: readonly Endpoint[];
  readonly rack: string | null;
  /** A fenced broker leads nothing and joins no ISR [KIP-631]. */
  readonly fenced: boolean;
}

export interface PartitionState {
  readonly topicId: string;
  readonly partition: number;
  readonly replicas: readonly number[];
  readonly isr: readonly number[];
  readonly elr: readonly number[];
  readonly lastKnownElr: readonly number[];
  readonly leader: number;
  readonly leaderEpoch: number;
  readonly partitionEpoch: number;
}

export interface TopicImage {
  readonly name: string;
  readonly topicId: string;
  /** Dense: partitions[i].partition === i. Partitions are only ever added, never removed. */
  readonly partitions: readonly PartitionState[];
}

export function configKey(resourceType: ConfigResourceType, resourceName: string): string {
  return `${resourceType}:${resourceName}`;
}

const EMPTY_CONFIG: ReadonlyMap<string, string> = new Map();

export interface MetadataImageFields {
  readonly offset: number;
  readonly controllerEpoch: number;
  readonly brokers: ReadonlyMap<number, BrokerRegistration>;
  readonly topicsById: ReadonlyMap<string, TopicImage>;
  readonly topicIdsByName: ReadonlyMap<string, string>;
  readonly configs: ReadonlyMap<string, ReadonlyMap<string, string>>;
  readonly nextProducerId: number;
  readonly lastBrokerEpoch: number;
  readonly features: ReadonlyMap<string, number>;
}

export class MetadataImage implements MetadataImageFields {
  static readonly EMPTY = new MetadataImage({
    offset: 0,
    controllerEpoch: 0,
    brokers: new Map(),
    topicsById: new Map(),
    topicIdsByName: new Map(),
    configs: new Map(),
    nextProducerId: 0,
    lastBrokerEpoch: 0,
    features: new Map(),
  });

  /** The metadata log index of the last record (or Raft entry) replayed; 0 for none. */
  readonly offset: number;
  /** The Raft term of that entry: the epoch of the controller that wrote it. */
  readonly controllerEpoch: number;
  readonly brokers: ReadonlyMap<number, BrokerRegistration>;
  readonly topicsById: ReadonlyMap<string, TopicImage>;
  readonly topicIdsByName: ReadonlyMap<string, string>;
  /** Keyed by configKey(resourceType, resourceName). */
  readonly configs: ReadonlyMap<string, ReadonlyMap<string, string>>;
  /** The first producer id of the next block to hand out. */
  readonly nextProducerId: number;
  /** The highest broker epoch ever handed out (the next registration gets a higher one). */
  readonly lastBrokerEpoch: number;
  readonly features: ReadonlyMap<string, number>;

  private topicConfigCache: Map<string, TopicConfig> | undefined;

  constructor(f: MetadataImageFields) {
    this.offset = f.offset;
    this.controllerEpoch = f.controllerEpoch;
    this.brokers = f.brokers;
    this.topicsById = f.topicsById;
    this.topicIdsByName = f.topicIdsByName;
    this.configs = f.configs;
    this.nextProducerId = f.nextProducerId;
    this.lastBrokerEpoch = f.lastBrokerEpoch;
    this.features = f.features;
  }

  /** The same image at a later log position (an entry that held no records). */
  withPosition(offset: number, controllerEpoch: number): MetadataImage {
    return new MetadataImage({ ...this.fields(), offset, controllerEpoch });
  }

  fields(): MetadataImageFields {
    return {
      offset: this.offset,
      controllerEpoch: this.controllerEpoch,
      brokers: this.brokers,
      topicsById: this.topicsById,
      topicIdsByName: this.topicIdsByName,
      configs: this.configs,
      nextProducerId: this.nextProducerId,
      lastBrokerEpoch: this.lastBrokerEpoch,
      features: this.features,
    };
  }

  broker(brokerId: number): BrokerRegistration | undefined {
    return this.brokers.get(brokerId);
  }

  /** Registered and not fenced: may lead and be in an ISR. */
  isUnfenced(brokerId: number): boolean {
    const b = this.brokers.get(brokerId);
    return b !== undefined && !b.fenced;
  }

  /** Unfenced brokers in id order. */
  unfencedBrokers(): BrokerRegistration[] {
    return [...this.brokers.values()].filter((b) => !b.fenced).sort((a, b) => a.brokerId - b.brokerId);
  }

  topic(name: string): TopicImage | undefined {
    const id = this.topicIdsByName.get(name);
    return id === undefined ? undefined : this.topicsById.get(id);
  }

  topicById(topicId: string): TopicImage | undefined {
    return this.topicsById.get(topicId);
  }

  partition(topicId: string, partition: number): PartitionState | undefined {
    return this.topicsById.get(topicId)?.partitions[partition];
  }

  /** Every partition of every topic (topic id order, then partition order). */
  *allPartitions(): Iterable<PartitionState> {
    for (const t of this.topicsById.values()) yield* t.partitions;
  }

  /** The partitions this broker leads. */
  partitionsLedBy(brokerId: number): PartitionState[] {
    const out: PartitionState[] = [];
    for (const p of this.allPartitions()) if (p.leader === brokerId && brokerId !== NO_LEADER) out.push(p);
    return out;
  }

  /** The configuration entries set on one resource (no defaults). */
  configsOf(resourceType: ConfigResourceType, resourceName: string): ReadonlyMap<string, string> {
    return this.configs.get(configKey(resourceType, resourceName)) ?? EMPTY_CONFIG;
  }

  /** A topic's own overrides, as the broker's PartitionAssignment.config wants them. */
  topicConfigOverrides(topicName: string): Readonly<Record<string, string>> {
    return Object.fromEntries(this.configsOf('topic', topicName));
  }

  /**
   * The effective, typed configuration of a topic: overrides, then cluster defaults, then
   * static defaults. Values were validated before they were written, so this does not
   * fail for a replayed image; an unknown key (written by a newer version) is ignored.
   */
  topicConfig(topicName: string): TopicConfig {
    this.topicConfigCache ??= new Map();
    const cached = this.topicConfigCache.get(topicName);
    if (cached !== undefined) return cached;
    const input: Record<string, string> = {};
    for (const [k, v] of this.configsOf('cluster', '')) if (Object.hasOwn(TOPIC_CONFIG_DEFS, k)) input[k] = v;
    for (const [k, v] of this.configsOf('topic', topicName)) if (Object.hasOwn(TOPIC_CONFIG_DEFS, k)) input[k] = v;
    const config = parseConfig(TOPIC_CONFIG_DEFS, input);
    this.topicConfigCache.set(topicName, config);
    return config;
  }
}
