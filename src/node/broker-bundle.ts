// How a broker process is launched: `node <args> <entry> broker --config …`.
//
// Brokers run from one ES module bundled by esbuild from src/cli/broker-main.ts, not from
// the TypeScript sources through tsx. Measured on a three-node dev cluster right after
// start-up: 186 MB resident per broker through tsx with the whole CLI, 95 MB from the
// bundle (tsx's module-loader thread, its per-file transforms and source maps, and the
// CLI's other commands' dependencies all stay out). The bundle is built on first use in a
// process (about 0.1 s) and named by the hash of its content, so a changed source tree
// gets a new file and a stale one is never run. RAFTKA_BROKER_FROM_SOURCE=1 runs the
// sources through tsx instead (stack traces with TypeScript line numbers).
//
// The V8 and allocator settings below bound a broker's memory under load; measured with
// `npm run bench -- perf` (peak RSS per run in bench/report.md).
import { createHash } from 'node:crypto';
import { existsSync, mkdirSync, readdirSync, renameSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { buildSync } from 'esbuild';

const SOURCE_ENTRY = fileURLToPath(new URL('../cli/broker-main.ts', import.meta.url));
const REPO = fileURLToPath(new URL('../../', import.meta.url));
/**
 * Two directories below the repository root, like src/<dir>/: bundled modules keep their
 * `new URL('../../proto/…', import.meta.url)` look-ups, which then still find proto/.
 */
const BUNDLE_DIR = join(REPO, '.cache', 'broker');
/** Bundles older than this, other than the current one, are removed when a new one is written. */
const STALE_MS = 24 * 3600_000;

/**
 * Node flags for a broker, measured with the perf matrix. A 2 MB semi-space (V8's
 * default grows it to 16 MB) keeps the young generation small: a broker's short-lived
 * garbage is request objects, its bulk data lives in buffers outside the heap (peak RSS
 * 210 → 188 MB, throughput unchanged). A heap growing factor of 1.1 instead of V8's
 * dynamic 1.1-4 makes the collector run before dead record buffers pile up: fetch
 * buffers count towards V8's limits but their memory sits outside the heap, and peak RSS
 * during the consume runs went 159-164 → 142-148 MB, for about 5% of throughput.
 */
export const BROKER_NODE_FLAGS: readonly string[] = ['--max-semi-space-size=2', '--heap-growing-percent=10'];

/**
 * glibc malloc settings for a broker (applied unless the environment sets them). Record
 * buffers of a megabyte come and go with every fetch; a fixed mmap threshold returns
 * them to the system when freed instead of letting the heap keep them (glibc otherwise
 * raises the threshold after the first free), and two arenas stop the thread pool from
 * growing one arena per thread. Measured peak RSS during the consume runs 172-181 →
 * 157-165 MB.
 */
export const BROKER_MALLOC_ENV: Readonly<Record<string, string>> = {
  MALLOC_ARENA_MAX: '2',
  MALLOC_MMAP_THRESHOLD_: '131072',
};

let built: string | undefined;

/** Builds (once per process) the broker bundle and returns its path. */
export function brokerBundle(): string {
  if (built !== undefined && existsSync(built)) return built;
  const out = buildSync({
    entryPoints: [SOURCE_ENTRY],
    bundle: true,
    platform: 'node',
    format: 'esm',
    target: 'node20',
    packages: 'external',
    write: false,
    logLevel: 'silent',
  });
  const code = out.outputFiles[0]!.contents;
  const hash = createHash('sha256').update(code).digest('hex').slice(0, 16);
  const path = join(BUNDLE_DIR, `broker-${hash}.mjs`);
  if (!existsSync(path)) {
    mkdirSync(BUNDLE_DIR, { recursive: true });
    // Written aside and renamed: concurrent test processes may build the same bundle.
    const tmp = `${path}.${process.pid}.tmp`;
    writeFileSync(tmp, code);
    renameSync(tmp, path);
    removeStaleBundles(path);
  }
  built = path;
  return path;
}

function removeStaleBundles(keep: string): void {
  const now = Date.now();
  for (const name of readdirSync(BUNDLE_DIR)) {
    const p = join(BUNDLE_DIR, name);
    if (p === keep) continue;
    try {
      if (now - statSync(p).mtimeMs > STALE_MS) rmSync(p, { force: true });
    } catch {
      // Removed by another process meanwhile.
    }
  }
}

/** The node arguments and environment that start a broker process (before `broker --config …`). */
export function brokerLaunch(env: NodeJS.ProcessEnv = process.env): { args: string[]; env: NodeJS.ProcessEnv } {
  const entry = env['RAFTKA_BROKER_FROM_SOURCE'] === '1' ? ['--import', 'tsx', SOURCE_ENTRY] : [brokerBundle()];
  const malloc = Object.fromEntries(Object.entries(BROKER_MALLOC_ENV).filter(([k]) => env[k] === undefined));
  // RAFTKA_BROKER_NODE_ARGS: extra node flags for investigations (--inspect, --heap-prof, --import a monitor).
  const extra = env['RAFTKA_BROKER_NODE_ARGS']?.split(/\s+/).filter((a) => a.length > 0) ?? [];
  return { args: [...BROKER_NODE_FLAGS, ...extra, ...entry], env: { ...env, ...malloc } };
}
