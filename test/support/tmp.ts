// Temp dirs for tests, removed when the test ends.
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { TestContext } from 'node:test';

type HasAfter = TestContext | { after(fn: () => void | Promise<void>): void };
const stacks = new WeakMap<object, Array<() => unknown>>();

/**
 * Registers cleanup that runs last-in first-out when the test ends (node runs `after`
 * hooks in registration order, which would remove a directory before closing the log
 * in it).
 */
export function defer(t: HasAfter, fn: () => unknown): void {
  let stack = stacks.get(t);
  if (!stack) {
    const s: Array<() => unknown> = [];
    stack = s;
    stacks.set(t, s);
    t.after(async () => {
      while (s.length > 0) await s.pop()!();
    });
  }
  stack.push(fn);
}

export function tempDir(t: HasAfter, prefix = 'raftka-'): string {
  const dir = mkdtempSync(join(tmpdir(), prefix));
  // RAFTKA_KEEP_TMP=1 keeps them (node logs, data dirs) for a post-mortem of a failure.
  if (!process.env.RAFTKA_KEEP_TMP) defer(t, () => rmSync(dir, { recursive: true, force: true }));
  return dir;
}

/** Polls `cond` until it holds or `timeoutMs` passes: a wait with a deadline, not a sleep. */
export async function waitFor<T>(
  what: string,
  cond: () => T | undefined | false | Promise<T | undefined | false>,
  timeoutMs = 10_000,
  intervalMs = 20,
): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const v = await cond();
    if (v !== undefined && v !== false) return v;
    if (Date.now() > deadline) throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}`);
    await new Promise((r) => setTimeout(r, intervalMs));
  }
}

/** Whether a process with this pid exists (signal 0 probes without sending anything). */
export function pidAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch {
    return false;
  }
}
