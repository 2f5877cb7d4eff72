/**
 * What the device refused or dropped on purpose, by reason: the defences
 * against floods and malformed input are visible to tests, benchmarks and
 * operators rather than silent.
 */
export class DeviceCounters {
  /** Packets from the TUN device shorter than the IP header their version announces, or not IPv4/IPv6. */
  tunMalformed = 0;
  /** Handshake messages that were given X25519 work (MACs and limits passed). */
  handshakesAdmitted = 0;
  /** Handshake messages answered with a cookie reply (under load, no valid MAC2) instead of X25519 work. */
  cookieReplies = 0;
  /** Handshake messages with a valid MAC2 refused by their source's (IPv4 address, IPv6 /64) token bucket. */
  rateLimited = 0;
  /** Handshake messages with a valid MAC2 refused because this second's global handshake budget was spent. */
  overBudget = 0;
  /** Transport data for a live session that did not authenticate, on every receive path (inline, crypto workers, reference). */
  transportForged = 0;
  /** Transport data whose counter came twice within one batch of the crypto workers' path. */
  transportReplayed = 0;
  /** Packets dropped because the crypto worker holding them stalled or died. */
  cryptoLost = 0;
}
