// The randomized simulator: fast-check generates fault schedules (message drop, delay,
// duplication and reordering; symmetric and one-way partitions; crashes that lose
// unpersisted writes, restarts; snapshots and chunked installs; voter changes;
// leadership transfers; read-index reads). SimCluster checks the safety invariants after
// every effect; runSchedule then heals everything and checks liveness. A failure prints
// the seed (replay: FC_SEED=<seed> or `npm run sim -- --seed <seed> --nodes <n>`) and the
// shrunk schedule. More schedules: `npm run sim -- --seeds 10000`.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import fc from 'fast-check';
import { assertProperty } from '../support/property.ts';
import { runSchedule, scheduleArb, type Schedule } from './sim/schedule.ts';

for (const nodes of [3, 5] as const) {
  void test(`simulator: ${nodes} nodes keep Raft's safety invariants under faults and recover after healing`, async () => {
    const seen = { elections: 0, snapshotsInstalled: 0, dropped: 0, configEntries: 0, reads: 0, termsOver1: 0 };
    await assertProperty(
      `raft simulator, ${nodes} nodes`,
      fc.property(scheduleArb(nodes), (s) => {
        const { cluster } = runSchedule(s);
        seen.elections += cluster.stats.elections;
        seen.snapshotsInstalled += cluster.stats.snapshotsInstalled;
        seen.dropped += cluster.stats.dropped;
        seen.reads += cluster.readResults.filter((r) => r.index >= 0).length;
        seen.termsOver1 += cluster.leaders.size > 1 ? 1 : 0;
        for (const n of cluster.nodes.values()) {
          seen.configEntries += n.disk.entries.filter((e) => e.kind === 'config').length;
        }
      }),
      { numRuns: 500 },
    );
    // The schedules must actually exercise what they claim to (a silent simulator
    // proves nothing): re-elections, snapshot installs, losses, config changes, reads.
    assert.ok(seen.termsOver1 > 0, `no run had a re-election: ${JSON.stringify(seen)}`);
    assert.ok(seen.snapshotsInstalled > 0, `no snapshot was installed: ${JSON.stringify(seen)}`);
    assert.ok(seen.dropped > 0, `no message was dropped: ${JSON.stringify(seen)}`);
    assert.ok(seen.configEntries > 0, `no voter change was appended: ${JSON.stringify(seen)}`);
    assert.ok(seen.reads > 0, `no read-index read was served: ${JSON.stringify(seen)}`);
  });
}

void test('simulator runs are deterministic: the same schedule replays to the same states', () => {
  const [schedule] = fc.sample(scheduleArb(5), { numRuns: 1, seed: 1234 });
  const a = runSchedule(schedule!);
  const b = runSchedule(schedule!);
  assert.equal(a.cluster.now, b.cluster.now);
  assert.deepEqual(a.cluster.stats, b.cluster.stats);
  assert.deepEqual([...a.cluster.leaders], [...b.cluster.leaders]);
  for (const [id, n] of a.cluster.nodes) assert.deepEqual(n.disk, b.cluster.node(id).disk);
});

// Schedules the simulator once shrunk to a failure, kept as regressions, each named for
// the bug it found (each fails again if that fix is reverted). They replay the
// simulator's exact random draws: after changing the harness, check they still fail with
// the fix reverted, or shrink new ones with `npm run sim`.
const regressions: Array<[string, Schedule]> = [
  [
    'a leader that appended its own removal and crashed must still be electable (liveness)',
    { nodes: 3, voters: 3, seed: 0, persistRate: 0.3, maxInflightAppends: 1, maxAppendBytes: 1, steps: [{ do: 'run', ms: 1421 }, { do: 'removeVoter', node: 0 }, { do: 'run', ms: 81 }, { do: 'removeVoter', node: 2 }, { do: 'isolateLeader' }, { do: 'run', ms: 41 }, { do: 'crashLeader' }, { do: 'propose', count: 1 }] },
  ],
  [
    'voters grant votes to candidates outside their own config (liveness during a change)',
    { nodes: 3, voters: 3, seed: 5, persistRate: 0.3, maxInflightAppends: 1, maxAppendBytes: 1, steps: [{ do: 'run', ms: 1121 }, { do: 'removeVoter', node: 2 }, { do: 'isolateLeader' }, { do: 'run', ms: 821 }, { do: 'run', ms: 621 }, { do: 'removeVoter', node: 1 }, { do: 'run', ms: 1111 }, { do: 'run', ms: 631 }] },
  ],
  [
    "a wiped voter's acknowledgements must not let a stale leader commit (safety)",
    { nodes: 3, voters: 3, seed: 769905146, persistRate: 0.3, maxInflightAppends: 1, maxAppendBytes: 1, steps: [{ do: 'run', ms: 221 }, { do: 'run', ms: 1251 }, { do: 'partition', side: [2] }, { do: 'run', ms: 1071 }, { do: 'wipe', node: 4 }, { do: 'isolateLeader' }, { do: 'restart', node: 1 }, { do: 'run', ms: 11 }, { do: 'crashLeader' }] },
  ],
];

for (const [name, s] of regressions) {
  void test(`simulator regression: ${name}`, () => {
    runSchedule(s);
  });
}
