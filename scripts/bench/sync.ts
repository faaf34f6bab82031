// `npm run bench -- sync [--json] [--seconds S] [--writers W] [--rate R] [--hogs H]`:
// how fdatasync latency, as a broker's event loop sees it, depends on the CPU being busy.
//
// W writer processes (default 3, one per broker of the dev cluster) each append 1 KiB to
// two files in turn, R times a second (default 350, what each broker synced at 5,000
// acks=all records/s in the perf matrix), and fdatasync every append. Each writer records
// the time from its sync call until its JavaScript runs again. Four conditions, in this
// order: the CPU idle, then H busy-loop processes beside the writers (default: one per
// core, as when the brokers and the load generator keep both cores of this machine busy),
// each with the sync through libuv's thread pool (as the broker does) and on the event
// loop thread. The baseline, in the same run: one process, 4 KiB append + fdatasync one
// after the other. Fields: rawFdatasyncP99Ms, syncP{50,99,999}Ms{Idle,Busy},
// syncP99Ms{Idle,Busy}Inline, busyOverIdleP99.
import { spawn, type ChildProcess } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { availableParallelism, tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import type { BenchContext, BenchResult } from '../bench.ts';
import { numberArg } from '../bench-support/args.ts';
import { rawFdatasync } from '../bench-support/disk.ts';
import { summarizeEncoded, type LatencySummary } from '../../src/perf/latency.ts';

const WRITER = fileURLToPath(new URL('../bench-support/sync-writer.ts', import.meta.url));
const FILES_PER_WRITER = 2;

type Mode = 'pool' | 'inline';

interface Condition {
  hogs: number;
  mode: Mode;
}

/** Starts a process that keeps one core busy until killed. */
function startHog(): ChildProcess {
  return spawn(process.execPath, ['-e', 'for (;;) {}'], { stdio: 'ignore' });
}

interface Writer {
  child: ChildProcess;
  ready: Promise<void>;
  result: Promise<{ count: number; histogram: string }>;
}

function startWriter(dir: string, rate: number, seconds: number, mode: Mode): Writer {
  const child = spawn(process.execPath, ['--import', 'tsx', WRITER, dir, String(rate), String(seconds), String(FILES_PER_WRITER), mode], {
    stdio: ['pipe', 'pipe', 'inherit'],
  });
  let out = '';
  let markReady: () => void = () => undefined;
  const ready = new Promise<void>((resolve) => (markReady = resolve));
  child.stdout!.on('data', (d: Buffer) => {
    out += d.toString();
    if (out.startsWith('ready\n')) markReady();
  });
  const result = new Promise<{ count: number; histogram: string }>((resolve, reject) => {
    child.once('error', reject);
    child.once('exit', (code) => (code === 0 ? resolve(JSON.parse(out.slice('ready\n'.length)) as { count: number; histogram: string }) : reject(new Error(`sync writer exited with ${code}`))));
  });
  // A writer that dies before it is ready fails the run instead of hanging it.
  return { child, ready: Promise.race([ready, result.then(() => undefined)]), result };
}

async function measure(root: string, c: Condition, writers: number, rate: number, seconds: number): Promise<LatencySummary & { perSec: number }> {
  const dir = mkdtempSync(join(root, `${c.mode}-${c.hogs}-`));
  const started: ChildProcess[] = [];
  try {
    for (let i = 0; i < c.hogs; i++) started.push(startHog());
    const runs = Array.from({ length: writers }, () => startWriter(dir, rate, seconds, c.mode));
    started.push(...runs.map((r) => r.child));
    await Promise.all(runs.map((r) => r.ready));
    for (const r of runs) r.child.stdin!.end('go\n');
    const results = await Promise.all(runs.map((r) => r.result));
    const summary = summarizeEncoded(results.map((r) => r.histogram));
    return { ...summary, perSec: results.reduce((s, r) => s + r.count, 0) / seconds };
  } finally {
    for (const p of started) if (p.exitCode === null && p.signalCode === null) p.kill('SIGKILL');
    rmSync(dir, { recursive: true, force: true });
  }
}

export async function run(ctx: BenchContext): Promise<BenchResult> {
  const seconds = numberArg(ctx.args, '--seconds', 10);
  const writers = numberArg(ctx.args, '--writers', 3);
  const rate = numberArg(ctx.args, '--rate', 350);
  const hogs = numberArg(ctx.args, '--hogs', availableParallelism());
  const root = mkdtempSync(join(tmpdir(), 'raftka-bench-sync-'));
  try {
    ctx.progress('baseline: 4 KiB append + fdatasync in sequence, 2 s');
    const raw = rawFdatasync(root, 2);
    const busyLabel = `${hogs} busy loop${hogs === 1 ? '' : 's'}`;
    const conditions: Array<Condition & { key: string; label: string }> = [
      { key: 'Idle', label: 'CPU idle, thread pool', hogs: 0, mode: 'pool' },
      { key: 'Busy', label: `${busyLabel}, thread pool`, hogs, mode: 'pool' },
      { key: 'IdleInline', label: 'CPU idle, event loop thread', hogs: 0, mode: 'inline' },
      { key: 'BusyInline', label: `${busyLabel}, event loop thread`, hogs, mode: 'inline' },
    ];
    const got: Record<string, LatencySummary & { perSec: number }> = {};
    for (const c of conditions) {
      ctx.progress(`${writers} writers × ${rate} syncs/s, ${c.label}, ${seconds} s`);
      const s = await measure(root, c, writers, rate, seconds);
      got[c.key] = s;
      ctx.progress(`  ${s.perSec.toFixed(0)} syncs/s, p50 ${s.p50Ms.toFixed(2)} / p99 ${s.p99Ms.toFixed(2)} / p99.9 ${s.p999Ms.toFixed(2)} ms`);
    }
    const f = (v: number) => Number(v.toFixed(3));
    const idle = got['Idle']!;
    const busy = got['Busy']!;
    const json = {
      writers,
      syncsPerSecPerWriter: rate,
      hogs,
      rawFdatasyncPerSec: f(raw.perSec),
      rawFdatasyncP99Ms: f(raw.p99Ms),
      syncP50MsIdle: f(idle.p50Ms),
      syncP99MsIdle: f(idle.p99Ms),
      syncP999MsIdle: f(idle.p999Ms),
      syncP50MsBusy: f(busy.p50Ms),
      syncP99MsBusy: f(busy.p99Ms),
      syncP999MsBusy: f(busy.p999Ms),
      syncP99MsIdleInline: f(got['IdleInline']!.p99Ms),
      syncP99MsBusyInline: f(got['BusyInline']!.p99Ms),
      busyOverIdleP99: f(busy.p99Ms / idle.p99Ms),
    };
    const rows: Array<[string, string | number]> = [
      ['baseline: 4 KiB append + fdatasync in sequence', `${raw.perSec.toFixed(0)}/s, p50 ${raw.p50Ms.toFixed(2)} / p99 ${raw.p99Ms.toFixed(2)} ms`],
      ...conditions.map((c): [string, string] => {
        const s = got[c.key]!;
        return [`${writers} × ${rate}/s, ${c.label}`, `p50 ${s.p50Ms.toFixed(2)} / p99 ${s.p99Ms.toFixed(2)} / p99.9 ${s.p999Ms.toFixed(2)} ms`];
      }),
      ['p99 busy / idle (thread pool)', json.busyOverIdleP99],
    ];
    return { rows, json };
  } finally {
    rmSync(root, { recursive: true, force: true });
  }
}
