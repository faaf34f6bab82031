// `raftka jepsen`: Jepsen-style correctness runs against a fresh local cluster (see
// src/jepsen/runner.ts). Exit code 0 only when every run was valid.
import { Option, type Command } from 'commander';
import { FAULT_KINDS, type FaultKind } from '../jepsen/fault-api.ts';
import { runSuite } from '../jepsen/runner.ts';
import { parseSchedule } from '../jepsen/schedule.ts';
import { action, CliError, intArg, oneLineErrors } from './common.ts';

interface JepsenFlags {
  nodes: number;
  time: number;
  nemesis: string;
  runs: number;
  seed?: number;
  replay?: number;
  unsafe?: boolean;
  flushBeforeAck: boolean;
  reportDir: string;
  shrinkRuns: number;
  schedule?: string;
}

export function parseNemesis(s: string): FaultKind[] {
  const kinds = s
    .split(',')
    .map((x) => x.trim())
    .filter((x) => x !== '' && x !== 'none');
  for (const k of kinds) {
    if (!(FAULT_KINDS as readonly string[]).includes(k)) throw new CliError(`--nemesis: unknown fault ${JSON.stringify(k)}; choose from ${FAULT_KINDS.join(', ')} (or none)`);
  }
  return [...new Set(kinds)] as FaultKind[];
}

export function registerJepsenCommand(program: Command): void {
  const cmd = program
    .command('jepsen')
    .description('run Jepsen-style correctness tests: a fresh cluster, a workload, injected faults, a checked history and a report')
    .addOption(new Option('--nodes <n>', 'cluster size').choices(['3', '5']).default('3'))
    .option('--time <s>', 'workload seconds per run', intArg(5, 3600), 30)
    .option('--nemesis <kinds>', `faults, comma-separated: ${FAULT_KINDS.join(',')} (or none)`, FAULT_KINDS.join(','))
    .option('--runs <n>', 'runs, each with its own seed', intArg(1, 10_000), 1)
    .option('--seed <n>', 'seed of the first run (run r uses seed + r); random by default', intArg(0, 2 ** 31 - 1))
    .option('--replay <seed>', 'repeat the run of this seed (with the same --nodes, --time, --nemesis, --unsafe and --no-flush-before-ack)', intArg(0, 2 ** 31 - 1))
    .option('--unsafe', 'acks=1, unclean leader election, min.insync.replicas 1, and a fixed schedule built to lose acknowledged writes (--nemesis is ignored)')
    .option(
      '--no-flush-before-ack',
      'topics with flush.before.ack=false (acknowledged once every in-sync replica wrote it, unsynced); every power loss of a run then hits the same one node, and partitions whose replicas all stopped uncleanly get an unclean election of the most complete log after the heal',
    )
    .option('--report-dir <dir>', 'where run reports go', 'report')
    .option('--shrink-runs <n>', 'cluster runs spent shrinking a failing schedule', intArg(0, 1000), 5)
    .option('--schedule <json>', 'run exactly this schedule once (the JSON a failure prints), with --seed for the nemesis and workload choices')
    .action(
      action('jepsen', async (flags: Omit<JepsenFlags, 'nodes'> & { nodes: string }) => {
        const kinds = parseNemesis(flags.nemesis);
        const schedule = flags.schedule !== undefined ? parseSchedule(flags.schedule) : undefined;
        const outcome = await runSuite({
          nodes: Number(flags.nodes),
          timeMs: flags.time * 1000,
          kinds,
          unsafe: flags.unsafe ?? false,
          flushBeforeAck: flags.flushBeforeAck,
          reportDir: flags.reportDir,
          runs: flags.runs,
          ...(flags.seed !== undefined ? { seed: flags.seed } : {}),
          ...(flags.replay !== undefined ? { replay: flags.replay } : {}),
          shrinkRuns: flags.shrinkRuns,
          ...(schedule ? { schedule } : {}),
          print: (text) => console.log(text),
        });
        const valid = outcome.outcomes.filter((o) => o.valid).length;
        console.log(`jepsen: ${valid} of ${outcome.outcomes.length} run(s) valid${outcome.failure ? `; failing seed ${outcome.failure.seed}` : ''}`);
        // Explicit: a client channel still backing off must not keep a finished run alive.
        process.exit(outcome.valid ? 0 : 1);
      }),
    );
  oneLineErrors(cmd, 'jepsen');
}
