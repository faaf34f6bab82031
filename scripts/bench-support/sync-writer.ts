// One writer process of `npm run bench -- sync`: appends 1 KiB to its files in turn at a
// fixed rate and fdatasyncs each append, the way a broker's logs sync under a fixed-rate
// produce, and records the time from the sync call to the moment JavaScript runs again
// after it. `pool` syncs through libuv's thread pool (fs.promises, as the broker does),
// `inline` on the event loop thread (fdatasyncSync).
// Args: DIR RATE SECONDS FILES pool|inline. Prints `ready` once started and begins when a
// line arrives on stdin, so no writer measures while another is still starting; then
// prints one JSON line: { count, histogram }.
import { fdatasyncSync, writeSync } from 'node:fs';
import { open, type FileHandle } from 'node:fs/promises';
import { join } from 'node:path';
import { LatencyRecorder } from '../../src/perf/latency.ts';

const [dir, rateArg, secondsArg, filesArg, mode] = process.argv.slice(2);
const rate = Number(rateArg);
const seconds = Number(secondsArg);
const files: FileHandle[] = [];
for (let i = 0; i < Number(filesArg); i++) files.push(await open(join(dir!, `w${process.pid}-${i}.log`), 'w'));
const payload = Buffer.alloc(1024, 0x63);
const latency = new LatencyRecorder();
const periodMs = 1000 / rate;
process.stdout.write('ready\n');
await new Promise((resolve) => process.stdin.once('data', resolve));
process.stdin.destroy();
const start = performance.now();
const end = start + seconds * 1000;
let n = 0;
let inFlight = 0;

async function appendAndSync(fh: FileHandle): Promise<void> {
  writeSync(fh.fd, payload);
  const t0 = performance.now();
  if (mode === 'inline') fdatasyncSync(fh.fd);
  else await fh.datasync();
  latency.record(performance.now() - t0);
}

function finish(): void {
  process.stdout.write(`${JSON.stringify({ count: n, histogram: latency.encode() })}\n`);
  process.exit(0);
}

// A fixed schedule (send i at start + i·period), so a slow sync does not lower the rate
// of the ones after it; as in the broker, syncs of different files overlap.
function next(): void {
  const now = performance.now();
  if (now >= end) {
    if (inFlight === 0) finish();
    else setTimeout(next, 1);
    return;
  }
  while (start + n * periodMs <= now) {
    const fh = files[n++ % files.length]!;
    inFlight++;
    void appendAndSync(fh).finally(() => inFlight--);
  }
  setTimeout(next, Math.max(0, start + n * periodMs - performance.now()));
}
next();
