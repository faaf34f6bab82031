// `raftka cluster describe`: brokers (fenced or not), the active controller and the
// quorum voters, from any broker (--bootstrap: a comma-separated list, default
// $RAFTKA_BOOTSTRAP or 127.0.0.1:9092).
import type { Command } from 'commander';
import { action, bootstrapOption, CliError, Cluster, codeLine, oneLineErrors } from './common.ts';

export function registerClusterCommands(program: Command): void {
  const cluster = oneLineErrors(program.command('cluster').description('inspect the cluster'), 'cluster');
  oneLineErrors(
    bootstrapOption(cluster.command('describe').description('show brokers (fenced or not), the active controller and the quorum voters with their lag').option('--json', 'print one JSON object')),
    'cluster describe',
  ).action(
    action('cluster describe', async (opts: { bootstrap: string; json?: boolean }) => {
      const conn = new Cluster(opts.bootstrap);
      try {
        // any() asks for metadata with the short bootstrap deadline: an unreachable cluster fails in seconds.
        const client = await conn.any();
        let r = await client.describeCluster({ timeoutMs: 5000 });
        if (r.errorCode !== 0) throw new CliError(codeLine(r.errorCode, r.errorMessage));
        // Voter lag is known only on the Raft leader (the active controller): ask it.
        const ctl = conn.broker(r.controllerId);
        if (ctl && r.voters.some((v) => v.lag < 0)) {
          try {
            const fromLeader = await ctl.describeCluster({ timeoutMs: 5000 });
            if (fromLeader.errorCode === 0) r = fromLeader;
          } catch {
            // keep what the first broker said
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
        conn.close();
      }
    }),
  );
}
