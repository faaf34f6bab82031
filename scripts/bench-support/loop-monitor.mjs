// Loaded into a node process with `--import` (ProcessCluster nodeArgs) to find what stalls
// its event loop: the loop delay histogram and every GC pause by kind. Writes
// <RAFTKA_LOOP_DIR>/loop-<pid>.json at exit.
import { monitorEventLoopDelay, PerformanceObserver, constants } from 'node:perf_hooks';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';

const dir = process.env.RAFTKA_LOOP_DIR ?? '.';
const h = monitorEventLoopDelay({ resolution: 1 });
h.enable();
const kinds = { [constants.NODE_PERFORMANCE_GC_MAJOR]: 'major', [constants.NODE_PERFORMANCE_GC_MINOR]: 'minor', [constants.NODE_PERFORMANCE_GC_INCREMENTAL]: 'incremental', [constants.NODE_PERFORMANCE_GC_WEAKCB]: 'weakcb' };
const gc = {};
new PerformanceObserver((list) => {
  for (const e of list.getEntries()) {
    const k = kinds[e.detail?.kind] ?? String(e.detail?.kind);
    const g = (gc[k] ??= { count: 0, totalMs: 0, maxMs: 0, over10ms: 0 });
    g.count++;
    g.totalMs += e.duration;
    g.maxMs = Math.max(g.maxMs, e.duration);
    if (e.duration > 10) g.over10ms++;
  }
}).observe({ entryTypes: ['gc'] });
process.on('exit', () => {
  const ms = (ns) => ns / 1e6;
  writeFileSync(
    join(dir, `loop-${process.pid}.json`),
    JSON.stringify({ loopDelayMs: { p50: ms(h.percentile(50)), p99: ms(h.percentile(99)), p999: ms(h.percentile(99.9)), max: ms(h.max) }, gc }, null, 1),
  );
});
// SIGUSR2 starts the figures over (after a warm-up, say).
process.on('SIGUSR2', () => {
  h.reset();
  for (const k of Object.keys(gc)) delete gc[k];
});
