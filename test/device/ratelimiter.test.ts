import { describe, expect, it } from 'vitest';
import { RATELIMIT_BURST, RATELIMIT_PACKETS_PER_SECOND, UNDER_LOAD_AFTER_MS } from '../../src/device/constants.js';
import { HandshakeBudget, HandshakeLoad, RateLimiter, rateLimitKey } from '../../src/device/ratelimiter.js';

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

describe('rateLimitKey', () => {
  const v6 = (address: string) => rateLimitKey({ family: 6, address, port: 51820 });
  it('keys IPv4 by address and IPv6 by /64, so one host cannot take a fresh bucket per address of its /64', () => {
    expect(rateLimitKey({ family: 4, address: '192.0.2.1', port: 1 })).toBe(rateLimitKey({ family: 4, address: '192.0.2.1', port: 2 }));
    expect(rateLimitKey({ family: 4, address: '192.0.2.1', port: 1 })).not.toBe(rateLimitKey({ family: 4, address: '192.0.2.2', port: 1 }));
    expect(v6('2001:db8:1:2::1')).toBe(v6('2001:db8:1:2:ffff:ffff:ffff:fffe'));
    expect(v6('2001:db8:1:2::1')).not.toBe(v6('2001:db8:1:3::1'));
    expect(v6('::ffff:192.0.2.1')).toBe(rateLimitKey({ family: 4, address: '192.0.2.1', port: 1 }));
    expect(v6('::ffff:192.0.2.1')).not.toBe(v6('::ffff:192.0.2.2'));
  });

  it('1,000 addresses of one /64 share RATELIMIT_BURST handshakes', () => {
    const limiter = new RateLimiter();
    let allowed = 0;
    for (let i = 0; i < 1000; i++) if (limiter.allow(v6(`2001:db8::${i.toString(16)}:1`), 0)) allowed++;
    expect(allowed).toBe(RATELIMIT_BURST);
  });
});

describe('HandshakeBudget', () => {
  it('gives a burst of one second, then its rate; running dry keeps it spent for UNDER_LOAD_AFTER_MS', () => {
    const budget = new HandshakeBudget(10);
    let taken = 0;
    for (let i = 0; i < 50; i++) if (budget.take(0)) taken++;
    expect(taken).toBe(10);
    expect(budget.spent(0)).toBe(true);
    expect(budget.spent(UNDER_LOAD_AFTER_MS - 1)).toBe(true);
    // 100 ms refill one token.
    expect(budget.take(100)).toBe(true);
    expect(budget.take(100)).toBe(false);
    expect(budget.spent(100 + UNDER_LOAD_AFTER_MS - 1)).toBe(true);
    expect(budget.spent(100 + UNDER_LOAD_AFTER_MS)).toBe(false);
    taken = 0;
    for (let i = 0; i < 50; i++) if (budget.take(100 + UNDER_LOAD_AFTER_MS)) taken++;
    expect(taken).toBe(10);
  });
});
