import { describe, expect, it } from 'vitest';
import { RATELIMIT_BURST, RATELIMIT_PACKETS_PER_SECOND, UNDER_LOAD_AFTER_MS } from '../../src/device/constants.js';
import { HandshakeLoad, RateLimiter } from '../../src/device/ratelimiter.js';

describe('RateLimiter', () => {
  it('allows a burst, then the refill rate, per source', () => {
    const limiter = new RateLimiter();
    let allowed = 0;
    for (let i = 0; i < 100; i++) if (limiter.allow('192.0.2.1', 0)) allowed++;
    expect(allowed).toBe(RATELIMIT_BURST);
    expect(limiter.allow('192.0.2.2', 0)).toBe(true); // another source has its own bucket
    // One second refills RATELIMIT_PACKETS_PER_SECOND tokens, capped at the burst.
    allowed = 0;
    for (let t = 1; t <= 1000; t++) if (limiter.allow('192.0.2.1', t)) allowed++;
    expect(allowed).toBeGreaterThanOrEqual(RATELIMIT_PACKETS_PER_SECOND - 1);
    expect(allowed).toBeLessThanOrEqual(RATELIMIT_PACKETS_PER_SECOND + RATELIMIT_BURST);
  });

  it('forgets idle sources', () => {
    const limiter = new RateLimiter();
    for (let i = 0; i < 1000; i++) limiter.allow(`10.0.${i >> 8}.${i & 255}`, 0);
    expect(limiter.trackedSources).toBe(1000);
    limiter.allow('10.9.9.9', 10_000);
    expect(limiter.trackedSources).toBe(1);
  });
});

describe('HandshakeLoad', () => {
  it('is under load only above the threshold, and stays so for UNDER_LOAD_AFTER_MS', () => {
    const load = new HandshakeLoad(3);
    expect([load.record(0), load.record(1), load.record(2)]).toEqual([false, false, false]);
    expect(load.record(3)).toBe(true);
    expect(load.record(3 + UNDER_LOAD_AFTER_MS - 1)).toBe(true);
    expect(load.record(3 + UNDER_LOAD_AFTER_MS + 1)).toBe(false);
  });
});
