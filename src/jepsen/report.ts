/**
 * A run's report directory: `history.jsonl` (history.ts format), `results.json` (the
 * checker's result, the schedule, the seed, the options) and `index.html` with the
 * anomaly table, a latency-over-time scatter of sends and polls coloured by outcome with
 * the nemesis windows shaded, and throughput over time. Charts are vega-lite specs
 * rendered headless to SVG and inlined, so the page needs no network or script.
 *
 * The data shaping (latencies, windows, throughput) is pure and exported for tests.
 */
import { mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import * as vega from 'vega';
import * as vl from 'vega-lite';
import { ANOMALY_NAMES, type CheckResult } from './checker.ts';
import { formatHistory, isNemesisOp, type History, type Op } from './history.ts';
import type { Schedule } from './schedule.ts';

export interface ReportInput {
  readonly runId: string;
  readonly seed: number;
  readonly schedule: Schedule;
  readonly options: { readonly nodes: number; readonly timeMs: number; readonly kinds: readonly string[]; readonly unsafe: boolean; readonly flushBeforeAck?: boolean };
  readonly history: History;
  readonly result: CheckResult;
  readonly uncovered: readonly string[];
  readonly summary: string;
}

export interface LatencyPoint {
  /** Seconds since the run started, at the invoke. */
  readonly t: number;
  readonly ms: number;
  readonly f: string;
  readonly type: string;
}

export interface NemesisWindow {
  readonly start: number;
  readonly end: number;
  readonly fault: string;
}

export interface ThroughputPoint {
  /** Start of the one-second bin (s). */
  readonly second: number;
  readonly series: string;
  readonly count: number;
}

const NS_PER_S = 1e9;
/** Nemesis ops that end a fault (nemesis.ts's heal ops and the runner's final heal). */
const HEALING_FS = new Set(['heal', 'start', 'resume', 'clock-reset']);

/** One point per completed send or poll: its latency, at its invoke time. */
export function latencyPoints(history: History): LatencyPoint[] {
  const open = new Map<number, Op>();
  const out: LatencyPoint[] = [];
  for (const op of history) {
    if (isNemesisOp(op) || (op.f !== 'send' && op.f !== 'poll')) continue;
    if (op.type === 'invoke') {
      open.set(op.process, op);
      continue;
    }
    const inv = open.get(op.process);
    open.delete(op.process);
    if (inv === undefined) continue;
    out.push({ t: inv.time / NS_PER_S, ms: Math.max((op.time - inv.time) / 1e6, 0.01), f: op.f, type: op.type });
  }
  return out;
}

/**
 * The time each fault was in effect: from a fault op's invoke to the completion of the
 * next healing op (or the end of the history when none came).
 */
export function nemesisWindows(history: History): NemesisWindow[] {
  const out: NemesisWindow[] = [];
  const endOfHistory = (history[history.length - 1]?.time ?? 0) / NS_PER_S;
  let current: { start: number; fault: string } | undefined;
  for (const op of history) {
    if (!isNemesisOp(op)) continue;
    if (HEALING_FS.has(op.f)) {
      if (current && op.type !== 'invoke') {
        out.push({ start: current.start, end: op.time / NS_PER_S, fault: current.fault });
        current = undefined;
      }
    } else if (op.type === 'invoke' && current === undefined) {
      current = { start: op.time / NS_PER_S, fault: op.f };
    }
  }
  if (current) out.push({ start: current.start, end: endOfHistory, fault: current.fault });
  return out;
}

/** Completed sends and polls per second, by f and outcome. */
export function throughput(history: History): ThroughputPoint[] {
  const bins = new Map<string, ThroughputPoint & { count: number }>();
  for (const op of history) {
    if (isNemesisOp(op) || op.type === 'invoke' || (op.f !== 'send' && op.f !== 'poll')) continue;
    const second = Math.floor(op.time / NS_PER_S);
    const series = `${op.f} ${op.type}`;
    const k = `${second}|${series}`;
    const b = bins.get(k);
    if (b) b.count++;
    else bins.set(k, { second, series, count: 1 });
  }
  return [...bins.values()].sort((a, b) => a.second - b.second || a.series.localeCompare(b.series));
}

async function render(spec: vl.TopLevelSpec): Promise<string> {
  const view = new vega.View(vega.parse(vl.compile(spec).spec), { renderer: 'none' });
  try {
    return await view.toSVG();
  } finally {
    view.finalize();
  }
}

const SCHEMA = 'https://vega.github.io/schema/vega-lite/v6.json';
const OUTCOME_COLORS = { domain: ['ok', 'fail', 'info'], range: ['#54a24b', '#e45756', '#f58518'] };

function windowLayer(windows: readonly NemesisWindow[], maxT: number): object {
  // A window never drawn past the data: the shading must not stretch the time axis.
  return {
    name: 'nemesis_windows',
    data: { values: windows.map((w) => ({ ...w, end: Math.min(w.end, Math.max(maxT, w.start)) })) },
    mark: { type: 'rect', color: '#888888', opacity: 0.18 },
    encoding: {
      x: { field: 'start', type: 'quantitative' },
      x2: { field: 'end' },
      tooltip: [{ field: 'fault', type: 'nominal' }],
    },
  };
}

export function latencyChart(history: History): Promise<string> {
  const points = latencyPoints(history);
  const maxT = (history[history.length - 1]?.time ?? 0) / NS_PER_S;
  return render({
    $schema: SCHEMA,
    title: 'Latency of sends and polls (nemesis windows shaded)',
    width: 760,
    height: 300,
    layer: [
      windowLayer(nemesisWindows(history), maxT),
      {
        name: 'latency_points',
        data: { values: points },
        mark: { type: 'point', filled: true, size: 14, opacity: 0.6 },
        encoding: {
          x: { field: 't', type: 'quantitative', title: 'time (s)' },
          y: { field: 'ms', type: 'quantitative', scale: { type: 'log' }, title: 'latency (ms)' },
          color: { field: 'type', type: 'nominal', title: 'outcome', scale: OUTCOME_COLORS },
          shape: { field: 'f', type: 'nominal', title: 'op' },
        },
      },
    ],
  } as vl.TopLevelSpec);
}

export function throughputChart(history: History): Promise<string> {
  const maxT = (history[history.length - 1]?.time ?? 0) / NS_PER_S;
  return render({
    $schema: SCHEMA,
    title: 'Throughput: completed sends and polls per second',
    width: 760,
    height: 220,
    layer: [
      windowLayer(nemesisWindows(history), maxT),
      {
        name: 'throughput_lines',
        data: { values: throughput(history) },
        mark: { type: 'line', point: true },
        encoding: {
          x: { field: 'second', type: 'quantitative', title: 'time (s)' },
          y: { field: 'count', type: 'quantitative', title: 'ops/s' },
          color: { field: 'series', type: 'nominal', title: null },
        },
      },
    ],
  } as vl.TopLevelSpec);
}

function esc(s: string): string {
  return s.replace(/[&<>"']/g, (c) => ({ '&': '&amp;', '<': '&lt;', '>': '&gt;', '"': '&quot;', "'": '&#39;' })[c]!);
}

/** The anomaly table: every anomaly the checker knows, with its count and examples. */
export function anomalyTable(result: CheckResult): string {
  const rows = ANOMALY_NAMES.map((name) => {
    const a = result.anomalies[name];
    const examples = a ? `<ul>${a.examples.map((e) => `<li>${esc(e.message)} <small>(ops ${esc(e.ops.join(', '))})</small></li>`).join('')}</ul>` : '';
    return `<tr class="${a ? 'found' : 'none'}" data-anomaly="${name}"><td>${name}</td><td>${a ? a.count : 0}</td><td>${examples}</td></tr>`;
  });
  return `<table class="anomalies"><thead><tr><th>anomaly</th><th>count</th><th>examples</th></tr></thead><tbody>${rows.join('')}</tbody></table>`;
}

export async function renderHtml(r: ReportInput): Promise<string> {
  const [latency, tput] = await Promise.all([latencyChart(r.history), throughputChart(r.history)]);
  const stats = r.result.stats ? `<pre>${esc(JSON.stringify(r.result.stats, null, 2))}</pre>` : '';
  return `<!doctype html>
<html><head><meta charset="utf-8"><title>Raftka Jepsen run ${esc(r.runId)}</title>
<style>body{font-family:system-ui,sans-serif;margin:2em;max-width:1000px}table{border-collapse:collapse}td,th{border:1px solid #ccc;padding:4px 8px;vertical-align:top;text-align:left}tr.found td{background:#fde2e1}.valid{color:#2b7a2b}.invalid{color:#b3261e}pre{background:#f6f6f6;padding:1em;overflow:auto}</style>
</head><body>
<h1>Run ${esc(r.runId)}: <span class="${r.result.valid && r.uncovered.length === 0 ? 'valid">VALID' : 'invalid">INVALID'}</span></h1>
<p>seed ${r.seed}; ${r.options.nodes} nodes; ${r.options.timeMs / 1000} s; nemesis ${esc(r.options.kinds.join(', ') || 'none')}${r.options.unsafe ? '; <b>unsafe mode</b>' : ''}${r.options.flushBeforeAck === false ? '; topics with flush.before.ack=false' : ''}. Replay: <code>raftka jepsen --replay ${r.seed} ${esc(runFlags(r.options))}</code></p>
<h2>Anomalies</h2>
${anomalyTable(r.result)}
${r.uncovered.length > 0 ? `<p class="invalid">Final reads could not read ${esc(r.uncovered.join(', '))} to the end.</p>` : ''}
<h2>Latency</h2>
${latency}
<h2>Throughput</h2>
${tput}
<h2>Summary</h2>
<pre>${esc(r.summary)}</pre>
<h2>Statistics</h2>
${stats}
<p>Files: <a href="history.jsonl">history.jsonl</a>, <a href="results.json">results.json</a>.</p>
</body></html>
`;
}

/** The CLI flags that make a run with these options again (after --replay or --seed). */
export function runFlags(o: { readonly nodes: number; readonly timeMs: number; readonly kinds: readonly string[]; readonly unsafe?: boolean; readonly flushBeforeAck?: boolean }): string {
  return [`--nodes ${o.nodes}`, `--time ${o.timeMs / 1000}`, `--nemesis ${o.kinds.join(',') || 'none'}`, ...(o.unsafe ? ['--unsafe'] : []), ...(o.flushBeforeAck === false ? ['--no-flush-before-ack'] : [])].join(' ');
}

/** Writes the report directory (created if needed). */
export async function writeReport(dir: string, r: ReportInput): Promise<void> {
  mkdirSync(dir, { recursive: true });
  writeFileSync(join(dir, 'history.jsonl'), formatHistory(r.history));
  const results = { runId: r.runId, seed: r.seed, options: r.options, schedule: r.schedule, valid: r.result.valid && r.uncovered.length === 0, result: r.result, uncoveredKeys: r.uncovered };
  writeFileSync(join(dir, 'results.json'), `${JSON.stringify(results, null, 2)}\n`);
  writeFileSync(join(dir, 'index.html'), await renderHtml(r));
}
