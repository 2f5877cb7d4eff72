/** Constants of the tswg command line. */

/** Exit statuses everywhere: success, runtime failure, bad flags/arguments/config. */
export const EXIT_OK = 0;
export const EXIT_FAILURE = 1;
export const EXIT_USAGE = 2;

/**
 * STUN servers `tswg netcheck` asks when given no --stun: two operators, so
 * that two different servers can tell the NAT's mapping behaviour.
 */
export const DEFAULT_NETCHECK_STUN_SERVERS: readonly string[] = Object.freeze(['stun.cloudflare.com:3478', 'stun.l.google.com:19302']);

/** How long netcheck waits for one STUN server. */
export const DEFAULT_NETCHECK_TIMEOUT_MS = 5000;

/**
 * The daemons' V8 interrupt budget (bytes of bytecode a function runs
 * between checks whether to optimize it; V8's default is 67,584): the packet
 * path is optimized after a few hundred packets instead of ~1,500
 * (jit-budget.ts; measured in BENCHMARKS.md).
 */
export const DAEMON_JIT_BUDGET = 8_192;
