/**
 * The protocol core never reads the real clock: a Clock is injected, so every
 * timer rule can be tested by advancing a fake one.
 */
export interface Clock {
  /** Monotonic milliseconds; only differences matter. */
  now(): number;
  /** Wall-clock milliseconds since the Unix epoch (TAI64N timestamps, last-handshake time). */
  wallTime(): number;
}

export const systemClock: Clock = {
  now: () => performance.now(),
  wallTime: () => Date.now(),
};

/** A clock that moves only when told to; for tests and simulations. */
export class ManualClock implements Clock {
  constructor(
    private monotonicMs = 0,
    private wallMs = 1_700_000_000_000,
  ) {}
  now(): number {
    return this.monotonicMs;
  }
  wallTime(): number {
    return this.wallMs;
  }
  advance(ms: number): void {
    this.monotonicMs += ms;
    this.wallMs += ms;
  }
}
