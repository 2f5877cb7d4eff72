/**
 * UDP offloads on a socket, probed when it opens: segmentation (GSO: one
 * sendmsg(2) with a UDP_SEGMENT size leaves as many datagrams) and
 * coalescing (GRO: the kernel hands over a run of same-size datagrams as
 * one, with their size in a UDP_GRO control message). Also the packet info
 * that says which local address each datagram arrived on.
 */
import { IPPROTO_IPV6, lastErrno, loadLibc } from './libc.js';
import { IPPROTO_IP, IPV6_RECVPKTINFO, IP_PKTINFO, SOL_UDP, UDP_GRO, UDP_SEGMENT } from './udp-control-message.js';

/** TSWG_UDP_OFFLOAD=0 turns the UDP offloads off (to compare, or for a kernel or NIC that mishandles them). */
export function udpOffloadWanted(): boolean {
  return process.env.TSWG_UDP_OFFLOAD !== '0';
}

export interface UdpOffloads {
  /** Sends may carry UDP_SEGMENT (GSO). */
  segmentation: boolean;
  /** The kernel may hand over joined datagrams (GRO). */
  coalescing: boolean;
}

function setInt(fd: number, level: number, name: number, value: number): boolean {
  const bytes = new Uint8Array(4);
  new DataView(bytes.buffer).setInt32(0, value, true);
  return loadLibc().setsockopt(fd, level, name, bytes, 4) === 0;
}

/**
 * Turn on what the kernel offers (unless TSWG_UDP_OFFLOAD=0). A UDP_SEGMENT
 * of 0 on the socket changes nothing but tells whether the kernel knows
 * the option (Linux 4.18+); UDP_GRO (5.0+) is switched on.
 */
export function enableUdpOffloads(fd: number): UdpOffloads {
  if (!udpOffloadWanted()) return { segmentation: false, coalescing: false };
  return { segmentation: setInt(fd, SOL_UDP, UDP_SEGMENT, 0), coalescing: setInt(fd, SOL_UDP, UDP_GRO, 1) };
}

/**
 * Ask for the local address of each received datagram (IP_PKTINFO,
 * IPV6_RECVPKTINFO), so replies can leave from it. Returns the error code
 * when the kernel refuses, null when it is on.
 */
export function enablePacketInfo(fd: number, family: 4 | 6): string | null {
  const on = family === 4 ? setInt(fd, IPPROTO_IP, IP_PKTINFO, 1) : setInt(fd, IPPROTO_IPV6, IPV6_RECVPKTINFO, 1);
  return on ? null : lastErrno().code;
}
