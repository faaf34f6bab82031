// The client API's view of the cluster, backed by one metadata image (so a request never
// mixes two offsets) and the Raft driver's leadership.
import type { MetadataImage, TopicImage } from '../metadata/image.ts';
import { TOPIC_CONFIG_DEFS } from '../metadata/topic-config.ts';
import type { BrokerView, ConfigEntryView, MetadataView, TopicView, VoterView } from '../server/types.ts';

export interface QuorumState {
  leaderId: number | null;
  voters: readonly number[];
  /** Known on the leader only: entries each voter is behind. */
  lag: ReadonlyMap<number, number>;
}

function topicView(t: TopicImage): TopicView {
  return {
    name: t.name,
    topicId: t.topicId,
    partitions: t.partitions.map((p) => ({ partition: p.partition, leader: p.leader, leaderEpoch: p.leaderEpoch, replicas: p.replicas, isr: p.isr, elr: p.elr, lastKnownElr: p.lastKnownElr })),
  };
}

function stringify(v: unknown): string {
  return Array.isArray(v) ? v.join(',') : String(v);
}

export function metadataView(clusterId: string, image: MetadataImage, quorum: QuorumState): MetadataView {
  const brokers: BrokerView[] = [...image.brokers.values()]
    .sort((a, b) => a.brokerId - b.brokerId)
    .map((b) => {
      const ep = b.endpoints.find((e) => e.name === 'CLIENT') ?? b.endpoints[0];
      return { id: b.brokerId, host: ep?.host ?? '', port: ep?.port ?? 0, rack: b.rack, fenced: b.fenced };
    });
  const byId = new Map(brokers.map((b) => [b.id, b]));
  const topicCache = new Map<string, TopicView>();
  const view = (t: TopicImage | undefined): TopicView | undefined => {
    if (!t) return undefined;
    let v = topicCache.get(t.topicId);
    if (!v) topicCache.set(t.topicId, (v = topicView(t)));
    return v;
  };
  return {
    clusterId,
    controllerId: quorum.leaderId ?? -1,
    brokers: () => brokers,
    broker: (id) => byId.get(id),
    *topics() {
      for (const t of image.topicsById.values()) yield view(t)!;
    },
    topicByName: (name) => view(image.topic(name)),
    topicById: (id) => view(image.topicById(id)),
    topicConfigs: (topicId): ConfigEntryView[] | undefined => {
      const t = image.topicById(topicId);
      if (!t) return undefined;
      const own = image.configsOf('topic', t.name);
      const cluster = image.configsOf('cluster', '');
      const effective = image.topicConfig(t.name) as Record<string, unknown>;
      return Object.keys(TOPIC_CONFIG_DEFS)
        .sort()
        .map((name) => ({
          name,
          value: stringify(effective[name]),
          source: own.has(name) ? 'topic' : cluster.has(name) ? 'broker' : 'default',
        }));
    },
    voters: (): VoterView[] => quorum.voters.map((id) => ({ id, lag: quorum.lag.get(id) ?? -1, isLeader: id === quorum.leaderId })),
  };
}
