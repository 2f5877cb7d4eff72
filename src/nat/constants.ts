/**
 * Every number of NAT traversal proper (candidates, hole punching, the
 * maintenance tick) in one place. The STUN, TURN and relay modules keep
 * their own protocol constants beside their code (stun/, turn/, relay/).
 */

// ---- configuration defaults (the control plane fixes only "enabled, Google STUN") ----

/** The public STUN server of NatConfig's default, the one the control plane assumes. */
export const DEFAULT_STUN_SERVER = 'stun.l.google.com:19302';
export const DEFAULT_STUN_SERVER_LABEL = 'google';
/**
 * Time one connect attempt may spend on a peer's direct candidates before it
 * falls back to relays. 10 s covers one WireGuard handshake retransmission
 * (REKEY_TIMEOUT 5 s plus up to 1/3 s of jitter) after the probes found a
 * path, since a device sends at most one initiation per 5 s.
 */
export const DEFAULT_HOLE_PUNCH_TIMEOUT_SECS = 10;
/** How often the maintenance tick re-asks STUN for our reflexive address (NAT UDP mappings often expire after 30-60 s idle). */
export const DEFAULT_STUN_REFRESH_INTERVAL_SECS = 30;
/** Candidates of one peer tried per connect attempt, best first (ICE's default check list is far longer; a node rarely has more than a handful). */
export const DEFAULT_MAX_CANDIDATE_PAIRS = 10;
/** Relay sessions when max_sessions is 0 (unset on the wire). */
export const DEFAULT_MAX_RELAY_SESSIONS = 100;

// ---- candidate priorities (RFC 8445 §5.1.2.1) -------------------------------

/** Type preferences: host 126, server-reflexive 100, relayed 0 (RFC 8445's recommended values). */
export const TYPE_PREFERENCE = { host: 126, 'server-reflexive': 100, relay: 0 } as const;
/** Local preference of a node with one address per family: IPv6 above IPv4 is RFC 8421's advice, but NAT traversal here is IPv4-first, so IPv4 ranks higher. */
export const LOCAL_PREFERENCE_IPV4 = 65_535;
export const LOCAL_PREFERENCE_IPV6 = 65_534;
/** WireGuard has a single component (ICE's RTP component id 1). */
export const COMPONENT_ID = 1;

// ---- hole punching ----------------------------------------------------------

/** Probes go out to every direct candidate this often while a connect attempt runs. */
export const PROBE_INTERVAL_MS = 100;
/** Without any probe answer for this long, the peer may not speak probes (wireguard-go): fall back to plain handshakes per candidate. */
export const PROBE_GRACE_MS = 1_000;
/**
 * After probes confirm a path, wait at least this long for the handshake on
 * it: the device may have sent an initiation less than REKEY_TIMEOUT (5 s)
 * ago and then only retransmits after 5 s + jitter (≤ 1/3 s).
 */
export const HANDSHAKE_AFTER_SWITCH_MS = 6_000;
/** The side with the smaller public key gives the peer this long to start the handshake before starting one itself. */
export const YIELD_MS = 1_500;
/** Each relay candidate gets at least this long, for the same reason. */
export const MIN_RELAY_ATTEMPT_MS = 6_000;
/** How often a connect attempt looks at the peer's handshake time. */
export const HANDSHAKE_POLL_MS = 50;

// ---- the punch / probe messages (hole-punch wire format) --------------------

/**
 * First byte of a probe and of its answer. 0xE1/0xE2 can never be a
 * WireGuard message (1..4), STUN (top two bits 00), TURN ChannelData
 * (0x40..0x7F) nor a built-in relay message (0xF1..0xF7).
 */
export const PROBE_KIND = 0xe1;
export const PROBE_ANSWER_KIND = 0xe2;
export const PROBE_VERSION = 1;
/** kind, version, sender public key (32), target public key (32), transaction id (8). */
export const PROBE_SIZE = 2 + 32 + 32 + 8;

// ---- gathering ---------------------------------------------------------------

/** One STUN Binding request (with its retransmissions) gives up after this long while gathering. */
export const STUN_GATHER_TIMEOUT_MS = 3_000;

// ---- maintenance ------------------------------------------------------------

/** WireGuard keepalive the overlay configures (seconds); peers are re-traversed after 3 of them without a handshake. */
export const OVERLAY_KEEPALIVE_SECS = 25;
/** A peer whose last handshake is older than this (3 × 25 s keepalive) is connected again by the tick. */
export const RECONNECT_AFTER_MS = 3 * OVERLAY_KEEPALIVE_SECS * 1000;
