/**
 * Every protocol constant in one place, named as the WireGuard paper
 * (and wireguard-go's device/constants.go) names them. Times are in
 * milliseconds; message counters are bigints because their limits exceed 2^53.
 */

export const REKEY_AFTER_MESSAGES = 1n << 60n;
export const REJECT_AFTER_MESSAGES = (1n << 64n) - (1n << 13n) - 1n;

export const REKEY_AFTER_TIME_MS = 120_000;
export const REJECT_AFTER_TIME_MS = 180_000;
export const REKEY_ATTEMPT_TIME_MS = 90_000;
export const REKEY_TIMEOUT_MS = 5_000;
/** Upper bound of the random jitter added to REKEY_TIMEOUT for retries. */
export const REKEY_TIMEOUT_JITTER_MAX_MS = 334;
export const KEEPALIVE_TIMEOUT_MS = 10_000;
/** Keys and handshake state are wiped after this long without a new session. */
export const ZERO_KEY_MATERIAL_AFTER_MS = 3 * REJECT_AFTER_TIME_MS;
/** Retries of an initiation before giving up (REKEY_ATTEMPT_TIME / REKEY_TIMEOUT). */
export const MAX_TIMER_HANDSHAKES = REKEY_ATTEMPT_TIME_MS / REKEY_TIMEOUT_MS;
/** The initiator starts a fresh handshake this close to REJECT_AFTER_TIME on receive. */
export const REKEY_ON_RECEIVE_AFTER_MS = REJECT_AFTER_TIME_MS - KEEPALIVE_TIMEOUT_MS - REKEY_TIMEOUT_MS;
/** A responder ignores initiations from one peer arriving faster than this (wireguard-go's HandshakeInitationRate). */
export const HANDSHAKE_INITIATION_RATE_MS = 1_000 / 50;
/** The cookie secret of a responder under load rotates this often. */
export const COOKIE_REFRESH_TIME_MS = 120_000;

export const CONSTRUCTION = 'Noise_IKpsk2_25519_ChaChaPoly_BLAKE2s';
export const IDENTIFIER = 'WireGuard v1 zx2c4 Jason@zx2c4.com';
export const LABEL_MAC1 = 'mac1----';
export const LABEL_COOKIE = 'cookie--';

export const KEY_SIZE = 32;
export const AEAD_TAG_SIZE = 16;
export const MAC_SIZE = 16;
export const COOKIE_SIZE = 16;
export const COOKIE_NONCE_SIZE = 24;
export const TIMESTAMP_SIZE = 12;

export const MESSAGE_INITIATION_TYPE = 1;
export const MESSAGE_RESPONSE_TYPE = 2;
export const MESSAGE_COOKIE_REPLY_TYPE = 3;
export const MESSAGE_TRANSPORT_TYPE = 4;

export const MESSAGE_INITIATION_SIZE = 148;
export const MESSAGE_RESPONSE_SIZE = 92;
export const MESSAGE_COOKIE_REPLY_SIZE = 64;
export const MESSAGE_TRANSPORT_HEADER_SIZE = 16;
export const MESSAGE_TRANSPORT_MIN_SIZE = MESSAGE_TRANSPORT_HEADER_SIZE + AEAD_TAG_SIZE;
/** Transport plaintext is zero-padded to a multiple of this. */
export const PADDING_MULTIPLE = 16;
/** Largest datagram we accept: 64 KiB of UDP payload. */
export const MAX_MESSAGE_SIZE = 65_535;

/** Packets held per peer while a handshake is pending (wireguard-go's QueueStagedSize). */
export const MAX_STAGED_PACKETS = 128;
/**
 * Packet bytes held by all the tunnels of one device while their handshakes
 * are pending: without it, 10,000 peers × MAX_STAGED_PACKETS could hold ~1.8 GB.
 */
export const MAX_STAGED_BYTES = 32 * 1024 * 1024;
