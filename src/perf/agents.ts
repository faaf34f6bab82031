// Runs loads (producer instances, consumer members) in this thread or each in its own
// worker thread, behind one interface, so a coordinator does not care where they run.
// A worker gets its own event loop (and core, when one is free): one Node thread tops
// out well below what the cluster takes, so a load generator of several producers
// should not share one.
//
// Worker protocol: parent → worker {type:'go', atMs} | {type:'stop'};
// worker → parent {type:'ready'} | {type:'report', report} | {type:'done', final} | {type:'failed', message}.
import { Worker } from 'node:worker_threads';
import type { Load, LoadFinal, LoadReport } from './load.ts';
import { prepareConsumerLoad, type ConsumerLoadOptions } from './consumer-load.ts';
import { prepareProducerLoad, type ProducerLoadOptions } from './producer-load.ts';
import { prepareGroupConsumerLoad, type GroupConsumerLoadOptions } from './group-consumer-load.ts';

export type Job = { kind: 'produce'; opts: ProducerLoadOptions } | { kind: 'consume'; opts: ConsumerLoadOptions } | { kind: 'group'; opts: GroupConsumerLoadOptions };

export type WorkerMessage = { type: 'ready' } | { type: 'report'; report: LoadReport } | { type: 'done'; final: LoadFinal } | { type: 'failed'; message: string };
export type ParentMessage = { type: 'go'; atMs: number } | { type: 'stop' };

export function prepareJob(job: Job): Promise<Load> {
  switch (job.kind) {
    case 'produce':
      return prepareProducerLoad(job.opts);
    case 'consume':
      return prepareConsumerLoad(job.opts);
    case 'group':
      return prepareGroupConsumerLoad(job.opts);
  }
}

export interface Agent {
  /** Resolves once connected. */
  readonly ready: Promise<void>;
  /** Starts at wall-clock `atMs`; resolves with the final. */
  go(atMs: number, onReport: (r: LoadReport) => void): Promise<LoadFinal>;
  stop(): void;
  close(): Promise<void>;
}

export function inThreadAgent(job: Job): Agent {
  const load = prepareJob(job);
  return {
    ready: load.then(() => undefined),
    go: async (atMs, onReport) => (await load).run(atMs, onReport),
    stop: () => void load.then((l) => l.stop(), () => undefined),
    close: async () => (await load.catch(() => undefined))?.close(),
  };
}

const BOOT = new URL('./worker-boot.mjs', import.meta.url);
const ENTRY = new URL('./worker.ts', import.meta.url).href;

export function workerAgent(job: Job): Agent {
  const w = new Worker(BOOT, { workerData: { entry: ENTRY, job } });
  let onReport: (r: LoadReport) => void = () => undefined;
  let readyResolve!: () => void;
  let fail!: (e: Error) => void;
  let doneResolve!: (f: LoadFinal) => void;
  const ready = new Promise<void>((res, rej) => {
    readyResolve = res;
    fail = rej;
  });
  let doneReject!: (e: Error) => void;
  const done = new Promise<LoadFinal>((res, rej) => {
    doneResolve = res;
    doneReject = rej;
  });
  // Both settle paths may fire; keep unhandled rejections quiet until someone awaits.
  ready.catch(() => undefined);
  done.catch(() => undefined);
  const failed = (e: Error) => {
    fail(e);
    doneReject(e);
  };
  w.on('message', (m: WorkerMessage) => {
    switch (m.type) {
      case 'ready':
        readyResolve();
        break;
      case 'report':
        onReport(m.report);
        break;
      case 'done':
        doneResolve(m.final);
        break;
      case 'failed':
        failed(new Error(m.message));
        break;
    }
  });
  w.on('error', (e) => failed(e));
  w.on('exit', (code) => failed(new Error(`load worker exited with code ${code}`)));
  return {
    ready,
    go: (atMs, report) => {
      onReport = report;
      w.postMessage({ type: 'go', atMs } satisfies ParentMessage);
      return done;
    },
    stop: () => w.postMessage({ type: 'stop' } satisfies ParentMessage),
    close: async () => {
      await w.terminate();
    },
  };
}
