// One group member as its own process, for the multi-process consumer tests and the
// consumer bench. Configuration comes as one JSON argument; everything it sees goes to
// stdout as JSON lines with a wall-clock time `t` (ms, sub-ms precision, comparable
// across processes on one machine):
//   {ev:'ready'}                                       after connect + subscribe
//   {ev:'assigned'|'revoked', partitions:[[topic,p]], generationId}
//   {ev:'join', generationId, memberId, assignment}
//   {ev:'msg', topic, partition, offset}               after eachMessage for it resolved
//   {ev:'commit', topics}                              after a successful commit
//   {ev:'crash', error}
// SIGTERM disconnects gracefully (commit + leave) and exits 0.
import { performance } from 'node:perf_hooks';
import { Raftka, PartitionAssignersByName } from '../../src/client/index.ts';

interface ProcConfig {
  brokers: string[];
  groupId: string;
  topics: string[];
  assignor?: string;
  sessionTimeout?: number;
  heartbeatInterval?: number;
  rebalanceTimeout?: number;
  groupInstanceId?: string;
  /** ms each message takes to process. */
  processMs?: number;
  autoCommitInterval?: number;
  autoCommitThreshold?: number;
  /** Log every message (else only counts per partition every 200 ms). */
  logMessages?: boolean;
}

const cfg = JSON.parse(process.argv[2] ?? '{}') as ProcConfig;
const now = () => performance.timeOrigin + performance.now();
const out = (o: Record<string, unknown>) => process.stdout.write(JSON.stringify({ t: now(), ...o }) + '\n');

const raftka = new Raftka({ brokers: cfg.brokers, clientId: `proc-${process.pid}`, requestTimeout: 10_000 });
const consumer = raftka.consumer({
  groupId: cfg.groupId,
  sessionTimeout: cfg.sessionTimeout ?? 3_000,
  heartbeatInterval: cfg.heartbeatInterval ?? 300,
  rebalanceTimeout: cfg.rebalanceTimeout ?? 10_000,
  partitionAssigners: [PartitionAssignersByName[cfg.assignor ?? 'cooperative-sticky']!],
  ...(cfg.groupInstanceId ? { groupInstanceId: cfg.groupInstanceId } : {}),
  maxWaitTimeInMs: 200,
  autoOffsetReset: 'earliest',
});
const tps = (e: { payload: Record<string, unknown> }) => (e.payload['partitions'] as Array<{ topic: string; partition: number }>).map((x) => [x.topic, x.partition]);
consumer.on('consumer.partitions_assigned', (e) => out({ ev: 'assigned', partitions: tps(e), generationId: e.payload['generationId'] }));
consumer.on('consumer.partitions_revoked', (e) => out({ ev: 'revoked', partitions: tps(e), generationId: e.payload['generationId'], lost: e.payload['lost'] === true }));
consumer.on('consumer.group_join', (e) => out({ ev: 'join', generationId: e.payload['generationId'], memberId: e.payload['memberId'], assignment: e.payload['memberAssignment'] }));
consumer.on('consumer.commit_offsets', (e) => out({ ev: 'commit', topics: e.payload['topics'] }));
consumer.on('consumer.crash', (e) => out({ ev: 'crash', error: String((e.payload['error'] as Error | undefined)?.message) }));

await consumer.connect();
await consumer.subscribe({ topics: cfg.topics, fromBeginning: true });
out({ ev: 'ready', pid: process.pid });
await consumer.run({
  autoCommitInterval: cfg.autoCommitInterval ?? 500,
  ...(cfg.autoCommitThreshold !== undefined ? { autoCommitThreshold: cfg.autoCommitThreshold } : {}),
  eachMessage: async ({ topic, partition, message }) => {
    if (cfg.processMs) await new Promise((r) => setTimeout(r, cfg.processMs));
    if (cfg.logMessages !== false) out({ ev: 'msg', topic, partition, offset: Number(message.offset) });
  },
});

process.once('SIGTERM', () => {
  void consumer.disconnect().then(() => {
    out({ ev: 'stopped' });
    process.exit(0);
  });
});
