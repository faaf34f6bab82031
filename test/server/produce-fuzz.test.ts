// Property: whatever bytes a client sends as a record batch, Produce answers (never a
// crash or a hung call) and either appends exactly the records of an intact batch or
// answers CORRUPT_MESSAGE and appends nothing. Only the fields the leader overwrites
// (baseOffset, partitionLeaderEpoch) lie outside the CRC and the structural checks.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import fc from 'fast-check';
import { buildBatch, decodeRecords, iterateBatches } from '../../src/log/batch.ts';
import { ERRORS } from '../../src/common/errors.ts';
import { assertProperty } from '../support/property.ts';
import { startHarness, TOPIC_ID } from './support.ts';

const OVERWRITTEN = (pos: number) => (pos >= 0 && pos < 8) || (pos >= 12 && pos < 16);

test('a mangled batch is CORRUPT_MESSAGE with nothing written; an intact one is appended whole', async (t) => {
  const h = await startHarness(t);
  const log = () => h.rm.partition(TOPIC_ID, 0)!.log;
  const arb = fc.record({
    values: fc.array(fc.string({ maxLength: 40 }), { minLength: 1, maxLength: 8 }),
    flips: fc.array(fc.record({ at: fc.nat(), xor: fc.integer({ min: 1, max: 255 }) }), { maxLength: 3 }),
    cut: fc.option(fc.nat(), { nil: undefined }),
  });
  await assertProperty(
    'produce of mangled batches',
    fc.asyncProperty(arb, async ({ values, flips, cut }) => {
      const batch = Buffer.from(buildBatch(values.map((v) => ({ value: v }))));
      let intact = true;
      for (const f of flips) {
        const pos = f.at % batch.length;
        batch[pos]! ^= f.xor;
        if (!OVERWRITTEN(pos)) intact = false;
      }
      let sent = batch;
      if (cut !== undefined && cut % batch.length !== 0) {
        sent = batch.subarray(0, cut % batch.length);
        intact = false;
      }
      const before = log().logEndOffset;
      const res = await h.client.produce({ acks: 1, timeoutMs: 5_000, topicData: [{ name: 't', partitions: [{ partition: 0, records: sent }] }] });
      const p = res.responses[0]!.partitions[0]!;
      if (intact) {
        assert.equal(p.errorCode, 0, p.errorMessage);
        assert.equal(p.baseOffset, before);
        assert.equal(log().logEndOffset, before + values.length);
        const f = await h.client.fetch({ topics: [{ name: 't', partitions: [{ partition: 0, fetchOffset: before }] }] });
        const got: string[] = [];
        for (const { bytes } of iterateBatches(f.responses[0]!.partitions[0]!.records)) for (const r of decodeRecords(bytes)) got.push(r.value!.toString());
        assert.deepEqual(got, values);
      } else {
        assert.equal(p.errorCode, ERRORS.CORRUPT_MESSAGE.code, `expected CORRUPT_MESSAGE, got ${p.errorCode}: ${p.errorMessage}`);
        assert.equal(log().logEndOffset, before, 'a corrupt produce wrote something');
      }
    }),
    { numRuns: 60 },
  );
});
