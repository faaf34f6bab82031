// Allocation sites of a .heapprofile (sampling heap profiler), by self bytes and by the
// repository's own functions inclusive. `node --import tsx scripts/bench-support/heapprofile-top.ts <file>... [--top N]`
import { readFileSync } from 'node:fs';
import { ownCode } from './own-code.ts';

interface HeapNode {
  callFrame: { functionName: string; url: string };
  selfSize: number;
  children: HeapNode[];
}

process.stdout.on('error', () => process.exit(0));
const args = process.argv.slice(2);
const top = args.includes('--top') ? Number(args[args.indexOf('--top') + 1]) : 25;
const short = (url: string) => url.replace(/^file:\/\//, '').replace(/.*\/node_modules\//, 'npm:').replace(/.*\/work\/main\//, '');
for (const f of args.filter((a) => a.endsWith('.heapprofile'))) {
  const root = (JSON.parse(readFileSync(f, 'utf8')) as { head: HeapNode }).head;
  const self = new Map<string, number>();
  const incl = new Map<string, number>();
  let total = 0;
  const walk = (n: HeapNode, stack: string[]) => {
    const l = `${n.callFrame.functionName || '(anonymous)'} ${short(n.callFrame.url)}`;
    const s = ownCode(n.callFrame.url) && !stack.includes(l) ? [...stack, l] : stack;
    if (n.selfSize > 0) {
      total += n.selfSize;
      self.set(l, (self.get(l) ?? 0) + n.selfSize);
      for (const x of s) incl.set(x, (incl.get(x) ?? 0) + n.selfSize);
    }
    for (const c of n.children) walk(c, s);
  };
  walk(root, []);
  console.log(`\n${f}: ${(total / 1e6).toFixed(0)} MB sampled`);
  for (const [k, b] of [...self].sort((a, b) => b[1] - a[1]).slice(0, top)) console.log(`  ${((100 * b) / total).toFixed(1).padStart(5)}%  ${k}`);
  console.log('  inclusive, src/ functions:');
  for (const [k, b] of [...incl].sort((a, b) => b[1] - a[1]).slice(0, top)) console.log(`  ${((100 * b) / total).toFixed(1).padStart(5)}%  ${k}`);
}
