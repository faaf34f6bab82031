// `raftka cluster describe`: brokers (fenced or not), the active controller and the
// quorum voters, from any broker.
import type { Command } from 'commander';
import { RawClient } from '../client/raw-client.ts';
import { errorByCode } from '../common/errors.ts';

export function registerClusterCommands(program: Command): void {
  const cluster = program.command('cluster').description('inspect the cluster');
  cluster
    .command('describe')
    .description('show brokers, the active controller and the quorum voters')
    .option('-b, --bootstrap <host:port>', 'any broker', '127.0.0.1:9092')
    .option('--json', 'print one JSON object')
    .action(async (opts: { bootstrap: string; json?: boolean }) => {
      const client = new RawClient(opts.bootstrap, { timeoutMs: 5000 });
      try {
        let r = await client.describeCluster();
        if (r.errorCode !== 0) throw new Error(`${errorByCode(r.errorCode)}: ${r.errorMessage}`);
        // Voter lag is known only on the Raft leader (the active controller): ask it.
        const ctl = r.brokers.find((b) => b.id === r.controllerId);
        if (ctl && r.voters.some((v) => v.lag < 0)) {
          const c2 = new RawClient(`${ctl.host}:${ctl.port}`, { timeoutMs: 5000 });
          try {
            const fromLeader = await c2.describeCluster();
            if (fromLeader.errorCode === 0) r = fromLeader;
          } catch {
            // keep what the bootstrap broker said
          } finally {
            c2.close();
          }
        }
        const out = {
          clusterId: r.clusterId,
          controller: r.controllerId,
          brokers: r.brokers.map((b) => ({ id: b.id, host: b.host, port: b.port, rack: b.rack === '' ? null : b.rack, fenced: b.fenced })),
          voters: r.voters.map((v) => ({ id: v.id, lag: v.lag })),
        };
        if (opts.json) {
          console.log(JSON.stringify(out));
          return;
        }
        console.log(`Cluster ${out.clusterId}, active controller: ${out.controller < 0 ? 'none' : `node ${out.controller}`}`);
        for (const b of out.brokers) console.log(`  broker ${b.id}  ${b.host}:${b.port}${b.rack ? `  rack ${b.rack}` : ''}  ${b.fenced ? 'FENCED' : 'unfenced'}`);
        console.log(`  voters: ${out.voters.map((v) => `${v.id}${v.id === out.controller ? ' (leader)' : ''}${v.lag >= 0 ? ` lag ${v.lag}` : ''}`).join(', ')}`);
      } finally {
        client.close();
      }
    });
}
