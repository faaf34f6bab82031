// Entry point of a broker process that ProcessCluster starts (dev cluster, tests,
// benchmarks): only the `broker` command, so a node loads none of the CLI's other
// modules (load generators, charts, the Jepsen runner) and their dependencies.
import { Command } from 'commander';
import { registerBrokerCommand } from './broker.ts';

const program = new Command('raftka');
registerBrokerCommand(program);
try {
  await program.parseAsync(process.argv);
} catch (e) {
  console.error(`raftka broker: ${e instanceof Error ? e.message : String(e)}`);
  process.exitCode = 1;
}
