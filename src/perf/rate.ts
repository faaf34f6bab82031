// A rate limiter as a schedule rather than a token bucket with timers per record: record
// i is due at start + i / rate. The sender asks how many are due now, sends them at once
// (one send() call for all of them), and sleeps until the next is due. A sender that
// falls behind catches up in bursts instead of silently lowering the rate, so the
// offered load stays what was asked for (the coordinated-omission trap of a closed loop).
// Pure: time comes in as an argument.

export class RateSchedule {
  /**
   * @param ratePerSec records per second; <= 0 or Infinity means unlimited.
   * @param total records in all.
   */
  constructor(
    readonly ratePerSec: number,
    readonly total: number,
    readonly startMs: number,
  ) {
    if (!(total >= 0) || !Number.isSafeInteger(total)) throw new RangeError(`total must be a non-negative integer, got ${total}`);
  }

  get unlimited(): boolean {
    return !(this.ratePerSec > 0) || this.ratePerSec === Infinity;
  }

  /** Records that should have been sent by `nowMs` (never more than `total`). */
  dueBy(nowMs: number): number {
    if (this.unlimited) return this.total;
    const due = Math.floor(((nowMs - this.startMs) * this.ratePerSec) / 1000) + 1;
    return Math.max(0, Math.min(this.total, due));
  }

  /** When record number `index` (0-based) is due. */
  dueAt(index: number): number {
    if (this.unlimited) return this.startMs;
    return this.startMs + (index * 1000) / this.ratePerSec;
  }
}
