// Time is injected so pure cores and simulators never read the wall clock themselves.
// `nowMs` is wall-clock time (record timestamps, retention); `monotonicMs` never goes
// back (timeouts, latencies). The Jepsen clock nemesis skews `nowMs` only.

export interface Clock {
  nowMs(): number;
  monotonicMs(): number;
}

export const systemClock: Clock = {
  nowMs: () => Date.now(),
  monotonicMs: () => performance.now(),
};

/** A clock a test moves by hand. */
export class ManualClock implements Clock {
  private wallMs: number;
  private monoMs: number;

  constructor(startMs = 1_700_000_000_000) {
    this.wallMs = startMs;
    this.monoMs = 0;
  }

  nowMs(): number {
    return this.wallMs;
  }

  monotonicMs(): number {
    return this.monoMs;
  }

  advance(ms: number): void {
    if (ms < 0) throw new RangeError(`ManualClock.advance: ms must be >= 0, got ${ms}`);
    this.wallMs += ms;
    this.monoMs += ms;
  }

  /** Wall-clock jump (NTP step, skew); monotonic time is unaffected. */
  setWall(ms: number): void {
    this.wallMs = ms;
  }
}

/** A wall clock shifted by a settable skew, for the clock nemesis in test builds. */
export class SkewedClock implements Clock {
  skewMs = 0;
  constructor(private readonly base: Clock = systemClock) {}
  nowMs(): number {
    return this.base.nowMs() + this.skewMs;
  }
  monotonicMs(): number {
    return this.base.monotonicMs();
  }
}
