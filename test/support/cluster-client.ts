// A thin leader-routing client over RawClient for multi-process tests and benches: it
// finds partition leaders from Metadata, retries retriable errors against the current
// leader until a deadline, and reads a partition back. (The real SDK is a later issue.)
import { RawClient } from '../../src/client/raw-client.ts';
import { ERRORS, errorByCode, type ErrorName } from '../../src/common/errors.ts';
import { buildBatch, decodeRecords, iterateBatches } from '../../src/log/batch.ts';

export type ProduceOutcome =
  | { type: 'ok'; offset: number }
  | { type: 'fail'; error: ErrorName }
  /** Unknown: a timeout or broken connection, so the write may or may not have happened. */
  | { type: 'info'; error: string };

export class ClusterClient {
  private readonly clients = new Map<string, RawClient>();
  private leaders = new Map<string, number>();
  private brokers = new Map<number, string>();

  constructor(private readonly bootstrap: string[]) {}

  private client(address: string): RawClient {
    let c = this.clients.get(address);
    if (!c) this.clients.set(address, (c = new RawClient(address, { timeoutMs: 5000 })));
    return c;
  }

  async refresh(topic: string): Promise<boolean> {
    for (const addr of [...this.brokers.values(), ...this.bootstrap]) {
      try {
        const md = await this.client(addr).metadata({ topics: [topic] }, { timeoutMs: 1500 });
        this.brokers = new Map(md.brokers.map((b) => [b.id, `${b.host}:${b.port}`]));
        for (const t of md.topics) for (const p of t.partitions) this.leaders.set(`${t.name}:${p.partition}`, p.leaderId);
        return true;
      } catch {
        // next
      }
    }
    return false;
  }

  leaderOf(topic: string, partition: number): number | undefined {
    const l = this.leaders.get(`${topic}:${partition}`);
    return l === undefined || l < 0 ? undefined : l;
  }

  private leaderClient(topic: string, partition: number): RawClient | undefined {
    const l = this.leaderOf(topic, partition);
    const addr = l === undefined ? undefined : this.brokers.get(l);
    return addr === undefined ? undefined : this.client(addr);
  }

  /** One acks=all produce attempt to the current leader. */
  async produceOnce(topic: string, partition: number, value: string, acks = -1, timeoutMs = 3000): Promise<ProduceOutcome> {
    return this.produceBatch(topic, partition, buildBatch([{ key: value, value }]), acks, timeoutMs);
  }

  /** One produce attempt of ready-made record batches (e.g. idempotent ones) to the current leader. */
  async produceBatch(topic: string, partition: number, records: Buffer, acks = -1, timeoutMs = 3000): Promise<ProduceOutcome> {
    const c = this.leaderClient(topic, partition);
    if (!c) return { type: 'fail', error: 'LEADER_NOT_AVAILABLE' };
    try {
      const r = await c.produce({ acks, timeoutMs, topicData: [{ name: topic, partitions: [{ partition, records }] }] });
      const p = r.responses[0]?.partitions[0];
      const code = p?.errorCode ?? r.errorCode;
      if (code === 0 && p) return { type: 'ok', offset: p.baseOffset };
      const name = errorByCode(code);
      // A timeout after the append: it may yet be committed (or truncated).
      if (name === 'REQUEST_TIMED_OUT' || name === 'NOT_ENOUGH_REPLICAS_AFTER_APPEND' || name === 'UNKNOWN_SERVER_ERROR') return { type: 'info', error: name };
      return { type: 'fail', error: name };
    } catch (e) {
      return { type: 'info', error: (e as Error).message };
    }
  }

  /** Reads a partition from its leader between [from, upTo) offsets; returns value per offset and the HW seen. */
  async readAll(topic: string, partition: number, from = 0): Promise<{ records: Array<{ offset: number; value: string }>; highWatermark: number } | undefined> {
    const c = this.leaderClient(topic, partition);
    if (!c) return undefined;
    const out: Array<{ offset: number; value: string }> = [];
    let offset = from;
    for (;;) {
      const r = await c.fetch({ maxWaitMs: 0, minBytes: 0, maxBytes: 8 << 20, topics: [{ name: topic, partitions: [{ partition, fetchOffset: offset, partitionMaxBytes: 4 << 20 }] }] });
      const p = r.responses[0]?.partitions[0];
      if (!p || p.errorCode !== ERRORS.NONE.code) return undefined;
      const hw = p.highWatermark;
      let progressed = false;
      for (const { bytes } of iterateBatches(p.records)) {
        for (const rec of decodeRecords(bytes)) {
          if (rec.offset >= offset) out.push({ offset: rec.offset, value: rec.value!.toString() });
        }
        offset = Math.max(offset, readLast(bytes) + 1);
        progressed = true;
      }
      if (!progressed || offset >= hw) return { records: out, highWatermark: hw };
    }
  }

  /** The partition's high watermark from its leader (ListOffsets latest), or undefined on any error. */
  async highWatermark(topic: string, partition: number): Promise<number | undefined> {
    const c = this.leaderClient(topic, partition);
    if (!c) return undefined;
    try {
      const r = await c.listOffsets({ topics: [{ name: topic, partitions: [{ partition, timestamp: -1 }] }] }, { timeoutMs: 1000 });
      const p = r.topics[0]?.partitions[0];
      return p && p.errorCode === 0 ? p.offset : undefined;
    } catch {
      return undefined;
    }
  }

  close(): void {
    for (const c of this.clients.values()) c.close();
    this.clients.clear();
  }
}

function readLast(batch: Buffer): number {
  return Number(batch.readBigInt64BE(0)) + batch.readInt32BE(23);
}
