import { test } from 'node:test';
import assert from 'node:assert/strict';
import fc from 'fast-check';
import { FAULT_KINDS, type FaultKind } from '../../src/jepsen/fault-api.ts';
import { LEAD_IN_MS, LEAD_OUT_MS, parseSchedule, scheduleArbitrary, scheduleFor, scheduleKeys, unsafeSchedule, type Schedule } from '../../src/jepsen/schedule.ts';
import { RaftkaError } from '../../src/common/errors.ts';
import { parseNemesis } from '../../src/cli/jepsen.ts';
import { assertProperty } from '../support/property.ts';

const kindsArb = fc.subarray([...FAULT_KINDS], { minLength: 1 });
const optsArb = fc.record({ nodes: fc.constantFrom(3, 5), timeMs: fc.integer({ min: 5000, max: 120_000 }), kinds: kindsArb, flushBeforeAck: fc.boolean() });

test('schedules: faults only of the --nemesis kinds, one after another, all healed inside the run', async () => {
  await assertProperty(
    'schedule bounds',
    fc.property(optsArb, fc.integer({ min: 0, max: 2 ** 31 - 1 }), (opts, seed) => {
      const s = scheduleFor(seed, opts);
      assert.ok(s.faults.length >= 1 || opts.timeMs < LEAD_IN_MS + LEAD_OUT_MS + 500);
      let prevEnd = LEAD_IN_MS;
      for (const f of s.faults) {
        assert.ok((opts.kinds as readonly FaultKind[]).includes(f.kind), `${f.kind} not in ${opts.kinds.join(',')}`);
        assert.ok(f.atMs >= prevEnd, 'faults do not overlap');
        assert.ok(f.durationMs >= 500);
        assert.ok(f.atMs + f.durationMs <= opts.timeMs - LEAD_OUT_MS, 'healed before the run ends');
        if (f.kind === 'partition') assert.ok(f.shape !== undefined);
        if (f.kind === 'clock') assert.ok(f.clockOffsetMs !== undefined && f.clockOffsetMs !== 0);
        // Unsynced acknowledged writes cannot survive every replica losing power.
        if (!opts.flushBeforeAck) assert.ok(!f.allNodes, 'no all-nodes power loss on flush.before.ack=false topics');
        prevEnd = f.atMs + f.durationMs;
      }
      for (const k of scheduleKeys(s)) assert.match(k, /^jepsen\d+-\d+$/);
      assert.equal(scheduleKeys(s).length, s.topics * s.partitions);
    }),
    { numRuns: 200 },
  );
});

test('flush.before.ack=true schedules still draw all-nodes power losses', () => {
  const draws = Array.from({ length: 50 }, (_, seed) => scheduleFor(seed, { nodes: 3, timeMs: 60_000, kinds: ['power-loss'], flushBeforeAck: true }));
  assert.ok(draws.some((s) => s.faults.some((f) => f.allNodes)));
});

test('a seed determines its schedule, and it is the first schedule fast-check runs with that seed (so --replay and shrinking agree)', async () => {
  await assertProperty(
    'seed replays',
    fc.property(optsArb, fc.integer({ min: 0, max: 2 ** 31 - 1 }), (opts, seed) => {
      const a = scheduleFor(seed, opts);
      assert.deepEqual(scheduleFor(seed, opts), a);
      let first: Schedule | undefined;
      fc.check(
        fc.property(scheduleArbitrary(opts), (s) => {
          first ??= s;
          return true;
        }),
        { seed, numRuns: 1 },
      );
      assert.deepEqual(first, a);
    }),
    { numRuns: 50 },
  );
});

test('shrinking a failing schedule keeps it a valid schedule and makes it smaller', () => {
  const opts = { nodes: 3, timeMs: 30_000, kinds: ['kill', 'pause', 'partition'] as FaultKind[] };
  // "Fails" whenever a pause is in the schedule: the shrunk case has the fewest faults a
  // 30 s run draws (6), one pause and otherwise the simplest kind, all as short as allowed.
  const details = fc.check(
    fc.property(scheduleArbitrary(opts), (s) => !s.faults.some((f) => f.kind === 'pause')),
    { seed: 1, numRuns: 200 },
  );
  assert.equal(details.failed, true);
  const [shrunk] = details.counterexample!;
  assert.equal(shrunk.faults.length, 6);
  assert.equal(shrunk.faults.filter((f) => f.kind === 'pause').length, 1);
  assert.deepEqual(shrunk.faults.filter((f) => f.kind !== 'pause').map((f) => f.kind), ['kill', 'kill', 'kill', 'kill', 'kill']);
  for (const f of shrunk.faults) assert.equal(f.durationMs, 500);
  assert.equal(shrunk.producers, 1);
  assert.equal(shrunk.consumers, 1);
});

test('the unsafe schedule cuts the leader off its followers, then kills the leader, inside the run', () => {
  const s = unsafeSchedule(20_000);
  assert.deepEqual(scheduleKeys(s), ['jepsen0-0']);
  assert.ok(s.faults.length >= 2);
  assert.deepEqual(s.faults[0], { kind: 'partition', atMs: LEAD_IN_MS, durationMs: 4000, shape: 'isolate-leader-from-followers' });
  assert.equal(s.faults[1]!.kind, 'kill');
  assert.equal(s.faults[1]!.target, 'partition-leader');
  for (const f of s.faults) assert.ok(f.atMs + f.durationMs <= 20_000 - LEAD_OUT_MS);
});

test('--nemesis parsing: known kinds, none, and a clear error for an unknown one', () => {
  assert.deepEqual(parseNemesis('kill, pause,kill'), ['kill', 'pause']);
  assert.deepEqual(parseNemesis('none'), []);
  assert.throws(() => parseNemesis('kill,meteor'), /unknown fault "meteor"; choose from kill, pause, partition, clock, power-loss/);
});

test('a printed schedule parses back to itself; a bad one is INVALID_CONFIG naming the field', () => {
  const s = scheduleFor(9, { nodes: 3, timeMs: 20_000, kinds: [...FAULT_KINDS] });
  assert.deepEqual(parseSchedule(JSON.stringify(s)), s);
  assert.throws(() => parseSchedule('{'), (e: unknown) => e instanceof RaftkaError && e.errorName === 'INVALID_CONFIG' && /not JSON/.test(e.message));
  assert.throws(() => parseSchedule(JSON.stringify({ ...s, producers: 0 })), /producers must be an integer from 1 to 64, got 0/);
  assert.throws(() => parseSchedule(JSON.stringify({ ...s, faults: [{ kind: 'meteor', atMs: 1, durationMs: 1 }] })), /faults\[0\]\.kind must be one of kill, pause/);
  assert.throws(() => parseSchedule(JSON.stringify({ ...s, faults: [{ kind: 'kill', atMs: -1, durationMs: 1 }] })), /faults\[0\]\.atMs must be a non-negative number/);
});
