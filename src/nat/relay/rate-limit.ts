/**
 * Per-source token buckets for the relay server's unauthenticated work (and
 * the answers it sends), so that a flood from one address costs little and
 * reflects nothing. The table is bounded: sources past `maxBuckets` share one
 * overflow bucket until sweep() (on the server's timer, never per datagram)
 * drops the buckets that have refilled, i.e. sources that went quiet.
 */

export interface RateLimits {
  ratePerSecond: number;
  burst: number;
  maxBuckets: number;
  overflowRatePerSecond: number;
  overflowBurst: number;
}

interface Bucket {
  tokens: number;
  updatedMs: number;
}

export class SourceRateLimiter {
  private readonly buckets = new Map<string, Bucket>();
  private readonly overflow: Bucket;
  /** Datagrams refused so far (tests and diagnostics). */
  limited = 0;

  constructor(private readonly limits: RateLimits) {
    for (const [name, value] of Object.entries(limits)) {
      if (!Number.isFinite(value) || value <= 0) throw new RangeError(`relay rate limit ${name} must be a positive number, got ${value}`);
    }
    this.overflow = { tokens: limits.overflowBurst, updatedMs: 0 };
  }

  get size(): number {
    return this.buckets.size;
  }

  /** Take one token for `source`; false when its bucket (or the shared overflow one) is empty. */
  take(source: string, nowMs: number): boolean {
    let bucket = this.buckets.get(source);
    let rate = this.limits.ratePerSecond;
    let burst = this.limits.burst;
    if (bucket === undefined) {
      if (this.buckets.size < this.limits.maxBuckets) {
        bucket = { tokens: burst, updatedMs: nowMs };
        this.buckets.set(source, bucket);
      } else {
        bucket = this.overflow;
        rate = this.limits.overflowRatePerSecond;
        burst = this.limits.overflowBurst;
      }
    }
    bucket.tokens = Math.min(burst, bucket.tokens + (Math.max(0, nowMs - bucket.updatedMs) * rate) / 1000);
    bucket.updatedMs = nowMs;
    if (bucket.tokens < 1) {
      this.limited++;
      return false;
    }
    bucket.tokens -= 1;
    return true;
  }

  /** Forget sources whose bucket has refilled (they have been quiet long enough to lose nothing). */
  sweep(nowMs: number): void {
    const refillMs = (this.limits.burst / this.limits.ratePerSecond) * 1000;
    for (const [source, bucket] of this.buckets) if (nowMs - bucket.updatedMs >= refillMs) this.buckets.delete(source);
  }

  clear(): void {
    this.buckets.clear();
  }
}
