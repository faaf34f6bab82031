// The client API's MetadataView over one MetadataImage (node.ts: the image the broker
// has replayed, plus what only the Raft driver knows: the controller and voter lag).
// Topics and partitions are the image's own objects (TopicImage and PartitionState
// already have the fields the view needs), so taking a view per request costs nothing.
import type { MetadataImage } from '../metadata/image.ts';
import { TOPIC_CONFIG_DEFS } from '../metadata/topic-config.ts';
import type { BrokerView, ConfigEntryView, MetadataView, TopicView, VoterView } from './types.ts';

export interface ImageViewOptions {
  clusterId: string;
  /** The active controller's node id (the Raft leader); -1 when none is known. */
  controllerId: number;
  /** The registered endpoint clients connect to (e.g. `CLIENT`); the first endpoint when absent. */
  listenerName: string;
  voters?: readonly VoterView[];
}

function formatValue(v: unknown): string {
  return Array.isArray(v) ? v.join(',') : String(v);
}

export function metadataViewOf(image: MetadataImage, opts: ImageViewOptions): MetadataView {
  const brokerView = (id: number): BrokerView | undefined => {
    const b = image.broker(id);
    if (!b) return undefined;
    const ep = b.endpoints.find((e) => e.name === opts.listenerName) ?? b.endpoints[0];
    return { id: b.brokerId, host: ep?.host ?? '', port: ep?.port ?? -1, rack: b.rack, fenced: b.fenced };
  };
  return {
    clusterId: opts.clusterId,
    controllerId: opts.controllerId,
    brokers: () => [...image.brokers.keys()].sort((a, b) => a - b).map((id) => brokerView(id)!),
    broker: brokerView,
    topics: (): Iterable<TopicView> => image.topicsById.values(),
    topicByName: (name) => image.topic(name),
    topicById: (topicId) => image.topicById(topicId),
    topicConfigs: (topicId): readonly ConfigEntryView[] | undefined => {
      const topic = image.topicById(topicId);
      if (!topic) return undefined;
      const own = image.configsOf('topic', topic.name);
      const cluster = image.configsOf('cluster', '');
      const effective = image.topicConfig(topic.name) as Readonly<Record<string, unknown>>;
      return Object.keys(TOPIC_CONFIG_DEFS)
        .sort()
        .map((name) => ({
          name,
          value: formatValue(effective[name]),
          // Kafka's sources: a topic override, a dynamic cluster-wide default, or built in.
          source: own.has(name) ? 'topic' : cluster.has(name) ? 'broker' : 'default',
        }));
    },
    voters: () => opts.voters ?? [],
  };
}
