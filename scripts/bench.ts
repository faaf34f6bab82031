// `npm run bench -- <name> [--json] [options]`: runs scripts/bench/<name>.ts. Each
// benchmark measures its own baseline in the same run and returns rows for a table and
// one flat JSON object; with --json that object is the last line of stdout.
import { readdirSync } from 'node:fs';

export interface BenchContext {
  args: string[];
  json: boolean;
  /** Progress for people, on stderr so stdout stays parseable. */
  progress(msg: string): void;
}

export interface BenchResult {
  rows: Array<[string, string | number]>;
  json: Record<string, number | string | boolean>;
}

const dir = new URL('./bench/', import.meta.url);
const available = readdirSync(dir)
  .filter((f) => f.endsWith('.ts'))
  .map((f) => f.slice(0, -3));
const [name, ...rest] = process.argv.slice(2);
if (name === undefined || !available.includes(name)) {
  console.error(`usage: npm run bench -- <name> [--json]\nbenchmarks: ${available.join(', ')}`);
  process.exit(name === undefined ? 0 : 2);
}
const json = rest.includes('--json');
const ctx: BenchContext = {
  args: rest.filter((a) => a !== '--json'),
  json,
  progress: (msg) => process.stderr.write(`[${name}] ${msg}\n`),
};
const mod = (await import(new URL(`${name}.ts`, dir).href)) as { run(ctx: BenchContext): Promise<BenchResult> };
const result = await mod.run(ctx);
const width = Math.max(...result.rows.map(([k]) => k.length));
console.log(`\n${name} benchmark`);
for (const [k, v] of result.rows) console.log(`  ${k.padEnd(width)}  ${typeof v === 'number' ? fmt(v) : v}`);
if (json) console.log(JSON.stringify(result.json));

function fmt(v: number): string {
  return Number.isInteger(v) ? String(v) : v.toFixed(2);
}
