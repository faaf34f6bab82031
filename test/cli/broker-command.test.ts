// `raftka broker-command` prints the command that starts a node the way `raftka dev`
// does; here that command, with --config appended, runs a real single-node cluster.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { execFile, spawn } from 'node:child_process';
import { closeSync, existsSync, openSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { BROKER_MALLOC_ENV, BROKER_NODE_FLAGS } from '../../src/node/broker-bundle.ts';
import { ProcessCluster, freePorts } from '../../src/node/process-cluster.ts';
import { RawClient } from '../../src/client/raw-client.ts';
import { shellWord } from '../../src/cli/broker-command.ts';
import { defer, tempDir, waitFor } from '../support/tmp.ts';

const bin = new URL('../../bin/raftka.mjs', import.meta.url).pathname;
const run = promisify(execFile);

test('shellWord quotes only what sh would split or expand', () => {
  assert.equal(shellWord('/usr/bin/node'), '/usr/bin/node');
  assert.equal(shellWord('--heap-growing-percent=10'), '--heap-growing-percent=10');
  assert.equal(shellWord('/opt/my raftka/b.mjs'), `'/opt/my raftka/b.mjs'`);
  assert.equal(shellWord(`it's`), `'it'\\''s'`);
});

test('raftka broker-command prints the bundle launch with the memory settings, and it runs a node', { timeout: 120_000 }, async (t) => {
  const json = JSON.parse((await run(process.execPath, [bin, 'broker-command', '--json'])).stdout) as { env: Record<string, string>; argv: string[] };
  assert.deepEqual(json.env, BROKER_MALLOC_ENV);
  const [node, ...args] = json.argv;
  assert.equal(node, process.execPath);
  assert.deepEqual(args.slice(0, BROKER_NODE_FLAGS.length), [...BROKER_NODE_FLAGS]);
  const bundle = args[BROKER_NODE_FLAGS.length]!;
  assert.match(bundle, /\.cache\/broker\/broker-[0-9a-f]{16}\.mjs$/);
  assert.ok(existsSync(bundle), `${bundle} exists`);
  assert.equal(args.at(-1), 'broker');
  const text = (await run(process.execPath, [bin, 'broker-command'])).stdout.trim();
  assert.equal(text, [...Object.entries(json.env).map(([k, v]) => `${k}=${v}`), ...json.argv].join(' '));

  // The printed command, --config appended, starts a node that serves clients.
  const root = tempDir(t, 'raftka-broker-command-');
  const ports = await freePorts(2);
  const pc = ProcessCluster.prepare({ root, nodeIds: [1], clientPorts: [ports[0]!], controllerPorts: [ports[1]!] });
  const log = openSync(join(root, 'node.log'), 'a');
  const child = spawn(node!, [...args, '--config', join(root, 'node-1.properties')], { stdio: ['ignore', log, log], env: { ...process.env, ...json.env } });
  closeSync(log);
  const exited = new Promise<number | null>((resolve) => child.once('exit', (code) => resolve(code)));
  defer(t, () => {
    if (child.exitCode === null && child.signalCode === null) child.kill('SIGKILL');
  });
  const client = new RawClient(pc.clientAddress(1));
  defer(t, () => client.close());
  await waitFor('the node to elect itself controller and unfence its broker', async () => {
    const d = await client.describeCluster({ timeoutMs: 1000 }).catch(() => undefined);
    return d !== undefined && d.controllerId === 1 && d.brokers.some((b) => b.id === 1 && !b.fenced);
  }, 60_000, 100);
  // What runs is what was printed: the bundle, the flags and the malloc settings.
  const cmdline = readFileSync(`/proc/${child.pid}/cmdline`, 'utf8').split('\0');
  assert.deepEqual(cmdline.slice(1, 1 + args.length), args);
  const environ = readFileSync(`/proc/${child.pid}/environ`, 'utf8').split('\0');
  for (const [k, v] of Object.entries(BROKER_MALLOC_ENV)) assert.ok(environ.includes(`${k}=${v}`), `${k}=${v} in the node's environment`);
  child.kill('SIGTERM');
  assert.equal(await exited, 0, 'a controlled shutdown on SIGTERM');
});
