// Topic facts the perf tools need before they start: its partitions and, per partition,
// the earliest or latest offset from its leader. Failures are typed errors with one
// clear line (the CLI prints them as they are).
import { RawClientPool } from '../client/raw-client.ts';
import { errorByCode, RaftkaError } from '../common/errors.ts';
import { EARLIEST_TIMESTAMP, LATEST_TIMESTAMP, type MetadataResponse } from '../proto/raftka.ts';

export interface TopicOffsets {
  partitions: number[];
  offsets: number[];
}

async function metadata(pool: RawClientPool, bootstrap: string[], topic: string): Promise<MetadataResponse> {
  try {
    return await Promise.any(
      bootstrap.map(async (a) => {
        const r = await pool.get(a).metadata({ topics: [topic] }, { timeoutMs: 3_000 });
        if (r.errorCode !== 0) throw new Error(errorByCode(r.errorCode));
        return r;
      }),
    );
  } catch {
    throw new RaftkaError('NETWORK_EXCEPTION', `cannot reach any broker of ${bootstrap.join(',')}`);
  }
}

/** Partition count of `topic`; a missing topic is UNKNOWN_TOPIC_OR_PARTITION. */
export async function topicPartitions(bootstrap: string[], topic: string): Promise<number> {
  const pool = new RawClientPool({ timeoutMs: 5_000 });
  try {
    const md = await metadata(pool, bootstrap, topic);
    const t = md.topics.find((x) => x.name === topic);
    if (!t || t.errorCode !== 0) throw new RaftkaError('UNKNOWN_TOPIC_OR_PARTITION', `topic ${JSON.stringify(topic)} does not exist`);
    return t.partitions.length;
  } finally {
    pool.close();
  }
}

/** Every partition of `topic` with its earliest or latest (high watermark) offset. */
export async function topicOffsets(bootstrap: string[], topic: string, which: 'earliest' | 'latest'): Promise<TopicOffsets> {
  const pool = new RawClientPool({ timeoutMs: 5_000 });
  try {
    const md = await metadata(pool, bootstrap, topic);
    const t = md.topics.find((x) => x.name === topic);
    if (!t || t.errorCode !== 0) throw new RaftkaError('UNKNOWN_TOPIC_OR_PARTITION', `topic ${JSON.stringify(topic)} does not exist`);
    const addr = new Map(md.brokers.map((b) => [b.id, `${b.host}:${b.port}`]));
    const byLeader = new Map<number, number[]>();
    for (const p of t.partitions) {
      if (!addr.has(p.leaderId)) throw new RaftkaError('LEADER_NOT_AVAILABLE', `partition ${topic}-${p.partition} has no leader`);
      byLeader.set(p.leaderId, [...(byLeader.get(p.leaderId) ?? []), p.partition]);
    }
    const offsets = new Map<number, number>();
    const timestamp = which === 'earliest' ? EARLIEST_TIMESTAMP : LATEST_TIMESTAMP;
    await Promise.all(
      [...byLeader].map(async ([leader, parts]) => {
        const r = await pool.get(addr.get(leader)!).listOffsets({ topics: [{ name: topic, partitions: parts.map((partition) => ({ partition, timestamp })) }] });
        for (const partition of parts) {
          const a = r.topics[0]?.partitions.find((x) => x.partition === partition);
          const code = a ? a.errorCode : r.errorCode || 3;
          if (!a || code !== 0) throw new RaftkaError(errorByCode(code), `list offsets of ${topic}-${partition}: ${a?.errorMessage || r.errorMessage || errorByCode(code)}`);
          offsets.set(partition, a.offset);
        }
      }),
    );
    const partitions = t.partitions.map((p) => p.partition).sort((a, b) => a - b);
    return { partitions, offsets: partitions.map((p) => offsets.get(p)!) };
  } finally {
    pool.close();
  }
}
