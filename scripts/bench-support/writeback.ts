// Writing back dirty pages between benchmark runs, so each run starts with the same
// page-cache state: `sync -f` (syncfs(2), GNU coreutils) of the file system holding the
// benchmark's data only, not every file system of the machine; plain `sync` where `-f`
// is not supported.
import { spawnSync } from 'node:child_process';

export function syncFileSystemOf(path: string): void {
  const r = spawnSync('sync', ['-f', path]);
  if (r.status !== 0) spawnSync('sync');
}
