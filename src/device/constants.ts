/** Device-level constants (the protocol's own are in src/noise/constants.ts). */
import { AEAD_TAG_SIZE, PADDING_MULTIPLE } from '../noise/constants.js';
import { TransportSlot } from '../noise/transport-slot.js';
import type { SlotLayout } from '../platform/packet-ring.js';

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
