/**
 * Every tunable of the issue-5 benchmark harness in one place (bench/micro.ts,
 * alloc.ts, e2e.ts, scale.ts), so a figure in BENCHMARKS.md can be traced to
 * the exact sizes and counts that produced it.
 */

/** A full-size tunnel packet: the default WireGuard MTU, what iperf3 TCP fills. */
export const PACKET_SIZE = 1420;
/** Tunnel MTU given to in-process Tunnels (padding never passes it). */
export const TUNNEL_MTU = 1420;
/** Packets per batch in the batched AEAD benchmarks. */
export const BATCH_SIZE = 64;
/** Routes in the allowed-IPs lookup benchmark. */
export const ALLOWED_IPS_ROUTES = 10_000;
/** Distinct packets the lookup and replay benchmarks cycle through per op. */
export const LOOKUPS_PER_OP = 1024;
/** Benchmark.js: seconds each benchmark runs (its maxTime); override with --time. */
export const MICRO_SECONDS_DEFAULT = 1;

/** bench:alloc: packets per measured path, after ALLOC_WARMUP_PACKETS unmeasured ones. */
export const ALLOC_PACKETS_DEFAULT = 1_000_000;
export const ALLOC_WARMUP_PACKETS = 20_000;
/**
 * bench:alloc decrypt: datagrams made (unmeasured) per chunk, as the replay window forbids reusing
 * them; large enough that each measured window spans several scavenges (see alloc.ts).
 */
export const ALLOC_DECRYPT_CHUNK = 65_536;

/** bench:e2e defaults. */
export const E2E_DURATION_SECONDS_DEFAULT = 5;
export const E2E_ROUNDS_DEFAULT = 1;
/** Ping RTT measurement: count and interval (seconds; below 0.2 needs root). */
export const E2E_PING_COUNT = 50;
export const E2E_PING_INTERVAL_SECONDS = 0.02;
/** Parallel streams of the multi-stream TCP test (iperf3 -P). */
export const E2E_TCP_STREAMS = 4;
/** iperf3 UDP payload sizes: minimal, and full-size for the 1420 MTU over IPv6 (1420 - 40 - 8). */
export const E2E_UDP_SMALL = 64;
export const E2E_UDP_FULL = 1372;
/** Pause between measurements so queues drain and the CPU figures do not overlap. */
export const E2E_SETTLE_MS = 300;
/** iperf3 control port; each pair has its own namespaces, so one port serves all. */
export const IPERF3_PORT = 5201;

/** bench:scale defaults. */
export const SCALE_PEERS_DEFAULT = 10_000;
/** Seconds to let a daemon settle before reading its RSS. */
export const SCALE_SETTLE_MS = 1500;
/** How often the dump and UAPI get timings are repeated (median reported). */
export const SCALE_REPEATS = 5;
