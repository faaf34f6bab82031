// `raftka topics elect-leaders --wait-ms`: the partitions an election answers with
// ELIGIBLE_LEADERS_NOT_AVAILABLE (an unclean election waiting for replicas to start or
// report their logs) are asked for again, alone, until they settle or the wait ends.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { electAskingAgain } from '../../src/cli/topics.ts';
import { ERRORS } from '../../src/common/errors.ts';
import type { ElectLeadersTopic, ElectLeadersTopicResult } from '../../src/proto/raftka.ts';

const WAITING = ERRORS.ELIGIBLE_LEADERS_NOT_AVAILABLE.code;

/** An election stand-in: partition p of topic "t" is waiting for its first waits[p] asks. */
function fakeElection(waits: Record<number, number>) {
  const asked: ElectLeadersTopic[][] = [];
  const seen = new Map<number, number>();
  const elect = async (topics: ElectLeadersTopic[]): Promise<ElectLeadersTopicResult[]> => {
    asked.push(topics);
    const partitions = topics.length === 0 ? Object.keys(waits).map(Number) : topics.flatMap((t) => t.partitions);
    return [
      {
        name: 't',
        partitions: partitions.map((p) => {
          const n = (seen.get(p) ?? 0) + 1;
          seen.set(p, n);
          const waiting = n <= waits[p]!;
          return { partition: p, leaderId: waiting ? -1 : 10 + p, errorCode: waiting ? WAITING : 0, errorMessage: waiting ? `waiting for ${p}` : '' };
        }),
      },
    ];
  };
  return { elect, asked };
}

function manualClock() {
  let t = 0;
  return { now: () => t, sleep: async (ms: number) => void (t += ms) };
}

test('partitions still waiting are asked for again, alone, and the last answers come back in first-answer order', async () => {
  const { elect, asked } = fakeElection({ 0: 0, 1: 2, 2: 1 });
  const answers = await electAskingAgain(elect, [], 10_000, manualClock());
  assert.deepEqual(
    answers.map((a) => [a.topic, a.partition, a.leaderId, a.errorCode]),
    [
      ['t', 0, 10, 0],
      ['t', 1, 11, 0],
      ['t', 2, 12, 0],
    ],
  );
  assert.deepEqual(asked, [[], [{ name: 't', partitions: [1, 2] }], [{ name: 't', partitions: [1] }]]);
});

test('without --wait-ms, or once the wait is over, a waiting partition is reported as it answered', async () => {
  const once = fakeElection({ 0: 5 });
  assert.deepEqual((await electAskingAgain(once.elect, [], 0, manualClock())).map((a) => [a.errorCode, a.errorMessage]), [[WAITING, 'waiting for 0']]);
  assert.equal(once.asked.length, 1);
  const bounded = fakeElection({ 0: 100 });
  const clock = manualClock();
  const answers = await electAskingAgain(bounded.elect, [{ name: 't', partitions: [0] }], 1000, clock);
  assert.equal(answers[0]!.errorCode, WAITING);
  assert.ok(clock.now() <= 1000, `stopped within the wait (${clock.now()} ms)`);
  assert.ok(bounded.asked.length > 1, 'asked again meanwhile');
});
