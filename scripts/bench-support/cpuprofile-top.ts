// Summarises V8 .cpuprofile files (from `node --cpu-prof`) as shares of busy samples
// (idle excluded): self time by function, and inclusive time of the repository's own
// functions (src/, each sample counted once per function on its stack), optionally from
// `--skip-s S` seconds into the profile on (to leave start-up out). `--callers NAME`
// splits NAME's self time by the frames above it.
// `node --import tsx scripts/bench-support/cpuprofile-top.ts <file.cpuprofile>... [--top N] [--skip-s S] [--callers NAME]`
import { readFileSync } from 'node:fs';
import { ownCode } from './own-code.ts';

interface Node {
  id: number;
  callFrame: { functionName: string; url: string; lineNumber: number };
  children?: number[];
}
interface Profile {
  nodes: Node[];
  samples: number[];
  timeDeltas: number[];
}

process.stdout.on('error', () => process.exit(0));
const args = process.argv.slice(2);
const opt = (name: string) => (args.includes(name) ? args[args.indexOf(name) + 1] : undefined);
const top = Number(opt('--top') ?? 30);
const skipUs = Number(opt('--skip-s') ?? 0) * 1e6;
const callersOf = opt('--callers');
const files = args.filter((a) => a.endsWith('.cpuprofile'));
const short = (url: string) => url.replace(/^file:\/\//, '').replace(/.*\/node_modules\//, 'npm:').replace(/.*\/work\/main\//, '');
const pct = (us: number, total: number) => `${((100 * us) / total).toFixed(1).padStart(5)}%`;

for (const f of files) {
  const p = JSON.parse(readFileSync(f, 'utf8')) as Profile;
  const byId = new Map(p.nodes.map((n) => [n.id, n]));
  const parent = new Map<number, number>();
  for (const n of p.nodes) for (const c of n.children ?? []) parent.set(c, n.id);
  const label = (n: Node) => `${n.callFrame.functionName || '(anonymous)'} ${short(n.callFrame.url)}`;
  const self = new Map<string, number>();
  const incl = new Map<string, number>();
  const callers = new Map<string, number>();
  let total = 0;
  let idle = 0;
  let t = 0;
  p.samples.forEach((id, i) => {
    const us = p.timeDeltas[i] ?? 0;
    t += us;
    if (t < skipUs) return;
    const n = byId.get(id)!;
    if (n.callFrame.functionName === '(idle)') {
      idle += us;
      return;
    }
    total += us;
    self.set(label(n), (self.get(label(n)) ?? 0) + us);
    const seen = new Set<string>();
    for (let q: number | undefined = id; q !== undefined; q = parent.get(q)) {
      const m = byId.get(q)!;
      if (!ownCode(m.callFrame.url)) continue;
      const l = label(m);
      if (seen.has(l)) continue;
      seen.add(l);
      incl.set(l, (incl.get(l) ?? 0) + us);
    }
    if (callersOf !== undefined && n.callFrame.functionName === callersOf) {
      const chain: string[] = [];
      for (let q = parent.get(id); q !== undefined && chain.length < 5; q = parent.get(q)) chain.push(label(byId.get(q)!));
      const k = chain.join(' < ');
      callers.set(k, (callers.get(k) ?? 0) + us);
    }
  });
  console.log(`\n${f}: busy ${(total / 1e6).toFixed(2)} s, idle ${(idle / 1e6).toFixed(2)} s (from ${skipUs / 1e6} s on)`);
  console.log('  self time:');
  for (const [k, us] of [...self].sort((a, b) => b[1] - a[1]).slice(0, top)) console.log(`  ${pct(us, total)}  ${k}`);
  console.log('  inclusive time of src/ functions:');
  for (const [k, us] of [...incl].sort((a, b) => b[1] - a[1]).slice(0, top)) console.log(`  ${pct(us, total)}  ${k}`);
  if (callersOf !== undefined) {
    console.log(`  callers of ${callersOf}:`);
    for (const [k, us] of [...callers].sort((a, b) => b[1] - a[1]).slice(0, 8)) console.log(`  ${pct(us, total)}  ${k}`);
  }
}
