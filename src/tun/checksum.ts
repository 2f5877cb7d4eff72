/**
 * The Internet checksum (RFC 1071) pieces the TUN offloads need: sums over
 * byte ranges, folding, and the TCP/UDP pseudo-header. Sums are kept as
 * plain Numbers (exact well past 2^32) and folded at the end; nothing here
 * allocates.
 */

/** Add the big-endian 16-bit words of bytes[start, end) to `sum` (an odd last byte is padded with zero). */
export function sumWords(bytes: Uint8Array, start: number, end: number, sum = 0): number {
  let i = start;
  for (; i + 1 < end; i += 2) sum += (bytes[i]! << 8) | bytes[i + 1]!;
  if (i < end) sum += bytes[i]! << 8;
  return sum;
}

/** Fold a sum to 16 bits (not complemented: the "partial" checksum of CHECKSUM_PARTIAL). */
export function fold(sum: number): number {
  while (sum > 0xffff) sum = (sum % 0x10000) + Math.floor(sum / 0x10000);
  return sum;
}

/** The finished checksum field value: the complement of the folded sum. */
export function finish(sum: number): number {
  return ~fold(sum) & 0xffff;
}

/**
 * The pseudo-header sum of a TCP/UDP segment in an IP packet: source and
 * destination addresses, protocol and the transport length.
 */
export function pseudoHeaderSum(bytes: Uint8Array, ipStart: number, protocol: number, transportLength: number): number {
  const v6 = bytes[ipStart]! >> 4 === 6;
  const sum = v6 ? sumWords(bytes, ipStart + 8, ipStart + 40) : sumWords(bytes, ipStart + 12, ipStart + 20);
  return sum + protocol + transportLength;
}

/** Store a 16-bit value big endian. */
export function put16(bytes: Uint8Array, offset: number, value: number): void {
  bytes[offset] = value >>> 8;
  bytes[offset + 1] = value & 0xff;
}

/** Read a 16-bit big-endian value. */
export function get16(bytes: Uint8Array, offset: number): number {
  return (bytes[offset]! << 8) | bytes[offset + 1]!;
}

/** Recompute an IPv4 header's checksum in place. */
export function setIpv4HeaderChecksum(packet: Uint8Array, start = 0): void {
  const headerLength = (packet[start]! & 0x0f) * 4;
  put16(packet, start + 10, 0);
  put16(packet, start + 10, finish(sumWords(packet, start, start + headerLength)));
}
