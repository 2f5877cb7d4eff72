/** Just enough IPv4 and ICMP to build and check echo requests and replies in tests. */

export const IPPROTO_ICMP = 1;
export const ICMP_ECHO_REPLY = 0;
export const ICMP_ECHO_REQUEST = 8;

export function parseIpv4Address(text: string): Uint8Array {
  const octets = text.split('.').map(Number);
  if (octets.length !== 4 || octets.some((o) => !Number.isInteger(o) || o < 0 || o > 255)) {
    throw new Error(`not an IPv4 address: ${text}`);
  }
  return new Uint8Array(octets);
}

export function formatIpv4Address(bytes: Uint8Array): string {
  return Array.from(bytes.subarray(0, 4)).join('.');
}

/** The Internet checksum (RFC 1071) of `bytes`. A region that contains a correct checksum sums to 0. */
export function internetChecksum(bytes: Uint8Array): number {
  let sum = 0;
  for (let i = 0; i < bytes.length; i += 2) {
    sum += (bytes[i]! << 8) | (bytes[i + 1] ?? 0);
  }
  while (sum > 0xffff) sum = (sum & 0xffff) + (sum >>> 16);
  return ~sum & 0xffff;
}

export interface IcmpEcho {
  source: string;
  destination: string;
  type: typeof ICMP_ECHO_REQUEST | typeof ICMP_ECHO_REPLY;
  identifier: number;
  sequence: number;
  payload: Uint8Array;
  ttl?: number;
  ipId?: number;
}

/** An IPv4 packet (20-byte header, DF set) carrying an ICMP echo request or reply, checksums filled in. */
export function buildIcmpEcho(echo: IcmpEcho): Uint8Array {
  const icmpLength = 8 + echo.payload.length;
  const packet = new Uint8Array(20 + icmpLength);
  const view = new DataView(packet.buffer);
  packet[0] = 0x45; // version 4, IHL 5
  view.setUint16(2, packet.length);
  view.setUint16(4, echo.ipId ?? 0);
  view.setUint16(6, 0x4000); // DF
  packet[8] = echo.ttl ?? 64;
  packet[9] = IPPROTO_ICMP;
  packet.set(parseIpv4Address(echo.source), 12);
  packet.set(parseIpv4Address(echo.destination), 16);
  view.setUint16(10, internetChecksum(packet.subarray(0, 20)));
  const icmp = packet.subarray(20);
  icmp[0] = echo.type;
  icmp[1] = 0;
  view.setUint16(24, echo.identifier);
  view.setUint16(26, echo.sequence);
  icmp.set(echo.payload, 8);
  view.setUint16(22, internetChecksum(icmp));
  return packet;
}

export interface Ipv4Packet {
  /** The packet cut to its total length (transport padding removed). */
  packet: Uint8Array;
  headerLength: number;
  totalLength: number;
  protocol: number;
  ttl: number;
  source: string;
  destination: string;
  headerChecksumValid: boolean;
  payload: Uint8Array;
}

/** Parse an IPv4 packet, trimming whatever follows its total length (WireGuard's zero padding). */
export function parseIpv4(bytes: Uint8Array): Ipv4Packet {
  if (bytes.length < 20) throw new Error(`IPv4 packet too short: ${bytes.length} bytes`);
  const version = bytes[0]! >> 4;
  if (version !== 4) throw new Error(`not IPv4: version ${version}`);
  const headerLength = (bytes[0]! & 0x0f) * 4;
  const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  const totalLength = view.getUint16(2);
  if (headerLength < 20 || totalLength < headerLength || totalLength > bytes.length) {
    throw new Error(`bad IPv4 lengths: header ${headerLength}, total ${totalLength}, have ${bytes.length} bytes`);
  }
  const packet = bytes.subarray(0, totalLength);
  return {
    packet,
    headerLength,
    totalLength,
    protocol: bytes[9]!,
    ttl: bytes[8]!,
    source: formatIpv4Address(bytes.subarray(12, 16)),
    destination: formatIpv4Address(bytes.subarray(16, 20)),
    headerChecksumValid: internetChecksum(bytes.subarray(0, headerLength)) === 0,
    payload: packet.subarray(headerLength),
  };
}

export interface ParsedIcmpEcho {
  type: number;
  code: number;
  identifier: number;
  sequence: number;
  payload: Uint8Array;
  checksumValid: boolean;
}

/** Parse the ICMP part of an IPv4 packet as an echo request/reply. */
export function parseIcmpEcho(ip: Ipv4Packet): ParsedIcmpEcho {
  if (ip.protocol !== IPPROTO_ICMP) throw new Error(`not ICMP: IP protocol ${ip.protocol}`);
  const icmp = ip.payload;
  if (icmp.length < 8) throw new Error(`ICMP message too short: ${icmp.length} bytes`);
  const view = new DataView(icmp.buffer, icmp.byteOffset, icmp.byteLength);
  return {
    type: icmp[0]!,
    code: icmp[1]!,
    identifier: view.getUint16(4),
    sequence: view.getUint16(6),
    payload: icmp.subarray(8),
    checksumValid: internetChecksum(icmp) === 0,
  };
}
