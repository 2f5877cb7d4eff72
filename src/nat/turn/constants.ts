/**
 * The numbers of the TURN client (RFC 8656) that are not STUN codec numbers
 * (those live in ../stun/constants.ts): lifetimes and their refresh margins,
 * the channel number range, retransmission and retry limits.
 */

/** REQUESTED-TRANSPORT value: UDP (IANA protocol 17), in the top byte. */
export const REQUESTED_TRANSPORT_UDP = 17;
/** RFC 8656 §3.2: the default allocation lifetime (600 s); we ask for it explicitly. */
export const ALLOCATION_LIFETIME_SECONDS = 600;
/** Refresh an allocation this long before it expires (or at half its lifetime when that is shorter). */
export const ALLOCATION_REFRESH_MARGIN_MS = 60_000;
/** RFC 8656 §9: permissions last 300 s; refreshed well before. */
export const PERMISSION_LIFETIME_MS = 300_000;
export const PERMISSION_REFRESH_MS = 240_000;
/** RFC 8656 §12: channel bindings last 600 s; refreshed well before. */
export const CHANNEL_LIFETIME_MS = 600_000;
export const CHANNEL_REFRESH_MS = 540_000;
/** RFC 8656 §12: channel numbers 0x4000..0x4FFF. */
export const CHANNEL_NUMBER_MIN = 0x4000;
export const CHANNEL_NUMBER_MAX = 0x4fff;
/** ChannelData header: channel number (u16) and length (u16). */
export const CHANNEL_DATA_HEADER_SIZE = 4;
/** Request retransmissions over UDP (RFC 8489 §6.2.1, shortened): waits of RTO, 2·RTO, 4·RTO, ... */
export const TURN_RTO_MS = 500;
export const TURN_REQUEST_ATTEMPTS = 5;
/** The last wait is capped: a dead server is reported after about 11.5 s. */
export const TURN_MAX_WAIT_MS = 4000;
/** Retries of one request after 438 Stale Nonce (or a 401 carrying a fresh nonce). */
export const TURN_MAX_NONCE_RETRIES = 3;
/** How long close() waits for the answer to Refresh(lifetime 0). */
export const TURN_CLOSE_WAIT_MS = 1000;
/** Remote peers (proxies) one client creates at most. */
export const TURN_MAX_PEERS = 1024;
/**
 * Bounds of the allocation refresh timer, whatever LIFETIME the server
 * answers: a tiny one must not turn into a refresh storm, a huge one (up to
 * 2^32 s) must neither overflow setTimeout (Node turns a delay over 2^31 − 1 ms
 * into 1 ms) nor let the allocation lapse should the server not mean it.
 */
export const MIN_ALLOCATION_REFRESH_DELAY_MS = 5_000;
export const MAX_ALLOCATION_REFRESH_DELAY_MS = ALLOCATION_LIFETIME_SECONDS * 1000 - ALLOCATION_REFRESH_MARGIN_MS;
