// Runs on flush.before.ack=false topics end as an operator recovers a partition whose
// replicas all stopped uncleanly: no replica is eligible to lead it [KIP-966], so after
// the heal it gets an unclean election (`raftka topics elect-leaders --unclean`), which
// takes the replica that reports the most complete log. In those runs power losses hit
// one node and a kill keeps the page cache, so that replica holds every acknowledged
// write; the final reads and the checker then hold the run to invariant 2 as any other.
import { setTimeout as sleep } from 'node:timers/promises';
import { Raftka } from '../client/index.ts';
import type { HistoryRecorder } from './history.ts';
import { splitKey } from './workload.ts';

/** Between elections that answered "waiting for the replicas' reports". */
const RETRY_MS = 200;

/** What the recovery did: the leader elected per key, and the keys it could not elect. */
export interface UncleanRecovery {
  readonly elected: Readonly<Record<string, number>>;
  readonly notElected: readonly string[];
  readonly error?: string;
}

/**
 * Elects a leader, unclean, for every partition of `keys` that has none, retrying until
 * each is elected or `timeoutMs` passes; records it as one nemesis op. Undefined when
 * every partition had a leader.
 */
export async function electLeaderlessPartitions(bootstrap: readonly string[], keys: readonly string[], recorder: HistoryRecorder, timeoutMs: number): Promise<UncleanRecovery | undefined> {
  const admin = new Raftka({ brokers: [...bootstrap], clientId: 'jepsen-recovery', requestTimeout: 4000 }).admin();
  try {
    return await recover(admin, keys, recorder, Date.now() + timeoutMs);
  } finally {
    await admin.disconnect().catch(() => undefined);
  }
}

type Admin = ReturnType<Raftka['admin']>;

async function recover(admin: Admin, keys: readonly string[], recorder: HistoryRecorder, deadline: number): Promise<UncleanRecovery | undefined> {
  let waiting: string[];
  try {
    await admin.connect();
    const described = await admin.describeTopics({ topics: byTopic(keys).map((t) => t.topic) });
    waiting = described.topics.flatMap((t) => t.partitions.filter((p) => p.leader < 0).map((p) => `${t.name}-${p.partitionId}`)).filter((k) => keys.includes(k));
  } catch (e) {
    recorder.nemesis('invoke', 'unclean-recovery', { keys: [...keys] });
    recorder.nemesis('fail', 'unclean-recovery', { keys: [...keys] }, (e as Error).message);
    return { elected: {}, notElected: [...keys], error: (e as Error).message };
  }
  if (waiting.length === 0) return undefined;
  recorder.nemesis('invoke', 'unclean-recovery', { keys: waiting });
  const elected: Record<string, number> = {};
  let lastError = '';
  while (waiting.length > 0 && Date.now() < deadline) {
    try {
      for (const r of await admin.electLeaders({ electionType: 'unclean', topicPartitions: byTopic(waiting) })) {
        const key = `${r.topic}-${r.partition}`;
        // ELECTION_NOT_NEEDED: a leader came back meanwhile.
        if (r.error === undefined || r.error === 'ELECTION_NOT_NEEDED') elected[key] = r.leader;
        else lastError = `${key}: ${r.error} ${r.errorMessage ?? ''}`.trim();
      }
    } catch (e) {
      lastError = (e as Error).message;
    }
    waiting = waiting.filter((k) => !(k in elected));
    if (waiting.length > 0) await sleep(RETRY_MS);
  }
  if (waiting.length === 0) {
    recorder.nemesis('ok', 'unclean-recovery', { elected });
    return { elected, notElected: [] };
  }
  recorder.nemesis('fail', 'unclean-recovery', { elected, notElected: waiting }, lastError);
  return { elected, notElected: waiting, error: lastError };
}

function byTopic(keys: readonly string[]): Array<{ topic: string; partitions: number[] }> {
  const m = new Map<string, number[]>();
  for (const k of keys) {
    const { topic, partition } = splitKey(k);
    m.set(topic, [...(m.get(topic) ?? []), partition]);
  }
  return [...m].map(([topic, partitions]) => ({ topic, partitions }));
}
