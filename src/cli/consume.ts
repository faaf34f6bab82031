// `raftka consume <topic>`: prints each record, like kafka-console-consumer / kcat -C.
// Without --group it reads partitions in assign mode (below); with --group it is a member
// of a consumer group through the SDK consumer (`runGroup`), committing what it printed.
//
// One long-poll fetch loop per leader broker, each fetching every selected partition that
// broker leads. A partition whose leader moved (NOT_LEADER_OR_FOLLOWER, a fenced or
// unknown leader epoch, a broker that stopped answering) backs off, the metadata is
// refreshed (using the response's leader hint at once [KIP-951]) and the partition joins
// the loop of its new leader at the same offset, so a leader change neither skips nor
// repeats records.
import type { Command } from 'commander';
import { errorByCode, isRetriable } from '../common/errors.ts';
import { decodeBatch, registerCodecs } from '../client/codecs.ts';
import { iterateBatches, type LogRecord } from '../log/batch.ts';
import { EARLIEST_TIMESTAMP, LATEST_TIMESTAMP, type TopicMetadata } from '../proto/raftka.ts';
import { DEADLINE_SLACK_MS, fetchStreams } from '../client/raw-client.ts';
import { action, bootstrapOption, CliError, Cluster, codeLine, exitQuietlyOnEpipe, intArg, oneLineErrors, parseBootstrap, writeOut } from './common.ts';
import { Raftka } from '../client/index.ts';
import { PartitionAssignersByName } from '../client/consumer.ts';

interface ConsumeFlags {
  bootstrap: string;
  partition?: string;
  offset: string;
  maxMessages?: number;
  timeoutMs?: number;
  format?: string;
  json?: boolean;
  fetchMaxWaitMs: number;
  fetchMaxBytes: number;
  group?: string;
  assignor: string;
  sessionTimeoutMs: number;
  groupInstanceId?: string;
}

/** `/pattern/` subscribes to every topic matching the pattern (group mode only). */
function topicPattern(arg: string): RegExp | undefined {
  if (arg.length < 2 || !arg.startsWith('/') || !arg.endsWith('/')) return undefined;
  try {
    return new RegExp(arg.slice(1, -1));
  } catch (e) {
    throw new CliError(`malformed topic pattern ${arg}: ${(e as Error).message}`);
  }
}

/** Group mode: one member of `flags.group`; prints records, commits after printing them. */
async function runGroup(topicArg: string, flags: ConsumeFlags, start: number | 'earliest' | 'latest'): Promise<void> {
  const pattern = topicPattern(topicArg);
  if (typeof start === 'number') throw new CliError('--offset N needs assign mode (no --group); use groups reset-offsets to move a group');
  if (flags.partition !== undefined) throw new CliError('--partition needs assign mode (no --group): a group assigns partitions itself');
  const assigner = PartitionAssignersByName[flags.assignor];
  if (!assigner) throw new CliError(`--assignor must be one of ${Object.keys(PartitionAssignersByName).join(', ')}, got ${JSON.stringify(flags.assignor)}`);
  const raftka = new Raftka({ brokers: parseBootstrap(flags.bootstrap), clientId: 'raftka-cli', requestTimeout: 10_000 });
  const consumer = raftka.consumer({
    groupId: flags.group!,
    partitionAssigners: [assigner],
    sessionTimeout: flags.sessionTimeoutMs,
    heartbeatInterval: Math.max(100, Math.floor(flags.sessionTimeoutMs / 10)),
    maxWaitTimeInMs: flags.fetchMaxWaitMs,
    maxBytes: flags.fetchMaxBytes,
    autoOffsetReset: start,
    ...(flags.groupInstanceId ? { groupInstanceId: flags.groupInstanceId } : {}),
  });
  let count = 0;
  let failure: Error | undefined;
  let lastDataMs = Date.now();
  let finish!: () => void;
  const finished = new Promise<void>((r) => (finish = r));
  try {
    await consumer.connect();
    await consumer.subscribe({ topic: pattern ?? topicArg, fromBeginning: start === 'earliest' });
  } catch (e) {
    await consumer.disconnect().catch(() => undefined);
    throw e instanceof Error && !(e instanceof CliError) ? new CliError(e.message) : e;
  }
  consumer.on('consumer.crash', (e) => {
    failure = e.payload['error'] as Error;
    finish();
  });
  const renders = new Map<string, Render>();
  await consumer.run({
    eachBatch: async ({ batch, resolveOffset }) => {
      let render = renders.get(batch.topic);
      if (!render) renders.set(batch.topic, (render = flags.json ? renderJson(batch.topic) : compileFormat(flags.format ?? '%v', batch.topic)));
      let out = '';
      let last: string | undefined;
      for (const m of batch.messages) {
        if (flags.maxMessages !== undefined && count >= flags.maxMessages) break;
        out += render({ offset: Number(m.offset), timestamp: Number(m.timestamp), key: m.key, value: m.value, headers: Object.entries(m.headers).map(([key, v]) => ({ key, value: v === undefined ? null : Buffer.from(v) })) }, batch.partition) + '\n';
        count++;
        last = m.offset;
        lastDataMs = Date.now();
      }
      await writeOut(out);
      // Only what was printed is resolved (and so committed).
      if (last !== undefined) resolveOffset(last);
      if (flags.maxMessages !== undefined && count >= flags.maxMessages) finish();
    },
    eachBatchAutoResolve: false,
  });
  if (flags.maxMessages === 0) finish();
  const idle = flags.timeoutMs === undefined ? undefined : setInterval(() => Date.now() - lastDataMs >= flags.timeoutMs! && finish(), Math.min(100, flags.timeoutMs));
  const onSignal = () => finish();
  process.once('SIGINT', onSignal);
  process.once('SIGTERM', onSignal);
  await finished;
  if (idle) clearInterval(idle);
  process.off('SIGINT', onSignal);
  process.off('SIGTERM', onSignal);
  await consumer.disconnect();
  if (failure) throw new CliError(failure.message);
  process.stderr.write(`Processed a total of ${count} messages\n`);
}

interface PartState {
  readonly partition: number;
  /** The next offset to read, or where to start when not yet resolved. */
  offset: number | 'earliest' | 'latest';
  leader: number;
  leaderEpoch: number;
  notBeforeMs: number;
  failures: number;
}

const FORMAT_HELP = `--format template, one line per record: %k key, %v value, %p partition, %o offset,
%t timestamp (ms), %h headers (k=v,...), %T topic, %% a percent sign; \\t and \\n are tab and newline.
A null key or value prints as "null". Default: '%v'. Example: --format '%p:%o %k=%v'`;

type Render = (r: LogRecord, partition: number) => string;

function text(b: Buffer | null): string {
  return b === null ? 'null' : b.toString('utf8');
}

/** Compiles a --format template once into a function of the record. */
export function compileFormat(template: string, topic: string): Render {
  const parts: Array<string | ((r: LogRecord, partition: number) => string)> = [];
  let lit = '';
  for (let i = 0; i < template.length; i++) {
    const c = template[i]!;
    const n = template[i + 1];
    if (c === '\\' && (n === 'n' || n === 't' || n === '\\')) {
      lit += n === 'n' ? '\n' : n === 't' ? '\t' : '\\';
      i++;
      continue;
    }
    if (c !== '%') {
      lit += c;
      continue;
    }
    i++;
    let f: ((r: LogRecord, partition: number) => string) | undefined;
    switch (n) {
      case '%':
        lit += '%';
        continue;
      case 'k':
        f = (r) => text(r.key);
        break;
      case 'v':
        f = (r) => text(r.value);
        break;
      case 'p':
        f = (_r, p) => String(p);
        break;
      case 'o':
        f = (r) => String(r.offset);
        break;
      case 't':
        f = (r) => String(r.timestamp);
        break;
      case 'h':
        f = (r) => r.headers.map((h) => `${h.key}=${text(h.value)}`).join(',');
        break;
      case 'T':
        lit += topic;
        continue;
      default:
        throw new CliError(`--format: unknown directive %${n ?? ''} (use %k %v %p %o %t %h %T %%)`);
    }
    if (lit !== '') parts.push(lit);
    lit = '';
    parts.push(f);
  }
  if (lit !== '') parts.push(lit);
  return (r, p) => {
    let s = '';
    for (const x of parts) s += typeof x === 'string' ? x : x(r, p);
    return s;
  };
}

function renderJson(topic: string): Render {
  return (r, partition) =>
    JSON.stringify({
      topic,
      partition,
      offset: r.offset,
      timestamp: r.timestamp,
      key: r.key === null ? null : r.key.toString('utf8'),
      value: r.value === null ? null : r.value.toString('utf8'),
      headers: r.headers.map((h) => ({ key: h.key, value: h.value === null ? null : h.value.toString('utf8') })),
    });
}

function parseOffset(s: string): number | 'earliest' | 'latest' {
  if (s === 'earliest' || s === 'beginning') return 'earliest';
  if (s === 'latest' || s === 'end') return 'latest';
  if (/^\d+$/.test(s) && Number.isSafeInteger(Number(s))) return Number(s);
  throw new CliError(`--offset must be earliest, latest or a non-negative offset, got ${JSON.stringify(s)}`);
}

function parsePartitions(s: string | undefined, topic: TopicMetadata): number[] {
  const all = topic.partitions.map((p) => p.partition).sort((a, b) => a - b);
  if (s === undefined || s === 'all') return all;
  const out: number[] = [];
  for (const x of s.split(',')) {
    if (!/^\s*\d+\s*$/.test(x)) throw new CliError(`--partition expects a partition number or a comma-separated list, got ${JSON.stringify(s)}`);
    const p = Number(x);
    if (!all.includes(p)) throw new CliError(`topic ${JSON.stringify(topic.name)} has no partition ${p} (it has ${all.length})`);
    if (!out.includes(p)) out.push(p);
  }
  return out;
}

/** Errors after which the partition's leader must be looked up again. */
const LEADER_ERRORS = new Set(['NOT_LEADER_OR_FOLLOWER', 'LEADER_NOT_AVAILABLE', 'FENCED_LEADER_EPOCH', 'UNKNOWN_LEADER_EPOCH', 'UNKNOWN_TOPIC_OR_PARTITION', 'REPLICA_NOT_AVAILABLE', 'KAFKA_STORAGE_ERROR']);

class ConsoleConsumer {
  private readonly parts: PartState[];
  private readonly loops = new Set<number>();
  private readonly stopper = new AbortController();
  /** As the SDK consumer: fetches ride one FetchStream per broker. */
  private readonly fetches = fetchStreams((address) => this.cluster.pool.get(address));
  private stopped = false;
  private failure: CliError | undefined;
  private lastDataMs = Date.now();
  private idleTimer: NodeJS.Timeout | undefined;
  private retryTimer: NodeJS.Timeout | undefined;
  private refreshing: Promise<void> | undefined;
  private finish!: () => void;
  readonly finished: Promise<void>;
  count = 0;

  constructor(
    private readonly cluster: Cluster,
    private topic: TopicMetadata,
    partitions: number[],
    start: number | 'earliest' | 'latest',
    private readonly render: Render,
    private readonly flags: ConsumeFlags,
  ) {
    this.parts = partitions.map((partition) => {
      const md = topic.partitions.find((p) => p.partition === partition)!;
      return { partition, offset: start, leader: md.leaderId, leaderEpoch: md.leaderEpoch, notBeforeMs: 0, failures: 0 };
    });
    this.finished = new Promise<void>((resolve) => (this.finish = resolve));
  }

  start(): void {
    if (this.flags.maxMessages === 0) {
      this.stop();
      return;
    }
    this.armIdle();
    this.ensureLoops();
  }

  /** Stops everything; in-flight fetches are cancelled. */
  stop(failure?: CliError): void {
    if (this.stopped) return;
    this.stopped = true;
    this.failure = failure;
    if (this.idleTimer) clearTimeout(this.idleTimer);
    if (this.retryTimer) clearTimeout(this.retryTimer);
    this.stopper.abort();
    void this.fetches.close(false);
    this.finish();
  }

  get error(): CliError | undefined {
    return this.failure;
  }

  /** --timeout-ms: stop once no record has arrived for that long. */
  private armIdle(): void {
    const timeoutMs = this.flags.timeoutMs;
    if (timeoutMs === undefined) return;
    const due = this.lastDataMs + timeoutMs - Date.now();
    this.idleTimer = setTimeout(() => {
      if (Date.now() - this.lastDataMs >= timeoutMs) this.stop();
      else this.armIdle();
    }, Math.max(1, due));
  }

  /** Starts a fetch loop for every leader that leads a ready partition and has none. */
  private ensureLoops(): void {
    if (this.stopped) return;
    const now = Date.now();
    let nextRetry = Infinity;
    let needRefresh = false;
    for (const p of this.parts) {
      if (p.notBeforeMs > now) {
        nextRetry = Math.min(nextRetry, p.notBeforeMs);
        continue;
      }
      if (p.leader < 0 || !this.cluster.broker(p.leader)) {
        needRefresh = true;
        continue;
      }
      if (!this.loops.has(p.leader)) {
        this.loops.add(p.leader);
        void this.loop(p.leader);
      }
    }
    if (needRefresh) this.refresh();
    if (nextRetry !== Infinity) {
      if (this.retryTimer) clearTimeout(this.retryTimer);
      this.retryTimer = setTimeout(() => {
        this.retryTimer = undefined;
        this.ensureLoops();
      }, Math.max(1, nextRetry - now));
    }
  }

  private backoff(p: PartState): void {
    p.failures++;
    p.notBeforeMs = Date.now() + Math.min(1_000, 50 * 2 ** Math.min(p.failures, 5));
  }

  private refresh(): void {
    if (this.refreshing || this.stopped) return;
    this.refreshing = this.cluster
      .topic(this.topic.name)
      .then(
        (t) => {
          this.topic = t;
          for (const p of this.parts) {
            const md = t.partitions.find((x) => x.partition === p.partition);
            // An older view (a lagging broker) must not undo a newer leader hint.
            if (md && md.leaderEpoch >= p.leaderEpoch) {
              p.leader = md.leaderId;
              p.leaderEpoch = md.leaderEpoch;
            }
          }
        },
        (e: unknown) => {
          // The topic is gone: nothing more will come. Unreachable brokers: try again later.
          if (e instanceof CliError && /does not exist/.test(e.message)) this.stop(e);
        },
      )
      .finally(() => {
        this.refreshing = undefined;
        // Partitions still without a leader try again after a pause, not in a tight loop.
        for (const p of this.parts) if (p.leader < 0 && p.notBeforeMs <= Date.now()) this.backoff(p);
        this.ensureLoops();
      });
  }

  private leaderHint(p: PartState, hint: { leaderId: number; leaderEpoch: number } | null): void {
    if (hint && hint.leaderId >= 0 && hint.leaderEpoch > p.leaderEpoch) {
      p.leader = hint.leaderId;
      p.leaderEpoch = hint.leaderEpoch;
    }
  }

  private async loop(broker: number): Promise<void> {
    try {
      for (;;) {
        if (this.stopped) return;
        const now = Date.now();
        const mine = this.parts.filter((p) => p.leader === broker && p.notBeforeMs <= now);
        const client = this.cluster.broker(broker);
        if (mine.length === 0 || !client) return;
        try {
          await this.resolveOffsets(broker, mine);
          const fetching = mine.filter((p): p is PartState & { offset: number } => typeof p.offset === 'number' && p.leader === broker);
          if (fetching.length === 0) continue;
          await this.fetchOnce(broker, fetching);
        } catch (e) {
          if (this.stopped) return;
          if (e instanceof CliError) {
            this.stop(e);
            return;
          }
          // Transport failure: the broker may be gone. Pause its partitions and look again.
          for (const p of mine) this.backoff(p);
          this.refresh();
          return;
        }
      }
    } finally {
      this.loops.delete(broker);
      this.ensureLoops();
    }
  }

  private async resolveOffsets(broker: number, mine: PartState[]): Promise<void> {
    const todo = mine.filter((p) => typeof p.offset !== 'number');
    if (todo.length === 0) return;
    const client = this.cluster.broker(broker)!;
    const r = await client.listOffsets(
      { topics: [{ name: this.topic.name, partitions: todo.map((p) => ({ partition: p.partition, timestamp: p.offset === 'earliest' ? EARLIEST_TIMESTAMP : LATEST_TIMESTAMP })) }] },
      { timeoutMs: 5_000, signal: this.stopper.signal },
    );
    const answers = r.topics.find((t) => t.name === this.topic.name)?.partitions ?? [];
    for (const p of todo) {
      const a = answers.find((x) => x.partition === p.partition);
      const code = a?.errorCode ?? r.errorCode;
      if (a && code === 0) {
        p.offset = a.offset;
        p.failures = 0;
      } else this.onPartitionError(p, code, a?.errorMessage ?? r.errorMessage, a?.currentLeader ?? null);
    }
  }

  private onPartitionError(p: PartState, code: number, message: string, hint: { leaderId: number; leaderEpoch: number } | null): void {
    const name = errorByCode(code);
    if (LEADER_ERRORS.has(name) || (isRetriable(name) && name !== 'CORRUPT_MESSAGE')) {
      this.leaderHint(p, hint);
      this.backoff(p);
      this.refresh();
      return;
    }
    if (name === 'OFFSET_OUT_OF_RANGE') {
      throw new CliError(`partition ${p.partition}: ${message || `offset ${String(p.offset)} is out of range`}`);
    }
    throw new CliError(`partition ${p.partition}: ${codeLine(code, message)}`);
  }

  private async fetchOnce(broker: number, fetching: Array<PartState & { offset: number }>): Promise<void> {
    const client = this.cluster.broker(broker)!;
    const maxWaitMs = Math.min(this.flags.fetchMaxWaitMs, this.flags.timeoutMs ?? Infinity);
    const r = await this.fetches.send(
      client.address,
      {
        maxWaitMs,
        minBytes: 1,
        maxBytes: this.flags.fetchMaxBytes,
        topics: [{ name: this.topic.name, partitions: fetching.map((p) => ({ partition: p.partition, fetchOffset: p.offset, partitionMaxBytes: 1 << 20 })) }],
      },
      maxWaitMs + DEADLINE_SLACK_MS,
      this.stopper.signal,
    );
    if (this.stopped) return;
    if (r.errorCode !== 0) throw new CliError(`fetch from broker ${broker}: ${codeLine(r.errorCode, r.errorMessage)}`);
    const answers = r.responses.find((t) => t.name === this.topic.name)?.partitions ?? [];
    // Decode everything first (asynchronous for some codecs), then count and print in
    // one synchronous pass, so concurrent fetch loops cannot together pass --max-messages.
    const decoded: Array<{ p: PartState & { offset: number }; batches: Array<{ lastOffset: number; records: LogRecord[] }> }> = [];
    for (const p of fetching) {
      const a = answers.find((x) => x.partition === p.partition);
      if (!a) continue;
      if (a.errorCode !== 0) {
        this.onPartitionError(p, a.errorCode, a.errorMessage, a.currentLeader);
        continue;
      }
      p.failures = 0;
      const batches: Array<{ lastOffset: number; records: LogRecord[] }> = [];
      try {
        for (const { header, bytes } of iterateBatches(a.records)) {
          if (header.lastOffset < p.offset) continue;
          // decodeBatch handles every codec, zstd included (which is asynchronous only).
          batches.push({ lastOffset: header.lastOffset, records: header.isControl ? [] : await decodeBatch(bytes) });
        }
      } catch (e) {
        throw new CliError(`partition ${p.partition}: ${(e as Error).message}`);
      }
      decoded.push({ p, batches });
    }
    if (this.stopped) return;
    let out = '';
    for (const { p, batches } of decoded) {
      for (const batch of batches) {
        for (const rec of batch.records) {
          // A batch may start before the fetch offset (e.g. a compressed one).
          if (rec.offset < p.offset) continue;
          out += this.render(rec, p.partition) + '\n';
          this.count++;
          if (this.flags.maxMessages !== undefined && this.count >= this.flags.maxMessages) {
            this.stop();
            await writeOut(out);
            return;
          }
        }
        p.offset = batch.lastOffset + 1;
      }
    }
    if (out !== '') {
      this.lastDataMs = Date.now();
      await writeOut(out);
    }
  }
}

export function registerConsumeCommand(program: Command): void {
  const cmd = program
    .command('consume')
    .description('print records of a topic: assign mode (explicit partitions and offsets), or as a member of a consumer group with --group')
    .argument('<topic>', 'topic name (with --group also /regex/: every matching topic)')
    .option('-p, --partition <n[,n...]>', 'partitions to read (default: all)')
    .option('-o, --offset <where>', 'where to start in each partition: earliest, latest, or an offset', 'latest')
    .option('-n, --max-messages <n>', 'stop after printing this many records', intArg(0))
    .option('-t, --timeout-ms <ms>', 'stop when no new record has arrived for this long (default: run until Ctrl-C)', intArg(1))
    .option('-f, --format <template>', "how to print a record (see below), e.g. '%k:%v'")
    .option('--json', 'print one JSON object per record: {topic,partition,offset,timestamp,key,value,headers}')
    .option('--fetch-max-wait-ms <ms>', 'how long a fetch waits on the broker for new data', intArg(0, 60_000), 500)
    .option('--fetch-max-bytes <bytes>', 'bound on one fetch response', intArg(1024), 16 << 20)
    .option('-g, --group <id>', 'consume as a member of this consumer group (commits what it printed; --offset earliest|latest applies without a committed offset)')
    .option('--assignor <name>', 'group mode: range, roundrobin or cooperative-sticky', 'cooperative-sticky')
    .option('--session-timeout-ms <ms>', 'group mode: session timeout', intArg(1), 10_000)
    .option('--group-instance-id <id>', 'group mode: static membership id')
    .addHelpText('after', `\n${FORMAT_HELP}\n\nExit code 0 after --max-messages, --timeout-ms or Ctrl-C; 1 with one line on an error.`);
  bootstrapOption(cmd);
  oneLineErrors(cmd, 'consume');
  cmd.action(
    action('consume', async (topicName: string, flags: ConsumeFlags) => {
      if (flags.json && flags.format !== undefined) throw new CliError('--json and --format exclude each other');
      const start = parseOffset(flags.offset);
      registerCodecs();
      if (flags.group !== undefined) {
        exitQuietlyOnEpipe();
        await runGroup(topicName, flags, start);
        return;
      }
      const render = flags.json ? renderJson(topicName) : compileFormat(flags.format ?? '%v', topicName);
      exitQuietlyOnEpipe();
      const cluster = new Cluster(flags.bootstrap);
      try {
        const topic = await cluster.topic(topicName);
        const partitions = parsePartitions(flags.partition, topic);
        const consumer = new ConsoleConsumer(cluster, topic, partitions, start, render, flags);
        const onSignal = () => consumer.stop();
        process.once('SIGINT', onSignal);
        process.once('SIGTERM', onSignal);
        consumer.start();
        await consumer.finished;
        process.off('SIGINT', onSignal);
        process.off('SIGTERM', onSignal);
        if (consumer.error) throw consumer.error;
        process.stderr.write(`Processed a total of ${consumer.count} messages\n`);
      } finally {
        cluster.close();
      }
    }),
  );
}
