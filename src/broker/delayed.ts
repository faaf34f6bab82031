// Delayed operations ("purgatory"): requests parked until a condition holds (acks=all
// waits for the high watermark, a long-poll fetch for bytes) or a deadline passes. Each
// waiter is re-checked only when its key is touched, never by polling, and the number
// parked is bounded so a flood of requests cannot exhaust memory.
import { RaftkaError } from '../common/errors.ts';

interface Waiter {
  tryComplete(): boolean;
  expire(): void;
  timer: NodeJS.Timeout;
  keys: readonly string[];
}

export class DelayedOperations {
  private readonly byKey = new Map<string, Set<Waiter>>();
  private count = 0;

  constructor(private readonly maxParked = 100_000) {}

  get parked(): number {
    return this.count;
  }

  /**
   * Parks an operation under `keys` unless `tryComplete` already succeeds. `tryComplete`
   * returns true once it has completed the operation; `expire` completes it at the deadline.
   */
  park(keys: readonly string[], timeoutMs: number, tryComplete: () => boolean, expire: () => void): void {
    if (tryComplete()) return;
    if (this.count >= this.maxParked) throw new RaftkaError('REQUEST_TIMED_OUT', `too many delayed requests (${this.count})`);
    const w: Waiter = {
      tryComplete,
      expire,
      keys,
      timer: setTimeout(() => {
        this.remove(w);
        expire();
      }, Math.max(0, timeoutMs)),
    };
    this.count++;
    for (const k of keys) {
      let set = this.byKey.get(k);
      if (!set) this.byKey.set(k, (set = new Set()));
      set.add(w);
    }
  }

  /** Something changed for `key`: completes every waiter whose condition now holds. */
  touch(key: string): void {
    const set = this.byKey.get(key);
    if (!set) return;
    for (const w of [...set]) {
      if (w.tryComplete()) this.remove(w);
    }
  }

  private remove(w: Waiter): void {
    clearTimeout(w.timer);
    let found = false;
    for (const k of w.keys) {
      const set = this.byKey.get(k);
      if (set?.delete(w)) found = true;
      if (set && set.size === 0) this.byKey.delete(k);
    }
    if (found) this.count--;
  }

  /** Completes every waiter now (shutdown): each sees its condition or its expiry. */
  expireAll(): void {
    const all = new Set<Waiter>();
    for (const set of this.byKey.values()) for (const w of set) all.add(w);
    for (const w of all) {
      this.remove(w);
      if (!w.tryComplete()) w.expire();
    }
  }
}
