/**
 * Every tunable of the benchmark harness in one place (bench/micro.ts,
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
/** Namespaces and links bench:e2e creates are named `bench-<pid>-<n>`, so they are recognisably its own. */
export const E2E_NAME_PREFIX = 'bench-';
/** Enough rounds that a median with its min–max means something on a noisy machine. */
export const E2E_ROUNDS_DEFAULT = 5;
/**
 * Interface MTUs bench:e2e accepts (--mtu): the WireGuard default up to what
 * both implementations carry (a slot holds a 65,535-byte packet; the outer
 * datagram adds WireGuard's 32 bytes and an IPv6+UDP header).
 */
export const E2E_MTU_DEFAULT = 1420;
export const E2E_MTU_MIN = 1280;
export const E2E_MTU_MAX = 65_000;
/** Outer headers over the tunnel MTU: IPv6 (40) + UDP (8) + WireGuard transport header and tag (32). */
export const E2E_OUTER_OVERHEAD = 80;
/** Inner IPv6 + UDP headers: the full-size UDP test's payload is the MTU less these. */
export const E2E_INNER_UDP_OVERHEAD = 48;
/**
 * tswg↔tswg variants `--ablate` adds, each an environment for both tswg
 * processes, so one run shows what each piece of the data path buys.
 * Variables a tswg build does not know are ignored by it.
 */
export const E2E_ABLATIONS: readonly Readonly<Record<string, string>>[] = [
  { TSWG_TUN_OFFLOAD: '0' },
  { TSWG_UDP_OFFLOAD: '0' },
  { TSWG_CRYPTO_WORKERS: '0' },
  { TSWG_CRYPTO_WORKERS: '1' },
  { TSWG_CRYPTO_WORKERS: '2' },
];
/** Ping RTT measurement: count and interval (seconds; below 0.2 needs root). */
export const E2E_PING_COUNT = 50;
export const E2E_PING_INTERVAL_SECONDS = 0.02;
/** Parallel streams of the multi-stream TCP test (iperf3 -P). */
export const E2E_TCP_STREAMS = 4;
/** iperf3 UDP payload size of the small-datagram test; the other fills the MTU (1372 B at 1420). */
export const E2E_UDP_SMALL = 64;
/** Pause between measurements so queues drain and the CPU figures do not overlap. */
export const E2E_SETTLE_MS = 300;
/** iperf3 control port; each pair has its own namespaces, so one port serves all. */
export const IPERF3_PORT = 5201;
/**
 * Seconds iperf3 runs before it starts counting (--omit): TCP slow start and,
 * for tswg, the JIT warming up the data path stay out of every pairing's figure.
 */
export const IPERF3_OMIT_SECONDS = 1;

// ---- every benchmark's ping and iperf3 runs ----
/**
 * A ping run may take this much longer per probe than its interval before it
 * counts as failed: on a loaded machine every wake-up of ping comes late and
 * round trips reach 20–100 ms, so a run of 1,000 pings at 10 ms takes far
 * more than its nominal 10 s.
 */
export const BENCH_PING_PROBE_ALLOWANCE_SECONDS = 0.1;
/** How long ping waits for the last reply (ping -W). */
export const BENCH_PING_REPLY_WAIT_SECONDS = 2;
/** Added to every ping and iperf3 run's time limit: starting the process in its namespace, connecting, its summary. */
export const BENCH_PROCESS_SLACK_SECONDS = 20;
/** An iperf3 test may take this many times its own length (-t, plus the omitted start) before it counts as failed. */
export const IPERF3_TIME_LIMIT_FACTOR = 2;
/** An iperf3 server must listen within this long after it is started. */
export const IPERF3_SERVER_START_SECONDS = 15;

/** bench:scale defaults. */
export const SCALE_PEERS_DEFAULT = 10_000;
/** Seconds to let a daemon settle before reading its RSS. */
export const SCALE_SETTLE_MS = 1500;
/** How often the dump and UAPI get timings are repeated (median reported). */
export const SCALE_REPEATS = 5;

// ---- bench:nat ----
export const NAT_TRIALS_DEFAULT = 3;
export const NAT_IPERF3_SECONDS_DEFAULT = 3;
/** Ping interval while waiting for the first reply (seconds; below 0.2 needs root). */
export const NAT_PING_INTERVAL_SECONDS = 0.01;
/** Give up on the first reply after this long (the relay paths wait out the direct phase first). */
export const NAT_FIRST_REPLY_DEADLINE_SECONDS = 60;
/** A tick may take the whole direct phase plus every relay attempt. */
export const NAT_TICK_TIMEOUT_MS = 60_000;
export const STUN_PORT = 3478;
export const RELAY_PORT = 3479;
export const TURN_USER = { name: 'tswg', password: 'bench-nat-password' };
export const RELAY_CREDENTIAL = 'bench-nat-relay-secret';
/** coturn relay ports, and the peer ranges it must allow (the topology's documentation ranges). */
export const TURN_MIN_PORT = 49152;
export const TURN_MAX_PORT = 49400;
export const TURN_ALLOWED_PEERS = ['198.51.100.0-198.51.100.255', '203.0.113.0-203.0.113.255'];
/** Tunnel addresses: 10.99.<trial-pair>.1 (A) and .2 (B). */
export const TUNNEL_PREFIX = '10.99';
export const TUNNEL_INTERFACE = 'wg0';

// ---- bench:flood ----
/** Handshake initiations per second the flooder aims at the device. */
export const FLOOD_RATE_DEFAULT = 10_000;
/** Seconds of each phase: without the flood, then under it. */
export const FLOOD_PHASE_SECONDS_DEFAULT = 8;
/** Legitimate peers, each handshaking again FLOOD_LEGIT_PAUSE_MS after its last one completed. */
export const FLOOD_LEGIT_PEERS = 4;
export const FLOOD_LEGIT_PAUSE_MS = 100;
/** A legitimate attempt that got no response in this long is started again. */
export const FLOOD_LEGIT_ATTEMPT_TIMEOUT_MS = 1_000;
/** Distinct initiations (from random unknown keys, valid MAC1) the flooder cycles through. */
export const FLOOD_DISTINCT_INITIATIONS = 2_000;
/** Source addresses the flooder sends from (127.0.0.2 on): it never reads the cookies sent to them, as a spoofer cannot. */
export const FLOOD_SOURCES = 64;
/** The flooder sends a burst every this many ms. */
export const FLOOD_TICK_MS = 5;

// ---- bench:crypto ----
/** Worker counts measured unless --workers says otherwise (0: inline on the main thread). */
export const CRYPTO_BENCH_WORKERS_DEFAULT = '0,1,2,4,8';
/** Rounds per worker count; each seals and opens this many packets. */
export const CRYPTO_BENCH_ROUNDS_DEFAULT = 3;
export const CRYPTO_BENCH_PACKETS_DEFAULT = 200_000;
/** Peers the stream is spread over, round robin (each keeps its own counter and replay window). */
export const CRYPTO_BENCH_PEERS_DEFAULT = 4;
/** Packets per batch: what one drain of a packet ring hands the device before its flush. */
export const CRYPTO_BENCH_BATCH = 64;
/** Unmeasured packets before each worker count's rounds (JIT, worker start-up). */
export const CRYPTO_BENCH_WARMUP_PACKETS = 20_000;

/** bench:hops: pings per round after LATENCY_HOPS_WARMUP unmeasured ones, at this interval (ping -i). */
export const LATENCY_HOPS_PINGS = 1_000;
export const LATENCY_HOPS_WARMUP = 200;
export const LATENCY_HOPS_INTERVAL_SECONDS = 0.01;
/** Namespaces bench:hops creates are named `hops-<pid>-<n>`. */
export const LATENCY_HOPS_NAME_PREFIX = 'hops-';
/** bench:hops: rounds of pings (--rounds). */
export const LATENCY_HOPS_ROUNDS_DEFAULT = 3;

// ---- bench/uv-poll-probe.ts ----
/** Wake-latency samples per receive path, after UV_POLL_PROBE_WARMUP unmeasured ones each. */
export const UV_POLL_PROBE_SAMPLES = 1_000;
export const UV_POLL_PROBE_WARMUP = 50;
/** Gap between two timed datagrams (ms): the paths take turns, so each sees one every 4 × this. */
export const UV_POLL_PROBE_INTERVAL_MS = 10;
/** Datagrams read by the uv_poll callback in the release check, and handles opened and closed. */
export const UV_POLL_PROBE_EVENTS = 100_000;
export const UV_POLL_PROBE_HANDLE_CYCLES = 1_000;
/** Datagrams the blasting sender keeps in flight before it waits for the reader. */
export const UV_POLL_PROBE_WINDOW = 64;
