/**
 * The time limits of the benchmarks' ping and iperf3 runs grow with what the
 * run is asked to do, and a ping run that outlives its limit is stopped and
 * rejected in one line (the caller counts a failed sample), not left running.
 */
import { readdirSync, readFileSync } from 'node:fs';
import { describe, expect, it } from 'vitest';
import {
  BENCH_PING_PROBE_ALLOWANCE_SECONDS,
  BENCH_PING_REPLY_WAIT_SECONDS,
  BENCH_PROCESS_SLACK_SECONDS,
  IPERF3_OMIT_SECONDS,
  IPERF3_TIME_LIMIT_FACTOR,
  LATENCY_HOPS_INTERVAL_SECONDS,
  LATENCY_HOPS_PINGS,
  LATENCY_HOPS_WARMUP,
} from '../../bench/constants.js';
import { runPing } from '../../bench/lib/iperf.js';
import { describeIperf3TimeLimit, describePingTimeLimit, iperf3TimeLimitMs, pingTimeLimitMs } from '../../bench/lib/time-limits.js';
import { processGone } from '../../scripts/lib/netns.js';

describe('ping and iperf3 time limits', () => {
  it('gives every probe its interval plus an allowance, then the wait for the last reply and the slack', () => {
    const fixedSeconds = BENCH_PING_REPLY_WAIT_SECONDS + BENCH_PROCESS_SLACK_SECONDS;
    expect(pingTimeLimitMs(0, 0.01)).toBe(fixedSeconds * 1000);
    const perProbe = pingTimeLimitMs(2, 0.5) - pingTimeLimitMs(1, 0.5);
    expect(perProbe).toBeCloseTo((0.5 + BENCH_PING_PROBE_ALLOWANCE_SECONDS) * 1000, 6);
    expect(pingTimeLimitMs(1_000, 0.01)).toBe(Math.round((1_000 * (0.01 + BENCH_PING_PROBE_ALLOWANCE_SECONDS) + fixedSeconds) * 1000));
  });

  it('lets a loaded machine pace every probe of bench:hops at 100 ms and still finish inside the limit', () => {
    // Round trips of 20–100 ms and late wake-ups: each probe 100 ms instead of its nominal 10.
    for (const count of [LATENCY_HOPS_WARMUP, LATENCY_HOPS_PINGS]) {
      const loadedMs = count * 100 + BENCH_PING_REPLY_WAIT_SECONDS * 1000;
      expect(pingTimeLimitMs(count, LATENCY_HOPS_INTERVAL_SECONDS)).toBeGreaterThan(loadedMs);
    }
  });

  it('scales an iperf3 test with its length and the omitted start', () => {
    for (const seconds of [1, 5, 60]) {
      expect(iperf3TimeLimitMs(seconds)).toBe(((seconds + IPERF3_OMIT_SECONDS) * IPERF3_TIME_LIMIT_FACTOR + BENCH_PROCESS_SLACK_SECONDS) * 1000);
      expect(iperf3TimeLimitMs(seconds)).toBeGreaterThan((seconds + IPERF3_OMIT_SECONDS) * 1000);
    }
  });

  it('says the rule and the result in the benchmark header', () => {
    const ping = describePingTimeLimit(LATENCY_HOPS_PINGS, LATENCY_HOPS_INTERVAL_SECONDS);
    expect(ping).toContain(`${(pingTimeLimitMs(LATENCY_HOPS_PINGS, LATENCY_HOPS_INTERVAL_SECONDS) / 1000).toFixed(0)} s for ${LATENCY_HOPS_PINGS} pings`);
    expect(ping).toContain(`count × (interval + ${BENCH_PING_PROBE_ALLOWANCE_SECONDS} s)`);
    expect(describeIperf3TimeLimit(5)).toContain(`${(iperf3TimeLimitMs(5) / 1000).toFixed(0)} s per 5-s iperf3 test`);
  });
});

describe('runPing', () => {
  it('returns one round trip per reply within the default limit', async () => {
    const result = await runPing(null, '127.0.0.1', 3, 0.2);
    expect(result.sent).toBe(3);
    expect(result.rttsMs).toHaveLength(3);
    for (const rtt of result.rttsMs) expect(rtt).toBeGreaterThan(0);
  });

  it('stops a run that outlives its limit and rejects in one line', async () => {
    // A loopback address of its own, so that only this test's ping matches.
    const target = '127.0.0.47';
    const started = Date.now();
    const error = await runPing(null, target, 50, 0.2, 700).then(
      () => null,
      (reason: unknown) => reason as Error,
    );
    expect(error).toBeInstanceOf(Error);
    expect(error!.message).toMatch(/^ping .* did not finish within 0\.7 s \(\d+\/50 replies by then\)$/);
    // Stopped at the limit, not after the 10 s the 50 probes would take.
    expect(Date.now() - started).toBeLessThan(5_000);
    expect(pingPidsTo(target).filter((pid) => !processGone(pid))).toEqual([]);
  });
});

/** Pids of the ping processes running now whose command line names `target`. */
function pingPidsTo(target: string): number[] {
  return readdirSync('/proc')
    .filter((entry) => /^\d+$/.test(entry))
    .filter((entry) => {
      try {
        const argv = readFileSync(`/proc/${entry}/cmdline`, 'utf8').split('\0');
        return argv[0]?.endsWith('ping') === true && argv.includes(target);
      } catch {
        return false;
      }
    })
    .map(Number);
}
