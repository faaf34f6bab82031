// Baseline far ends in processes of their own (scripts/bench-support/*-sink.ts and the
// broker stand-in): each prints its port on stdout and exits on SIGTERM. A benchmark's
// baseline runs against one of them in the same run as the thing it is compared with.
import { spawn } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import * as grpc from '@grpc/grpc-js';
import { DATA_CHANNEL_OPTIONS } from '../../src/proto/rpc.ts';

export interface Sink {
  port: Promise<number>;
  pid: number | undefined;
  kill(): void;
}

/** Starts scripts/bench-support/`script` (run through tsx) and learns its port. */
export function spawnSink(script: string, args: readonly string[] = []): Sink {
  const child = spawn(process.execPath, ['--import', 'tsx', fileURLToPath(new URL(`./${script}`, import.meta.url)), ...args], { stdio: ['ignore', 'pipe', 'inherit'] });
  const port = new Promise<number>((resolve, reject) => {
    child.stdout!.once('data', (d: Buffer) => resolve(Number(d.toString().trim())));
    child.once('exit', (code) => reject(new Error(`${script} exited ${code}`)));
  });
  return { port, pid: child.pid, kill: () => child.kill('SIGTERM') };
}

export interface RawGrpcResult {
  mbs: number;
  /** This process's CPU (all threads) per MB sent, ms. */
  cpuMsPerMB: number;
}

/**
 * A grpc-js bidi stream to grpc-sink.ts in another process, `payload` written over and
 * over for `seconds`, each message answered, `inFlight` unanswered at most. The sink's
 * HTTP/2 receive window is grpc-js's default unless `receiveWindowBytes` raises it.
 */
export async function rawGrpcStream(payload: Buffer, seconds: number, inFlightMax = 12, receiveWindowBytes = 0): Promise<RawGrpcResult> {
  const sink = spawnSink('grpc-sink.ts', receiveWindowBytes > 0 ? [String(receiveWindowBytes)] : []);
  try {
    const port = await sink.port;
    const client = new grpc.Client(`127.0.0.1:${port}`, grpc.credentials.createInsecure(), DATA_CHANNEL_OPTIONS);
    const identity = (b: Buffer) => b;
    const call = client.makeBidiStreamRequest('/bench.Sink/Stream', identity, identity, new grpc.Metadata());
    let answered = 0;
    let inFlight = 0;
    let wake: (() => void) | undefined;
    call.on('data', () => {
      answered++;
      inFlight--;
      wake?.();
    });
    const cpu0 = process.cpuUsage();
    const t0 = performance.now();
    const end = t0 + seconds * 1000;
    while (performance.now() < end) {
      while (inFlight >= inFlightMax) await new Promise<void>((r) => (wake = r));
      inFlight++;
      if (!call.write(payload)) await new Promise((r) => call.once('drain', r));
    }
    while (inFlight > 0) await new Promise<void>((r) => (wake = r));
    const mb = (answered * payload.length) / 1e6;
    const mbs = mb / ((performance.now() - t0) / 1000);
    const cpu = process.cpuUsage(cpu0);
    const closed = new Promise<void>((r) => call.once('status', () => r()));
    call.on('error', () => undefined); // the status event reports the end either way
    call.end();
    await closed;
    client.close();
    return { mbs, cpuMsPerMB: (cpu.user + cpu.system) / 1000 / mb };
  } finally {
    sink.kill();
  }
}
