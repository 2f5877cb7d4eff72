/**
 * The read side of the TUN offloads: finish checksums the kernel left to us
 * and cut TCP super-packets (TSO) into the segments the kernel would have
 * sent — each a complete IP packet with its own length, IPv4 ID, sequence
 * number, flags and checksums — exactly as the kernel's software GSO does.
 * Copies use copyWithin inside one buffer, so nothing is allocated.
 */
import { finish, get16, pseudoHeaderSum, put16, setIpv4HeaderChecksum, sumWords } from './checksum.js';
import { TCP_CWR, TCP_FIN, TCP_PROTOCOL, TCP_PSH } from './constants.js';

const TCP_CHECKSUM_OFFSET = 16;

/** Where segments go: reserve() gives the offset (in the same buffer) of room for the next one, commit() hands it on. */
export interface SegmentSink {
  reserve(): number;
  commit(length: number): void;
}

/**
 * Finish a NEEDS_CSUM packet in place: the checksum field (csumStart +
 * csumOffset) holds the pseudo-header sum; add everything from csumStart on.
 * Returns false when the offsets do not fit the packet.
 */
export function completeChecksum(bytes: Uint8Array, start: number, length: number, csumStart: number, csumOffset: number): boolean {
  if (csumStart + csumOffset + 2 > length) return false;
  const value = finish(sumWords(bytes, start + csumStart, start + length));
  put16(bytes, start + csumStart + csumOffset, value === 0 ? 0xffff : value);
  return true;
}

/** The IP and TCP headers' length of the super-packet at bytes[start, start + length), or 0 when they do not fit. */
function tcpHeadersLength(bytes: Uint8Array, start: number, length: number, csumStart: number): number {
  const version = bytes[start]! >> 4;
  if ((version !== 4 && version !== 6) || csumStart + 20 > length) return 0;
  const tcpHeaderLength = (bytes[start + csumStart + 12]! >> 4) * 4;
  const headerLength = csumStart + tcpHeaderLength;
  return tcpHeaderLength < 20 || headerLength > length ? 0 : headerLength;
}

/** How many segments splitTcpSegments would cut (0: malformed), without cutting any. */
export function tcpSegmentCount(bytes: Uint8Array, start: number, length: number, csumStart: number, gsoSize: number): number {
  const headerLength = tcpHeadersLength(bytes, start, length, csumStart);
  if (gsoSize === 0 || headerLength === 0) return 0;
  return Math.max(1, Math.ceil((length - headerLength) / gsoSize));
}

/**
 * Cut the TCP super-packet at bytes[start, start + length) into segments of
 * gsoSize payload bytes. csumStart is where the TCP header starts. Returns
 * the number of segments, or 0 when the packet is malformed (nothing sent).
 */
export function splitTcpSegments(bytes: Uint8Array, start: number, length: number, csumStart: number, gsoSize: number, sink: SegmentSink): number {
  const version = bytes[start]! >> 4;
  const headerLength = tcpHeadersLength(bytes, start, length, csumStart);
  if (gsoSize === 0 || headerLength === 0) return 0;
  const tcp = start + csumStart;
  const tcpHeaderLength = headerLength - csumStart;
  const payloadLength = length - headerLength;
  const firstId = version === 4 ? get16(bytes, start + 4) : 0;
  const firstSeq = bytes[tcp + 4]! * 0x1000000 + ((bytes[tcp + 5]! << 16) | (bytes[tcp + 6]! << 8) | bytes[tcp + 7]!);
  const flags = bytes[tcp + 13]!;
  let segments = 0;
  for (let offset = 0; offset < payloadLength || (payloadLength === 0 && segments === 0); offset += gsoSize) {
    const chunk = Math.min(gsoSize, payloadLength - offset);
    const last = offset + chunk >= payloadLength;
    const out = sink.reserve();
    bytes.copyWithin(out, start, start + headerLength);
    bytes.copyWithin(out + headerLength, start + headerLength + offset, start + headerLength + offset + chunk);
    const segmentLength = headerLength + chunk;
    if (version === 4) {
      put16(bytes, out + 2, segmentLength);
      put16(bytes, out + 4, (firstId + segments) & 0xffff);
      setIpv4HeaderChecksum(bytes, out);
    } else {
      put16(bytes, out + 4, segmentLength - 40);
    }
    const outTcp = out + csumStart;
    const seq = (firstSeq + offset) % 0x1_0000_0000;
    bytes[outTcp + 4] = Math.floor(seq / 0x1000000);
    bytes[outTcp + 5] = (seq >>> 16) & 0xff;
    bytes[outTcp + 6] = (seq >>> 8) & 0xff;
    bytes[outTcp + 7] = seq & 0xff;
    let segmentFlags = flags;
    if (!last) segmentFlags &= ~(TCP_FIN | TCP_PSH);
    if (segments > 0) segmentFlags &= ~TCP_CWR;
    bytes[outTcp + 13] = segmentFlags;
    put16(bytes, outTcp + TCP_CHECKSUM_OFFSET, 0);
    const sum = pseudoHeaderSum(bytes, out, TCP_PROTOCOL, tcpHeaderLength + chunk) + sumWords(bytes, outTcp, out + segmentLength);
    put16(bytes, outTcp + TCP_CHECKSUM_OFFSET, finish(sum));
    sink.commit(segmentLength);
    segments++;
    if (payloadLength === 0) break;
  }
  return segments;
}
