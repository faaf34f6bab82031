// `npm run sim -- [--seeds N] [--seed S [--path P]] [--nodes 3|5] [--schedule JSON]`
// Runs the Raft simulator (test/raft/sim/) outside `npm test`:
//   --seeds N      N random schedules per cluster size (default 1000), fresh seed
//   --seed S       replays the run with fast-check seed S (same schedules, same failure)
//   --path P       with --seed, jumps straight to the failing case fast-check reported
//   --nodes 3|5    one cluster size only (default both)
//   --steps N      longest schedule, in fault steps (default 40)
//   --schedule J   plays one schedule given as JSON (as printed on failure) and prints
//                  the final node states
// A failure prints the seed, the path and the shrunk schedule, and exits 1.
import fc from 'fast-check';
import { describe, runSchedule, scheduleArb, type Schedule } from '../test/raft/sim/schedule.ts';

function arg(name: string): string | undefined {
  const i = process.argv.indexOf(`--${name}`);
  return i >= 0 ? process.argv[i + 1] : undefined;
}

const schedule = arg('schedule');
if (schedule !== undefined) {
  const s = JSON.parse(schedule) as Schedule;
  try {
    const { cluster, livenessMs } = runSchedule(s);
    console.log(`ok: leader committed ${livenessMs} ms after healing`);
    console.log(describe(cluster));
    console.log(JSON.stringify(cluster.stats));
    process.exit(0);
  } catch (e) {
    console.log(`FAILED: ${e instanceof Error ? e.message : String(e)}`);
    process.exit(1);
  }
}

const seeds = Number(arg('seeds') ?? 1000);
const seedArg = arg('seed');
const path = arg('path');
const nodesArg = arg('nodes');
const maxSteps = Number(arg('steps') ?? 40);
const sizes: Array<3 | 5> = nodesArg === undefined ? [3, 5] : [Number(nodesArg) === 5 ? 5 : 3];
let failed = false;
for (const nodes of sizes) {
  const seed = seedArg !== undefined ? Number(seedArg) : (Math.random() * 2 ** 31) | 0;
  const started = Date.now();
  const result = fc.check(
    fc.property(scheduleArb(nodes, maxSteps), (s) => {
      runSchedule(s);
    }),
    { numRuns: seeds, seed, ...(path !== undefined ? { path } : {}) },
  );
  const secs = ((Date.now() - started) / 1000).toFixed(1);
  if (!result.failed) {
    console.log(`${nodes} nodes: ${result.numRuns} schedules passed in ${secs} s (seed ${seed})`);
    continue;
  }
  failed = true;
  console.log(`${nodes} nodes: FAILED after ${result.numRuns} schedules (seed ${seed}, path ${result.counterexamplePath ?? '?'})`);
  console.log(`replay: npm run sim -- --nodes ${nodes} --seed ${seed} --path ${result.counterexamplePath ?? ''}`);
  const err = result.errorInstance;
  console.log(err instanceof Error ? `${err.name}: ${err.message}` : String(err));
  const shrunk = result.counterexample?.[0];
  if (shrunk !== undefined) {
    console.log('shrunk schedule:');
    console.log(JSON.stringify(shrunk));
  }
}
process.exit(failed ? 1 : 0);
