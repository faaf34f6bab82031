// SVG charts for the benchmark report, drawn with vega-lite (compiled to a vega spec and
// rendered headless: no canvas, no browser).
import * as vega from 'vega';
import * as vl from 'vega-lite';

async function render(spec: vl.TopLevelSpec): Promise<string> {
  const view = new vega.View(vega.parse(vl.compile(spec).spec), { renderer: 'none' });
  const svg = await view.toSVG();
  view.finalize();
  return svg;
}

export interface Bar {
  label: string;
  value: number;
  /** Colour group, e.g. "raftka" or "baseline". */
  kind: string;
}

/** Horizontal bars on a log scale (baselines run orders of magnitude apart). */
export function barChart(title: string, unit: string, bars: Bar[]): Promise<string> {
  const values = bars.filter((b) => Number.isFinite(b.value) && b.value > 0);
  // A log scale needs a domain clear of zero (bars would start at 0): whole decades.
  const lo = 10 ** Math.floor(Math.log10(Math.min(...values.map((b) => b.value), 1)));
  const hi = 10 ** Math.ceil(Math.log10(Math.max(...values.map((b) => b.value), 10)));
  const x = { field: 'value', type: 'quantitative' as const, scale: { type: 'log' as const, domain: [lo, hi] } };
  return render({
    $schema: 'https://vega.github.io/schema/vega-lite/v6.json',
    title,
    width: 520,
    height: { step: 26 },
    data: { values },
    layer: [
      {
        mark: { type: 'bar' },
        encoding: {
          y: { field: 'label', type: 'nominal', sort: null, title: null, axis: { labelLimit: 260 } },
          x: { ...x, title: unit, axis: { grid: true, format: '~s' } },
          color: { field: 'kind', type: 'nominal', title: null, scale: { range: ['#bab0ac', '#4c78a8'] }, legend: { orient: 'bottom' } },
        },
      },
      {
        mark: { type: 'text', align: 'left', dx: 4 },
        encoding: {
          y: { field: 'label', type: 'nominal', sort: null },
          x,
          text: { field: 'value', type: 'quantitative', format: ',.1f' },
        },
      },
    ],
  });
}

export interface LatencySeries {
  series: string;
  /** Percentile label → ms. */
  points: Array<{ percentile: string; ms: number }>;
}

/** Latency at each percentile, one line per series, log ms. */
export function latencyChart(title: string, series: LatencySeries[]): Promise<string> {
  const order = series[0]?.points.map((p) => p.percentile) ?? [];
  return render({
    $schema: 'https://vega.github.io/schema/vega-lite/v6.json',
    title,
    width: 520,
    height: 260,
    data: { values: series.flatMap((s) => s.points.filter((p) => Number.isFinite(p.ms) && p.ms > 0).map((p) => ({ series: s.series, percentile: p.percentile, ms: p.ms }))) },
    mark: { type: 'line', point: true },
    encoding: {
      x: { field: 'percentile', type: 'ordinal', sort: order, title: 'percentile' },
      y: { field: 'ms', type: 'quantitative', scale: { type: 'log' }, title: 'latency (ms)' },
      color: { field: 'series', type: 'nominal', title: null, legend: { orient: 'bottom', labelLimit: 400 } },
    },
  });
}
