// `raftka broker-command [--json]`: the command line that starts a node as `raftka dev`,
// the tests and the benchmarks do: the broker bundle (built now if the sources changed)
// with the measured V8 and malloc settings. `raftka broker` itself runs in the CLI's own
// process, through tsx and without those settings (about twice the memory when idle);
// for nodes of your own, run what this prints followed by `--config server.properties`.
// Its own module, so that the broker bundle (which holds src/cli/broker.ts) never loads
// the bundler.
import type { Command } from 'commander';
import { BROKER_MALLOC_ENV, brokerLaunch } from '../node/broker-bundle.ts';
import { action } from './common.ts';

/** A word as POSIX sh reads it back (quoted only when it needs to be). */
export function shellWord(word: string): string {
  return /^[\w@%+=:,./-]+$/.test(word) ? word : `'${word.replace(/'/g, `'\\''`)}'`;
}

export function registerPrintBrokerCommand(program: Command): void {
  program
    .command('broker-command')
    .description('print the command that runs a node as raftka dev does (broker bundle, memory settings); append --config <file>')
    .option('--json', 'one JSON object: {env, argv}')
    .action(
      action('broker-command', (opts: { json?: boolean }) => {
        const launch = brokerLaunch();
        // The settings the launch adds or keeps from this environment.
        const env = Object.fromEntries(Object.keys(BROKER_MALLOC_ENV).map((k) => [k, launch.env[k]!]));
        const argv = [process.execPath, ...launch.args, 'broker'];
        if (opts.json) console.log(JSON.stringify({ env, argv }));
        else console.log([...Object.entries(env).map(([k, v]) => `${k}=${shellWord(v)}`), ...argv.map(shellWord)].join(' '));
      }),
    );
}
