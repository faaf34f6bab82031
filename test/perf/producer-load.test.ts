// The perf tools' producer load against a one-broker stand-in: what it sends is what the
// tools claim to measure.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { defer } from '../support/tmp.ts';
import { FakeBroker } from '../client/fake-broker.ts';
import { prepareProducerLoad } from '../../src/perf/producer-load.ts';
import { nowEpochMs, readStamp, STAMP_BYTES, stampedValue, stampInto, valuePool } from '../../src/perf/payload.ts';
import { decodeRecords } from '../../src/log/batch.ts';

test('stampInto writes what stampedValue returns, into a buffer that held another stamped value', () => {
  const [a, b] = valuePool(64, false);
  const into = stampedValue(a!, 1);
  assert.equal(stampInto(into, b!, 1_700_000_000_123.5), into);
  assert.deepEqual(into, stampedValue(b!, 1_700_000_000_123.5));
  assert.equal(readStamp(into), 1_700_000_000_123.5);
});

test('a stamped (perf e2e) producer load delivers every record as its template under its send stamp, in send order per partition, while it reuses the value buffers of settled sends', async (t) => {
  const partitions = 3;
  const broker = new FakeBroker({ e2e: partitions });
  await broker.start();
  defer(t, () => broker.stop());
  const records = 4000;
  const recordSize = 100;
  const before = nowEpochMs();
  // Small batches at a high rate into a producer buffer of a few batches: sends wait for
  // memory part-way through their records, later sends are stamped meanwhile, and the
  // buffers of settled sends are lent again at once.
  const load = await prepareProducerLoad({ bootstrap: [broker.address], topic: 'e2e', records, recordSize, ratePerSec: 40_000, acks: -1, compression: 'none', batchSize: 2048, lingerMs: 1, payloadJson: false, stamp: true, bufferMemory: 8192 });
  defer(t, () => load.close());
  let acked = 0;
  const final = await load.run(Date.now(), (r) => (acked += r.records));
  const after = nowEpochMs();
  assert.equal(final.firstError, undefined);
  assert.equal(acked, records);

  const pool = valuePool(recordSize, false);
  const templateOf = new Map(pool.map((v, i) => [v.subarray(STAMP_BYTES).toString('latin1'), i]));
  const perTemplate = new Array<number>(pool.length).fill(0);
  let delivered = 0;
  for (let p = 0; p < partitions; p++) {
    let last = -Infinity;
    for (const batch of broker.batches('e2e', p)) {
      for (const r of decodeRecords(batch.bytes)) {
        const i = templateOf.get(r.value!.subarray(STAMP_BYTES).toString('latin1'));
        assert.notEqual(i, undefined, `record ${delivered}: its value after the stamp is none of the pool's`);
        perTemplate[i!]!++;
        const at = readStamp(r.value)!;
        assert.ok(at >= last, `partition ${p}: stamp ${at} after ${last}: a value was restamped before it was sent`);
        assert.ok(at >= before && at <= after, `stamp ${at} outside the run [${before}, ${after}]`);
        last = at;
        delivered++;
      }
    }
  }
  assert.equal(delivered, records);
  // Values come from the pool round-robin in send order: every template as often as the next (±1).
  assert.ok(Math.max(...perTemplate) - Math.min(...perTemplate) <= 1, `templates used ${perTemplate.join(',')}`);
});
