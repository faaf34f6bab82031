// The partition assignors: Kafka's range and round-robin layouts on known cases, and
// properties over random groups (seeds printed): every partition has exactly one owner,
// balance, stickiness across joins and leaves, and the cooperative rule that a partition
// is never handed to a new owner in the generation it is revoked from the old one.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import fc from 'fast-check';
import { cooperativeStickyAssign, rangeAssign, roundRobinAssign, stickyTarget, type AssignInput, type GroupAssignment, type MemberSubscription, type TopicPartitions } from '../../src/client/assignors.ts';
import { decodeAssignment, decodeSubscription, encodeAssignment, encodeSubscription } from '../../src/client/consumer-protocol.ts';
import { assertProperty } from '../support/property.ts';

const members = (ids: string[], topics: string[]): MemberSubscription[] => ids.map((memberId) => ({ memberId, topics }));

test('range: per topic, consecutive partitions, the first members get the extra ones (Kafka RangeAssignorTest)', () => {
  const a = rangeAssign({ members: members(['c1', 'c0'], ['t1', 't2']), partitionsPerTopic: { t1: 3, t2: 3 } });
  assert.deepEqual(a, { c0: { t1: [0, 1], t2: [0, 1] }, c1: { t1: [2], t2: [2] } });
  const b = rangeAssign({ members: [{ memberId: 'a', topics: ['t'] }, { memberId: 'b', topics: ['t', 'u'] }], partitionsPerTopic: { t: 2, u: 2 } });
  assert.deepEqual(b, { a: { t: [0] }, b: { t: [1], u: [0, 1] } });
});

test('roundrobin: sorted topic-partitions dealt in a circle over sorted members (Kafka RoundRobinAssignorTest)', () => {
  const a = roundRobinAssign({ members: members(['c1', 'c0'], ['t1', 't2']), partitionsPerTopic: { t1: 3, t2: 3 } });
  assert.deepEqual(a, { c0: { t1: [0, 2], t2: [1] }, c1: { t1: [1], t2: [0, 2] } });
  // A member not subscribed to a topic is skipped, not given its partitions.
  const b = roundRobinAssign({ members: [{ memberId: 'a', topics: ['t'] }, { memberId: 'b', topics: ['t', 'u'] }], partitionsPerTopic: { t: 3, u: 2 } });
  assert.deepEqual(b, { a: { t: [0, 2] }, b: { t: [1], u: [0, 1] } });
});

test('consumer protocol: subscription v1 and assignment round-trip; garbage is a clear error', () => {
  const s = { topics: ['a', 'bé'], userData: Buffer.from([1, 2]), ownedPartitions: [{ topic: 'a', partitions: [0, 3] }] };
  assert.deepEqual(decodeSubscription(encodeSubscription(s)), s);
  const a = { assignment: [{ topic: 'a', partitions: [1] }], userData: null };
  assert.deepEqual(decodeAssignment(encodeAssignment(a)), a);
  assert.deepEqual(decodeAssignment(Buffer.alloc(0)), { assignment: [], userData: null });
  assert.throws(() => decodeSubscription(Buffer.from([0, 1, 0, 0, 0, 9])), /truncated|bad array length/);
});

// ─── properties ───

const arbGroup = fc
  .record({
    nMembers: fc.integer({ min: 1, max: 8 }),
    topics: fc.array(fc.integer({ min: 1, max: 12 }), { minLength: 1, maxLength: 4 }),
    equal: fc.boolean(),
    subsSeed: fc.array(fc.array(fc.boolean(), { minLength: 4, maxLength: 4 }), { minLength: 8, maxLength: 8 }),
  })
  .map(({ nMembers, topics, equal, subsSeed }): AssignInput => {
    const names = topics.map((_, i) => `t${i}`);
    const partitionsPerTopic = Object.fromEntries(names.map((n, i) => [n, topics[i]!]));
    const ms: MemberSubscription[] = [];
    for (let i = 0; i < nMembers; i++) {
      let subs = equal ? names : names.filter((_, j) => subsSeed[i]![j]);
      if (subs.length === 0) subs = [names[0]!];
      ms.push({ memberId: `m${String(i).padStart(2, '0')}`, topics: subs });
    }
    return { members: ms, partitionsPerTopic };
  });

function owners(a: GroupAssignment): Map<string, string[]> {
  const o = new Map<string, string[]>();
  for (const [m, ts] of Object.entries(a)) for (const [t, ps] of Object.entries(ts)) for (const p of ps) o.set(`${t}-${p}`, [...(o.get(`${t}-${p}`) ?? []), m]);
  return o;
}

function count(a: GroupAssignment, m: string): number {
  return Object.values(a[m] ?? {}).reduce((n, ps) => n + ps.length, 0);
}

function checkExactlyOnce(input: AssignInput, a: GroupAssignment): void {
  const o = owners(a);
  for (const [t, n] of Object.entries(input.partitionsPerTopic)) {
    const subscribed = input.members.some((m) => m.topics.includes(t));
    for (let p = 0; p < n; p++) {
      const who = o.get(`${t}-${p}`) ?? [];
      assert.equal(who.length, subscribed ? 1 : 0, `${t}-${p} owned by [${who.join(',')}]`);
      if (who[0]) assert.ok(input.members.find((m) => m.memberId === who[0])!.topics.includes(t), `${t}-${p} given to ${who[0]}, not subscribed`);
    }
  }
  assert.deepEqual(Object.keys(a).sort(), input.members.map((m) => m.memberId).sort());
}

function spread(input: AssignInput, a: GroupAssignment): number {
  const counts = input.members.map((m) => count(a, m.memberId));
  return Math.max(...counts) - Math.min(...counts);
}

const equalSubs = (input: AssignInput) => input.members.every((m) => [...m.topics].sort().join() === [...input.members[0]!.topics].sort().join());

function asOwned(a: GroupAssignment, m: string): TopicPartitions[] {
  return Object.entries(a[m] ?? {}).map(([topic, partitions]) => ({ topic, partitions }));
}

test('property: every partition has exactly one owner, subscribed to its topic (range, roundrobin, sticky)', async () => {
  await assertProperty(
    'assignors exactly one owner',
    fc.property(arbGroup, (input) => {
      checkExactlyOnce(input, rangeAssign(input));
      checkExactlyOnce(input, roundRobinAssign(input));
      checkExactlyOnce(input, stickyTarget(input));
      // With nothing owned yet, cooperative-sticky assigns everything in one go.
      checkExactlyOnce(input, cooperativeStickyAssign(input));
    }),
  );
});

test('property: with equal subscriptions roundrobin and sticky are balanced within 1', async () => {
  await assertProperty(
    'assignors balance',
    fc.property(
      arbGroup.filter(equalSubs),
      fc.array(fc.integer({ min: 0, max: 7 }), { maxLength: 40 }),
      (input, ownedBy) => {
        assert.ok(spread(input, roundRobinAssign(input)) <= 1);
        // Any prior ownership (even a lopsided one) still ends balanced.
        const owned: Record<string, TopicPartitions[]> = {};
        let i = 0;
        for (const [t, n] of Object.entries(input.partitionsPerTopic)) {
          for (let p = 0; p < n; p++, i++) {
            const m = input.members[(ownedBy[i] ?? 0) % input.members.length]!.memberId;
            (owned[m] ??= []).push({ topic: t, partitions: [p] });
          }
        }
        const withOwned = { ...input, members: input.members.map((m) => ({ ...m, ownedPartitions: owned[m.memberId] ?? [] })) };
        const s = stickyTarget(withOwned);
        checkExactlyOnce(withOwned, s);
        assert.ok(spread(withOwned, s) <= 1, `spread ${spread(withOwned, s)}`);
      },
    ),
  );
});

test('property: sticky moves the minimum when a member joins or leaves', async () => {
  await assertProperty(
    'sticky minimal movement',
    fc.property(arbGroup.filter(equalSubs), fc.boolean(), (input, join) => {
      const total = input.members[0]!.topics.reduce((a, t) => a + input.partitionsPerTopic[t]!, 0);
      const before = stickyTarget(input);
      let next: MemberSubscription[] = input.members.map((m) => ({ ...m, ownedPartitions: asOwned(before, m.memberId) }));
      if (join) next.push({ memberId: 'zz-new', topics: input.members[0]!.topics });
      else if (next.length > 1) next = next.slice(1);
      else return;
      const after = stickyTarget({ ...input, members: next });
      checkExactlyOnce({ ...input, members: next }, after);
      const ob = owners(before);
      const oa = owners(after);
      let moved = 0;
      for (const [k, [m]] of oa) if (ob.get(k)?.[0] !== m) moved++;
      // The least any balanced assignment can move: on a join, what the newcomer must get
      // (floor(total/M')); on a leave, what the leaver held.
      const minimum = join ? Math.floor(total / next.length) : count(before, input.members[0]!.memberId);
      assert.equal(moved, minimum, `moved ${moved}, minimum ${minimum}`);
    }),
  );
});

test('property: cooperative-sticky never gives a partition to a new owner in the generation it is revoked', async () => {
  await assertProperty(
    'cooperative two-phase',
    fc.property(arbGroup, fc.integer({ min: 0, max: 3 }), fc.boolean(), (input, newcomers, dropFirst) => {
      // Generation 1: everything assigned. Then members join (and maybe one leaves).
      const g1 = cooperativeStickyAssign(input);
      let ms: MemberSubscription[] = input.members.map((m) => ({ ...m, ownedPartitions: asOwned(g1, m.memberId), generation: 1 }));
      for (let i = 0; i < newcomers; i++) ms.push({ memberId: `zz${i}`, topics: input.members[i % input.members.length]!.topics, ownedPartitions: [], generation: -1 });
      if (dropFirst && ms.length > 1) ms = ms.slice(1);
      const g2 = cooperativeStickyAssign({ ...input, members: ms });
      const ownedBefore = new Map<string, string>();
      for (const m of ms) for (const tp of m.ownedPartitions ?? []) for (const p of tp.partitions) ownedBefore.set(`${tp.topic}-${p}`, m.memberId);
      for (const [k, who] of owners(g2)) {
        assert.equal(who.length, 1);
        const prev = ownedBefore.get(k);
        assert.ok(prev === undefined || prev === who[0], `${k} moved from ${prev} to ${who[0]} in one generation`);
      }
      // Follow-up rebalances: members own what the last one gave them. With equal
      // subscriptions one follow-up completes a balanced assignment that revokes nothing
      // more; with unequal ones the rounds still converge to a complete assignment.
      let prev = g2;
      let done: GroupAssignment | undefined;
      for (let round = 0; round < (equalSubs(input) ? 1 : 6) && !done; round++) {
        const msN = ms.map((m) => ({ ...m, ownedPartitions: asOwned(prev, m.memberId), generation: 2 + round }));
        const gN = cooperativeStickyAssign({ ...input, members: msN });
        let revoked = 0;
        for (const m of msN) for (const tp of m.ownedPartitions) for (const p of tp.partitions) if (!gN[m.memberId]![tp.topic]?.includes(p)) revoked++;
        if (revoked === 0) {
          checkExactlyOnce({ ...input, members: msN }, gN);
          if (equalSubs(input)) assert.ok(spread({ ...input, members: msN }, gN) <= 1);
          done = gN;
        }
        prev = gN;
      }
      assert.ok(done, 'follow-up rebalances did not converge');
    }),
  );
});
