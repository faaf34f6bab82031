// Entry of a load worker thread (see agents.ts for the protocol).
import { parentPort, workerData } from 'node:worker_threads';
import { prepareJob, type Job, type ParentMessage, type WorkerMessage } from './agents.ts';

const port = parentPort!;
const post = (m: WorkerMessage) => port.postMessage(m);
const job = (workerData as { job: Job }).job;

try {
  const load = await prepareJob(job);
  port.on('message', (m: ParentMessage) => {
    if (m.type === 'stop') load.stop();
    else
      void load
        .run(m.atMs, (report) => post({ type: 'report', report }))
        .then(
          async (final) => {
            post({ type: 'done', final });
            await load.close();
          },
          (e: unknown) => post({ type: 'failed', message: e instanceof Error ? e.message : String(e) }),
        );
  });
  post({ type: 'ready' });
} catch (e) {
  post({ type: 'failed', message: e instanceof Error ? e.message : String(e) });
}
