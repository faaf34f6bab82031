// `raftka perf consume` in assign mode: the topic's partitions dealt round-robin to N
// members (each in its own worker thread when N > 1), each reading its partitions from
// their leaders with pipelined raw Fetch calls. By default it reads what the topic holds
// when it starts; with `messages` it stops once that many arrived. MB/s counts record
// batch bytes as stored (for 1 KiB values about 1.5% above the values alone).
import { inThreadAgent, workerAgent, type Agent } from './agents.ts';
import { runAgents, type Progress } from './coordinator.ts';
import { topicOffsets } from './topic.ts';
import { RaftkaError } from '../common/errors.ts';

export interface ConsumePerfOptions {
  bootstrap: string[];
  topic: string;
  /** Stop after this many records; default: everything the topic holds at the start. */
  messages?: number;
  members: number;
  /**
   * Consume as this consumer group through the SDK consumer (subscribe, rebalance,
   * commits); undefined: assign mode over raw Fetch.
   */
  group?: string;
  workerThreads?: boolean;
  /** Bytes per partition per fetch. */
  fetchMaxBytes: number;
  /** Give up when no record arrived for this long (ms). */
  timeoutMs: number;
  onProgress?(p: Progress): void;
}

export interface ConsumeSummary {
  records: number;
  mb: number;
  seconds: number;
  recordsPerSec: number;
  mbPerSec: number;
  /** From the start of the fetches to the first record (ms). */
  timeToFirstRecordMs: number;
  members: number;
  mode: 'assign' | 'group';
  fetchErrors: number;
  firstError?: string;
  /** True when the timeout ended the run before `messages` arrived. */
  timedOut: boolean;
}

/**
 * How many records to take from each partition to read `n` in all when partition i
 * holds `available[i]`: equal shares, what a short partition cannot give spread over the
 * others. Undefined when they hold fewer than `n` together.
 */
export function allot(n: number, available: readonly number[]): number[] | undefined {
  if (available.reduce((s, a) => s + a, 0) < n) return undefined;
  const take = available.map(() => 0);
  let left = n;
  while (left > 0) {
    const open = available.map((a, i) => (a > take[i]! ? i : -1)).filter((i) => i >= 0);
    const share = Math.max(1, Math.floor(left / open.length));
    for (const i of open) {
      const t = Math.min(share, available[i]! - take[i]!, left);
      take[i]! += t;
      left -= t;
      if (left === 0) break;
    }
  }
  return take;
}

/** Partition indexes dealt round-robin to `members`. */
export function dealPartitions(count: number, members: number): number[][] {
  const out: number[][] = Array.from({ length: members }, () => []);
  for (let i = 0; i < count; i++) out[i % members]!.push(i);
  return out;
}

export async function consumePerf(o: ConsumePerfOptions): Promise<ConsumeSummary> {
  const [start, end] = await Promise.all([topicOffsets(o.bootstrap, o.topic, 'earliest'), topicOffsets(o.bootstrap, o.topic, 'latest')]);
  const available = end.offsets.reduce((s, e, i) => s + e - start.offsets[i]!, 0);
  if (o.members > start.partitions.length) {
    throw new RaftkaError('INVALID_REQUEST', `--members ${o.members} is more than the ${start.partitions.length} partitions of ${o.topic}: a member would sit idle`);
  }
  const target = o.messages ?? available;
  // Known end offsets make the count exact: read up to them. Only when more is asked
  // than the topic holds do members read on until the total is reached.
  const take = allot(target, end.offsets.map((e, i) => e - start.offsets[i]!));
  const threads = o.workerThreads ?? o.members > 1;
  const group = o.group;
  const agents: Agent[] =
    group !== undefined
      ? Array.from({ length: o.members }, () => {
          const job = { kind: 'group' as const, opts: { bootstrap: o.bootstrap, topic: o.topic, groupId: group, partitionMaxBytes: o.fetchMaxBytes } };
          return threads ? workerAgent(job) : inThreadAgent(job);
        })
      : dealPartitions(start.partitions.length, o.members).map((idx) => {
          const job = {
            kind: 'consume' as const,
            opts: {
              bootstrap: o.bootstrap,
              topic: o.topic,
              partitions: idx.map((i) => start.partitions[i]!),
              startOffsets: idx.map((i) => start.offsets[i]!),
              endOffsets: idx.map((i) => (take ? start.offsets[i]! + take[i]! : -1)),
              maxWaitMs: 500,
              partitionMaxBytes: o.fetchMaxBytes,
              e2e: false,
              fetchPer: 'partition' as const,
            },
          };
          return threads ? workerAgent(job) : inThreadAgent(job);
        });
  let lastRecords = 0;
  let lastChange = performance.now();
  let timedOut = false;
  let watchdog: NodeJS.Timeout | undefined;
  const out = await runAgents(agents, {
    ...(o.onProgress ? { onProgress: o.onProgress } : {}),
    shouldStop: (records) => {
      if (records !== lastRecords) {
        lastRecords = records;
        lastChange = performance.now();
      }
      if (watchdog === undefined) {
        watchdog = setInterval(() => {
          if (performance.now() - lastChange > o.timeoutMs) {
            timedOut = true;
            for (const a of agents) a.stop();
          }
        }, 200);
      }
      return records >= target;
    },
  }).finally(() => clearInterval(watchdog));
  // Timed to the moment the target was reached would need every member's clock; the
  // members stop within one fetch of it, which is what `seconds` includes.
  return {
    records: out.records,
    mb: out.bytes / 1e6,
    seconds: out.seconds,
    recordsPerSec: out.recordsPerSec,
    mbPerSec: out.mbPerSec,
    timeToFirstRecordMs: out.firstRecordAtMs !== undefined ? out.firstRecordAtMs - out.startedAtMs : NaN,
    members: o.members,
    mode: group !== undefined ? 'group' : 'assign',
    fetchErrors: out.errors,
    ...(out.firstError !== undefined ? { firstError: out.firstError } : {}),
    timedOut: timedOut && out.records < target,
  };
}
