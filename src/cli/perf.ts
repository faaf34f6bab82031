// `raftka perf produce|consume|e2e`: load generators shaped like Kafka's
// kafka-producer-perf-test, kafka-consumer-perf-test and EndToEndLatency. Progress lines
// go to stderr every 2 s; the summary goes to stdout, and with --json it is one JSON
// object on the last stdout line. The logic lives in src/perf/; this file parses flags.
// MB = 10^6 bytes.
import { Option, type Command } from 'commander';
import { progressLine } from '../perf/coordinator.ts';
import { consumePerf } from '../perf/consume.ts';
import { e2ePerf } from '../perf/e2e.ts';
import { producePerf } from '../perf/produce.ts';
import { topicPartitions } from '../perf/topic.ts';
import { action, bootstrapOption, CliError, intArg, oneLineErrors, parseBootstrap, writeOut } from './common.ts';

type Codec = 'none' | 'gzip' | 'snappy' | 'lz4' | 'zstd';

interface CommonFlags {
  bootstrap: string;
  topic: string;
  json?: boolean;
}

interface ProduceFlags extends CommonFlags {
  numRecords: number;
  recordSize: number;
  throughput: number;
  acks: string;
  compression: Codec;
  batchSize: number;
  lingerMs: number;
  producers: number;
  workerThreads: boolean;
  payloadJson?: boolean;
  transport?: 'stream' | 'unary';
  warmupRecords: number;
}

interface ConsumeFlags extends CommonFlags {
  messages?: number;
  members: number;
  group?: string;
  workerThreads: boolean;
  fetchMaxBytes: number;
  timeoutMs: number;
}

interface E2eFlags extends CommonFlags {
  numRecords: number;
  recordSize: number;
  throughput: number;
  acks: string;
  compression: Codec;
  batchSize: number;
  lingerMs: number;
  timeoutMs: number;
  warmupRecords: number;
}

function parseAcks(s: string): number {
  if (s === 'all' || s === '-1') return -1;
  if (s === '0' || s === '1') return Number(s);
  throw new CliError(`--acks must be all, -1, 0 or 1, got ${JSON.stringify(s)}`);
}

const ms = (x: number) => (Number.isNaN(x) ? 'n/a' : `${x.toFixed(2)} ms`);
const progress = (verb: string) => (p: Parameters<typeof progressLine>[0]) => process.stderr.write(progressLine(p, verb) + '\n');

async function summary(json: boolean | undefined, human: string, obj: object): Promise<void> {
  await writeOut(human + '\n');
  if (json) await writeOut(JSON.stringify(obj) + '\n');
}

/** The producer settings `perf produce` and `perf e2e` share. */
function producerOptions(cmd: Command): Command {
  return cmd
    .option('-a, --acks <acks>', 'all (-1), 1 or 0', 'all')
    .addOption(new Option('-z, --compression <codec>', 'batch compression').choices(['none', 'gzip', 'snappy', 'lz4', 'zstd']).default('none'))
    .option('--batch-size <bytes>', 'bytes of records per partition batch', intArg(1, 64 << 20), 64 * 1024)
    .option('--linger-ms <ms>', 'how long a partial batch waits for more records', intArg(0, 60_000), 5)
    .option('--warmup-records <n>', 'records sent at the same rate first and not measured (JIT and GC warm-up)', intArg(0), 0);
}

export function registerPerfCommands(program: Command): void {
  const perf = program.command('perf').description('load generators: produce, consume and end-to-end latency tests');

  const produce = producerOptions(
    perf
      .command('produce')
      .description('send records as fast as possible or at a set rate and report throughput and send-to-ack latency (like kafka-producer-perf-test)')
      .requiredOption('-t, --topic <name>', 'topic to write (must exist)')
      .requiredOption('-n, --num-records <n>', 'records to send in all', intArg(1))
      .requiredOption('-s, --record-size <bytes>', 'bytes per record value', intArg(0, 64 << 20))
      .option('--throughput <records/s>', 'target rate over all producers; -1: as fast as possible', intArg(-1), -1),
  )
    .option('--producers <n>', 'producer instances, each with its own connections', intArg(1, 64), 1)
    .option('--no-worker-threads', 'run every producer on the main thread (default: one worker thread each when --producers > 1)')
    .option('--payload-json', 'compressible JSON values instead of random letters')
    .addOption(new Option('--transport <t>', 'SDK produce transport').choices(['stream', 'unary']))
    .option('--json', 'print the summary as one JSON object on the last stdout line');
  bootstrapOption(produce);
  oneLineErrors(produce, 'perf produce');
  produce.action(
    action('perf produce', async (f: ProduceFlags) => {
      const bootstrap = parseBootstrap(f.bootstrap);
      await topicPartitions(bootstrap, f.topic);
      const s = await producePerf({
        bootstrap,
        topic: f.topic,
        numRecords: f.numRecords,
        recordSize: f.recordSize,
        throughput: f.throughput,
        acks: parseAcks(f.acks),
        compression: f.compression,
        batchSize: f.batchSize,
        lingerMs: f.lingerMs,
        producers: f.producers,
        workerThreads: f.producers > 1 && f.workerThreads,
        payloadJson: f.payloadJson === true,
        stamp: false,
        ...(f.transport ? { transport: f.transport } : {}),
        warmupRecords: f.warmupRecords,
        onProgress: progress('sent'),
      });
      if (s.errors > 0) process.stderr.write(`${s.errors} records failed; the first error: ${s.firstError ?? 'unknown'}\n`);
      await summary(
        f.json,
        `${s.records} records sent, ${s.recordsPerSec.toFixed(1)} records/sec (${s.mbPerSec.toFixed(2)} MB/sec), ${ms(s.avgMs)} avg latency, ${ms(s.maxMs)} max latency, ` +
          `${ms(s.p50Ms)} 50th, ${ms(s.p95Ms)} 95th, ${ms(s.p99Ms)} 99th, ${ms(s.p999Ms)} 99.9th.`,
        s,
      );
      if (s.errors > 0) process.exitCode = 1;
    }),
  );

  const consume = perf
    .command('consume')
    .description('read a topic as fast as possible and report MB/s, records/s and the time to the first record (like kafka-consumer-perf-test)')
    .requiredOption('-t, --topic <name>', 'topic to read (must exist)')
    .option('-m, --messages <n>', 'stop after this many records (default: everything the topic holds at the start)', intArg(1))
    .option('--members <n>', 'consumer members sharing the partitions (assign mode: dealt round-robin)', intArg(1, 64), 1)
    .option('-g, --group <id>', 'consume as this consumer group through the SDK consumer (default: assign mode over raw Fetch); a group with committed offsets resumes from them')
    .option('--no-worker-threads', 'run every member on the main thread (default: one worker thread each when --members > 1)')
    .option('--fetch-max-bytes <bytes>', "bytes per partition per fetch (Kafka's max.partition.fetch.bytes)", intArg(1024, 64 << 20), 1 << 20)
    .option('--timeout-ms <ms>', 'give up when no record arrived for this long', intArg(1), 10_000)
    .option('--json', 'print the summary as one JSON object on the last stdout line');
  bootstrapOption(consume);
  oneLineErrors(consume, 'perf consume');
  consume.action(
    action('perf consume', async (f: ConsumeFlags) => {
      if (f.group !== undefined && f.group.trim() === '') throw new CliError('--group must not be empty');
      const s = await consumePerf({
        bootstrap: parseBootstrap(f.bootstrap),
        topic: f.topic,
        ...(f.messages !== undefined ? { messages: f.messages } : {}),
        members: f.members,
        ...(f.group !== undefined ? { group: f.group } : {}),
        workerThreads: f.members > 1 && f.workerThreads,
        fetchMaxBytes: f.fetchMaxBytes,
        timeoutMs: f.timeoutMs,
        onProgress: progress('read'),
      });
      if (s.timedOut) process.stderr.write(`no record for ${f.timeoutMs} ms: stopped after ${s.records} records\n`);
      await summary(
        f.json,
        `${s.records} records read (${s.mb.toFixed(2)} MB) in ${s.seconds.toFixed(2)} s: ${s.recordsPerSec.toFixed(1)} records/sec, ${s.mbPerSec.toFixed(2)} MB/sec, ` +
          `first record after ${ms(s.timeToFirstRecordMs)}, ${s.members} member${s.members === 1 ? '' : 's'} (${s.mode === 'group' ? `group ${f.group}` : 'assign mode'})${s.fetchErrors > 0 ? `, ${s.fetchErrors} fetch errors (${s.firstError})` : ''}.`,
        s,
      );
      if (s.timedOut) process.exitCode = 1;
    }),
  );

  const e2e = producerOptions(
    perf
      .command('e2e')
      .description('end-to-end latency: a producer at a fixed rate stamps each record with its send time, a consumer reads them')
      .requiredOption('-t, --topic <name>', 'topic to use (must exist)')
      .option('-n, --num-records <n>', 'records to send', intArg(1), 25_000)
      .option('--throughput <records/s>', 'producer rate', intArg(1), 5_000)
      .option('-s, --record-size <bytes>', 'bytes per record value (at least 8: the stamp)', intArg(8, 64 << 20), 1024),
  )
    .option('--timeout-ms <ms>', 'wait this long after the last send for records still on their way', intArg(1), 10_000)
    .option('--json', 'print the summary as one JSON object on the last stdout line');
  bootstrapOption(e2e);
  oneLineErrors(e2e, 'perf e2e');
  e2e.action(
    action('perf e2e', async (f: E2eFlags) => {
      const s = await e2ePerf({
        bootstrap: parseBootstrap(f.bootstrap),
        topic: f.topic,
        numRecords: f.numRecords,
        throughput: f.throughput,
        recordSize: f.recordSize,
        acks: parseAcks(f.acks),
        compression: f.compression,
        batchSize: f.batchSize,
        lingerMs: f.lingerMs,
        timeoutMs: f.timeoutMs,
        warmupRecords: f.warmupRecords,
        onProgress: progress('read'),
      });
      if (s.produceErrors > 0) process.stderr.write(`${s.produceErrors} records failed to send; the first error: ${s.firstError ?? 'unknown'}\n`);
      if (s.missing > 0) process.stderr.write(`${s.missing} acknowledged records did not arrive within ${f.timeoutMs} ms\n`);
      await summary(
        f.json,
        `${s.records} records at ${s.ratePerSec.toFixed(0)} records/sec: end-to-end latency ${ms(s.avgMs)} avg, ${ms(s.p50Ms)} 50th, ${ms(s.p95Ms)} 95th, ${ms(s.p99Ms)} 99th, ` +
          `${ms(s.p999Ms)} 99.9th, ${ms(s.maxMs)} max (send-to-ack ${ms(s.produceP50Ms)} 50th, ${ms(s.produceP99Ms)} 99th).`,
        s,
      );
      if (s.missing > 0 || s.produceErrors > 0) process.exitCode = 1;
    }),
  );
}
