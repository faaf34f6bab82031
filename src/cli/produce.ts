// `raftka produce <topic>`: one record per stdin line, like kafka-console-producer.
//
// The SDK producer (src/client, a parallel piece of work) has not landed yet, so this
// uses RawClient directly, with the SDK's shape in miniature:
//   - lines are split straight from stdin's Buffers (no per-line strings) and queued per
//     partition; a partition's queue becomes one batch (up to --batch-size bytes) and all
//     ready batches for partitions led by the same broker go in one Produce request;
//   - keyed lines go to Kafka's murmur2 partition (src/client/partitioner.ts), unkeyed
//     ones stick to one partition until its batch is sealed, then move on [KIP-480];
//   - one request in flight per partition, so a retry cannot reorder a partition;
//   - retriable errors (leader moved, not enough replicas, a broker down) refresh the
//     metadata and resend the same batch with backoff until --delivery-timeout-ms.
//     Without idempotence (the broker side is in progress) such a resend can duplicate a
//     batch whose first attempt was appended but not acknowledged: at-least-once;
//   - stdin is paused while --buffer-memory bytes are queued, so memory stays bounded.
import type { Command } from 'commander';
import { Option } from 'commander';
import { partitionForKey } from '../client/partitioner.ts';
import { errorByCode, isRetriable } from '../common/errors.ts';
import { BatchBuilder } from '../log/batch.ts';
import { codecFor, CompressionType, type CompressionName } from '../log/compression.ts';
import type { ProduceRequest, TopicMetadata } from '../proto/raftka.ts';
import { action, bootstrapOption, CliError, Cluster, codeLine, intArg, oneLineErrors, transportLine, writeOut } from './common.ts';

interface ProduceFlags {
  bootstrap: string;
  keySeparator?: string;
  acks: string;
  compression: CompressionName;
  partition?: number;
  verbose?: boolean;
  json?: boolean;
  batchSize: number;
  lingerMs: number;
  bufferMemory: number;
  deliveryTimeoutMs: number;
  requestTimeoutMs: number;
}

interface Rec {
  key: Buffer | null;
  value: Buffer;
}

interface Built {
  bytes: Buffer;
  count: number;
  /** When the first attempt was sent: the delivery timeout counts from here. */
  firstSentMs: number;
  attempts: number;
  lastError: string;
}

interface PartitionState {
  readonly partition: number;
  queue: Rec[];
  queuedBytes: number;
  /** A batch that failed with a retriable error, to be sent again before anything newer. */
  retry: Built | null;
  inFlight: boolean;
  /** Not before this time (backoff after a retriable error). */
  notBeforeMs: number;
}

const RECORD_OVERHEAD_BYTES = 16;
const BACKOFF_MIN_MS = 100;
const BACKOFF_MAX_MS = 1_000;

function parseAcks(s: string): number {
  if (s === 'all' || s === '-1') return -1;
  if (s === '0' || s === '1') return Number(s);
  throw new CliError(`--acks must be all, -1, 0 or 1, got ${JSON.stringify(s)}`);
}

class ConsoleProducer {
  private readonly parts: PartitionState[];
  private topic: TopicMetadata;
  private sticky = 0;
  private queuedBytes = 0;
  private eof = false;
  private failure: CliError | undefined;
  private done!: () => void;
  private fail!: (e: CliError) => void;
  readonly finished: Promise<void>;
  private timer: NodeJS.Timeout | undefined;
  private refreshing: Promise<void> | undefined;
  private readonly compression: number;
  private readonly acks: number;
  private readonly keySep: Buffer | null;
  records = 0;
  requests = 0;
  private output: string[] = [];

  constructor(
    private readonly cluster: Cluster,
    topic: TopicMetadata,
    private readonly flags: ProduceFlags,
  ) {
    this.topic = topic;
    this.parts = topic.partitions
      .map((p) => p.partition)
      .sort((a, b) => a - b)
      .map((partition) => ({ partition, queue: [], queuedBytes: 0, retry: null, inFlight: false, notBeforeMs: 0 }));
    this.compression = CompressionType[flags.compression];
    this.acks = parseAcks(flags.acks);
    this.keySep = flags.keySeparator === undefined ? null : Buffer.from(flags.keySeparator);
    if (this.keySep?.length === 0) throw new CliError('--key-separator must not be empty');
    if (flags.partition !== undefined && !this.parts.some((p) => p.partition === flags.partition)) {
      throw new CliError(`topic ${JSON.stringify(topic.name)} has no partition ${flags.partition} (it has ${this.parts.length})`);
    }
    this.sticky = Math.floor(Math.random() * this.parts.length);
    this.finished = new Promise<void>((resolve, reject) => {
      this.done = resolve;
      this.fail = reject;
    });
  }

  /** Whether stdin should pause: the queued bytes reached --buffer-memory. */
  get full(): boolean {
    return this.queuedBytes >= this.flags.bufferMemory;
  }

  addLine(line: Buffer): void {
    // Lines from files written on Windows end in \r\n; the \r is not part of the record.
    if (line.length > 0 && line[line.length - 1] === 0x0d) line = line.subarray(0, line.length - 1);
    let key: Buffer | null = null;
    let value = line;
    if (this.keySep) {
      const at = line.indexOf(this.keySep);
      // A line without the separator has no key (kafka-console-producer would reject it).
      if (at >= 0) {
        key = line.subarray(0, at);
        value = line.subarray(at + this.keySep.length);
      }
    }
    let p: PartitionState;
    if (this.flags.partition !== undefined) p = this.parts.find((x) => x.partition === this.flags.partition)!;
    else if (key !== null) p = this.parts[partitionForKey(key, this.parts.length)]!;
    else p = this.parts[this.sticky]!;
    const size = (key?.length ?? 0) + value.length + RECORD_OVERHEAD_BYTES;
    p.queue.push({ key, value });
    p.queuedBytes += size;
    this.queuedBytes += size;
    this.records++;
    if (p.queuedBytes >= this.flags.batchSize) {
      if (key === null && this.flags.partition === undefined) this.sticky = (this.sticky + 1) % this.parts.length;
      this.pump();
    } else this.arm();
  }

  end(): void {
    this.eof = true;
    this.pump();
  }

  /** Arms the linger timer: a partial batch goes out --linger-ms after it started waiting. */
  private arm(delayMs = this.flags.lingerMs): void {
    if (this.timer) return;
    this.timer = setTimeout(() => {
      this.timer = undefined;
      this.pump(true);
    }, delayMs);
  }

  private idle(): boolean {
    return this.parts.every((p) => !p.inFlight && p.retry === null && p.queue.length === 0);
  }

  private takeBatch(p: PartitionState, now: number): Built {
    const b = new BatchBuilder({ compression: this.compression, initialCapacity: Math.min(p.queuedBytes + 128, this.flags.batchSize + 1024) });
    let bytes = 0;
    let n = 0;
    while (n < p.queue.length && (n === 0 || bytes < this.flags.batchSize)) {
      const r = p.queue[n]!;
      b.append({ key: r.key, value: r.value, timestamp: now });
      bytes += (r.key?.length ?? 0) + r.value.length + RECORD_OVERHEAD_BYTES;
      n++;
    }
    p.queue = n === p.queue.length ? [] : p.queue.slice(n);
    p.queuedBytes -= bytes;
    this.queuedBytes -= bytes;
    // Unkeyed records stick to a partition until its batch is sealed [KIP-480].
    if (this.parts[this.sticky] === p) this.sticky = (this.sticky + 1) % this.parts.length;
    return { bytes: b.build(), count: n, firstSentMs: now, attempts: 0, lastError: '' };
  }

  /** Sends every batch that is ready, one request per leader broker. */
  private pump(lingerExpired = false): void {
    if (this.failure) return;
    if (this.eof && this.idle()) {
      this.done();
      return;
    }
    const now = Date.now();
    const byLeader = new Map<number, Array<{ p: PartitionState; batch: Built }>>();
    let waiting = false;
    let earliestRetryMs = Infinity;
    for (const p of this.parts) {
      if (p.inFlight) continue;
      if (p.retry === null && p.queue.length === 0) continue;
      if (p.notBeforeMs > now) {
        earliestRetryMs = Math.min(earliestRetryMs, p.notBeforeMs);
        continue;
      }
      const ready = p.retry !== null || this.eof || lingerExpired || p.queuedBytes >= this.flags.batchSize;
      if (!ready) {
        waiting = true;
        continue;
      }
      const md = this.topic.partitions.find((x) => x.partition === p.partition);
      const leader = md?.leaderId ?? -1;
      if (leader < 0 || !this.cluster.broker(leader)) {
        // Seal the batch anyway so the delivery timeout bounds the wait for a leader.
        const batch = p.retry ?? this.takeBatch(p, now);
        p.retry = null;
        this.backoff(p, batch, `LEADER_NOT_AVAILABLE: partition ${p.partition} has no leader`);
        earliestRetryMs = Math.min(earliestRetryMs, p.notBeforeMs);
        this.refresh();
        continue;
      }
      const batch = p.retry ?? this.takeBatch(p, now);
      p.retry = null;
      p.inFlight = true;
      let list = byLeader.get(leader);
      if (!list) byLeader.set(leader, (list = []));
      list.push({ p, batch });
    }
    for (const [leader, list] of byLeader) void this.send(leader, list);
    if (waiting) this.arm();
    else if (earliestRetryMs !== Infinity) this.arm(Math.max(1, earliestRetryMs - now));
  }

  private async send(leader: number, list: Array<{ p: PartitionState; batch: Built }>): Promise<void> {
    const client = this.cluster.broker(leader)!;
    const req: ProduceRequest = {
      acks: this.acks,
      timeoutMs: this.flags.requestTimeoutMs,
      topicData: [{ name: this.topic.name, partitions: list.map(({ p, batch }) => ({ partition: p.partition, records: batch.bytes })) }],
    };
    for (const { batch } of list) batch.attempts++;
    this.requests++;
    let res;
    try {
      res = await client.produce(req);
    } catch (e) {
      // A transport failure (broker down, deadline): the leader may have moved.
      for (const { p, batch } of list) {
        p.inFlight = false;
        this.backoff(p, batch, `${client.address}: ${transportLine(e)}`);
      }
      this.refresh();
      this.pump();
      return;
    }
    const parts = res.responses.find((t) => t.name === this.topic.name)?.partitions ?? [];
    let stale = false;
    for (const { p, batch } of list) {
      p.inFlight = false;
      const pr = parts.find((x) => x.partition === p.partition);
      const code = pr ? pr.errorCode : res.errorCode !== 0 ? res.errorCode : 2; // no answer for it: treat as corrupt response
      if (code === 0 && pr) {
        p.notBeforeMs = 0;
        if (this.flags.verbose) this.report(p.partition, pr.baseOffset, batch.count);
        continue;
      }
      const name = errorByCode(code);
      const msg = codeLine(code, pr?.errorMessage ?? res.errorMessage);
      if (!isRetriable(name) || name === 'CORRUPT_MESSAGE') {
        this.abort(`partition ${p.partition}: ${msg}`);
        return;
      }
      stale = true;
      if (pr?.currentLeader && pr.currentLeader.leaderId >= 0) {
        // Use the hint at once [KIP-951]; the metadata refresh confirms it.
        const md = this.topic.partitions.find((x) => x.partition === p.partition);
        if (md && pr.currentLeader.leaderEpoch >= md.leaderEpoch) {
          md.leaderId = pr.currentLeader.leaderId;
          md.leaderEpoch = pr.currentLeader.leaderEpoch;
        }
      }
      this.backoff(p, batch, msg);
    }
    void this.flushOutput();
    if (stale) this.refresh();
    this.pump();
  }

  private backoff(p: PartitionState, batch: Built, why: string): void {
    batch.lastError = why;
    if (Date.now() - batch.firstSentMs > this.flags.deliveryTimeoutMs) {
      this.abort(`partition ${p.partition}: ${batch.count} records not acknowledged within ${this.flags.deliveryTimeoutMs} ms (last error: ${why})`);
      return;
    }
    p.retry = batch;
    p.notBeforeMs = Date.now() + Math.min(BACKOFF_MAX_MS, BACKOFF_MIN_MS * 2 ** Math.max(0, batch.attempts - 1));
  }

  private refresh(): void {
    if (this.refreshing) return;
    this.refreshing = this.cluster
      .topic(this.topic.name)
      .then(
        (t) => {
          this.topic = t;
        },
        () => {
          // Keep the old view; the next failure asks again.
        },
      )
      .finally(() => {
        this.refreshing = undefined;
        this.pump();
      });
  }

  private report(partition: number, baseOffset: number, count: number): void {
    for (let i = 0; i < count; i++) {
      const offset = baseOffset < 0 ? -1 : baseOffset + i;
      this.output.push(this.flags.json ? JSON.stringify({ topic: this.topic.name, partition, offset }) : `${this.topic.name}-${partition}@${offset}`);
    }
  }

  async flushOutput(): Promise<void> {
    if (this.output.length === 0) return;
    const text = this.output.join('\n') + '\n';
    this.output = [];
    await writeOut(text);
  }

  abort(line: string): void {
    if (this.failure) return;
    this.failure = new CliError(line);
    if (this.timer) clearTimeout(this.timer);
    this.fail(this.failure);
  }
}

/** Feeds stdin to the producer line by line, pausing while its buffer is full. */
function pipeStdin(producer: ConsoleProducer): void {
  const stdin = process.stdin;
  let rest: Buffer | null = null;
  const resumeWhenDrained = () => {
    if (!producer.full) stdin.resume();
    else setTimeout(resumeWhenDrained, 5);
  };
  stdin.on('data', (chunk: Buffer) => {
    const buf = rest ? Buffer.concat([rest, chunk]) : chunk;
    rest = null;
    let start = 0;
    for (;;) {
      const nl = buf.indexOf(0x0a, start);
      if (nl < 0) break;
      producer.addLine(buf.subarray(start, nl));
      start = nl + 1;
    }
    // Copy the partial line: queued records hold views of `buf`, which stays alive anyway.
    if (start < buf.length) rest = Buffer.from(buf.subarray(start));
    if (producer.full) {
      stdin.pause();
      setTimeout(resumeWhenDrained, 5);
    }
  });
  stdin.on('end', () => {
    if (rest !== null && rest.length > 0) producer.addLine(rest);
    producer.end();
  });
  stdin.on('error', (e) => producer.abort(`reading stdin: ${e.message}`));
}

export function registerProduceCommand(program: Command): void {
  const cmd = program
    .command('produce')
    .description('send one record per stdin line to a topic (exits 0 once every record is acknowledged, 1 with one line otherwise)')
    .argument('<topic>', 'topic name')
    .option('-k, --key-separator <sep>', 'split each line at the first <sep> into key and value (a line without it has a null key)')
    .option('-a, --acks <acks>', 'all (-1): every in-sync replica; 1: the leader; 0: no acknowledgement', 'all')
    .addOption(new Option('-z, --compression <codec>', 'batch compression').choices(['none', 'gzip', 'snappy', 'lz4', 'zstd']).default('none'))
    .option('-p, --partition <n>', 'send every record to this partition (default: murmur2 of the key, or sticky batches for unkeyed lines)', intArg(0))
    .option('-v, --verbose', 'print topic-partition@offset for every record once acknowledged')
    .option('--json', 'with --verbose: one JSON object {topic,partition,offset} per record')
    .option('--batch-size <bytes>', 'bytes of records per partition batch', intArg(1, 64 << 20), 256 * 1024)
    .option('--linger-ms <ms>', 'how long a partial batch waits for more lines', intArg(0, 60_000), 5)
    .option('--buffer-memory <bytes>', 'stop reading stdin while this many bytes wait to be sent', intArg(1024), 32 << 20)
    .option('--delivery-timeout-ms <ms>', 'give up on a batch not acknowledged this long after its first send (retrying meanwhile)', intArg(1), 30_000)
    .option('--request-timeout-ms <ms>', 'how long the leader waits for the in-sync replicas (acks=all)', intArg(1), 10_000);
  bootstrapOption(cmd);
  oneLineErrors(cmd, 'produce');
  cmd.action(
    action('produce', async (topicName: string, flags: ProduceFlags) => {
      try {
        codecFor(CompressionType[flags.compression]);
      } catch {
        throw new CliError(`compression ${flags.compression} is not available in this build (only none and gzip are registered)`);
      }
      const cluster = new Cluster(flags.bootstrap);
      try {
        const topic = await cluster.topic(topicName);
        if (topic.partitions.length === 0) throw new CliError(`topic ${JSON.stringify(topicName)} has no partitions`);
        const producer = new ConsoleProducer(cluster, topic, flags);
        pipeStdin(producer);
        const t0 = Date.now();
        await producer.finished;
        await producer.flushOutput();
        if (flags.verbose) {
          process.stderr.write(`Produced ${producer.records} records to ${topicName} in ${producer.requests} requests, ${Date.now() - t0} ms\n`);
        }
      } finally {
        cluster.close();
      }
    }),
  );
}
