/**
 * TCP and UDP over IPv4/IPv6 for the TUN offload tests: build a packet from
 * its fields with every checksum filled in, parse one back into the same
 * fields, and check its lengths and checksums. The checksum here is a
 * deliberately plain RFC 1071 sum (end-around carry after every word, over
 * the pseudo-header and segment laid out as real bytes), written apart from
 * src/tun/checksum.ts so that the two can be compared.
 */

export const IPPROTO_TCP = 6;
export const IPPROTO_UDP = 17;
export const IPPROTO_HOP_BY_HOP = 0;

export const TCP_FIN = 0x01;
export const TCP_SYN = 0x02;
export const TCP_RST = 0x04;
export const TCP_PSH = 0x08;
export const TCP_ACK = 0x10;
export const TCP_URG = 0x20;
export const TCP_ECE = 0x40;
export const TCP_CWR = 0x80;

/** IPv4 flags/fragment-offset field values. */
export const IPV4_DF = 0x4000;
export const IPV4_MF = 0x2000;

// ---- the reference checksum ---------------------------------------------------

/** One's-complement sum of the big-endian words of `data` (odd last byte padded with zero), carry folded in at every step. */
export function onesComplementSum(data: Uint8Array, initial = 0): number {
  let sum = initial;
  for (let i = 0; i < data.length; i += 2) {
    sum += (data[i]! << 8) | (i + 1 < data.length ? data[i + 1]! : 0);
    if (sum > 0xffff) sum -= 0xffff; // end-around carry: drop 2^16, add 1
  }
  return sum;
}

/** The checksum field value for `data` (RFC 1071): the complement of its one's-complement sum. */
export function referenceChecksum(data: Uint8Array): number {
  return ~onesComplementSum(data) & 0xffff;
}

/** A one's-complement sum in [1, 0xffff] (0 only for 0) congruent to x mod 0xffff: what folding any sum must give. */
export function referenceFold(x: number): number {
  return x === 0 ? 0 : ((x - 1) % 0xffff) + 1;
}

export function concat(...parts: Uint8Array[]): Uint8Array {
  const out = new Uint8Array(parts.reduce((n, p) => n + p.length, 0));
  let at = 0;
  for (const part of parts) {
    out.set(part, at);
    at += part.length;
  }
  return out;
}

/** The TCP/UDP pseudo-header as bytes: RFC 793/768 for IPv4 (12 bytes), RFC 8200 §8.1 for IPv6 (40 bytes). */
export function pseudoHeader(source: Uint8Array, destination: Uint8Array, protocol: number, transportLength: number): Uint8Array {
  if (source.length === 4) {
    const out = new Uint8Array(12);
    out.set(source, 0);
    out.set(destination, 4);
    out[9] = protocol;
    new DataView(out.buffer).setUint16(10, transportLength);
    return out;
  }
  const out = new Uint8Array(40);
  out.set(source, 0);
  out.set(destination, 16);
  new DataView(out.buffer).setUint32(32, transportLength);
  out[39] = protocol;
  return out;
}

// ---- building -------------------------------------------------------------------

export interface IpFields {
  version: 4 | 6;
  source: Uint8Array;
  destination: Uint8Array;
  /** IPv4 TOS or IPv6 traffic class. */
  tos: number;
  /** IPv4 TTL or IPv6 hop limit. */
  ttl: number;
  /** IPv4 only. */
  id: number;
  /** IPv4 only: the 16-bit flags + fragment offset field. */
  fragment: number;
  /** IPv4 only: options (a multiple of 4 bytes, at most 40). */
  ipOptions: Uint8Array;
  /** IPv6 only. */
  flowLabel: number;
  /** IPv6 only: one hop-by-hop options header (a multiple of 8 bytes, or empty); its first two bytes are set here. */
  extension: Uint8Array;
}

export interface TcpFields extends IpFields {
  sourcePort: number;
  destinationPort: number;
  seq: number;
  ack: number;
  flags: number;
  window: number;
  urgent: number;
  /** TCP options (a multiple of 4 bytes, at most 40). */
  options: Uint8Array;
  payload: Uint8Array;
}

export interface UdpFields extends IpFields {
  sourcePort: number;
  destinationPort: number;
  payload: Uint8Array;
}

export const IP_DEFAULTS: Omit<IpFields, 'version' | 'source' | 'destination'> = {
  tos: 0,
  ttl: 64,
  id: 0,
  fragment: IPV4_DF,
  ipOptions: new Uint8Array(0),
  flowLabel: 0,
  extension: new Uint8Array(0),
};

/** The IP header for a transport segment of `transportLength` bytes (IPv4 header checksum filled in). */
function ipHeader(ip: IpFields, protocol: number, transportLength: number): Uint8Array {
  if (ip.version === 4) {
    if (ip.ipOptions.length % 4 !== 0 || ip.ipOptions.length > 40) throw new Error(`IPv4 options must be a multiple of 4 up to 40 bytes, got ${ip.ipOptions.length}`);
    const header = new Uint8Array(20 + ip.ipOptions.length);
    const view = new DataView(header.buffer);
    header[0] = 0x40 | (header.length / 4);
    header[1] = ip.tos;
    view.setUint16(2, header.length + transportLength);
    view.setUint16(4, ip.id);
    view.setUint16(6, ip.fragment);
    header[8] = ip.ttl;
    header[9] = protocol;
    header.set(ip.source, 12);
    header.set(ip.destination, 16);
    header.set(ip.ipOptions, 20);
    view.setUint16(10, referenceChecksum(header));
    return header;
  }
  if (ip.extension.length % 8 !== 0) throw new Error(`IPv6 extension header must be a multiple of 8 bytes, got ${ip.extension.length}`);
  const header = new Uint8Array(40 + ip.extension.length);
  const view = new DataView(header.buffer);
  view.setUint32(0, (6 << 28) | (ip.tos << 20) | (ip.flowLabel & 0xfffff));
  view.setUint16(4, ip.extension.length + transportLength);
  header[6] = ip.extension.length > 0 ? IPPROTO_HOP_BY_HOP : protocol;
  header[7] = ip.ttl;
  header.set(ip.source, 8);
  header.set(ip.destination, 24);
  if (ip.extension.length > 0) {
    header.set(ip.extension, 40);
    header[40] = protocol;
    header[41] = ip.extension.length / 8 - 1;
  }
  return header;
}

/** A TCP packet with correct lengths and checksums. */
export function buildTcpPacket(fields: TcpFields): Uint8Array {
  if (fields.options.length % 4 !== 0 || fields.options.length > 40) throw new Error(`TCP options must be a multiple of 4 up to 40 bytes, got ${fields.options.length}`);
  const tcp = new Uint8Array(20 + fields.options.length + fields.payload.length);
  const view = new DataView(tcp.buffer);
  view.setUint16(0, fields.sourcePort);
  view.setUint16(2, fields.destinationPort);
  view.setUint32(4, fields.seq >>> 0);
  view.setUint32(8, fields.ack >>> 0);
  tcp[12] = ((20 + fields.options.length) / 4) << 4;
  tcp[13] = fields.flags;
  view.setUint16(14, fields.window);
  view.setUint16(18, fields.urgent);
  tcp.set(fields.options, 20);
  tcp.set(fields.payload, 20 + fields.options.length);
  view.setUint16(16, referenceChecksum(concat(pseudoHeader(fields.source, fields.destination, IPPROTO_TCP, tcp.length), tcp)));
  return concat(ipHeader(fields, IPPROTO_TCP, tcp.length), tcp);
}

/** A UDP packet with correct lengths and checksum (0 is sent as 0xffff). */
export function buildUdpPacket(fields: UdpFields): Uint8Array {
  const udp = new Uint8Array(8 + fields.payload.length);
  const view = new DataView(udp.buffer);
  view.setUint16(0, fields.sourcePort);
  view.setUint16(2, fields.destinationPort);
  view.setUint16(4, udp.length);
  udp.set(fields.payload, 8);
  const checksum = referenceChecksum(concat(pseudoHeader(fields.source, fields.destination, IPPROTO_UDP, udp.length), udp));
  view.setUint16(6, checksum === 0 ? 0xffff : checksum);
  return concat(ipHeader(fields, IPPROTO_UDP, udp.length), udp);
}

// ---- parsing ----------------------------------------------------------------------

export interface ParsedIp {
  version: 4 | 6;
  /** Where the transport header starts (IPv4 IHL, or 40 + extension headers). */
  transportOffset: number;
  protocol: number;
  source: Uint8Array;
  destination: Uint8Array;
  /** The IP length field agrees with the packet's length. */
  lengthValid: boolean;
  /** IPv4 header checksum verifies (always true for IPv6). */
  headerChecksumValid: boolean;
  /** The transport checksum (TCP or UDP) verifies over the pseudo-header and the whole segment. */
  transportChecksumValid: boolean;
}

export function parseIp(packet: Uint8Array): ParsedIp {
  const version = packet[0]! >> 4;
  const view = new DataView(packet.buffer, packet.byteOffset, packet.byteLength);
  if (version === 4) {
    const transportOffset = (packet[0]! & 0x0f) * 4;
    const source = packet.slice(12, 16);
    const destination = packet.slice(16, 20);
    const protocol = packet[9]!;
    return {
      version,
      transportOffset,
      protocol,
      source,
      destination,
      lengthValid: view.getUint16(2) === packet.length,
      headerChecksumValid: onesComplementSum(packet.subarray(0, transportOffset)) === 0xffff,
      transportChecksumValid: onesComplementSum(concat(pseudoHeader(source, destination, protocol, packet.length - transportOffset), packet.subarray(transportOffset))) === 0xffff,
    };
  }
  if (version !== 6) throw new Error(`not an IP packet: version ${version}`);
  let protocol = packet[6]!;
  let transportOffset = 40;
  if (protocol === IPPROTO_HOP_BY_HOP) {
    protocol = packet[40]!;
    transportOffset += (packet[41]! + 1) * 8;
  }
  const source = packet.slice(8, 24);
  const destination = packet.slice(24, 40);
  return {
    version,
    transportOffset,
    protocol,
    source,
    destination,
    lengthValid: view.getUint16(4) === packet.length - 40,
    headerChecksumValid: true,
    transportChecksumValid: onesComplementSum(concat(pseudoHeader(source, destination, protocol, packet.length - transportOffset), packet.subarray(transportOffset))) === 0xffff,
  };
}

export interface ParsedTcp extends ParsedIp {
  seq: number;
  ack: number;
  flags: number;
  window: number;
  checksum: number;
  headerLength: number;
  payload: Uint8Array;
}

export function parseTcp(packet: Uint8Array): ParsedTcp {
  const ip = parseIp(packet);
  if (ip.protocol !== IPPROTO_TCP) throw new Error(`not TCP: protocol ${ip.protocol}`);
  const tcp = ip.transportOffset;
  const view = new DataView(packet.buffer, packet.byteOffset, packet.byteLength);
  const headerLength = (packet[tcp + 12]! >> 4) * 4;
  return {
    ...ip,
    seq: view.getUint32(tcp + 4),
    ack: view.getUint32(tcp + 8),
    flags: packet[tcp + 13]!,
    window: view.getUint16(tcp + 14),
    checksum: view.getUint16(tcp + 16),
    headerLength,
    payload: packet.subarray(tcp + headerLength),
  };
}

/** Everything of a TCP packet that identifies its flow (addresses and ports), as a string key. */
export function tcpFlowKey(packet: Uint8Array): string | null {
  const version = packet[0]! >> 4;
  if (version === 4 && packet.length >= 40 && packet[9] === IPPROTO_TCP) {
    const tcp = (packet[0]! & 0x0f) * 4;
    return `4 ${Array.from(packet.subarray(12, 20)).join('.')} ${Array.from(packet.subarray(tcp, tcp + 4)).join('.')}`;
  }
  if (version === 6 && packet.length >= 60 && packet[6] === IPPROTO_TCP) {
    return `6 ${Array.from(packet.subarray(8, 44)).join('.')}`;
  }
  return null;
}
