// Worker threads do not inherit tsx's loader hooks: register them here, then load the
// TypeScript worker entry named in workerData.
import { register } from 'tsx/esm/api';
import { workerData } from 'node:worker_threads';

register();
await import(workerData.entry);
