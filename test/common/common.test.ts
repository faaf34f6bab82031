import { test } from 'node:test';
import assert from 'node:assert/strict';
import { ERRORS, RaftkaError, errorByCode, isRaftkaError, isRetriable, assert as invariant, AssertionFailure } from '../../src/common/errors.ts';
import { boolDef, enumDef, intDef, listDef, parseConfig, parseProperties } from '../../src/common/config.ts';
import { ManualClock, SkewedClock } from '../../src/common/clock.ts';
import { SeededRandom } from '../../src/common/random.ts';
import { isUuid, randomUuid } from '../../src/common/ids.ts';
import { logConfig } from '../../src/log/config.ts';

test('error codes are unique, Kafka-numbered, and carry retriability', () => {
  const codes = Object.values(ERRORS).map((e) => e.code);
  assert.equal(new Set(codes).size, codes.length);
  assert.equal(ERRORS.CORRUPT_MESSAGE.code, 2);
  assert.equal(ERRORS.NOT_LEADER_OR_FOLLOWER.code, 6);
  assert.equal(ERRORS.MESSAGE_TOO_LARGE.code, 10);
  assert.equal(isRetriable('NOT_LEADER_OR_FOLLOWER'), true);
  assert.equal(isRetriable('OUT_OF_ORDER_SEQUENCE_NUMBER'), false);
  assert.equal(errorByCode(1), 'OFFSET_OUT_OF_RANGE');
  assert.equal(errorByCode(99999), 'UNKNOWN_SERVER_ERROR');
  const e = new RaftkaError('MESSAGE_TOO_LARGE', 'batch of 2000 bytes');
  assert.ok(isRaftkaError(e, 'MESSAGE_TOO_LARGE'));
  assert.equal(e.code, 10);
  assert.equal(e.retriable, false);
  assert.throws(() => invariant(false, 'broken'), AssertionFailure);
});

const defs = {
  'num.partitions': intDef(1, 'partitions', { min: 1 }),
  'auto.create': boolDef(false, 'auto create'),
  'compression.type': enumDef('none', ['none', 'gzip'] as const, 'codec'),
  'listeners': listDef(['a'], 'listeners'),
};

test('config parses typed values and names the bad key and value', () => {
  const c = parseConfig(defs, { 'num.partitions': '3', 'auto.create': 'true', 'listeners': 'x, y' });
  assert.equal(c['num.partitions'], 3);
  assert.equal(c['auto.create'], true);
  assert.equal(c['compression.type'], 'none');
  assert.deepEqual(c['listeners'], ['x', 'y']);
  const bad = (input: Record<string, unknown>, re: RegExp) =>
    assert.throws(() => parseConfig(defs, input), (e: unknown) => isRaftkaError(e, 'INVALID_CONFIG') && re.test((e as Error).message));
  bad({ 'num.partitions': 0 }, /Invalid value 0 for configuration num\.partitions: must be at least 1/);
  bad({ 'num.partitions': '1.5' }, /num\.partitions: expected an integer/);
  bad({ 'auto.create': 'yes' }, /"yes" for configuration auto\.create/);
  bad({ 'compression.type': 'lz5' }, /compression\.type: expected one of none, gzip/);
  bad({ 'num.partition': 3 }, /num\.partition: unknown configuration key/);
  assert.throws(() => logConfig({ 'cleanup.policy': 'shred' }), /cleanup\.policy/);
  assert.deepEqual(parseProperties('# c\na=1\n\nb = two=2\n'), { a: '1', b: 'two=2' });
  assert.throws(() => parseProperties('novalue'), /Line 1 is not key=value/);
});

test('clocks: a manual clock moves only when told; skew moves wall time only', () => {
  const c = new ManualClock(1000);
  c.advance(5);
  assert.deepEqual([c.nowMs(), c.monotonicMs()], [1005, 5]);
  c.setWall(0);
  assert.deepEqual([c.nowMs(), c.monotonicMs()], [0, 5]);
  assert.throws(() => c.advance(-1), RangeError);
  const s = new SkewedClock(c);
  s.skewMs = -500;
  assert.deepEqual([s.nowMs(), s.monotonicMs()], [-500, 5]);
});

test('seeded random replays and spreads', () => {
  const a = new SeededRandom(42);
  const b = new SeededRandom(42);
  const xs = Array.from({ length: 1000 }, () => a.int(10));
  assert.deepEqual(xs, Array.from({ length: 1000 }, () => b.int(10)));
  for (let d = 0; d < 10; d++) assert.ok(xs.filter((x) => x === d).length > 50, `digit ${d} is rare`);
});

test('uuids in Kafka base64 form', () => {
  const u = randomUuid();
  assert.equal(u.length, 22);
  assert.ok(isUuid(u));
  assert.ok(!isUuid('not-a-uuid'));
});

test('random uuids never start with "-" (it would read as a command-line option), as in Kafka', () => {
  // One in 64 would without the check: 2,000 draws miss that with probability ~2e-14.
  for (let i = 0; i < 2000; i++) {
    const u = randomUuid();
    assert.ok(!u.startsWith('-'), u);
    assert.ok(isUuid(u));
  }
});
