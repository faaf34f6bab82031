// Loaded into a node process with `--import` (ProcessCluster nodeArgs) to sample every
// allocation, including objects the GC has since collected (node's --heap-prof keeps
// only live ones): the allocation rate by call site is what drives GC time. Writes
// <RAFTKA_HEAP_SAMPLE_DIR>/heap-<pid>.heapprofile at exit.
import { Session } from 'node:inspector';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';

const dir = process.env.RAFTKA_HEAP_SAMPLE_DIR ?? '.';
const session = new Session();
session.connect();
session.post('HeapProfiler.startSampling', { samplingInterval: 64 * 1024, includeObjectsCollectedByMajorGC: true, includeObjectsCollectedByMinorGC: true });
process.on('exit', () => {
  session.post('HeapProfiler.stopSampling', (err, res) => {
    if (!err) writeFileSync(join(dir, `heap-${process.pid}.heapprofile`), JSON.stringify(res.profile));
  });
});
