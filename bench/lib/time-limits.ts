/**
 * How long a benchmark's ping or iperf3 run may take before it counts as a
 * failed sample: derived from what the run is asked to do, with room for a
 * loaded machine, never a fixed figure that a long run outgrows.
 */
import {
  BENCH_PING_PROBE_ALLOWANCE_SECONDS,
  BENCH_PING_REPLY_WAIT_SECONDS,
  BENCH_PROCESS_SLACK_SECONDS,
  IPERF3_OMIT_SECONDS,
  IPERF3_TIME_LIMIT_FACTOR,
} from '../constants.js';

/** `ping -c count -i interval`: every probe its interval plus an allowance, the wait for the last reply, the slack. */
export function pingTimeLimitMs(count: number, intervalSeconds: number): number {
  const seconds = count * (intervalSeconds + BENCH_PING_PROBE_ALLOWANCE_SECONDS) + BENCH_PING_REPLY_WAIT_SECONDS + BENCH_PROCESS_SLACK_SECONDS;
  return Math.round(seconds * 1000);
}

/** `iperf3 -t seconds`: the test and its omitted start, times a factor, plus the slack. */
export function iperf3TimeLimitMs(seconds: number): number {
  return Math.round(((seconds + IPERF3_OMIT_SECONDS) * IPERF3_TIME_LIMIT_FACTOR + BENCH_PROCESS_SLACK_SECONDS) * 1000);
}

const secondsText = (ms: number): string => `${(ms / 1000).toFixed(0)} s`;

/** The rule and its result for one ping run, for a benchmark's header. */
export function describePingTimeLimit(count: number, intervalSeconds: number): string {
  return (
    `${secondsText(pingTimeLimitMs(count, intervalSeconds))} for ${count} pings at ${intervalSeconds} s ` +
    `(count × (interval + ${BENCH_PING_PROBE_ALLOWANCE_SECONDS} s) + ${BENCH_PING_REPLY_WAIT_SECONDS} s + ${BENCH_PROCESS_SLACK_SECONDS} s)`
  );
}

/** The rule and its result for one iperf3 test, for a benchmark's header. */
export function describeIperf3TimeLimit(seconds: number): string {
  return (
    `${secondsText(iperf3TimeLimitMs(seconds))} per ${seconds}-s iperf3 test ` +
    `((duration + ${IPERF3_OMIT_SECONDS} s) × ${IPERF3_TIME_LIMIT_FACTOR} + ${BENCH_PROCESS_SLACK_SECONDS} s)`
  );
}
