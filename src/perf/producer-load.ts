// One producer instance of `raftka perf produce` / `perf e2e`: an SDK producer fed at a
// scheduled rate (or as fast as it takes them), recording send-to-acknowledgement
// latency of every record in an HDR histogram. Records handed to one send() share its
// latency. The generator allocates nothing per record, stamped values included.
import { Raftka, type Message, type Producer } from '../client/index.ts';
import type { CompressionOption } from '../client/codecs.ts';
import { LatencyRecorder } from './latency.ts';
import { REPORT_MS, until, type Load, type LoadFinal, type LoadReport } from './load.ts';
import { nowEpochMs, STAMP_BYTES, stampInto, valuePool } from './payload.ts';
import { RateSchedule } from './rate.ts';

export interface ProducerLoadOptions {
  bootstrap: string[];
  topic: string;
  records: number;
  recordSize: number;
  /** Records per second; <= 0 means as fast as possible. */
  ratePerSec: number;
  acks: number;
  compression: CompressionOption;
  batchSize: number;
  lingerMs: number;
  payloadJson: boolean;
  /** Stamp each value with its send time (for the end-to-end test). */
  stamp: boolean;
  transport?: 'stream' | 'unary';
  idempotent?: boolean;
  /** The producer's bufferMemory (its default when unset). */
  bufferMemory?: number;
  /**
   * Records sent at the same rate before the measured run, while the load is being
   * prepared, and not counted: the JIT compiles the send path and the collector learns
   * its allocation pattern first (a cold producer runs interpreted for seconds).
   */
  warmupRecords?: number;
}

/** Records per send() call at most (a paced sender sends what is due in one call). */
const CHUNK_MAX = 1000;
/** send() calls awaiting acknowledgement before the generator waits (bufferMemory bounds bytes too). */
const OUTSTANDING_SENDS_MAX = 512;

export async function prepareProducerLoad(o: ProducerLoadOptions): Promise<Load> {
  const raftka = new Raftka({ brokers: o.bootstrap, clientId: 'raftka-perf' });
  const producer: Producer = raftka.producer({
    acks: o.acks,
    compression: o.compression,
    batchSize: o.batchSize,
    lingerMs: o.lingerMs,
    // Idempotence needs acks=all; with other acks it is off unless asked for.
    idempotent: o.idempotent ?? (o.acks === -1 ? undefined : false),
    ...(o.transport ? { transport: o.transport } : {}),
    ...(o.bufferMemory ? { bufferMemory: o.bufferMemory } : {}),
  });
  await producer.connect();
  const pool: Message[] = valuePool(o.recordSize, o.payloadJson).map((value) => ({ value }));
  const unlimited = !(o.ratePerSec > 0);
  // Unpaced: one send per batch worth of records, so a send maps onto roughly one batch.
  const chunk = unlimited ? Math.max(1, Math.min(CHUNK_MAX, Math.floor(o.batchSize / (o.recordSize + 12)))) : CHUNK_MAX;
  const fullChunks: Message[][] = Array.from({ length: 8 }, (_, c) => Array.from({ length: chunk }, (_, i) => pool[(c * chunk + i) % pool.length]!));
  let stopped = false;

  // Stamped values (perf e2e) live in messages lent from this free list and given back
  // when their send settles: the SDK has copied them into a batch by then, and once a
  // send failed it reads none of its records. A fresh value per record came from Node's
  // 8 KiB buffer pool, a new ArrayBuffer every eight records, and at 5,000 records/s GC
  // took a third of the producer thread's CPU.
  const freeStamped: Message[] = [];
  const messages = (n: number, from: number): Message[] => {
    if (o.stamp) {
      const at = nowEpochMs();
      const out = new Array<Message>(n);
      for (let i = 0; i < n; i++) {
        const m = freeStamped.pop() ?? { value: Buffer.allocUnsafe(Math.max(STAMP_BYTES, o.recordSize)) };
        stampInto(m.value as Buffer, pool[(from + i) % pool.length]!.value as Buffer, at);
        out[i] = m;
      }
      return out;
    }
    if (n === chunk) return fullChunks[(from / chunk) % fullChunks.length | 0]!;
    return Array.from({ length: n }, (_, i) => pool[(from + i) % pool.length]!);
  };
  const giveBack = (msgs: Message[]) => {
    if (o.stamp) for (const m of msgs) freeStamped.push(m);
  };

  /**
   * Sends `records` on the schedule (all at once when unpaced), one send() per due
   * chunk, at most OUTSTANDING_SENDS_MAX unacknowledged; resolves once all are answered.
   */
  const sendPaced = async (records: number, on: { acked(n: number, ms: number): void; failed(n: number, e: unknown): void }): Promise<void> => {
    let outstanding = 0;
    let slotFree: (() => void) | undefined;
    const settle = () => {
      outstanding--;
      const f = slotFree;
      slotFree = undefined;
      f?.();
    };
    const fire = (msgs: Message[]) => {
      const n = msgs.length;
      const t = performance.now();
      outstanding++;
      producer.send({ topic: o.topic, messages: msgs }).then(
        () => {
          on.acked(n, performance.now() - t);
          giveBack(msgs);
          settle();
        },
        (e: unknown) => {
          on.failed(n, e);
          giveBack(msgs);
          settle();
        },
      );
    };
    const slot = () => new Promise<void>((r) => (slotFree = r));
    const schedule = new RateSchedule(o.ratePerSec, records, performance.now());
    let sent = 0;
    while (sent < records && !stopped) {
      const due = schedule.dueBy(performance.now());
      while (sent < due && !stopped) {
        const n = Math.min(chunk, due - sent);
        fire(messages(n, sent));
        sent += n;
        // Yield while too many sends wait, and now and then regardless so timers run.
        if (outstanding >= OUTSTANDING_SENDS_MAX) await slot();
      }
      if (sent >= records) break;
      const wait = schedule.dueAt(sent) - performance.now();
      await new Promise((r) => setTimeout(r, Math.max(0, wait)));
    }
    while (outstanding > 0) await slot();
  };

  if (o.warmupRecords) {
    let failure: unknown;
    await sendPaced(o.warmupRecords, { acked: () => undefined, failed: (_n, e) => (failure ??= e) });
    if (failure !== undefined) {
      await producer.disconnect().catch(() => undefined);
      throw failure;
    }
  }

  return {
    stop: () => {
      stopped = true;
    },
    close: () => producer.disconnect(),
    async run(startAtMs, report) {
      const latency = new LatencyRecorder();
      let acked = 0;
      let bytes = 0;
      let errors = 0;
      let firstError: string | undefined;
      const flushReport = () => {
        const r: LoadReport = { records: acked, bytes, errors, window: latency.takeWindow() };
        acked = bytes = errors = 0;
        report(r);
      };
      await until(startAtMs);
      const timer = setInterval(flushReport, REPORT_MS);
      const startedAtMs = nowEpochMs();
      try {
        await sendPaced(o.records, {
          acked: (n, ms) => {
            latency.record(ms, n);
            acked += n;
            bytes += n * o.recordSize;
          },
          failed: (n, e) => {
            errors += n;
            firstError ??= e instanceof Error ? e.message : String(e);
          },
        });
      } finally {
        clearInterval(timer);
      }
      const endedAtMs = nowEpochMs();
      flushReport();
      const final: LoadFinal = { histogram: latency.encode(), startedAtMs, endedAtMs, ...(firstError !== undefined ? { firstError } : {}) };
      latency.destroy();
      return final;
    },
  };
}
