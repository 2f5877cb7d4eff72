/**
 * Ancillary data (struct cmsghdr) on UDP sockets: the UDP_SEGMENT size that
 * makes one sendmsg(2) leave as many datagrams (GSO), the UDP_GRO size the
 * kernel reports on a datagram it joined from many, and the IP_PKTINFO /
 * IPV6_PKTINFO local address a datagram arrived on or should leave from.
 * Layouts are those of x86-64 and arm64 Linux: a 16-byte header (size_t
 * length, int level, int type), data, padding to 8 bytes.
 */
import { IPPROTO_IPV6 } from './libc.js';

export const IPPROTO_IP = 0;
export const IP_PKTINFO = 8;
export const IPV6_RECVPKTINFO = 49;
const IPV6_PKTINFO = 50;
export const SOL_UDP = 17;
export const UDP_SEGMENT = 103;
export const UDP_GRO = 104;
/** msg_flags: the control data did not fit its buffer. */
export const MSG_CTRUNC = 0x8;

const CMSG_HEADER_SIZE = 16;
const CMSG_LEVEL = 8;
const CMSG_TYPE = 12;
const IN_PKTINFO_SIZE = 12;
const IN6_PKTINFO_SIZE = 20;

function align(length: number): number {
  return (length + 7) & ~7;
}

/** CMSG_SPACE: what a message with `dataLength` bytes of data takes in a control buffer. */
function controlSpace(dataLength: number): number {
  return CMSG_HEADER_SIZE + align(dataLength);
}

/**
 * Control room per message: a UDP_GRO (or UDP_SEGMENT) message and the
 * larger of the two packet-info messages, with room to spare.
 */
export const CONTROL_ROOM = 64;

function writeHeader(view: DataView, offset: number, level: number, type: number, dataLength: number): void {
  view.setUint32(offset, CMSG_HEADER_SIZE + dataLength, true);
  view.setUint32(offset + 4, 0, true);
  view.setInt32(offset + CMSG_LEVEL, level, true);
  view.setInt32(offset + CMSG_TYPE, type, true);
}

/** A UDP_SEGMENT message at `offset`: the kernel cuts the payload into datagrams of `segmentSize`. Returns its space. */
export function writeSegmentSize(view: DataView, offset: number, segmentSize: number): number {
  writeHeader(view, offset, SOL_UDP, UDP_SEGMENT, 2);
  view.setUint16(offset + CMSG_HEADER_SIZE, segmentSize, true);
  return controlSpace(2);
}

/** Where a datagram arrived, or where one should leave from: a local address and the interface it is on. */
export interface LocalSource {
  family: 4 | 6;
  /** 4 or 16 bytes. */
  address: Uint8Array;
  interfaceIndex: number;
}

/**
 * An IP_PKTINFO (IPv4) or IPV6_PKTINFO message at `offset` that makes the
 * datagram leave from `source`. Returns its space.
 */
export function writePacketInfo(view: DataView, offset: number, source: LocalSource): number {
  const data = offset + CMSG_HEADER_SIZE;
  if (source.family === 4) {
    writeHeader(view, offset, IPPROTO_IP, IP_PKTINFO, IN_PKTINFO_SIZE);
    // struct in_pktinfo { int ipi_ifindex; in_addr ipi_spec_dst; in_addr ipi_addr; }: spec_dst is the source to use.
    view.setInt32(data, source.interfaceIndex, true);
    for (let i = 0; i < 4; i++) view.setUint8(data + 4 + i, source.address[i]!);
    view.setUint32(data + 8, 0, true);
    return controlSpace(IN_PKTINFO_SIZE);
  }
  // struct in6_pktinfo { in6_addr ipi6_addr; unsigned ipi6_ifindex; }
  writeHeader(view, offset, IPPROTO_IPV6, IPV6_PKTINFO, IN6_PKTINFO_SIZE);
  for (let i = 0; i < 16; i++) view.setUint8(data + i, source.address[i]!);
  view.setUint32(data + 16, source.interfaceIndex, true);
  return controlSpace(IN6_PKTINFO_SIZE);
}

/** What the kernel said about one received datagram. */
export interface ReceivedControl {
  /** The UDP_GRO segment size: -1 when the datagram was not joined from several. */
  segmentSize: number;
  /** The local address it arrived on: 0 when no packet info came, else 4 or 6 (address in localAddress). */
  localFamily: 0 | 4 | 6;
  /** 16 bytes; an IPv4 address in the first 4. */
  readonly localAddress: Uint8Array;
  interfaceIndex: number;
}

/** No UDP_GRO message: the datagram is one datagram. */
export const NOT_COALESCED = -1;

export function emptyReceivedControl(): ReceivedControl {
  return { segmentSize: NOT_COALESCED, localFamily: 0, localAddress: new Uint8Array(16), interfaceIndex: 0 };
}

/**
 * Read the control messages in view[offset, offset + length) into `out`
 * (reused: nothing is allocated). Messages it does not know, and ones cut
 * short, are skipped.
 */
export function parseReceivedControl(view: DataView, offset: number, length: number, out: ReceivedControl): void {
  out.segmentSize = NOT_COALESCED;
  out.localFamily = 0;
  out.interfaceIndex = 0;
  const end = offset + length;
  let at = offset;
  while (at + CMSG_HEADER_SIZE <= end) {
    const messageLength = view.getUint32(at, true) + view.getUint32(at + 4, true) * 0x1_0000_0000;
    if (messageLength < CMSG_HEADER_SIZE || at + messageLength > end) return;
    const level = view.getInt32(at + CMSG_LEVEL, true);
    const type = view.getInt32(at + CMSG_TYPE, true);
    const data = at + CMSG_HEADER_SIZE;
    const dataLength = messageLength - CMSG_HEADER_SIZE;
    if (level === SOL_UDP && type === UDP_GRO && dataLength >= 4) out.segmentSize = view.getInt32(data, true);
    else if (level === IPPROTO_IP && type === IP_PKTINFO && dataLength >= IN_PKTINFO_SIZE) {
      out.localFamily = 4;
      out.interfaceIndex = view.getInt32(data, true);
      // ipi_spec_dst: the local address replies should come from (wireguard-go remembers this one too).
      for (let i = 0; i < 4; i++) out.localAddress[i] = view.getUint8(data + 4 + i);
    } else if (level === IPPROTO_IPV6 && type === IPV6_PKTINFO && dataLength >= IN6_PKTINFO_SIZE) {
      out.localFamily = 6;
      for (let i = 0; i < 16; i++) out.localAddress[i] = view.getUint8(data + i);
      out.interfaceIndex = view.getUint32(data + 16, true);
    }
    at += align(messageLength);
  }
}
