// Topic-level configuration keys the controller accepts, with Kafka's names and
// defaults. The log keys mirror src/log/config.ts (metadata/ may import only common/, so
// they are declared again here; test/metadata checks the two stay in step). The
// controller validates every value before writing a ConfigRecord, so replay never meets
// a bad value.
//
// Resolution order for a topic: its own ConfigRecords, then cluster-level ConfigRecords
// (resourceType 'cluster', resourceName ''), then the defaults below — Kafka's
// topic override > dynamic cluster default > static default.
import { boolDef, enumDef, intDef, listDef, longDef, parseConfig, type ConfigOf } from '../common/config.ts';

const DAY_MS = 24 * 60 * 60 * 1000;
const LONG_MAX = Number.MAX_SAFE_INTEGER;

export const TOPIC_CONFIG_DEFS = {
  'segment.bytes': intDef(1024 * 1024 * 1024, 'Roll the active segment when it reaches this size', { min: 64 }),
  'segment.ms': longDef(7 * DAY_MS, 'Roll the active segment when its first batch is this old', { min: 1 }),
  'segment.index.bytes': intDef(10 * 1024 * 1024, 'Roll when the offset index reaches this size', { min: 64 }),
  'index.interval.bytes': intDef(4096, 'Bytes of batches between two sparse index entries', { min: 0 }),
  'max.message.bytes': intDef(1024 * 1024 + 12, 'Largest record batch accepted', { min: 0 }),
  'retention.ms': longDef(7 * DAY_MS, 'Delete segments older than this; -1 keeps them forever', { min: -1 }),
  'retention.bytes': longDef(-1, 'Delete old segments while the log is larger than this; -1 for no limit', { min: -1 }),
  'cleanup.policy': {
    ...listDef(['delete'], 'delete, compact, or both'),
    validate: (v: readonly string[]) =>
      v.length > 0 && v.every((p) => p === 'delete' || p === 'compact') ? undefined : 'expected delete, compact or compact,delete',
  },
  'delete.retention.ms': longDef(DAY_MS, 'How long compaction keeps tombstones', { min: 0 }),
  'min.compaction.lag.ms': longDef(0, 'Records younger than this are not compacted', { min: 0 }),
  'flush.messages': longDef(LONG_MAX, 'fsync after this many unflushed records', { min: 1 }),
  'flush.ms': longDef(LONG_MAX, 'fsync when data has been unflushed this long', { min: 0 }),
  'flush.before.ack': boolDef(true, 'fsync a write before it is acknowledged (group commit shares one fsync)'),
  'message.timestamp.type': enumDef('CreateTime', ['CreateTime', 'LogAppendTime'] as const, 'Which timestamp the log keeps'),
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
