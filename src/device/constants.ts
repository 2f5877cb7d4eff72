/** Device-level constants (the protocol's own are in src/noise/constants.ts). */
import { AEAD_TAG_SIZE, PADDING_MULTIPLE, TransportSlot } from '../noise/index.js';
import type { SlotLayout } from '../platform/index.js';

/** wireguard-go's ratelimiter: handshakes per second per source while under load, and burst. */
export const RATELIMIT_PACKETS_PER_SECOND = 20;
export const RATELIMIT_BURST = 5;
export const RATELIMIT_GC_INTERVAL_MS = 1_000;
/** Handshake messages per second above which the device demands cookies (a handshake costs ~4 X25519). */
export const HANDSHAKE_LOAD_THRESHOLD_PER_SECOND = 256;
/** Stay under load this long after the rate drops (wireguard-go's UnderLoadAfterTime). */
export const UNDER_LOAD_AFTER_MS = 1_000;
/**
 * Handshake messages per second (and burst) given X25519 work, whatever their
 * sources: up to ~4 X25519 each on the thread that also moves the data, so
 * this bounds what handshakes can take from it. Once spent, the device is
 * under load; the refill goes to messages with a valid MAC2 cookie.
 */
export const HANDSHAKE_BUDGET_PER_SECOND = 512;
/** IPv6 sources share one rate-limit bucket per /64 (one host usually owns a whole /64); IPv4 per address. */
export const RATELIMIT_IPV6_PREFIX_BYTES = 8;
/** Directory of UAPI sockets, as wg(8) expects. */
export const UAPI_SOCKET_DIRECTORY = '/var/run/wireguard';
/** wg's default when nothing is configured; 0 means "pick a free port". */
export const DEFAULT_LISTEN_PORT = 0;
/**
 * The room the device asks the TUN ring to keep around each packet: the
 * transport header before it, padding and the tag after it, so a packet is
 * sealed into a datagram where it was read (TransportSlot).
 */
export const TUN_SLOT_LAYOUT: SlotLayout = { headroom: TransportSlot.PACKET_OFFSET, tailroom: PADDING_MULTIPLE - 1 + AEAD_TAG_SIZE };
/** Received datagrams start their slots and open in place: the plaintext is shorter than the message. */
export const UDP_SLOT_LAYOUT: SlotLayout = { headroom: 0, tailroom: 0 };
/**
 * Slots in the UDP receive ring. Every slot is 64 KiB (a GRO-joined datagram
 * lands whole before it is split), and under load each one gets touched, so
 * the ring's resident size is this × 64 KiB: 256 slots (16 MiB) still hold
 * 256 datagrams for the main thread, several of its 64-packet batches.
 */
export const UDP_RING_SLOTS = 256;

/**
 * Threads that run the packet AEAD beside the main thread (crypto-pool.ts),
 * from this environment variable; 0 keeps it inline on the main thread.
 */
export const CRYPTO_WORKERS_ENV = 'TSWG_CRYPTO_WORKERS';
/**
 * Below this many cores the default is 0 workers: on 2 cores, where the I/O
 * thread takes the other core, inline sealing beat every worker count end to
 * end (BENCHMARKS.md).
 */
export const CRYPTO_WORKERS_MIN_CORES = 4;
/** Cores the default leaves to the main thread and the I/O thread. */
export const CRYPTO_WORKERS_RESERVED_CORES = 2;
/** The default never goes past this: on 16 cores bench:crypto peaked at 8 workers and fell at 12. */
export const CRYPTO_WORKERS_DEFAULT_MAX = 8;
/** More would only contend for cores and the job table. */
export const MAX_CRYPTO_WORKERS = 64;
/**
 * A batch smaller than this is sealed or opened by the main thread alone:
 * waking a worker costs more than a few AEADs, and a lone packet (a ping)
 * keeps the latency of the inline path.
 */
export const CRYPTO_MIN_SHARED_BATCH = 8;
/** Jobs the shared table holds: a batch larger than this is run in parts (a power of two). */
export const CRYPTO_JOB_CAPACITY = 256;
/**
 * How long the main thread waits for a claimed job before it declares its
 * worker stalled (dead), drops the job and replaces the worker. An AEAD takes
 * microseconds; this has to outlast a descheduled thread by far, because a
 * frozen worker that thaws after it may still write into its abandoned slot.
 */
export const CRYPTO_STALL_TIMEOUT_MS = 1_000;
/**
 * While it waits for a batch, how often the main thread looks whether the
 * threads holding its jobs still exist: a worker that died (terminated, out
 * of memory) is noticed at once instead of after the stall timeout, during
 * which the main thread would read no packets at all.
 */
export const CRYPTO_DEAD_WORKER_CHECK_MS = 5;
/** Workers in a row that may die before they come online before the pool stops replacing them. */
export const CRYPTO_WORKER_START_ATTEMPTS = 3;
/** Times a worker looks for the next batch before it sleeps (each look costs a few ns). */
export const CRYPTO_WORKER_SPIN_CHECKS = 20_000;
/** The main thread's looks at DONE before it sleeps on it. */
export const CRYPTO_MAIN_SPIN_CHECKS = 20_000;
/** Crypto workers allocate almost nothing: small V8 heaps keep each thread's memory to what it uses. */
export const CRYPTO_WORKER_RESOURCE_LIMITS = { maxYoungGenerationSizeMb: 1, maxOldGenerationSizeMb: 32, codeRangeSizeMb: 8 } as const;
