// The per-log (topic-level) configuration keys, with Kafka's names and defaults. They live
// in common/ because two modules that may not import each other need them: log/ opens
// logs with them and metadata/ validates topic configs with them (plus the replication
// keys it adds). Raftka adds `flush.before.ack`: a durable default, so an acknowledged
// write survives power loss.
import { boolDef, enumDef, intDef, listDef, longDef } from './config.ts';

const DAY_MS = 24 * 60 * 60 * 1000;
const LONG_MAX = Number.MAX_SAFE_INTEGER;

export const LOG_CONFIG_DEFS = {
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
} as const;
