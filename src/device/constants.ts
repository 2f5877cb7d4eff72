/** Device-level constants (the protocol's own are in src/noise/constants.ts). */

/** wireguard-go's ratelimiter: handshakes per second per source while under load, and burst. */
export const RATELIMIT_PACKETS_PER_SECOND = 20;
export const RATELIMIT_BURST = 5;
export const RATELIMIT_GC_INTERVAL_MS = 1_000;
/** Handshake messages per second above which the device demands cookies (a handshake costs ~4 X25519). */
export const HANDSHAKE_LOAD_THRESHOLD_PER_SECOND = 256;
/** Stay under load this long after the rate drops (wireguard-go's UnderLoadAfterTime). */
export const UNDER_LOAD_AFTER_MS = 1_000;
/** Directory of UAPI sockets, as wg(8) expects. */
export const UAPI_SOCKET_DIRECTORY = '/var/run/wireguard';
/** wg's default when nothing is configured; 0 means "pick a free port". */
export const DEFAULT_LISTEN_PORT = 0;
