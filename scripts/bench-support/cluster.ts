// A throwaway three-node cluster of real processes for trying the perf tools and for
// profiling: `node --import tsx scripts/bench-support/cluster.ts [--cpu-prof DIR]
// [--topic NAME:PARTITIONS ...]` (with PERF_HEAP_PROF=1, DIR gets allocation samples
// from heap-sampler.mjs instead of CPU profiles; with PERF_LOOP_MON=1, event loop delay
// and GC pauses from loop-monitor.mjs). Prints the bootstrap list on stdout once every broker
// is unfenced and the topics exist; SIGINT/SIGTERM stops the nodes with a controlled
// shutdown (so --cpu-prof profiles get written) and removes the data.
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { DEV_OVERRIDES, ProcessCluster, freePorts } from '../../src/node/process-cluster.ts';
import { RawClient } from '../../src/client/raw-client.ts';

const args = process.argv.slice(2);
const profDir = args.includes('--cpu-prof') ? args[args.indexOf('--cpu-prof') + 1] : undefined;
const topics = args.flatMap((a, i) => (args[i - 1] === '--topic' ? [a] : [])).map((t) => {
  const [name, parts] = t.split(':');
  return { name: name!, numPartitions: Number(parts ?? 6), replicationFactor: 3 };
});
/** Extra node flags for the brokers (PERF_NODE_FLAGS, space-separated), to try V8 settings. */
const extraFlags = (process.env.PERF_NODE_FLAGS ?? '').split(' ').filter((f) => f !== '');
const root = mkdtempSync(join(tmpdir(), 'raftka-perf-cluster-'));
const ports = await freePorts(6);
const cluster = ProcessCluster.prepare({
  root,
  nodeIds: [1, 2, 3],
  clientPorts: ports.slice(0, 3),
  controllerPorts: ports.slice(3),
  overrides: DEV_OVERRIDES,
  ...(profDir
    ? process.env.PERF_HEAP_PROF
      ? { nodeArgs: ['--import', fileURLToPath(new URL('./heap-sampler.mjs', import.meta.url))], env: { RAFTKA_HEAP_SAMPLE_DIR: profDir } }
      : process.env.PERF_LOOP_MON
        ? { nodeArgs: [...extraFlags, '--import', fileURLToPath(new URL('./loop-monitor.mjs', import.meta.url))], env: { RAFTKA_LOOP_DIR: profDir } }
        : { nodeArgs: ['--cpu-prof', `--cpu-prof-dir=${profDir}`] }
    : {}),
});
let stopping = false;
const stop = async () => {
  if (stopping) return;
  stopping = true;
  process.stderr.write('stopping the cluster\n');
  await cluster.stopAll(20_000);
  rmSync(root, { recursive: true, force: true });
  process.exit(0);
};
process.on('SIGINT', () => void stop());
process.on('SIGTERM', () => void stop());
cluster.startAll();
await cluster.waitReady(60_000, 50);
if (topics.length > 0) {
  const c = new RawClient(cluster.clientAddress(1));
  const r = await c.createTopics({ topics, timeoutMs: 20_000 });
  for (const t of r.topics) if (t.errorCode !== 0 && t.errorCode !== 36) throw new Error(`create ${t.name}: ${t.errorCode} ${t.errorMessage}`);
  c.close();
}
process.stdout.write(`${cluster.bootstrap}\n`);
process.stderr.write(`cluster up (data in ${root}${profDir ? `, cpu profiles to ${profDir}` : ''}); Ctrl-C stops it\n`);
