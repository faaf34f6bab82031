// Topic-level configuration keys the controller accepts, with Kafka's names and
// defaults: the log's keys (common/log-config.ts, shared with src/log) plus the ones the
// controller itself reads. The controller validates every value before writing a ConfigRecord, so replay never meets
// a bad value.
//
// Resolution order for a topic: its own ConfigRecords, then cluster-level ConfigRecords
// (resourceType 'cluster', resourceName ''), then the defaults below — Kafka's
// topic override > dynamic cluster default > static default.
import { boolDef, enumDef, intDef, parseConfig, type ConfigOf } from '../common/config.ts';
import { LOG_CONFIG_DEFS } from '../common/log-config.ts';

export const TOPIC_CONFIG_DEFS = {
  ...LOG_CONFIG_DEFS,
  'compression.type': enumDef(
    'producer',
    ['producer', 'uncompressed', 'gzip', 'snappy', 'lz4', 'zstd'] as const,
    'Compression the log keeps; producer keeps what the producer sent',
  ),
  // Replication settings the controller itself reads.
  'min.insync.replicas': intDef(1, 'Smallest ISR that acks=all writes and high-watermark advances need [KIP-966]', {
    min: 1,
  }),
  'unclean.leader.election.enable': boolDef(
    false,
    'Elect an out-of-sync replica when no ISR or ELR member is available (may lose acknowledged writes)',
  ),
} as const;

export type TopicConfig = ConfigOf<typeof TOPIC_CONFIG_DEFS>;
export type TopicConfigKey = keyof typeof TOPIC_CONFIG_DEFS;

export function isTopicConfigKey(key: string): key is TopicConfigKey {
  return Object.hasOwn(TOPIC_CONFIG_DEFS, key);
}

/** Parses and validates; throws INVALID_CONFIG naming the key and value. */
export function parseTopicConfig(input: Readonly<Record<string, string>>): TopicConfig {
  return parseConfig(TOPIC_CONFIG_DEFS, input);
}

export interface TopicConfigEntry {
  readonly name: string;
  readonly value: string;
  /** 'topic': the topic's own override; 'broker': the cluster-wide default; 'default': built in. */
  readonly source: 'topic' | 'broker' | 'default';
}

/**
 * Every topic config with its effective value and where it comes from, for a topic
 * with `overrides` in a cluster whose cluster-level configs are `cluster` (what
 * CreateTopics answers and DescribeTopics lists). Keys outside TOPIC_CONFIG_DEFS are
 * ignored; the values must already be valid (this throws INVALID_CONFIG otherwise).
 */
export function effectiveTopicConfigEntries(cluster: ReadonlyMap<string, string>, overrides: Readonly<Record<string, string>>): TopicConfigEntry[] {
  const input: Record<string, string> = {};
  for (const [k, v] of cluster) if (isTopicConfigKey(k)) input[k] = v;
  for (const [k, v] of Object.entries(overrides)) if (isTopicConfigKey(k)) input[k] = v;
  const effective = parseTopicConfig(input) as Record<string, unknown>;
  return Object.keys(TOPIC_CONFIG_DEFS)
    .sort()
    .map((name) => {
      const v = effective[name];
      return {
        name,
        value: Array.isArray(v) ? v.join(',') : String(v),
        source: Object.hasOwn(overrides, name) ? 'topic' : cluster.has(name) ? 'broker' : 'default',
      };
    });
}
