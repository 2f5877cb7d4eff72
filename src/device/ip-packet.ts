/**
 * The little of IP the device must read: the version nibble and the packet's
 * own length, to strip WireGuard's padding from a decrypted packet, and
 * whether a packet from the TUN device is long enough to be routed.
 */
const IPV4_HEADER_MIN = 20;
const IPV6_HEADER_SIZE = 40;

/**
 * The packet without trailing padding, or null when it is not a well-formed
 * IPv4/IPv6 packet whose stated length fits in the bytes we have.
 */
export function trimIpPacket(packet: Uint8Array): Uint8Array | null {
  const version = packet.length > 0 ? packet[0]! >> 4 : 0;
  let length: number;
  if (version === 4) {
    if (packet.length < IPV4_HEADER_MIN) return null;
    length = (packet[2]! << 8) | packet[3]!;
    if (length < IPV4_HEADER_MIN) return null;
  } else if (version === 6) {
    if (packet.length < IPV6_HEADER_SIZE) return null;
    length = IPV6_HEADER_SIZE + ((packet[4]! << 8) | packet[5]!);
  } else {
    return null;
  }
  if (length > packet.length) return null;
  return packet.subarray(0, length);
}

/**
 * True when bytes[0, length) hold the fixed header that the version nibble
 * announces (IPv4 20 bytes, IPv6 40). Routing reads the destination from it;
 * in a ring slot, bytes past `length` are a previous packet's.
 */
export function ipHeaderFits(bytes: Uint8Array, length: number): boolean {
  if (length <= 0) return false;
  const version = bytes[0]! >> 4;
  return (version === 4 && length >= IPV4_HEADER_MIN) || (version === 6 && length >= IPV6_HEADER_SIZE);
}
