// `raftka produce <topic>`: one record per stdin line, like kafka-console-producer, on
// the SDK producer (src/client/producer.ts): idempotent by default (acks=all), batching
// per partition (--batch-size, --linger-ms), compression, many partitions per request to
// each leader, retries with metadata refresh until --delivery-timeout-ms, Kafka's
// murmur2 partition for keyed lines and sticky partitions for the rest [KIP-480].
//
// Lines are split straight from stdin's Buffers and handed to the producer a stdin
// chunk at a time. stdin pauses while too many chunks are unacknowledged, and the
// producer's own bufferMemory bounds what it holds, so memory stays bounded however
// large the input. With --verbose, offsets are printed in input order.
import type { Command } from 'commander';
import { Option } from 'commander';
import { Raftka, type Message, type RecordMetadata } from '../client/index.ts';
import { RaftkaClientError } from '../client/errors.ts';
import { action, bootstrapOption, CliError, Cluster, intArg, oneLineErrors, parseBootstrap, writeOut } from './common.ts';

interface ProduceFlags {
  bootstrap: string;
  keySeparator?: string;
  acks: string;
  compression: 'none' | 'gzip' | 'snappy' | 'lz4' | 'zstd';
  partition?: number;
  idempotence: boolean;
  verbose?: boolean;
  json?: boolean;
  batchSize: number;
  lingerMs: number;
  bufferMemory: number;
  deliveryTimeoutMs: number;
  requestTimeoutMs: number;
}

/** Unacknowledged stdin chunks (of up to 64 KiB) before stdin pauses. */
const CHUNKS_IN_FLIGHT_MAX = 64;

function parseAcks(s: string): number {
  if (s === 'all' || s === '-1') return -1;
  if (s === '0' || s === '1') return Number(s);
  throw new CliError(`--acks must be all, -1, 0 or 1, got ${JSON.stringify(s)}`);
}

/** An SDK error as one line (its message names the code and the topic-partition). */
function sdkLine(e: unknown): string {
  if (e instanceof RaftkaClientError) return `${e.type}: ${e.message}`;
  return e instanceof Error ? e.message : String(e);
}

/**
 * Reads stdin, sends each chunk of lines as one `send`, and resolves when every line is
 * acknowledged; rejects with the first failure.
 */
function produceStdin(
  send: (messages: Message[]) => Promise<RecordMetadata[]>,
  flags: ProduceFlags,
  onAcked: (meta: RecordMetadata[]) => Promise<void>,
): Promise<number> {
  const keySep = flags.keySeparator === undefined ? null : Buffer.from(flags.keySeparator);
  if (keySep?.length === 0) throw new CliError('--key-separator must not be empty');
  const stdin = process.stdin;
  return new Promise<number>((resolve, reject) => {
    let rest: Buffer | null = null;
    let lines = 0;
    let outstanding = 0;
    let ended = false;
    let failed = false;
    // Acknowledgements are reported in input order: each chunk waits for the one before.
    let reported: Promise<void> = Promise.resolve();
    const toMessage = (line: Buffer): Message => {
      // Lines from files written on Windows end in \r\n; the \r is not part of the record.
      if (line.length > 0 && line[line.length - 1] === 0x0d) line = line.subarray(0, line.length - 1);
      let key: Buffer | null = null;
      let value = line;
      if (keySep) {
        const at = line.indexOf(keySep);
        // A line without the separator has a null key (kafka-console-producer rejects it).
        if (at >= 0) {
          key = line.subarray(0, at);
          value = line.subarray(at + keySep.length);
        }
      }
      return flags.partition === undefined ? { key, value } : { key, value, partition: flags.partition };
    };
    const fail = (e: unknown) => {
      if (failed) return;
      failed = true;
      stdin.pause();
      reject(e instanceof CliError ? e : new CliError(sdkLine(e)));
    };
    const finishIfDone = () => {
      if (ended && outstanding === 0 && !failed) void reported.then(() => resolve(lines), fail);
    };
    const submit = (messages: Message[]) => {
      if (messages.length === 0 || failed) return;
      lines += messages.length;
      outstanding++;
      const acked = send(messages);
      reported = reported.then(async () => onAcked(await acked));
      // A failure is handled through `fail` below; this keeps the chain from counting as unhandled.
      reported.catch(() => undefined);
      acked.then(
        () => {
          outstanding--;
          if (outstanding < CHUNKS_IN_FLIGHT_MAX / 2 && stdin.isPaused() && !ended && !failed) stdin.resume();
          finishIfDone();
        },
        fail,
      );
      if (outstanding >= CHUNKS_IN_FLIGHT_MAX) stdin.pause();
    };
    stdin.on('data', (chunk: Buffer) => {
      const buf = rest ? Buffer.concat([rest, chunk]) : chunk;
      rest = null;
      const messages: Message[] = [];
      let start = 0;
      for (;;) {
        const nl = buf.indexOf(0x0a, start);
        if (nl < 0) break;
        messages.push(toMessage(buf.subarray(start, nl)));
        start = nl + 1;
      }
      if (start < buf.length) rest = Buffer.from(buf.subarray(start));
      submit(messages);
    });
    stdin.on('end', () => {
      if (rest !== null && rest.length > 0) submit([toMessage(rest)]);
      ended = true;
      finishIfDone();
    });
    stdin.on('error', (e) => fail(new CliError(`reading stdin: ${e.message}`)));
  });
}

export function registerProduceCommand(program: Command): void {
  const cmd = program
    .command('produce')
    .description('send one record per stdin line to a topic (exits 0 once every record is acknowledged, 1 with one line otherwise)')
    .argument('<topic>', 'topic name')
    .option('-k, --key-separator <sep>', 'split each line at the first <sep> into key and value (a line without it has a null key)')
    .option('-a, --acks <acks>', 'all (-1): every in-sync replica; 1: the leader; 0: no acknowledgement (1 and 0 turn idempotence off)', 'all')
    .addOption(new Option('-z, --compression <codec>', 'batch compression').choices(['none', 'gzip', 'snappy', 'lz4', 'zstd']).default('none'))
    .option('-p, --partition <n>', 'send every record to this partition (default: murmur2 of the key, or sticky batches for unkeyed lines)', intArg(0))
    .option('--no-idempotence', 'turn off the idempotent producer (a retry may then write a batch twice)')
    .option('-v, --verbose', 'print topic-partition@offset for every record, in input order, once acknowledged')
    .option('--json', 'with --verbose: one JSON object {topic,partition,offset} per record')
    .option('--batch-size <bytes>', 'bytes of records per partition batch', intArg(1, 64 << 20), 256 * 1024)
    .option('--linger-ms <ms>', 'how long a partial batch waits for more lines', intArg(0, 60_000), 5)
    .option('--buffer-memory <bytes>', 'bytes of unacknowledged records the producer holds before reading stdin waits', intArg(1024), 32 << 20)
    .option('--delivery-timeout-ms <ms>', 'give up on a record not acknowledged this long after it was read (retrying meanwhile)', intArg(1), 30_000)
    .option('--request-timeout-ms <ms>', 'how long the leader waits for the in-sync replicas (acks=all)', intArg(1), 10_000);
  bootstrapOption(cmd);
  oneLineErrors(cmd, 'produce');
  cmd.action(
    action('produce', async (topicName: string, flags: ProduceFlags) => {
      const acks = parseAcks(flags.acks);
      // Our own metadata call first: a short deadline for an unreachable cluster, and a
      // clear line for an unknown topic or partition before stdin is read.
      const probe = new Cluster(flags.bootstrap);
      try {
        const topic = await probe.topic(topicName);
        if (flags.partition !== undefined && !topic.partitions.some((p) => p.partition === flags.partition)) {
          throw new CliError(`topic ${JSON.stringify(topicName)} has no partition ${flags.partition} (it has ${topic.partitions.length})`);
        }
      } finally {
        probe.close();
      }
      const raftka = new Raftka({ brokers: parseBootstrap(flags.bootstrap), clientId: 'raftka-cli', requestTimeout: flags.requestTimeoutMs + 5_000 });
      let producer;
      try {
        producer = raftka.producer({
          acks,
          compression: flags.compression,
          batchSize: flags.batchSize,
          lingerMs: flags.lingerMs,
          bufferMemory: flags.bufferMemory,
          deliveryTimeoutMs: flags.deliveryTimeoutMs,
          // acks 0 and 1 cannot be idempotent; leave the choice to the producer then.
          ...(acks === -1 ? { idempotent: flags.idempotence } : {}),
        });
        await producer.connect();
      } catch (e) {
        throw new CliError(sdkLine(e));
      }
      const t0 = Date.now();
      let records: number;
      try {
        records = await produceStdin(
          (messages) => producer.send({ topic: topicName, messages, acks, timeout: flags.requestTimeoutMs }),
          flags,
          async (meta) => {
            if (!flags.verbose) return;
            let out = '';
            for (const m of meta) out += (flags.json ? JSON.stringify({ topic: m.topicName, partition: m.partition, offset: m.offset }) : `${m.topicName}-${m.partition}@${m.offset}`) + '\n';
            await writeOut(out);
          },
        );
      } catch (e) {
        // Exits at once (action): what is still queued is not acknowledged, and the line says why.
        throw e instanceof CliError ? e : new CliError(sdkLine(e));
      }
      await producer.disconnect();
      if (flags.verbose) process.stderr.write(`Produced ${records} records to ${topicName} in ${Date.now() - t0} ms\n`);
    }),
  );
}
