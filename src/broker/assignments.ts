// What this broker must host, read off a metadata image: every partition whose replica
// set names it, with the topic's configuration (cluster-level defaults, then the topic's
// own overrides, as strings for the log layer to parse).
import type { MetadataImage } from '../metadata/image.ts';
import type { PartitionAssignment } from './types.ts';

export function assignmentsFor(image: MetadataImage, brokerId: number): PartitionAssignment[] {
  const out: PartitionAssignment[] = [];
  const cluster = Object.fromEntries(image.configsOf('cluster', ''));
  for (const topic of image.topicsById.values()) {
    let config: Record<string, string> | undefined;
    for (const p of topic.partitions) {
      if (!p.replicas.includes(brokerId)) continue;
      config ??= { ...cluster, ...image.topicConfigOverrides(topic.name) };
      out.push({
        topicId: topic.topicId,
        topic: topic.name,
        partition: p.partition,
        replicas: p.replicas,
        isr: p.isr,
        leader: p.leader,
        leaderEpoch: p.leaderEpoch,
        partitionEpoch: p.partitionEpoch,
        config,
      });
    }
  }
  return out;
}
