import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawn, type ChildProcess } from 'node:child_process';
import { existsSync, readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { defer, tempDir, waitFor } from '../support/tmp.ts';

const BIN = new URL('../../bin/raftka.mjs', import.meta.url).pathname;

function runCli(args: string[], env: NodeJS.ProcessEnv = {}): { child: ChildProcess; out: () => string; exited: Promise<{ code: number | null; signal: NodeJS.Signals | null }> } {
  const child = spawn(process.execPath, [BIN, 'jepsen', ...args], { env: { ...process.env, ...env }, stdio: ['ignore', 'pipe', 'pipe'] });
  let out = '';
  child.stdout!.on('data', (b: Buffer) => (out += b.toString()));
  child.stderr!.on('data', (b: Buffer) => (out += b.toString()));
  const exited = new Promise<{ code: number | null; signal: NodeJS.Signals | null }>((resolve) => child.once('exit', (code, signal) => resolve({ code, signal })));
  return { child, out: () => out, exited };
}

/** PIDs of processes whose command line mentions `path` (the nodes of a cluster rooted there). */
function processesUnder(path: string): number[] {
  const pids: number[] = [];
  for (const p of readdirSync('/proc')) {
    if (!/^\d+$/.test(p)) continue;
    try {
      if (readFileSync(`/proc/${p}/cmdline`, 'utf8').includes(path)) pids.push(Number(p));
    } catch {
      // exited meanwhile
    }
  }
  return pids;
}

function hasDir(dir: string, name: string): boolean {
  let entries;
  try {
    entries = readdirSync(dir, { withFileTypes: true });
  } catch {
    return false; // removed while we looked (a segment roll, a node restart)
  }
  for (const e of entries) {
    if (!e.isDirectory()) continue;
    if (e.name === name || hasDir(join(dir, e.name), name)) return true;
  }
  return false;
}

test('raftka jepsen: an unknown --nemesis kind is one clear line and exit code 1', async () => {
  const r = runCli(['--nemesis', 'kill,meteor', '--time', '5']);
  const { code } = await r.exited;
  assert.equal(code, 1);
  assert.match(r.out(), /raftka jepsen: --nemesis: unknown fault "meteor"; choose from kill, pause, partition, clock, power-loss/);
});

for (const [signal, exitCode, what] of [['SIGINT', 130, 'Ctrl-C'], ['SIGTERM', 143, 'SIGTERM']] as const) {
  test(`raftka jepsen: ${what} mid-run stops every node process and removes the temp root`, { timeout: 120_000 }, async (t) => {
    const tmp = tempDir(t, 'raftka-jepsen-sigint-');
    const reports = tempDir(t, 'raftka-jepsen-sigint-report-');
    const r = runCli(['--time', '60', '--nemesis', 'pause', '--seed', '1', '--report-dir', reports], { TMPDIR: tmp });
    defer(t, () => {
      if (r.child.exitCode === null) r.child.kill('SIGKILL');
    });
    // The run is under way once every node of the cluster is up and the workload started.
    const root = await waitFor(
      'the jepsen cluster to start',
      () => {
        const d = readdirSync(tmp).find((x) => x.startsWith('raftka-jepsen-'));
        return d !== undefined && processesUnder(join(tmp, d)).length === 3 && r.out().includes('run with seed') ? join(tmp, d) : undefined;
      },
      60_000,
      100,
    );
    // Topics exist (a replica directory of the workload's first partition): the workload runs.
    await waitFor('the workload to start', () => hasDir(root, 'jepsen0-0'), 60_000, 100);
    r.child.kill(signal);
    const { code } = await r.exited;
    assert.equal(code, exitCode, r.out());
    assert.deepEqual(processesUnder(root), [], 'no node process left');
    assert.equal(existsSync(root), false, 'temp root removed');
  });
}
