// A SIGTERM or SIGHUP sent to the owner of a ProcessCluster alone (a supervisor, `timeout`,
// a test runner) must not leave its nodes running or its ports reserved: the signal's
// default action skips 'exit' handlers, so ProcessCluster kills its nodes and releases the
// ports first, and then lets the signal act.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { existsSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { PORT_RESERVATIONS_DIR } from '../../src/node/process-cluster.ts';
import { pidAlive, tempDir, waitFor } from '../support/tmp.ts';

const PROCESS_CLUSTER = fileURLToPath(new URL('../../src/node/process-cluster.ts', import.meta.url));

for (const signal of ['SIGTERM', 'SIGHUP'] as const) {
  test(`${signal} to the owner of a ProcessCluster kills its nodes, then ends the owner as the signal does`, { timeout: 60_000 }, async (t) => {
    const root = tempDir(t, 'raftka-signals-');
    const owner = join(root, 'owner.mts');
    writeFileSync(
      owner,
      `import { DEV_OVERRIDES, ProcessCluster, freePorts } from ${JSON.stringify(PROCESS_CLUSTER)};
const ports = await freePorts(2);
const c = ProcessCluster.prepare({ root: ${JSON.stringify(join(root, 'cluster'))}, nodeIds: [1], clientPorts: [ports[0]], controllerPorts: [ports[1]], overrides: DEV_OVERRIDES });
c.startAll();
process.stdout.write(JSON.stringify({ node: c.pid(1), ports }) + '\\n');
setInterval(() => undefined, 1000);
`,
    );
    const child = spawn(process.execPath, ['--import', 'tsx', owner], { stdio: ['ignore', 'pipe', 'inherit'] });
    let out = '';
    child.stdout.on('data', (b: Buffer) => (out += b.toString()));
    const exited = new Promise<NodeJS.Signals | null>((resolve) => child.once('exit', (_code, sig) => resolve(sig)));
    const started: { node?: number } = {};
    t.after(() => {
      if (child.exitCode === null && child.signalCode === null) child.kill('SIGKILL');
      if (started.node !== undefined && pidAlive(started.node)) process.kill(started.node, 'SIGKILL');
    });
    const owned = await waitFor('the node pid', () => (out.includes('\n') ? (JSON.parse(out.split('\n')[0]!) as { node: number; ports: number[] }) : undefined), 30_000, 20);
    const nodePid = owned.node;
    for (const p of owned.ports) assert.ok(existsSync(join(PORT_RESERVATIONS_DIR, String(p))), `port ${p} reserved`);
    started.node = nodePid;
    assert.ok(pidAlive(nodePid), 'the node runs');
    child.kill(signal);
    assert.equal(await exited, signal, 'the owner ended by the signal, as without the handler');
    await waitFor('the node process to be gone', () => (pidAlive(nodePid) ? undefined : true), 10_000, 20);
    for (const p of owned.ports) assert.ok(!existsSync(join(PORT_RESERVATIONS_DIR, String(p))), `port ${p} still reserved after its owner died`);
  });
}
