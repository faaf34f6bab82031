// `raftka dev` (what `npm start` runs): three nodes on 127.0.0.1 as separate processes,
// client ports 9092-9094, data under ./.raftka/dev (kept across restarts). Waits until a
// controller is elected and every broker is unfenced, prints the bootstrap address, and
// on Ctrl-C stops all three with a controlled shutdown.
import type { Command } from 'commander';
import { resolve } from 'node:path';
import { DEV_OVERRIDES, ProcessCluster } from '../node/process-cluster.ts';

export function registerDevCommand(program: Command): void {
  program
    .command('dev')
    .description('start the three-node dev cluster on 127.0.0.1 (Ctrl-C stops it)')
    .option('--dir <dir>', 'data directory', '.raftka/dev')
    .option('--base-port <port>', 'first client port (then +1, +2); controller ports are base+100…', '9092')
    .action(async (opts: { dir: string; basePort: string }) => {
      const base = Number(opts.basePort);
      const ids = [1, 2, 3];
      const root = resolve(opts.dir);
      const cluster = ProcessCluster.prepare({
        root,
        nodeIds: ids,
        clientPorts: ids.map((_, i) => base + i),
        controllerPorts: ids.map((_, i) => base + 100 + i),
        overrides: DEV_OVERRIDES,
      });
      const t0 = Date.now();
      cluster.startAll();
      let stopping = false;
      const stop = async () => {
        if (stopping) return;
        stopping = true;
        console.log('\nStopping the dev cluster…');
        await cluster.stopAll();
        console.log('Stopped.');
        process.exit(0);
      };
      process.on('SIGINT', () => void stop());
      process.on('SIGTERM', () => void stop());
      try {
        const r = await cluster.waitReady(60_000);
        console.log(`Raftka dev cluster ${r.clusterId} is ready in ${Date.now() - t0} ms (controller: node ${r.controllerId})`);
        console.log(`  bootstrap: ${cluster.bootstrap}`);
        console.log(`  data: ${root}   logs: ${root}/node-{1,2,3}.log`);
        console.log('Press Ctrl-C to stop.');
      } catch (e) {
        console.error(`raftka dev: ${(e as Error).message}`);
        await cluster.killAll();
        process.exit(1);
      }
    });
}
