/**
 * Handshake rate limiting, after wireguard-go's ratelimiter and its
 * under-load rule. A device is "under load" when handshake messages arrive
 * faster than it wants to spend CPU on them; it then demands MAC2 cookies
 * and allows each source address a small token bucket of handshakes.
 */
import {
  HANDSHAKE_LOAD_THRESHOLD_PER_SECOND,
  RATELIMIT_BURST,
  RATELIMIT_GC_INTERVAL_MS,
  RATELIMIT_PACKETS_PER_SECOND,
  UNDER_LOAD_AFTER_MS,
} from './constants.js';

interface Bucket {
  tokens: number;
  lastRefill: number;
}

/** A token bucket per source address: RATELIMIT_PACKETS_PER_SECOND, bursts of RATELIMIT_BURST. */
export class RateLimiter {
  private readonly buckets = new Map<string, Bucket>();
  private lastGc = 0;

  allow(source: string, now: number): boolean {
    if (now - this.lastGc > RATELIMIT_GC_INTERVAL_MS) this.collectGarbage(now);
    let bucket = this.buckets.get(source);
    if (bucket === undefined) {
      bucket = { tokens: RATELIMIT_BURST, lastRefill: now };
      this.buckets.set(source, bucket);
    } else {
      const refill = ((now - bucket.lastRefill) / 1000) * RATELIMIT_PACKETS_PER_SECOND;
      bucket.tokens = Math.min(RATELIMIT_BURST, bucket.tokens + refill);
      bucket.lastRefill = now;
    }
    if (bucket.tokens < 1) return false;
    bucket.tokens -= 1;
    return true;
  }

  get trackedSources(): number {
    return this.buckets.size;
  }

  private collectGarbage(now: number): void {
    this.lastGc = now;
    for (const [source, bucket] of this.buckets) {
      if (now - bucket.lastRefill > RATELIMIT_GC_INTERVAL_MS) this.buckets.delete(source);
    }
  }
}

/** Counts handshake messages per second; under load for UNDER_LOAD_AFTER_MS after crossing the threshold. */
export class HandshakeLoad {
  private windowStart = 0;
  private count = 0;
  private underLoadUntil = -Infinity;

  constructor(private readonly thresholdPerSecond = HANDSHAKE_LOAD_THRESHOLD_PER_SECOND) {}

  /** Record one handshake message and say whether the device is under load. */
  record(now: number): boolean {
    if (now - this.windowStart >= 1000) {
      this.windowStart = now;
      this.count = 0;
    }
    this.count++;
    if (this.count > this.thresholdPerSecond) this.underLoadUntil = now + UNDER_LOAD_AFTER_MS;
    return now < this.underLoadUntil;
  }
}
