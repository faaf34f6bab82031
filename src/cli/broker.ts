// `raftka broker --config server.properties [--set key=value …]`: runs one node in the
// foreground. SIGTERM or SIGINT triggers a controlled shutdown (leaderships moved away,
// Raft leadership handed over), bounded by controlled.shutdown.timeout.ms.
import type { Command } from 'commander';
import { createLogger } from '../common/logger.ts';
import { RaftkaError } from '../common/errors.ts';
import { loadNodeConfig } from '../node-config.ts';
import { startNode } from '../node/node.ts';

function collect(value: string, previous: string[]): string[] {
  return [...previous, value];
}

export function parseOverrides(sets: readonly string[]): Record<string, string> {
  const out: Record<string, string> = {};
  for (const s of sets) {
    const eq = s.indexOf('=');
    if (eq <= 0) throw new RaftkaError('INVALID_CONFIG', `--set expects key=value, got ${JSON.stringify(s)}`);
    out[s.slice(0, eq).trim()] = s.slice(eq + 1).trim();
  }
  return out;
}

export function registerBrokerCommand(program: Command): void {
  program
    .command('broker')
    .description('run one Raftka node (broker and controller) in the foreground')
    .option('-c, --config <file>', 'server.properties with Kafka-style keys (node.id, listeners, log.dirs, controller.quorum.voters, …)')
    .option('--set <key=value>', 'override one configuration key (repeatable)', collect, [])
    .action(async (opts: { config?: string; set: string[] }) => {
      const cfg = loadNodeConfig(opts.config, parseOverrides(opts.set));
      const logger = createLogger({ name: 'raftka' });
      const node = await startNode(cfg, { logger });
      let stopping = false;
      const stop = (signal: string) => {
        if (stopping) return;
        stopping = true;
        logger.info({ signal }, 'shutting down');
        void node.shutdown().then(
          () => process.exit(0),
          (e: unknown) => {
            logger.error({ err: e }, 'shutdown failed');
            process.exit(1);
          },
        );
      };
      process.on('SIGTERM', () => stop('SIGTERM'));
      process.on('SIGINT', () => stop('SIGINT'));
    });
}
