/**
 * Every number of the built-in relay in one place: message kinds and sizes
 * of the wire protocol (see protocol.ts), the authentication context, and the
 * timers of the server and the client.
 */

/** Protocol version carried by HELLO / CHALLENGE / REGISTER / REGISTERED / REFUSED. */
export const RELAY_PROTOCOL_VERSION = 2;

/**
 * Message kinds (the first byte). The 0xF1..0xF9 range can never be a
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
  /** client → server: ask for a challenge (first leg of the return-routability round trip). */
  hello: 0xf8,
  /** server → client: the relay's key and a cookie bound to the client's source address. */
  challenge: 0xf9,
} as const;
export type RelayKindValue = (typeof RelayKind)[keyof typeof RelayKind];

/** Why a HELLO or REGISTER was refused (the REFUSED reason byte). */
export const RefusedReason = {
  badAuthentication: 1,
  staleTimestamp: 2,
  replayedNonce: 3,
  serverFull: 4,
  unsupportedVersion: 5,
  /** The cookie is not ours, not for this source, or expired: ask for a new challenge. */
  badCookie: 6,
  /** The REGISTER does not prove the node's static key (or names another relay key). */
  badKeyProof: 7,
} as const;
export type RefusedReasonValue = (typeof RefusedReason)[keyof typeof RefusedReason];

export const PUBLIC_KEY_SIZE = 32;
export const NONCE_SIZE = 16;
export const TOKEN_SIZE = 8;
export const TAG_SIZE = 32;
export const COOKIE_SIZE = 16;
/** Tag of NOT-REGISTERED (shorter: the message answers a small KEEPALIVE). */
export const SHORT_TAG_SIZE = 16;
export const AUTH_KEY_SIZE = 32;
/** kind, version, node public key, timestamp (u64 ms), nonce, relay public key, cookie issued (u64 ms), cookie, tag. */
export const REGISTER_SIZE = 2 + PUBLIC_KEY_SIZE + 8 + NONCE_SIZE + PUBLIC_KEY_SIZE + 8 + COOKIE_SIZE + TAG_SIZE;
/** kind, version, nonce, token, lifetime (u32 s), tag. */
export const REGISTERED_SIZE = 2 + NONCE_SIZE + TOKEN_SIZE + 4 + TAG_SIZE;
/** kind, version, nonce, reason, tag. */
export const REFUSED_SIZE = 2 + NONCE_SIZE + 1 + TAG_SIZE;
/** kind, version, nonce, relay public key, cookie issued (u64 ms), cookie, tag. */
export const CHALLENGE_SIZE = 2 + NONCE_SIZE + PUBLIC_KEY_SIZE + 8 + COOKIE_SIZE + TAG_SIZE;
/** kind, version, nonce, zero padding, tag: as large as the CHALLENGE it asks for, so a spoofed HELLO amplifies nothing. */
export const HELLO_SIZE = CHALLENGE_SIZE;
export const DATA_TO_HEADER_SIZE = 1 + TOKEN_SIZE + PUBLIC_KEY_SIZE;
/** kind, the recipient's token (proves the datagram comes from the server), from: public key. */
export const DATA_FROM_HEADER_SIZE = 1 + TOKEN_SIZE + PUBLIC_KEY_SIZE;
/** kind, token, zero padding: as large as the NOT-REGISTERED it may draw. */
export const KEEPALIVE_SIZE = 1 + TOKEN_SIZE + SHORT_TAG_SIZE;
/** kind, the token it answers, tag. */
export const NOT_REGISTERED_SIZE = 1 + TOKEN_SIZE + SHORT_TAG_SIZE;
/** Largest UDP payload over IPv4; a larger relayed payload could not be sent. */
export const MAX_DATAGRAM_SIZE = 65_507;
export const MAX_PAYLOAD_SIZE = MAX_DATAGRAM_SIZE - DATA_TO_HEADER_SIZE;

/**
 * BLAKE2b personalisation of the auth key derivation (exactly 16 bytes, the
 * BLAKE2b personal field): the key of a relay is
 * BLAKE2b-256(credential, personalization = "tswg-relay-auth1").
 */
export const AUTH_KEY_PERSONALIZATION = 'tswg-relay-auth1';

/**
 * The minimum credential: a relay port is reachable by anyone, so the shared
 * secret must not be guessable. Bytes of the UTF-8 form, and distinct bytes
 * (rejects "aaaaaaaaaaaaaaaa"-style placeholders).
 */
export const MIN_CREDENTIAL_BYTES = 16;
export const MIN_CREDENTIAL_DISTINCT_BYTES = 8;
/** Domain separation of the static-key proof key (see auth.ts). */
export const KEY_PROOF_CONTEXT = 'tswg-relay-keyproof-v2';
/** Domain separation of the NOT-REGISTERED tag. */
export const NOT_REGISTERED_CONTEXT = 'tswg-relay-not-registered-v2';

/** A REGISTER timestamp may differ from the server's clock by at most this (clock skew + transit). */
export const REGISTER_TIMESTAMP_WINDOW_MS = 120_000;
/** A CHALLENGE cookie is good for this long (one round trip plus retransmissions), once. */
export const COOKIE_LIFETIME_MS = 20_000;
/** A registration without REGISTER or KEEPALIVE for this long is forgotten. */
export const REGISTRATION_LIFETIME_MS = 90_000;
/** A session (pair of nodes) without data for this long no longer counts. */
export const SESSION_IDLE_MS = 180_000;
/** Registrations one server holds at most (each needs the credential and a node key; this bounds memory). */
export const MAX_REGISTRATIONS = 10_000;
/** Used cookies remembered at most (one-time use); past it REGISTERs are refused until the sweep frees some. */
export const MAX_USED_COOKIES = 16_384;
/** Default and "0" value of max_sessions: 0 on the wire means unset. */
export const DEFAULT_MAX_SESSIONS = 100;
/** How often the server sweeps expired registrations, sessions, cookies and rate buckets (never per datagram). */
export const SERVER_SWEEP_INTERVAL_MS = 2_000;
/**
 * Per source IP: a token bucket for everything that is not authorised data
 * (HELLO, REGISTER, bad tokens, garbage) and every answer to it, so a flood
 * costs the relay little and reflects nothing. Authorised DATA and KEEPALIVE
 * (a valid token from its own source) are not limited.
 */
export const SOURCE_RATE_PER_SECOND = 20;
export const SOURCE_BURST = 40;
/** Source buckets held at most; sources beyond share one overflow bucket. */
export const MAX_RATE_BUCKETS = 4_096;
export const OVERFLOW_RATE_PER_SECOND = 200;
export const OVERFLOW_BURST = 400;
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
/** Client: a proxy made on first sight (not routed by us) that carried nothing for this long is closed. */
export const CLIENT_PROXY_IDLE_MS = 300_000;
/** Client: how often idle proxies are looked for. */
export const CLIENT_PROXY_SWEEP_INTERVAL_MS = 30_000;
