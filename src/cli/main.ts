// The `raftka` command. Each command group lives in its own module and registers itself
// on the program; this file only assembles them.
import { Command } from 'commander';
import { registerLogCommands } from './log.ts';
import { registerStorageCommands } from './storage.ts';
import { registerBrokerCommand } from './broker.ts';
import { registerPrintBrokerCommand } from './broker-command.ts';
import { registerDevCommand } from './dev.ts';
import { registerClusterCommands } from './cluster.ts';
import { registerTopicsCommands } from './topics.ts';
import { registerProduceCommand } from './produce.ts';
import { registerConsumeCommand } from './consume.ts';
import { registerGroupsCommands } from './groups.ts';
import { registerMetadataCommands } from './metadata.ts';
import { registerPerfCommands } from './perf.ts';
import { registerJepsenCommand } from './jepsen.ts';

export function buildProgram(): Command {
  const program = new Command('raftka')
    .description('Raftka: a Kafka-style replicated log broker with an embedded Raft metadata quorum')
    .version('0.1.0')
    // A mistake is one line with a pointer to the help, not the whole help text (which
    // buries the error); `raftka --help` and each subcommand's --help stay complete.
    .showHelpAfterError(false)
    .configureOutput({ outputError: (str, write) => write(`${str.trim().replace(/\s*\n\s*/g, ' ')} (run 'raftka --help' for the commands and options)\n`) });
  registerLogCommands(program);
  registerStorageCommands(program);
  registerBrokerCommand(program);
  registerPrintBrokerCommand(program);
  registerDevCommand(program);
  registerClusterCommands(program);
  registerTopicsCommands(program);
  registerProduceCommand(program);
  registerConsumeCommand(program);
  registerGroupsCommands(program);
  registerMetadataCommands(program);
  registerPerfCommands(program);
  registerJepsenCommand(program);
  return program;
}

const program = buildProgram();
try {
  await program.parseAsync(process.argv);
} catch (e) {
  console.error(`raftka: ${e instanceof Error ? e.message : String(e)}`);
  process.exitCode = 1;
}
