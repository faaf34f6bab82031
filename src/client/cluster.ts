// The SDK's view of the cluster: one RawClient (one grpc channel) per broker address,
// reused by the producer and admin, and a metadata cache of the topics in use.
//
// The cache is refreshed (a) when a caller saw NOT_LEADER_OR_FOLLOWER,
// UNKNOWN_TOPIC_OR_PARTITION, LEADER_NOT_AVAILABLE or a broken connection
// (`refresh()`), (b) when it is older than `metadataMaxAgeMs` (Kafka's metadata.max.age.ms)
// on the next use, and (c) point-wise from the leader hints brokers attach to
// NOT_LEADER_OR_FOLLOWER answers [KIP-951], which saves a round trip on failover.
// Concurrent refreshes share one Metadata call.
import { RawClient, type RawClientOptions } from './raw-client.ts';
import type { Broker, LeaderHint, MetadataResponse, PartitionMetadata } from '../proto/raftka.ts';
import { errorByCode } from '../common/errors.ts';
import type { Logger } from '../common/logger.ts';
import { RaftkaClientError, RaftkaProtocolError } from './errors.ts';

export interface ClusterOptions {
  brokers: string[];
  /** Deadline for metadata and other small calls (ms). */
  requestTimeoutMs: number;
  /** How long a connection attempt may take before the next broker is tried (ms). */
  connectionTimeoutMs: number;
  metadataMaxAgeMs: number;
  logger: Logger;
}

export interface TopicView {
  name: string;
  topicId: string;
  /** By partition index. */
  partitions: PartitionMetadata[];
  /** Partitions with a live leader right now. */
  available: number[];
}

export class Cluster {
  private readonly conns = new Map<string, RawClient>();
  private brokers = new Map<number, Broker>();
  private readonly topics = new Map<string, TopicView>();
  /** Topics whose metadata every refresh asks for (the producer's topics in use). */
  private readonly interest = new Set<string>();
  private refreshing: Promise<void> | undefined;
  private lastRefreshMs = 0;
  controllerId = -1;
  clusterId = '';

  constructor(private readonly opts: ClusterOptions) {
    if (opts.brokers.length === 0) throw new RaftkaClientError('INVALID_ARGUMENT', 'brokers must list at least one host:port');
  }

  /** The channel to an address; created once, reused. */
  connection(address: string): RawClient {
    let c = this.conns.get(address);
    if (!c) {
      const o: RawClientOptions = { timeoutMs: this.opts.requestTimeoutMs };
      c = new RawClient(address, o);
      this.conns.set(address, c);
    }
    return c;
  }

  brokerAddress(id: number): string | undefined {
    const b = this.brokers.get(id);
    return b ? `${b.host}:${b.port}` : undefined;
  }

  brokerConnection(id: number): RawClient | undefined {
    const a = this.brokerAddress(id);
    return a === undefined ? undefined : this.connection(a);
  }

  knownBrokers(): Broker[] {
    return [...this.brokers.values()];
  }

  /**
   * Calls `fn` on one broker after another (known brokers first, then the bootstrap
   * list) until one answers without a transport failure.
   */
  async anyBroker<T>(fn: (c: RawClient) => Promise<T>): Promise<T> {
    const addrs = [...new Set([...[...this.brokers.values()].filter((b) => !b.fenced).map((b) => `${b.host}:${b.port}`), ...this.opts.brokers])];
    let last: unknown;
    for (const a of addrs) {
      try {
        return await fn(this.connection(a));
      } catch (e) {
        last = e;
        this.opts.logger.debug({ broker: a, err: (e as Error).message }, 'broker did not answer; trying the next');
      }
    }
    throw new RaftkaClientError('BROKERS_UNREACHABLE', `no broker answered (tried ${addrs.join(', ')}): ${(last as Error | undefined)?.message ?? 'no brokers'}`, { cause: last });
  }

  addTopics(topics: Iterable<string>): boolean {
    let added = false;
    for (const t of topics) {
      if (!this.interest.has(t)) {
        this.interest.add(t);
        added = true;
      }
    }
    return added;
  }

  topic(name: string): TopicView | undefined {
    return this.topics.get(name);
  }

  leaderOf(topic: string, partition: number): number {
    return this.topics.get(topic)?.partitions[partition]?.leaderId ?? -1;
  }

  get stale(): boolean {
    return Date.now() - this.lastRefreshMs > this.opts.metadataMaxAgeMs;
  }

  /** Refreshes metadata for the topics of interest (plus `topics`); concurrent calls share one request. */
  refresh(topics: Iterable<string> = []): Promise<void> {
    this.addTopics(topics);
    if (!this.refreshing) {
      this.refreshing = this.doRefresh().finally(() => (this.refreshing = undefined));
    }
    return this.refreshing;
  }

  /** Makes sure metadata for `topics` is cached and fresh enough; throws for topics that do not exist. */
  async ensure(topics: string[]): Promise<void> {
    const added = this.addTopics(topics);
    if (added || this.stale || topics.some((t) => !this.topics.has(t))) await this.refresh();
    for (const t of topics) {
      if (!this.topics.has(t)) throw new RaftkaProtocolError('UNKNOWN_TOPIC_OR_PARTITION', `topic ${t} does not exist`, { topic: t });
    }
  }

  private async doRefresh(): Promise<void> {
    const topics = [...this.interest];
    const md = await this.anyBroker((c) => c.metadata(topics.length > 0 ? { topics } : { noTopics: true }, { timeoutMs: this.opts.connectionTimeoutMs + this.opts.requestTimeoutMs }));
    this.apply(md);
  }

  apply(md: MetadataResponse): void {
    if (md.errorCode !== 0) throw RaftkaProtocolError.fromCode(md.errorCode, md.errorMessage);
    this.lastRefreshMs = Date.now();
    this.clusterId = md.clusterId;
    this.controllerId = md.controllerId;
    if (md.brokers.length > 0) this.brokers = new Map(md.brokers.map((b) => [b.id, b]));
    for (const t of md.topics) {
      const name = errorByCode(t.errorCode);
      if (t.errorCode !== 0 && name !== 'LEADER_NOT_AVAILABLE') {
        this.topics.delete(t.name);
        continue;
      }
      const partitions = [...t.partitions].sort((a, b) => a.partition - b.partition);
      this.topics.set(t.name, {
        name: t.name,
        topicId: t.topicId,
        partitions,
        available: partitions.filter((p) => p.leaderId >= 0 && this.brokers.has(p.leaderId)).map((p) => p.partition),
      });
    }
  }

  /** Applies a leader hint from a NOT_LEADER_OR_FOLLOWER answer when it is newer than the cache [KIP-951]. */
  applyLeaderHint(topic: string, partition: number, hint: LeaderHint | null): boolean {
    if (!hint || hint.leaderId < 0) return false;
    const p = this.topics.get(topic)?.partitions[partition];
    if (!p || hint.leaderEpoch <= p.leaderEpoch || !this.brokers.has(hint.leaderId)) return false;
    p.leaderId = hint.leaderId;
    p.leaderEpoch = hint.leaderEpoch;
    return true;
  }

  close(): void {
    for (const c of this.conns.values()) c.close();
    this.conns.clear();
  }
}
