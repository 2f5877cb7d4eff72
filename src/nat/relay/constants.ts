/**
 * Every number of the built-in relay in one place: message kinds and sizes
 * of the wire protocol (see protocol.ts), the authentication context, and the
 * timers of the server and the client.
 */

/** Protocol version carried by REGISTER / REGISTERED / REFUSED. */
export const RELAY_PROTOCOL_VERSION = 1;

/**
 * Message kinds (the first byte). The 0xF1..0xF7 range can never be a
 * WireGuard message (1..4), a STUN message (top two bits 00) nor TURN
 * ChannelData (0x40..0x7F), so the kinds stay unambiguous on a shared port.
 */
export const RelayKind = {
  register: 0xf1,
  registered: 0xf2,
  refused: 0xf3,
  /** client → server: to <public key>, payload. */
  dataToPeer: 0xf4,
  /** server → client: from <public key>, payload. */
  dataFromPeer: 0xf5,
  keepalive: 0xf6,
  /** server → client: "I do not know you" (answer to a keepalive or data with an unknown token). */
  notRegistered: 0xf7,
} as const;
export type RelayKindValue = (typeof RelayKind)[keyof typeof RelayKind];

/** Why a REGISTER was refused (the REFUSED reason byte). */
export const RefusedReason = {
  badAuthentication: 1,
  staleTimestamp: 2,
  replayedNonce: 3,
  serverFull: 4,
  unsupportedVersion: 5,
} as const;
export type RefusedReasonValue = (typeof RefusedReason)[keyof typeof RefusedReason];

export const PUBLIC_KEY_SIZE = 32;
export const NONCE_SIZE = 16;
export const TOKEN_SIZE = 8;
export const TAG_SIZE = 32;
export const AUTH_KEY_SIZE = 32;
/** kind, version, public key, timestamp (u64 ms), nonce, tag. */
export const REGISTER_SIZE = 2 + PUBLIC_KEY_SIZE + 8 + NONCE_SIZE + TAG_SIZE;
/** kind, version, nonce, token, lifetime (u32 s), tag. */
export const REGISTERED_SIZE = 2 + NONCE_SIZE + TOKEN_SIZE + 4 + TAG_SIZE;
/** kind, version, nonce, reason. */
export const REFUSED_SIZE = 2 + NONCE_SIZE + 1;
export const DATA_TO_HEADER_SIZE = 1 + TOKEN_SIZE + PUBLIC_KEY_SIZE;
export const DATA_FROM_HEADER_SIZE = 1 + PUBLIC_KEY_SIZE;
export const KEEPALIVE_SIZE = 1 + TOKEN_SIZE;
export const NOT_REGISTERED_SIZE = 1;
/** Largest UDP payload over IPv4; a larger relayed payload could not be sent. */
export const MAX_DATAGRAM_SIZE = 65_507;
export const MAX_PAYLOAD_SIZE = MAX_DATAGRAM_SIZE - DATA_TO_HEADER_SIZE;

/**
 * BLAKE2b personalisation of the auth key derivation (exactly 16 bytes, the
 * BLAKE2b personal field): the key of a relay is
 * BLAKE2b-256(credential, personalization = "tswg-relay-auth1").
 */
export const AUTH_KEY_PERSONALIZATION = 'tswg-relay-auth1';

/** A REGISTER timestamp may differ from the server's clock by at most this (clock skew + transit). */
export const REGISTER_TIMESTAMP_WINDOW_MS = 120_000;
/** A registration without REGISTER or KEEPALIVE for this long is forgotten. */
export const REGISTRATION_LIFETIME_MS = 90_000;
/** A session (pair of nodes) without data for this long no longer counts. */
export const SESSION_IDLE_MS = 180_000;
/** Registrations one server holds at most (each needs the credential; this bounds memory). */
export const MAX_REGISTRATIONS = 10_000;
/** Default and "0" value of max_sessions (seed: max_sessions == 0 → 100). */
export const DEFAULT_MAX_SESSIONS = 100;
/** How often the server sweeps expired registrations, sessions and nonces. */
export const SERVER_SWEEP_INTERVAL_MS = 10_000;
/** At most this many "dropped" log lines per interval; the rest are counted. */
export const DROP_LOG_LIMIT = 10;
export const DROP_LOG_INTERVAL_MS = 10_000;

/** Client: keepalive interval (keeps the NAT binding towards the relay open). */
export const CLIENT_KEEPALIVE_INTERVAL_MS = 15_000;
/** Client: full re-registration interval (recovers from a server that restarted). */
export const CLIENT_REREGISTER_INTERVAL_MS = 45_000;
/** Client: REGISTER retransmissions (each waits twice as long as the one before). */
export const CLIENT_REGISTER_FIRST_TIMEOUT_MS = 250;
export const CLIENT_REGISTER_ATTEMPTS = 5;
/** Client: proxies (remote peers) one client creates at most. */
export const CLIENT_MAX_PEERS = 1024;
