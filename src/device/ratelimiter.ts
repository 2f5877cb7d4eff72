/**
 * Handshake rate limiting, after wireguard-go's ratelimiter and its
 * under-load rule. A device is "under load" when handshake messages arrive
 * faster than it wants to spend CPU on them, or when its global budget of
 * handshakes per second is spent; it then demands MAC2 cookies (which a
 * spoofed source never receives) and allows each source — an IPv4 address or
 * an IPv6 /64 — a small token bucket of handshakes.
 */
import { ipToBytes, type Endpoint } from './addr.js';
import {
  HANDSHAKE_BUDGET_PER_SECOND,
  HANDSHAKE_LOAD_THRESHOLD_PER_SECOND,
  RATELIMIT_IPV6_PREFIX_BYTES,
  RATELIMIT_BURST,
  RATELIMIT_GC_INTERVAL_MS,
  RATELIMIT_PACKETS_PER_SECOND,
  UNDER_LOAD_AFTER_MS,
} from './constants.js';

const V4_MAPPED_PREFIX = [0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff];

/**
 * The rate-limit bucket a source belongs to: its IPv4 address, or the /64 of
 * its IPv6 address (a v4-mapped one counts as IPv4), as wireguard-go keys them.
 */
export function rateLimitKey(source: Endpoint): string {
  if (source.family === 4) return source.address;
  const bytes = ipToBytes(source.address);
  if (V4_MAPPED_PREFIX.every((b, i) => bytes[i] === b)) return bytes.subarray(12).join('.');
  return Buffer.from(bytes.subarray(0, RATELIMIT_IPV6_PREFIX_BYTES)).toString('hex') + '/64';
}

interface Bucket {
  tokens: number;
  lastRefill: number;
}

/** A token bucket per source key (see rateLimitKey): RATELIMIT_PACKETS_PER_SECOND, bursts of RATELIMIT_BURST. */
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

/**
 * The device-wide budget of handshake messages given X25519 work: a token
 * bucket of `perSecond`, bursts of one second's worth. Running dry puts the
 * device under load for UNDER_LOAD_AFTER_MS, so a flood without cookies
 * cannot take the refill away from peers that hold one.
 */
export class HandshakeBudget {
  private tokens: number;
  private lastRefill = 0;
  private spentUntil = -Infinity;

  constructor(private readonly perSecond = HANDSHAKE_BUDGET_PER_SECOND) {
    this.tokens = perSecond;
  }

  /** The budget ran dry within the last UNDER_LOAD_AFTER_MS: handshakes need a cookie. */
  spent(now: number): boolean {
    return now < this.spentUntil;
  }

  /** Take one handshake's worth; false (and spent) when none is left. */
  take(now: number): boolean {
    this.tokens = Math.min(this.perSecond, this.tokens + ((now - this.lastRefill) / 1000) * this.perSecond);
    this.lastRefill = now;
    if (this.tokens < 1) {
      this.spentUntil = now + UNDER_LOAD_AFTER_MS;
      return false;
    }
    this.tokens -= 1;
    return true;
  }
}
