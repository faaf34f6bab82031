// Model-based property test of the partition log: random sequences of append, read,
// roll, flush, truncate, retention, compaction, close/reopen and crash, checked against
// an in-memory model. A crash cuts every segment file at a random byte between its last
// fsynced length and its current length (what a power loss may leave), then reopens.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync, readdirSync, statSync, truncateSync, unlinkSync } from 'node:fs';
import { join } from 'node:path';
import fc from 'fast-check';
import { PartitionLog } from '../../src/log/partition-log.ts';
import { logConfig, type LogConfig } from '../../src/log/config.ts';
import { buildBatch, decodeRecords, iterateBatches, readBatchHeader } from '../../src/log/batch.ts';
import { assertProperty } from '../support/property.ts';
import { tempDir } from '../support/tmp.ts';

interface ModelBatch {
  first: number;
  last: number;
  bytes: Buffer;
}

interface Model {
  batches: ModelBatch[];
  logStart: number;
  flushed: number;
  durable: boolean;
}

interface Real {
  dir: string;
  config: LogConfig;
  log: PartitionLog;
  synced: Map<string, number>;
  rng: () => number;
}

const leo = (m: Model) => (m.batches.at(-1)?.last ?? m.logStart - 1) + 1;

async function open(r: Real): Promise<void> {
  r.log = await PartitionLog.open(r.dir, {
    config: r.config,
    onSync: (path, len) => r.synced.set(path, len),
    recoveryCheckpointIntervalMs: 0,
  });
}

/** The log must hold exactly the model's batches, byte for byte, from the log start. */
async function checkContents(m: Model, r: Real): Promise<void> {
  assert.equal(r.log.logStartOffset, m.logStart, 'log start offset');
  assert.equal(r.log.logEndOffset, leo(m), 'log end offset');
  let offset = m.logStart;
  const got: Buffer[] = [];
  while (offset < r.log.logEndOffset) {
    const { records } = await r.log.read(offset, 700);
    assert.ok(records.length > 0, `read(${offset}) returned nothing below the log end ${r.log.logEndOffset}`);
    for (const { bytes } of iterateBatches(records)) {
      got.push(Buffer.from(bytes));
      offset = readBatchHeader(bytes).lastOffset + 1;
    }
  }
  assert.equal(got.length, m.batches.length, 'batch count');
  got.forEach((b, i) => assert.ok(b.equals(m.batches[i]!.bytes), `batch ${i} (offset ${m.batches[i]!.first}) differs`));
}

class Append implements fc.AsyncCommand<Model, Real> {
  constructor(readonly records: Array<{ key: number; value: string | null }>) {}
  check = () => true;
  async run(m: Model, r: Real) {
    const batch = buildBatch(this.records.map((x) => ({ key: `key${x.key}`, value: x.value, timestamp: Date.now() })));
    const info = await r.log.appendAsLeader(batch, 1);
    assert.equal(info.firstOffset, leo(m));
    m.batches.push({ first: info.firstOffset, last: info.lastOffset, bytes: Buffer.from(batch) });
    if (m.durable) m.flushed = leo(m);
  }
  toString = () => `Append(${this.records.length})`;
}

class Read implements fc.AsyncCommand<Model, Real> {
  constructor(readonly pick: number, readonly maxBytes: number) {}
  check = () => true;
  async run(m: Model, r: Real) {
    const end = leo(m);
    const offset = m.logStart + Math.floor(this.pick * (end - m.logStart + 1));
    const { records } = await r.log.read(offset, this.maxBytes);
    if (offset === end) return assert.equal(records.length, 0);
    const i = m.batches.findIndex((b) => b.last >= offset);
    const got = [...iterateBatches(records)];
    assert.ok(got.length >= 1, `read(${offset}) returned no batch`);
    got.forEach((b, k) => assert.ok(b.bytes.equals(m.batches[i + k]!.bytes), `read(${offset}) batch ${k} differs`));
    assert.ok(got.length === 1 || records.length <= this.maxBytes, 'maxBytes respected beyond the first batch');
  }
  toString = () => `Read(${this.pick.toFixed(2)}, ${this.maxBytes})`;
}

class Roll implements fc.AsyncCommand<Model, Real> {
  check = () => true;
  async run(_m: Model, r: Real) {
    await r.log.forceRoll();
  }
  toString = () => 'Roll';
}

class Flush implements fc.AsyncCommand<Model, Real> {
  check = () => true;
  async run(m: Model, r: Real) {
    await r.log.flush();
    m.flushed = leo(m);
    assert.equal(r.log.flushedOffset, m.flushed);
  }
  toString = () => 'Flush';
}

class Truncate implements fc.AsyncCommand<Model, Real> {
  constructor(readonly pick: number) {}
  check = (m: Readonly<Model>) => m.batches.length > 0;
  async run(m: Model, r: Real) {
    const offset = m.logStart + Math.floor(this.pick * (leo(m) - m.logStart));
    await r.log.truncateTo(offset);
    m.batches = m.batches.filter((b) => b.last < offset);
    m.flushed = Math.min(m.flushed, leo(m));
    assert.equal(r.log.logEndOffset, leo(m));
  }
  toString = () => `Truncate(${this.pick.toFixed(2)})`;
}

class Retention implements fc.AsyncCommand<Model, Real> {
  check = () => true;
  async run(m: Model, r: Real) {
    await r.log.deleteOldSegments();
    const start = r.log.logStartOffset;
    assert.ok(start >= m.logStart && start <= leo(m), `log start ${start} moved outside [${m.logStart}, ${leo(m)}]`);
    assert.ok(start === m.logStart || start === leo(m) || m.batches.some((b) => b.first === start), `log start ${start} is not a batch boundary`);
    m.batches = m.batches.filter((b) => b.first >= start);
    m.logStart = start;
    m.flushed = Math.max(m.flushed, start);
  }
  toString = () => 'Retention';
}

class Compact implements fc.AsyncCommand<Model, Real> {
  check = () => true;
  async run(m: Model, r: Real) {
    const before = new Map<number, { key: string; value: string | null }>();
    for (const b of m.batches) for (const x of decodeRecords(b.bytes)) before.set(x.offset, { key: x.key!.toString(), value: x.value?.toString() ?? null });
    await r.log.compact();
    // Read the result: every record must be one of the model's, at its offset, and the
    // latest record of every key must survive.
    const after: ModelBatch[] = [];
    let offset = m.logStart;
    while (offset < leo(m)) {
      const { records } = await r.log.read(offset, 1 << 20);
      if (records.length === 0) break;
      for (const { bytes, header } of iterateBatches(records)) {
        after.push({ first: header.baseOffset, last: header.lastOffset, bytes: Buffer.from(bytes) });
        for (const x of decodeRecords(bytes)) assert.deepEqual({ key: x.key!.toString(), value: x.value?.toString() ?? null }, before.get(x.offset), `record at ${x.offset} changed`);
        offset = header.lastOffset + 1;
      }
    }
    const kept = new Set(after.flatMap((b) => decodeRecords(b.bytes).map((x) => x.offset)));
    const latest = new Map<string, number>();
    for (const [o, x] of before) latest.set(x.key, o);
    for (const [key, o] of latest) assert.ok(kept.has(o), `latest record of ${key} at ${o} was removed`);
    assert.equal(after.at(-1)?.last, m.batches.at(-1)?.last, 'the last batch is never removed');
    m.batches = after;
  }
  toString = () => 'Compact';
}

class Reopen implements fc.AsyncCommand<Model, Real> {
  check = () => true;
  async run(m: Model, r: Real) {
    await r.log.close();
    await open(r);
    m.flushed = leo(m);
    await checkContents(m, r);
  }
  toString = () => 'Reopen';
}

class Crash implements fc.AsyncCommand<Model, Real> {
  constructor(readonly dropIndex: boolean) {}
  check = () => true;
  async run(m: Model, r: Real) {
    await r.log.abandon();
    for (const f of readdirSync(r.dir)) {
      const path = join(r.dir, f);
      if (f.endsWith('.log')) {
        const size = statSync(path).size;
        const durable = Math.min(r.synced.get(path) ?? 0, size);
        truncateSync(path, durable + Math.floor(r.rng() * (size - durable + 1)));
      } else if (this.dropIndex && f.endsWith('.index') && existsSync(path)) unlinkSync(path);
    }
    await open(r);
    const end = r.log.logEndOffset;
    assert.ok(end >= m.flushed, `log end ${end} lost flushed data below ${m.flushed}`);
    assert.ok(end === m.logStart || m.batches.some((b) => b.last + 1 === end), `log end ${end} is not a batch boundary`);
    m.batches = m.batches.filter((b) => b.last < end);
    m.flushed = r.log.flushedOffset;
    assert.ok(m.flushed <= end);
    await checkContents(m, r);
  }
  toString = () => `Crash(${this.dropIndex})`;
}

const recordsArb = fc.array(fc.record({ key: fc.nat(6), value: fc.option(fc.string({ maxLength: 60 }), { nil: null, freq: 8 }) }), { minLength: 1, maxLength: 6 });

const commands = [
  recordsArb.map((rs) => new Append(rs)),
  recordsArb.map((rs) => new Append(rs)),
  recordsArb.map((rs) => new Append(rs)),
  fc.tuple(fc.double({ min: 0, max: 1, noNaN: true, maxExcluded: true }), fc.integer({ min: 1, max: 2000 })).map(([p, b]) => new Read(p, b)),
  fc.constant(new Roll()),
  fc.constant(new Flush()),
  fc.double({ min: 0, max: 1, noNaN: true, maxExcluded: true }).map((p) => new Truncate(p)),
  fc.constant(new Retention()),
  fc.constant(new Compact()),
  fc.constant(new Reopen()),
  fc.boolean().map((d) => new Crash(d)),
];

test('the partition log behaves like its model under random operations, reopens and crashes', async (t) => {
  await assertProperty(
    'partition log model',
    fc.asyncProperty(
      fc.commands(commands, { maxCommands: 40 }),
      fc.boolean(),
      fc.constantFrom('delete', 'compact'),
      fc.integer(),
      async (cmds, durable, policy, seed) => {
        const dir = tempDir(t, 'raftka-model-');
        let s = seed >>> 0;
        const rng = () => ((s = (Math.imul(s, 1664525) + 1013904223) >>> 0) / 2 ** 32);
        const config = logConfig({
          'segment.bytes': 600,
          'index.interval.bytes': 100,
          'flush.before.ack': durable,
          'retention.bytes': 1500,
          'cleanup.policy': policy,
        });
        const real: Real = { dir, config, log: undefined as unknown as PartitionLog, synced: new Map(), rng };
        await open(real);
        const model: Model = { batches: [], logStart: 0, flushed: 0, durable };
        try {
          await fc.asyncModelRun(() => ({ model, real }), cmds);
          await checkContents(model, real);
        } finally {
          await real.log.close().catch(() => undefined);
        }
      },
    ),
    { numRuns: 100 },
  );
});
