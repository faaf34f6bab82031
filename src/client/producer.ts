// The producer: records are encoded straight into one BatchBuilder per partition (no
// per-record objects beyond what the caller passed), a batch is sealed when it reaches
// `batchSize`, when `lingerMs` passes, on flush or when its settings change; sealed
// batches are compressed once, given their idempotent sequence on first send, and
// shipped many partitions per request to each partition leader, up to
// `maxInFlightRequests` requests per broker in flight. A retry resends the very same
// bytes (same producer id, epoch and sequence), so the leader recognises a duplicate.
//
// Batch life cycle (the allowed transitions):
//   open ──seal──▶ queued ──drain──▶ inFlight ──ok──▶ done
//                    ▲                  │
//                    └─retriable error──┘      (any state) ──fatal / timeout──▶ failed
//
// Ordering per partition: batches are queued in seal order (`sealIndex`) and a retried
// batch goes back into the queue at its place. After any retriable failure the
// partition is "recovering": one batch in flight at a time until every batch that was
// sent before is acknowledged, then pipelining resumes. With idempotence the leader
// rejects a batch whose predecessor is missing with OUT_OF_ORDER_SEQUENCE_NUMBER; when
// an earlier batch of the partition is still unacknowledged that answer is just "retry
// after it" [Kafka's Sender / TransactionManager.canRetry], otherwise it is a real gap.
//
// A batch the leader refuses for good (MESSAGE_TOO_LARGE, INVALID_RECORD, ...) was not
// appended, so its sequences would be a gap forever: as Kafka 3.x [KIP-360], the producer
// bumps its epoch and that partition's later batches are renumbered from 0 under it
// (see bumpEpoch). An answer that leaves the write uncertain (a timeout) does not; the
// gap then shows as OUT_OF_ORDER_SEQUENCE_NUMBER and the producer takes a new id.
import { BATCH_OVERHEAD, BatchBuilder, Off, computeCrc, type Header } from '../log/batch.ts';
import { ERRORS, errorByCode, type ErrorName } from '../common/errors.ts';
import type { Logger } from '../common/logger.ts';
import { isServiceError } from '../proto/rpc.ts';
import type { ProduceRequest, ProduceResponse, TopicProduceData } from '../proto/raftka.ts';
import type { Cluster } from './cluster.ts';
import { compressBatch, compressionId, type CompressionOption } from './codecs.ts';
import { RaftkaClientError, RaftkaProtocolError } from './errors.ts';
import { DefaultPartitioner, type Partitioner, type PartitionerArgs } from './partitioner.ts';
import { StreamPerBroker } from './raw-client.ts';

// ─── public shapes ───

export interface Message {
  key?: Buffer | string | null;
  value: Buffer | string | null;
  /** KafkaJS style (`{ name: value }`) or a list of `{ key, value }`. */
  headers?: Record<string, Buffer | string> | Header[];
  /** Overrides the partitioner. */
  partition?: number;
  /** Create time in ms (a number or a numeric string, as KafkaJS accepts); default: now. */
  timestamp?: number | string;
}

export interface ProducerRecord {
  topic: string;
  messages: Message[];
  /** -1 (all in-sync replicas, the default), 1 (leader) or 0 (none). */
  acks?: number;
  /** How long the leader waits for the in-sync replicas with acks=-1 (ms, default 30000). */
  timeout?: number;
  compression?: CompressionOption;
}

export interface TopicMessages {
  topic: string;
  messages: Message[];
}

export interface ProducerBatch {
  topicMessages: TopicMessages[];
  acks?: number;
  timeout?: number;
  compression?: CompressionOption;
}

/**
 * What `send` resolves with: one entry per message, in message order. (KafkaJS returns
 * one entry per partition; here each message gets its own `offset`, and `baseOffset`
 * is the first offset of the batch the message was written in, so code that reads
 * KafkaJS's per-partition `baseOffset` still finds it.) Offsets are numbers, not
 * strings. With acks=0 offsets are -1.
 */
export interface RecordMetadata {
  topicName: string;
  partition: number;
  errorCode: 0;
  offset: number;
  baseOffset: number;
  /** The record's create time, or the broker's append time for LogAppendTime topics. */
  timestamp: number;
  /** -1 unless the topic uses LogAppendTime. */
  logAppendTime: number;
  logStartOffset: number;
}

export interface RetryOptions {
  /** Attempts after the first; bounded in time by deliveryTimeoutMs anyway. Default: unlimited, like Kafka 3.x. */
  retries?: number;
  /** First backoff (ms), Kafka's retry.backoff.ms. Default 100. */
  initialRetryTime?: number;
  /** Backoff cap (ms), Kafka's retry.backoff.max.ms. Default 1000. */
  maxRetryTime?: number;
  /** Jitter: each backoff is scaled by a random factor in [1 - factor, 1 + factor]. Default 0.2. */
  factor?: number;
  /** Growth per attempt. Default 2. */
  multiplier?: number;
}

export interface ProducerOptions {
  /** Default acks for sends that do not say (-1 = all). */
  acks?: number;
  /** How long a partially filled batch waits for more records (ms). Default 5; 0 ships what one turn of the event loop sent. */
  lingerMs?: number;
  /** Uncompressed bytes per partition batch. Default 64 KiB (see DEFAULT_BATCH_BYTES). */
  batchSize?: number;
  /** Bound on one Produce request (bytes). Default 1 MiB. */
  maxRequestSize?: number;
  compression?: CompressionOption;
  /** Exactly-once per partition through producer ids and sequences. Default true (Kafka 3.x). */
  idempotent?: boolean;
  /** Produce requests in flight per broker; at most 5 with idempotence. Default 5. */
  maxInFlightRequests?: number;
  retry?: RetryOptions;
  /** Upper bound from send() to success or failure of a record (ms). Default 120000. */
  deliveryTimeoutMs?: number;
  /** Bytes of records buffered and not yet acknowledged; send() waits when full. Default 32 MiB. */
  bufferMemory?: number;
  /** Custom partitioner (called for records without an explicit partition). */
  partitioner?: Partitioner;
  /** `stream`: one ProduceStream per broker (the default, measured faster); `unary`: one Produce call per request. */
  transport?: 'stream' | 'unary';
}

/**
 * 64 KiB rather than Kafka's 16 KiB: every request costs a grpc call (~300 µs of client
 * CPU here, against ~1 µs per record encoded), so larger batches are what lets one Node
 * process reach the cluster's throughput; linger still bounds latency at low rates.
 */
export const DEFAULT_BATCH_BYTES = 64 * 1024;

// ─── internals ───

interface SendOp {
  batchOf: Batch[];
  deltaOf: Int32Array;
  tsOf: Float64Array;
  pending: number;
  appendDone: boolean;
  settled: boolean;
  resolve(r: RecordMetadata[]): void;
  reject(e: unknown): void;
}

class PartitionState {
  open: Batch | undefined;
  /** Sealed batches not in flight, in sealIndex order. */
  readonly queue: Batch[] = [];
  readonly inFlight = new Set<Batch>();
  nextSequence = 0;
  sealCounter = 0;
  recovering = false;
  /** Uncompressed size of the partition's last sealed batch (sizes the next one's buffer). */
  lastBatchBytes = 0;
  /** The producer id and epoch `nextSequence` counts under; -1 before the first batch. */
  producerId = -1;
  producerEpoch = -1;
  /**
   * Set after a batch of this partition failed for good without being written (the
   * sealIndex of the earliest such batch): batches stamped after it under the old
   * numbering can never be appended and are renumbered from 0 under the bumped epoch.
   */
  restartAfter: number | undefined;

  constructor(
    readonly topic: string,
    readonly partition: number,
  ) {}
}

class Batch {
  builder: BatchBuilder | undefined;
  bytes: Buffer | undefined;
  ready = false;
  records = 0;
  memBytes = 0;
  sealIndex = -1;
  /** Whether an earlier batch of the partition was unacknowledged when this one was last sent. */
  sentBehindUnacked = false;
  sequence = -1;
  producerId = -1;
  producerEpoch = -1;
  attempts = 0;
  retryAt = 0;
  readonly ops: SendOp[] = [];
  lastOp: SendOp | undefined;
  lastError: unknown;
  baseOffset = -1;
  logAppendTime = -1;
  logStartOffset = -1;
  done = false;
  readonly finished: Promise<void>;
  private markFinished!: () => void;

  constructor(
    readonly tp: PartitionState,
    readonly acks: number,
    readonly timeoutMs: number,
    readonly compression: number,
    readonly createdAt: number,
    initialCapacity: number,
  ) {
    this.builder = new BatchBuilder({ initialCapacity });
    this.finished = new Promise((r) => (this.markFinished = r));
  }

  finish(): void {
    this.done = true;
    this.bytes = undefined;
    this.markFinished();
  }
}

type State = 'new' | 'connected' | 'disconnecting' | 'disconnected';

const SEQUENCE_MAX = 2 ** 31;
/** Producer epochs are int16; past this a new producer id is needed. */
const PRODUCER_EPOCH_MAX = 32767;
/**
 * Non-retriable answers after which the batch may have been appended after all (or the
 * producer's state on the leader is unknown): these keep the conservative path (a new
 * producer id once the sequence gap shows) rather than renumbering the partition.
 */
const UNCERTAIN_FAILURES: ReadonlySet<ErrorName> = new Set(['OUT_OF_ORDER_SEQUENCE_NUMBER', 'UNKNOWN_PRODUCER_ID', 'INVALID_PRODUCER_EPOCH', 'UNKNOWN_SERVER_ERROR', 'DUPLICATE_SEQUENCE_NUMBER']);
/** Kafka's per-record overhead bound (DefaultRecord.MAX_RECORD_OVERHEAD). */
const RECORD_OVERHEAD_MAX = 21;
/** Batches per partition a leader remembers for duplicate detection (Kafka's NUM_BATCHES_TO_RETAIN). */
const IDEMPOTENT_WINDOW = 5;
const REFRESH_ERRORS: ReadonlySet<ErrorName> = new Set(['NOT_LEADER_OR_FOLLOWER', 'UNKNOWN_TOPIC_OR_PARTITION', 'LEADER_NOT_AVAILABLE', 'NETWORK_EXCEPTION', 'FENCED_LEADER_EPOCH', 'UNKNOWN_LEADER_EPOCH', 'UNKNOWN_TOPIC_ID', 'KAFKA_STORAGE_ERROR']);

export interface ProducerContext {
  cluster: Cluster;
  logger: Logger;
  requestTimeoutMs: number;
  /** Called once the producer has disconnected (the owner closes its connections). */
  onDisconnect?: () => void;
}

/** Bytes of a key, value or header part: exact, or a cheap bound (3 bytes per UTF-16 unit at most). */
function partBytes(v: Buffer | string | null | undefined, exact: boolean): number {
  if (v === null || v === undefined) return 0;
  if (typeof v !== 'string') return v.length;
  return exact ? Buffer.byteLength(v) : v.length * 3;
}

/**
 * An upper bound of one message's encoded batch size. Runs for every record a send()
 * takes, so it is a plain function: closures per record cost more than the sizing itself.
 */
function encodedSizeBound(m: Message, exact: boolean): number {
  let size = BATCH_OVERHEAD + RECORD_OVERHEAD_MAX + partBytes(m.key, exact) + partBytes(m.value, exact);
  const h = m.headers;
  if (h) {
    if (Array.isArray(h)) for (const x of h) size += 10 + partBytes(x.key, exact) + partBytes(x.value, exact);
    else for (const k of Object.keys(h)) size += 10 + partBytes(k, exact) + partBytes(h[k], exact);
  }
  return size;
}

export class Producer {
  private state: State = 'new';
  private readonly partitions = new Map<string, PartitionState[]>();
  private readonly withQueued = new Set<PartitionState>();
  private readonly openBatches = new Set<Batch>();
  private readonly incomplete = new Set<Batch>();
  private readonly brokerInFlight = new Map<number, number>();
  private readonly streams = new StreamPerBroker<ProduceRequest, ProduceResponse>('produce', (address) => this.ctx.cluster.connection(address).produceStream());
  private bufferedBytes = 0;
  private readonly memoryWaiters: Array<() => void> = [];
  private activeSends = 0;
  private appendTail: Promise<void> = Promise.resolve();
  private readonly idleWaiters: Array<() => void> = [];
  private drainScheduled = false;
  private wakeTimer: NodeJS.Timeout | undefined;
  private wakeAt = Infinity;
  private lingerTimer: NodeJS.Timeout | NodeJS.Immediate | undefined;
  private producerId = -1;
  private producerEpoch = -1;
  /** Set after UNKNOWN_PRODUCER_ID or a real sequence gap: no new sends until a new id is in place. */
  private resetting = false;
  private readonly defaultPartitioner = new DefaultPartitioner();
  private readonly scratch: { key: Buffer | null; value: Buffer | string | null; headers: Message['headers']; timestamp: number } = { key: null, value: null, headers: undefined, timestamp: 0 };

  readonly acks: number;
  readonly lingerMs: number;
  readonly batchSize: number;
  readonly maxRequestSize: number;
  readonly compression: number;
  idempotent: boolean;
  private readonly idempotentExplicit: boolean;
  readonly maxInFlightRequests: number;
  readonly deliveryTimeoutMs: number;
  readonly bufferMemory: number;
  readonly transport: 'stream' | 'unary';
  private readonly retry: Required<RetryOptions>;
  private readonly partitioner: Partitioner | undefined;
  private readonly log: Logger;

  constructor(
    private readonly ctx: ProducerContext,
    opts: ProducerOptions = {},
  ) {
    this.log = ctx.logger;
    this.acks = opts.acks ?? -1;
    this.lingerMs = opts.lingerMs ?? 5;
    this.batchSize = opts.batchSize ?? DEFAULT_BATCH_BYTES;
    this.maxRequestSize = opts.maxRequestSize ?? 1024 * 1024;
    this.compression = compressionId(opts.compression);
    this.maxInFlightRequests = opts.maxInFlightRequests ?? 5;
    this.deliveryTimeoutMs = opts.deliveryTimeoutMs ?? 120_000;
    this.bufferMemory = opts.bufferMemory ?? 32 * 1024 * 1024;
    this.transport = opts.transport ?? 'stream';
    this.partitioner = opts.partitioner;
    this.retry = {
      retries: opts.retry?.retries ?? Number.MAX_SAFE_INTEGER,
      initialRetryTime: opts.retry?.initialRetryTime ?? 100,
      maxRetryTime: opts.retry?.maxRetryTime ?? 1000,
      factor: opts.retry?.factor ?? 0.2,
      multiplier: opts.retry?.multiplier ?? 2,
    };
    this.idempotentExplicit = opts.idempotent !== undefined;
    // Like Kafka 3.2+: idempotence is on by default but quietly off when other settings
    // that were given explicitly conflict with it; an explicit `idempotent: true` with
    // such settings is an error.
    const conflicts: string[] = [];
    if (this.acks !== -1) conflicts.push(`acks=${this.acks} (needs -1)`);
    if (this.maxInFlightRequests > 5) conflicts.push(`maxInFlightRequests=${this.maxInFlightRequests} (at most 5)`);
    if (opts.idempotent === true && conflicts.length > 0) {
      throw new RaftkaClientError('INVALID_ARGUMENT', `idempotent producer: ${conflicts.join(', ')}`);
    }
    this.idempotent = (opts.idempotent ?? true) && conflicts.length === 0;
    for (const [name, v, min] of [
      ['lingerMs', this.lingerMs, 0],
      ['batchSize', this.batchSize, 1],
      ['maxRequestSize', this.maxRequestSize, 1],
      ['maxInFlightRequests', this.maxInFlightRequests, 1],
      ['deliveryTimeoutMs', this.deliveryTimeoutMs, 1],
      ['bufferMemory', this.bufferMemory, 1],
    ] as const) {
      if (!Number.isFinite(v) || v < min) throw new RaftkaClientError('INVALID_ARGUMENT', `${name} must be a number >= ${min}, got ${v}`);
    }
    if (![-1, 0, 1].includes(this.acks)) throw new RaftkaClientError('INVALID_ARGUMENT', `acks must be -1, 0 or 1, got ${this.acks}`);
  }

  /** The producer id and epoch in use (-1 without idempotence). */
  get producerIdentity(): { producerId: number; producerEpoch: number } {
    return { producerId: this.producerId, producerEpoch: this.producerEpoch };
  }

  /** Bytes of records accepted and not yet acknowledged or failed. */
  get bufferedBytesNow(): number {
    return this.bufferedBytes;
  }

  async connect(): Promise<void> {
    if (this.state === 'connected') return;
    if (this.state !== 'new') throw new RaftkaClientError('PRODUCER_DISCONNECTED', 'a disconnected producer cannot reconnect; create a new one');
    await this.ctx.cluster.refresh();
    if (this.idempotent) await this.initProducerId();
    this.state = 'connected';
  }

  /** Gets a fresh producer id (epoch 0), retrying retriable answers until deliveryTimeoutMs. */
  private async initProducerId(): Promise<void> {
    const deadline = Date.now() + this.deliveryTimeoutMs;
    for (let attempt = 1; ; attempt++) {
      let code: number;
      let message: string;
      try {
        const r = await this.ctx.cluster.anyBroker((c) => c.initProducerId({}, { timeoutMs: this.ctx.requestTimeoutMs }));
        if (r.errorCode === 0) {
          this.producerId = r.producerId;
          this.producerEpoch = r.producerEpoch;
          this.log.debug({ producerId: r.producerId, producerEpoch: r.producerEpoch }, 'producer id');
          return;
        }
        code = r.errorCode;
        message = r.errorMessage;
      } catch (e) {
        if (isServiceError(e) && e.code === 12 /* UNIMPLEMENTED */) {
          code = ERRORS.UNSUPPORTED_VERSION.code;
          message = 'the broker has no InitProducerId rpc';
        } else {
          code = ERRORS.NETWORK_EXCEPTION.code;
          message = (e as Error).message;
        }
      }
      const name = errorByCode(code);
      if (name === 'UNSUPPORTED_VERSION' && !this.idempotentExplicit) {
        this.log.warn({ reason: message }, 'the cluster does not hand out producer ids: idempotence is off for this producer');
        this.idempotent = false;
        return;
      }
      if (!ERRORS[name].retriable || Date.now() > deadline) throw RaftkaProtocolError.fromCode(code, `InitProducerId: ${message}`);
      await new Promise((r) => setTimeout(r, this.backoff(attempt)));
    }
  }

  send(record: ProducerRecord): Promise<RecordMetadata[]> {
    return this.sendBatch({ topicMessages: [{ topic: record.topic, messages: record.messages }], acks: record.acks, timeout: record.timeout, compression: record.compression });
  }

  async sendBatch(batch: ProducerBatch): Promise<RecordMetadata[]> {
    if (this.state === 'new') throw new RaftkaClientError('NOT_CONNECTED', 'call producer.connect() before send');
    if (this.state !== 'connected') throw new RaftkaClientError('PRODUCER_DISCONNECTED', 'the producer is disconnected; create and connect a new one to send');
    const acks = batch.acks ?? this.acks;
    if (![-1, 0, 1].includes(acks)) throw new RaftkaClientError('INVALID_ARGUMENT', `acks must be -1, 0 or 1, got ${acks}`);
    if (this.idempotent && acks !== -1) {
      throw new RaftkaClientError('INVALID_ARGUMENT', `acks=${acks} breaks the idempotent producer's guarantee; use acks=-1 or create the producer with idempotent: false`);
    }
    const compression = batch.compression === undefined ? this.compression : compressionId(batch.compression);
    const timeoutMs = batch.timeout ?? 30_000;
    const topics = [...new Set(batch.topicMessages.map((t) => t.topic))];
    let n = 0;
    for (const tm of batch.topicMessages) {
      if (typeof tm.topic !== 'string' || tm.topic === '') throw new RaftkaClientError('INVALID_ARGUMENT', 'every send needs a topic');
      if (!Array.isArray(tm.messages)) throw new RaftkaClientError('INVALID_ARGUMENT', `messages for ${tm.topic} must be an array`);
      n += tm.messages.length;
      // Kafka's ensureValidRecordSize: a record that cannot fit in one request (or in the
      // buffer) fails the whole send here, before anything of it is encoded or sent.
      for (let i = 0; i < tm.messages.length; i++) this.checkRecordSize(tm.topic, i, tm.messages[i]!);
    }
    // Sends append in call order (so per-partition order follows the order of send()
    // calls), each after the one before it, whatever their metadata waits.
    const prev = this.appendTail;
    let appended!: () => void;
    this.appendTail = new Promise<void>((r) => (appended = r));
    this.activeSends++;
    try {
      await this.ctx.cluster.ensure(topics);
      await prev;
    } catch (e) {
      await prev;
      this.activeSends--;
      appended();
      this.notifyIdle();
      throw e;
    }
    // Explicit partitions are checked before anything is encoded, so a bad one fails the
    // send without writing part of it.
    for (const tm of batch.topicMessages) {
      const count = this.ctx.cluster.topic(tm.topic)!.partitions.length;
      for (const m of tm.messages) {
        if (m.partition !== undefined && (!Number.isInteger(m.partition) || m.partition < 0 || m.partition >= count)) {
          this.activeSends--;
          appended();
          this.notifyIdle();
          throw new RaftkaProtocolError('UNKNOWN_TOPIC_OR_PARTITION', `partition ${m.partition} of ${tm.topic} does not exist (it has ${count})`, { topic: tm.topic, partition: m.partition });
        }
      }
    }

    let resolve!: (r: RecordMetadata[]) => void;
    let reject!: (e: unknown) => void;
    const promise = new Promise<RecordMetadata[]>((res, rej) => {
      resolve = res;
      reject = rej;
    });
    const op: SendOp = { batchOf: new Array<Batch>(n), deltaOf: new Int32Array(n), tsOf: new Float64Array(n), pending: 0, appendDone: false, settled: false, resolve, reject };
    try {
      const now = Date.now();
      let i = 0;
      // Indexed loops and one partitioner argument object per topic: the per-record
      // iterator results and objects of this loop were a tenth of a producer's garbage.
      for (let t = 0; t < batch.topicMessages.length; t++) {
        const tm = batch.topicMessages[t]!;
        const view = this.ctx.cluster.topic(tm.topic)!;
        const numPartitions = view.partitions.length;
        const defaultArgs: PartitionerArgs = { topic: tm.topic, key: null, numPartitions, availablePartitions: view.available };
        for (let j = 0; j < tm.messages.length; j++) {
          const m = tm.messages[j]!;
          // Bounded memory: wait while the buffer is full (unless nothing is buffered, so
          // one oversized send still goes through alone).
          while (this.bufferedBytes >= this.bufferMemory && this.bufferedBytes > 0) {
            await new Promise<void>((r) => this.memoryWaiters.push(r));
            if (op.settled) break;
          }
          if (op.settled) break; // an earlier batch of this send failed: stop encoding the rest
          const key = m.key === undefined || m.key === null ? null : typeof m.key === 'string' ? Buffer.from(m.key) : m.key;
          let partition: number;
          if (m.partition !== undefined) partition = m.partition;
          else if (this.partitioner) {
            // A fresh object for a user's partitioner, which may keep what it is given.
            partition = this.partitioner({ topic: tm.topic, key, numPartitions, availablePartitions: view.available });
          } else {
            defaultArgs.key = key;
            partition = this.defaultPartitioner.partition(defaultArgs);
          }
          if (!Number.isInteger(partition) || partition < 0 || partition >= numPartitions) {
            throw new RaftkaProtocolError('UNKNOWN_TOPIC_OR_PARTITION', `partition ${partition} of ${tm.topic} does not exist (it has ${numPartitions})`, { topic: tm.topic, partition });
          }
          const ts = m.timestamp === undefined ? now : Number(m.timestamp);
          this.append(this.partitionState(tm.topic, partition), m, key, ts, op, i, acks, timeoutMs, compression);
          i++;
        }
      }
    } catch (e) {
      op.settled = true;
      reject(e);
    } finally {
      this.activeSends--;
      appended();
      op.appendDone = true;
      this.notifyIdle();
    }
    if (!op.settled && op.pending === 0) this.finishOp(op);
    return promise;
  }

  /** Throws MESSAGE_TOO_LARGE (Kafka's RecordTooLargeException) for a record no batch can carry. */
  private checkRecordSize(topic: string, index: number, m: Message): void {
    const limit = Math.min(this.maxRequestSize, this.bufferMemory);
    // Cheap bound first; exact sizes only near the limit.
    if (encodedSizeBound(m, false) <= limit) return;
    const size = encodedSizeBound(m, true);
    if (size <= limit) return;
    const which = this.maxRequestSize <= this.bufferMemory ? `maxRequestSize (${this.maxRequestSize} bytes)` : `bufferMemory (${this.bufferMemory} bytes)`;
    throw new RaftkaProtocolError('MESSAGE_TOO_LARGE', `message ${index} for ${topic} is ${size} bytes when encoded, larger than ${which}; nothing of this send was sent`, { topic });
  }

  private partitionState(topic: string, partition: number): PartitionState {
    let list = this.partitions.get(topic);
    if (!list) this.partitions.set(topic, (list = []));
    return (list[partition] ??= new PartitionState(topic, partition));
  }

  private append(tp: PartitionState, m: Message, key: Buffer | null, ts: number, op: SendOp, index: number, acks: number, timeoutMs: number, compression: number): void {
    let b = tp.open;
    const approx = approxRecordBytes(key, m.value);
    if (b && (b.acks !== acks || b.compression !== compression || b.timeoutMs !== timeoutMs || (b.records > 0 && b.builder!.sizeInBytes + approx > this.batchSize))) {
      this.seal(b);
      b = undefined;
    }
    if (!b) {
      // Sized like the partition's last batch: a batch that grows by doubling copies
      // itself about once more in all (64 KiB batches of 1 KiB records: five copies).
      b = new Batch(tp, acks, timeoutMs, compression, Date.now(), Math.min(this.batchSize, Math.max(1024, approx * 2, tp.lastBatchBytes)) + 128);
      tp.open = b;
      this.openBatches.add(b);
      this.incomplete.add(b);
      this.armLinger();
    }
    const builder = b.builder!;
    const before = builder.sizeInBytes;
    const s = this.scratch;
    s.key = key;
    s.value = m.value;
    s.headers = m.headers;
    s.timestamp = ts;
    builder.append(s);
    const grown = builder.sizeInBytes - before;
    b.memBytes += grown;
    this.bufferedBytes += grown;
    op.batchOf[index] = b;
    op.deltaOf[index] = b.records;
    op.tsOf[index] = ts;
    b.records++;
    if (b.lastOp !== op) {
      b.lastOp = op;
      b.ops.push(op);
      op.pending++;
    }
    if (builder.sizeInBytes >= this.batchSize) this.seal(b);
  }

  private armLinger(): void {
    if (this.lingerTimer) return;
    const fire = () => {
      this.lingerTimer = undefined;
      const cutoff = Date.now() - this.lingerMs;
      let youngest = Infinity;
      for (const b of this.openBatches) {
        if (b.createdAt <= cutoff) this.seal(b);
        else youngest = Math.min(youngest, b.createdAt);
      }
      if (youngest !== Infinity) this.lingerTimer = setTimeout(fire, Math.max(1, youngest + this.lingerMs - Date.now()));
    };
    // lingerMs 0 still lets the rest of the current send join the batch: the batch is
    // sealed after the synchronous append loop, at the end of this turn of the event loop
    // (setTimeout would wait a whole millisecond: node's timers have 1 ms resolution).
    this.lingerTimer = this.lingerMs === 0 ? setImmediate(fire) : setTimeout(fire, this.lingerMs);
  }

  private seal(b: Batch): void {
    const tp = b.tp;
    if (tp.open === b) tp.open = undefined;
    this.openBatches.delete(b);
    b.sealIndex = tp.sealCounter++;
    tp.queue.push(b);
    this.withQueued.add(tp);
    // The CRC is computed once, when the header is final: a compressed batch gets it
    // with its compressed body, an idempotent one when its sequence is stamped on first
    // send (idempotence is settled by connect(), before any send).
    const raw = b.builder!.build({ crc: b.compression === 0 && !this.idempotent });
    tp.lastBatchBytes = raw.length;
    b.builder = undefined;
    if (!this.partitioner) {
      const view = this.ctx.cluster.topic(tp.topic);
      if (view) this.defaultPartitioner.onNewBatch(tp.topic, tp.partition, view.partitions.length, view.available);
    }
    if (b.compression === 0) {
      b.bytes = raw;
      b.ready = true;
      this.scheduleDrain();
    } else {
      compressBatch(raw, b.compression).then(
        (bytes) => {
          if (b.done) return;
          b.bytes = bytes;
          b.ready = true;
          this.scheduleDrain();
        },
        (e: unknown) => {
          this.removeQueued(b);
          this.failBatch(b, new RaftkaProtocolError('UNKNOWN_SERVER_ERROR', `compression failed: ${(e as Error).message}`, { topic: tp.topic, partition: tp.partition, cause: e }));
        },
      );
    }
  }

  private removeQueued(b: Batch): void {
    const i = b.tp.queue.indexOf(b);
    if (i >= 0) b.tp.queue.splice(i, 1);
  }

  private scheduleDrain(): void {
    if (this.drainScheduled) return;
    this.drainScheduled = true;
    setImmediate(() => {
      this.drainScheduled = false;
      this.drain();
    });
  }

  private wakeIn(ms: number): void {
    const at = Date.now() + ms;
    if (this.wakeTimer && this.wakeAt <= at) return;
    if (this.wakeTimer) clearTimeout(this.wakeTimer);
    this.wakeAt = at;
    this.wakeTimer = setTimeout(() => {
      this.wakeTimer = undefined;
      this.wakeAt = Infinity;
      this.drain();
    }, Math.max(1, ms));
  }

  /** Ships every sendable batch: one request per broker at a time, up to maxInFlightRequests each. */
  private drain(): void {
    if (this.resetting) return;
    const now = Date.now();
    const byLeader = new Map<number, PartitionState[]>();
    let needMetadata = false;
    for (const tp of this.withQueued) {
      if (tp.queue.length === 0) {
        this.withQueued.delete(tp);
        continue;
      }
      const head = tp.queue[0]!;
      if (now - head.createdAt > this.deliveryTimeoutMs) {
        tp.queue.shift();
        this.failBatch(head, expired(head, this.deliveryTimeoutMs));
        this.scheduleDrain();
        continue;
      }
      if (!head.ready) continue;
      if (head.retryAt > now) {
        this.wakeIn(head.retryAt - now);
        continue;
      }
      if (tp.recovering && tp.inFlight.size > 0) continue;
      if (!this.windowAllows(tp, head)) continue;
      const leader = this.ctx.cluster.leaderOf(tp.topic, tp.partition);
      if (leader < 0 || this.ctx.cluster.brokerAddress(leader) === undefined) {
        needMetadata = true;
        continue;
      }
      let list = byLeader.get(leader);
      if (!list) byLeader.set(leader, (list = []));
      list.push(tp);
    }
    if (needMetadata) {
      this.refreshMetadata();
      this.wakeIn(this.retry.initialRetryTime);
    }
    for (const [leader, tps] of byLeader) {
      let candidates = tps;
      while (candidates.length > 0 && (this.brokerInFlight.get(leader) ?? 0) < this.maxInFlightRequests) {
        const taken: Batch[] = [];
        let bytes = 0;
        const acks = candidates[0]!.queue[0]!.acks;
        const next: PartitionState[] = [];
        for (const tp of candidates) {
          const head = tp.queue[0];
          if (!head || !head.ready || head.retryAt > now || (tp.recovering && tp.inFlight.size > 0) || !this.windowAllows(tp, head)) continue;
          if (head.acks !== acks || (taken.length > 0 && bytes + head.bytes!.length > this.maxRequestSize)) {
            next.push(tp);
            continue;
          }
          tp.queue.shift();
          this.assignSequence(head);
          head.sentBehindUnacked = false;
          for (const o of tp.inFlight) if (o.sequence >= 0 && o.sealIndex < head.sealIndex) head.sentBehindUnacked = true;
          tp.inFlight.add(head);
          taken.push(head);
          bytes += head.bytes!.length;
          if (tp.queue.length > 0 && !tp.recovering) next.push(tp);
        }
        if (taken.length === 0) break;
        this.sendRequest(leader, taken, acks);
        candidates = next;
      }
    }
  }

  /**
   * The leader remembers the last 5 batches of a producer per partition, so a retry is
   * recognised only if at most 4 batches were appended after it. Kafka gets that from
   * max.in.flight <= 5 plus in-order responses on one TCP connection; grpc answers may
   * come back in any order (unary calls are separate HTTP/2 streams, ProduceStream
   * answers as appends complete), so the window is enforced here: a batch is not sent
   * while a batch 5 or more seals older in the same partition is unacknowledged.
   */
  private windowAllows(tp: PartitionState, b: Batch): boolean {
    if (!this.idempotent) return true;
    // A partition moves to a new producer id or epoch (sequences from 0) only once no
    // batch stamped under the old one is unresolved: a retry under the old epoch after
    // the leader saw the new one would be refused as INVALID_PRODUCER_EPOCH. Stamped
    // batches always sit before unstamped ones in the queue, so checking in-flight is enough.
    if (b.sequence < 0 && this.isStale(tp) && tp.inFlight.size > 0) return false;
    // Unary calls are separate HTTP/2 streams that the leader may handle in any order;
    // pipelining one partition over them mostly buys OUT_OF_ORDER_SEQUENCE_NUMBER
    // retries (measured: 4x slower), so unary keeps one batch per partition in flight
    // and pipelines across partitions only.
    if (this.transport === 'unary' && tp.inFlight.size > 0) return false;
    let oldest = b.sealIndex;
    for (const o of tp.inFlight) if (o.sealIndex < oldest) oldest = o.sealIndex;
    return b.sealIndex - oldest < IDEMPOTENT_WINDOW;
  }

  private isStale(tp: PartitionState): boolean {
    return tp.producerId !== this.producerId || tp.producerEpoch !== this.producerEpoch;
  }

  private assignSequence(b: Batch): void {
    if (!this.idempotent || b.sequence >= 0) return;
    const tp = b.tp;
    if (this.isStale(tp)) {
      // First batch under this producer id / epoch: the leader expects sequence 0.
      tp.nextSequence = 0;
      tp.producerId = this.producerId;
      tp.producerEpoch = this.producerEpoch;
      tp.restartAfter = undefined;
    }
    b.sequence = tp.nextSequence;
    b.producerId = this.producerId;
    b.producerEpoch = this.producerEpoch;
    tp.nextSequence = (tp.nextSequence + b.records) % SEQUENCE_MAX;
    const buf = b.bytes!;
    buf.writeBigInt64BE(BigInt(this.producerId), Off.producerId);
    buf.writeInt16BE(b.producerEpoch, Off.producerEpoch);
    buf.writeInt32BE(b.sequence, Off.baseSequence);
    buf.writeUInt32BE(computeCrc(buf), Off.crc);
  }

  private sendRequest(leader: number, batches: Batch[], acks: number): void {
    this.brokerInFlight.set(leader, (this.brokerInFlight.get(leader) ?? 0) + 1);
    const byTopic = new Map<string, TopicProduceData>();
    let timeoutMs = 0;
    for (const b of batches) {
      b.attempts++;
      timeoutMs = Math.max(timeoutMs, b.timeoutMs);
      let td = byTopic.get(b.tp.topic);
      if (!td) byTopic.set(b.tp.topic, (td = { name: b.tp.topic, partitions: [] }));
      td.partitions.push({ partition: b.tp.partition, records: b.bytes! });
    }
    const req: ProduceRequest = { acks, timeoutMs, topicData: [...byTopic.values()] };
    const address = this.ctx.cluster.brokerAddress(leader)!;
    this.produce(address, req).then(
      (res) => this.onResponse(leader, batches, res),
      (e: unknown) => {
        this.log.debug({ broker: leader, err: (e as Error).message }, 'produce request failed in transport');
        const err = new RaftkaProtocolError('NETWORK_EXCEPTION', `broker ${leader} (${address}): ${(e as Error).message}`, { brokerId: leader, cause: e });
        for (const b of batches) this.onBatchError(b, 'NETWORK_EXCEPTION', err);
        this.refreshMetadata();
      },
    ).finally(() => {
      this.brokerInFlight.set(leader, (this.brokerInFlight.get(leader) ?? 1) - 1);
      this.notifyIdle();
      this.scheduleDrain();
    });
  }

  private produce(address: string, req: ProduceRequest): Promise<ProduceResponse> {
    const deadlineMs = (req.timeoutMs ?? 0) + this.ctx.requestTimeoutMs;
    if (this.transport === 'unary') return this.ctx.cluster.connection(address).produce(req, { timeoutMs: deadlineMs });
    return this.streams.send(address, req, deadlineMs);
  }

  private onResponse(leader: number, batches: Batch[], res: ProduceResponse): void {
    for (const b of batches) {
      const tr = res.responses.find((r) => r.name === b.tp.topic);
      const pr = tr?.partitions.find((p) => p.partition === b.tp.partition);
      const code = pr ? (pr.errorCode !== 0 ? pr.errorCode : res.errorCode) : res.errorCode !== 0 ? res.errorCode : ERRORS.UNKNOWN_SERVER_ERROR.code;
      if (code === 0 && pr) {
        b.baseOffset = pr.baseOffset;
        b.logAppendTime = pr.logAppendTimeMs;
        b.logStartOffset = pr.logStartOffset;
        this.completeBatch(b);
        continue;
      }
      const name = errorByCode(code);
      if (name === 'DUPLICATE_SEQUENCE_NUMBER') {
        // Already written by an earlier attempt; the broker did not say where.
        this.completeBatch(b);
        continue;
      }
      if (pr && name === 'NOT_LEADER_OR_FOLLOWER') this.ctx.cluster.applyLeaderHint(b.tp.topic, b.tp.partition, pr.currentLeader);
      const err = RaftkaProtocolError.fromCode(code, pr?.errorMessage ?? res.errorMessage, { topic: b.tp.topic, partition: b.tp.partition, brokerId: leader });
      this.onBatchError(b, name, err);
      if (REFRESH_ERRORS.has(name)) this.refreshMetadata();
    }
  }

  private completeBatch(b: Batch): void {
    if (b.done) return; // failed meanwhile (a producer id reset)
    const tp = b.tp;
    tp.inFlight.delete(b);
    if (tp.recovering && tp.inFlight.size === 0 && (tp.queue.length === 0 || tp.queue[0]!.attempts === 0)) tp.recovering = false;
    this.release(b);
    for (const op of b.ops) {
      op.pending--;
      if (op.pending === 0 && op.appendDone && !op.settled) this.finishOp(op);
    }
  }

  private finishOp(op: SendOp): void {
    op.settled = true;
    const n = op.batchOf.length;
    const out = new Array<RecordMetadata>(n);
    for (let i = 0; i < n; i++) {
      const b = op.batchOf[i]!;
      out[i] = {
        topicName: b.tp.topic,
        partition: b.tp.partition,
        errorCode: 0,
        offset: b.baseOffset < 0 ? -1 : b.baseOffset + op.deltaOf[i]!,
        baseOffset: b.baseOffset,
        timestamp: b.logAppendTime >= 0 ? b.logAppendTime : op.tsOf[i]!,
        logAppendTime: b.logAppendTime,
        logStartOffset: b.logStartOffset,
      };
    }
    op.resolve(out);
  }

  private onBatchError(b: Batch, name: ErrorName, err: RaftkaProtocolError): void {
    if (b.done) return;
    const tp = b.tp;
    tp.inFlight.delete(b);
    b.lastError = err;
    const dead = this.idempotent && b.sequence >= 0 && tp.restartAfter !== undefined && b.sealIndex > tp.restartAfter && b.producerEpoch !== this.producerEpoch;
    if (dead && (name === 'OUT_OF_ORDER_SEQUENCE_NUMBER' || name === 'UNKNOWN_PRODUCER_ID' || ERRORS[name].retriable) && Date.now() - b.createdAt < this.deliveryTimeoutMs) {
      // Stamped after a batch that failed for good: its old sequence can never be
      // appended (the gap stays), so it was not written. Renumber it under the new epoch.
      this.unstamp(b);
      this.requeue(b, name === 'OUT_OF_ORDER_SEQUENCE_NUMBER' || name === 'UNKNOWN_PRODUCER_ID' ? 0 : this.backoff(b.attempts));
      return;
    }
    let retriable = ERRORS[name].retriable;
    if (this.idempotent && (name === 'OUT_OF_ORDER_SEQUENCE_NUMBER' || name === 'UNKNOWN_PRODUCER_ID')) {
      // Only a gap if nothing sent before this batch was unacknowledged when it went out,
      // nor is now: otherwise the leader may simply have seen it before its predecessor (a
      // retried predecessor on a new stream, or unary requests, which HTTP/2 does not keep
      // in order), and it is retried after it. The predecessor's acknowledgement can reach
      // us before this refusal, so what is in flight now is not enough to tell. A retry
      // sent with nothing unacknowledged before it that is refused again is a real gap.
      retriable = b.sentBehindUnacked || [...tp.inFlight, ...tp.queue].some((o) => o.sequence >= 0 && o.sealIndex < b.sealIndex);
    }
    if (this.idempotent && !retriable && (name === 'OUT_OF_ORDER_SEQUENCE_NUMBER' || name === 'UNKNOWN_PRODUCER_ID')) {
      this.failBatch(b, err);
      void this.resetProducerId(err);
      return;
    }
    const elapsed = Date.now() - b.createdAt;
    if (!retriable || b.attempts > this.retry.retries || elapsed >= this.deliveryTimeoutMs) {
      this.failBatch(b, retriable ? expired(b, this.deliveryTimeoutMs, err) : err);
      // The leader refused it outright (too large, invalid, ...): it was not appended,
      // so its sequences leave a gap every later batch of the partition would hit.
      if (this.idempotent && !retriable && b.sequence >= 0 && !UNCERTAIN_FAILURES.has(name)) this.bumpEpoch(b, err);
      return;
    }
    this.requeue(b, this.backoff(b.attempts));
    this.log.debug({ topic: tp.topic, partition: tp.partition, error: name, attempt: b.attempts }, 'retrying batch');
  }

  /** Puts a batch back into its partition's queue at its place (seal order). */
  private requeue(b: Batch, backoffMs: number): void {
    const tp = b.tp;
    b.retryAt = Date.now() + backoffMs;
    tp.recovering = true;
    let i = tp.queue.length;
    while (i > 0 && tp.queue[i - 1]!.sealIndex > b.sealIndex) i--;
    tp.queue.splice(i, 0, b);
    this.withQueued.add(tp);
  }

  /** Forgets a batch's sequence; assignSequence stamps it again (bytes and CRC) before it is sent. */
  private unstamp(b: Batch): void {
    b.sequence = -1;
    b.producerId = -1;
    b.producerEpoch = -1;
  }

  /**
   * A stamped batch failed for good without being appended: what Kafka 3.x's idempotent
   * producer does [KIP-360] — bump the producer epoch locally (no round trip: a
   * non-transactional producer owns its id) and restart this partition's sequences at 0
   * under it, renumbering the batches stamped after the failed one. Other partitions
   * move to the new epoch (sequence 0) once their batches in flight are resolved, so
   * their retries keep deduplicating under the old epoch. At the epoch limit, a new
   * producer id instead.
   */
  private bumpEpoch(failed: Batch, cause: RaftkaProtocolError): void {
    if (this.producerEpoch >= PRODUCER_EPOCH_MAX) {
      void this.resetProducerId(cause);
      return;
    }
    this.producerEpoch++;
    const tp = failed.tp;
    tp.restartAfter = Math.min(tp.restartAfter ?? Infinity, failed.sealIndex);
    for (const o of tp.queue) if (o.sequence >= 0 && o.sealIndex > failed.sealIndex) this.unstamp(o);
    this.log.info({ topic: tp.topic, partition: tp.partition, producerId: this.producerId, producerEpoch: this.producerEpoch, error: cause.errorName }, 'bumped the producer epoch after a failed batch');
    this.scheduleDrain();
  }

  /**
   * After UNKNOWN_PRODUCER_ID or a real sequence gap: stop sending, wait for the
   * requests in flight, fail every batch already stamped with the old producer id (a
   * retry under a new id could duplicate it), get a new id and restart every
   * partition's sequence at 0 (Kafka 2.x's idempotent producer resets the same way;
   * Raftka's InitProducerId hands out a new id rather than bumping the epoch).
   */
  private async resetProducerId(cause: RaftkaProtocolError): Promise<void> {
    if (this.resetting) return;
    this.resetting = true;
    this.log.warn({ err: cause.message }, 'resetting the producer id');
    try {
      while ([...this.brokerInFlight.values()].some((n) => n > 0)) await new Promise<void>((r) => this.idleWaiters.push(r));
      for (const list of this.partitions.values()) {
        for (const tp of list) {
          if (!tp) continue;
          for (const b of [...tp.queue]) {
            if (b.sequence >= 0) {
              this.removeQueued(b);
              this.failBatch(b, new RaftkaProtocolError(cause.errorName, `the producer id was reset after ${cause.errorName}; this batch may or may not have been written`, { topic: tp.topic, partition: tp.partition, cause }));
            }
          }
          tp.nextSequence = 0;
          tp.recovering = false;
          tp.restartAfter = undefined;
        }
      }
      await this.initProducerId();
    } catch (e) {
      this.log.error({ err: (e as Error).message }, 'could not get a new producer id');
      for (const b of [...this.incomplete]) {
        if (b.sealIndex >= 0) {
          this.removeQueued(b);
          this.failBatch(b, e);
        }
      }
    } finally {
      this.resetting = false;
      this.scheduleDrain();
    }
  }

  private failBatch(b: Batch, err: unknown): void {
    if (b.done) return;
    b.tp.inFlight.delete(b);
    this.release(b);
    for (const op of b.ops) {
      op.pending--;
      if (!op.settled) {
        op.settled = true;
        op.reject(err);
      }
    }
  }

  private release(b: Batch): void {
    if (b.done) return;
    this.bufferedBytes -= b.memBytes;
    this.incomplete.delete(b);
    b.finish();
    const waiters = this.memoryWaiters.splice(0);
    for (const w of waiters) w();
    this.notifyIdle();
  }

  private notifyIdle(): void {
    const w = this.idleWaiters.splice(0);
    for (const f of w) f();
  }

  private refreshMetadata(): void {
    this.ctx.cluster.refresh().then(
      () => this.scheduleDrain(),
      (e: unknown) => this.log.debug({ err: (e as Error).message }, 'metadata refresh failed'),
    );
  }

  private backoff(attempt: number): number {
    const r = this.retry;
    const base = Math.min(r.maxRetryTime, r.initialRetryTime * r.multiplier ** Math.max(0, attempt - 1));
    return Math.max(1, Math.round(base * (1 + r.factor * (2 * Math.random() - 1))));
  }

  /** Seals every open batch and resolves when every record accepted so far is acknowledged or failed. */
  async flush(): Promise<void> {
    if (this.state !== 'connected' && this.state !== 'disconnecting') throw new RaftkaClientError('PRODUCER_DISCONNECTED', 'the producer is disconnected');
    for (const b of [...this.openBatches]) this.seal(b);
    await Promise.all([...this.incomplete].map((b) => b.finished));
  }

  /** Stops accepting sends, delivers what is queued (or fails it by deliveryTimeoutMs), then closes. */
  async disconnect(): Promise<void> {
    if (this.state === 'disconnected' || this.state === 'new') {
      this.state = 'disconnected';
      return;
    }
    if (this.state === 'disconnecting') {
      while (this.state === 'disconnecting') await new Promise<void>((r) => this.idleWaiters.push(r));
      return;
    }
    this.state = 'disconnecting';
    // Sends already accepted may still be appending (waiting for buffer memory).
    while (this.activeSends > 0 || this.incomplete.size > 0) {
      for (const b of [...this.openBatches]) this.seal(b);
      await new Promise<void>((r) => this.idleWaiters.push(r));
    }
    if (this.lingerTimer) {
      if (this.lingerMs === 0) clearImmediate(this.lingerTimer as NodeJS.Immediate);
      else clearTimeout(this.lingerTimer as NodeJS.Timeout);
    }
    if (this.wakeTimer) clearTimeout(this.wakeTimer);
    await this.streams.close(true);
    this.state = 'disconnected';
    this.ctx.onDisconnect?.();
    this.notifyIdle();
  }
}

function approxRecordBytes(key: Buffer | null, value: Buffer | string | null): number {
  return 16 + (key ? key.length : 0) + (value === null ? 0 : value.length);
}

function expired(b: Batch, deliveryTimeoutMs: number, last?: unknown): RaftkaProtocolError {
  const lastMsg = last instanceof Error ? `; last error: ${last.message}` : b.lastError instanceof Error ? `; last error: ${b.lastError.message}` : '';
  return new RaftkaProtocolError('REQUEST_TIMED_OUT', `expiring ${b.records} record(s) for ${b.tp.topic}-${b.tp.partition}: ${Date.now() - b.createdAt} ms have passed since the batch was created (deliveryTimeoutMs ${deliveryTimeoutMs})${lastMsg}`, { topic: b.tp.topic, partition: b.tp.partition, cause: last ?? b.lastError });
}
