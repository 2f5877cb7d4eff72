/**
 * The write side of the TUN offloads: consecutive TCP segments of one flow,
 * received in one batch, are joined into one super-packet that the kernel
 * takes in a single write(2) and whose TCP checksum it treats as verified
 * (virtio_net_hdr with NEEDS_CSUM and GSO_TCPV4/6) — the receive half of
 * what makes a tunnel fast (wireguard-go's tcpGRO does the same). Segments
 * are joined only under the rules Linux GRO uses: same addresses, ports, IP
 * fields, ACK, window and TCP options, contiguous sequence numbers and IPv4
 * IDs, plain ACK flags (PSH ends a run), equal payload sizes (a shorter one
 * ends a run), and a TCP checksum that verifies (the kernel trusts a joined
 * payload). Everything else is written as it came, in order: any other TCP
 * packet of the flow (a pure ACK, a RST) ends the flow's run.
 */
import { fold, get16, pseudoHeaderSum, put16, setIpv4HeaderChecksum, sumWords } from './checksum.js';
import {
  CSUM_OFFSET,
  CSUM_START,
  FLAGS,
  GSO_SIZE,
  GSO_TYPE,
  HDR_LEN,
  VIRTIO_NET_HDR_F_NEEDS_CSUM,
  VIRTIO_NET_HDR_GSO_NONE,
  VIRTIO_NET_HDR_GSO_TCPV4,
  VIRTIO_NET_HDR_GSO_TCPV6,
  VIRTIO_NET_HDR_SIZE,
  setField,
} from './virtio-net.js';
import { TCP_ACK, TCP_PROTOCOL, TCP_PSH } from './constants.js';

/** Most a coalesced packet may carry (the IP length fields are 16 bits). */
const MAX_COALESCED = 65_535;
/** Runs kept open at once; more are written as they come. */
export const MAX_PENDING = 64;
/** How far back an arriving segment looks for its flow's run. */
const MAX_SCAN = 8;

/** What the coalescer needs to know of a TCP segment (filled in place, never allocated per packet). */
class Segment {
  /** The IP and TCP headers parse: the flow is known (addresses, ports). */
  tcp = false;
  /** And it may join a run. */
  coalescable = false;
  v6 = false;
  ipv4Id = 0;
  ipHeaderLength = 0;
  tcpHeaderLength = 0;
  payloadLength = 0;
  seq = 0;
  flags = 0;

  read(packet: Uint8Array): void {
    this.tcp = false;
    this.coalescable = false;
    const length = packet.length;
    if (length < 20) return;
    const version = packet[0]! >> 4;
    if (version === 4) {
      this.v6 = false;
      this.ipHeaderLength = (packet[0]! & 0x0f) * 4;
      // No options, not a fragment, TCP, and the length field agrees.
      if (this.ipHeaderLength !== 20 || packet[9] !== TCP_PROTOCOL || (get16(packet, 6) & 0x3fff) !== 0 || get16(packet, 2) !== length) return;
    } else if (version === 6) {
      this.v6 = true;
      this.ipHeaderLength = 40;
      if (length < 60 || packet[6] !== TCP_PROTOCOL || get16(packet, 4) !== length - 40) return;
    } else return;
    const tcp = this.ipHeaderLength;
    if (length < tcp + 20) return;
    this.tcpHeaderLength = (packet[tcp + 12]! >> 4) * 4;
    if (this.tcpHeaderLength < 20 || tcp + this.tcpHeaderLength > length) return;
    this.payloadLength = length - tcp - this.tcpHeaderLength;
    this.flags = packet[tcp + 13]!;
    this.tcp = true;
    // Only plain data segments: ACK, optionally PSH; nothing urgent.
    if (this.payloadLength === 0 || (this.flags & ~TCP_PSH) !== TCP_ACK || get16(packet, tcp + 18) !== 0) return;
    // A corrupt segment must reach the kernel alone, which drops it; joined, its payload would be trusted.
    if (fold(pseudoHeaderSum(packet, 0, TCP_PROTOCOL, length - tcp) + sumWords(packet, tcp, length)) !== 0xffff) return;
    this.seq = packet[tcp + 4]! * 0x1000000 + ((packet[tcp + 5]! << 16) | (packet[tcp + 6]! << 8) | packet[tcp + 7]!);
    this.ipv4Id = this.v6 ? 0 : get16(packet, 4);
    this.coalescable = true;
  }
}

/** A run of segments being joined, in a buffer with room for the virtio header in front. */
class Run {
  readonly buffer = new Uint8Array(VIRTIO_NET_HDR_SIZE + MAX_COALESCED);
  length = 0;
  segments = 0;
  open = false;
  /** Started by a TCP packet whose flow is known (sameFlow works). */
  tcp = false;
  coalescable = false;
  v6 = false;
  /** The IPv4 ID the next segment must carry (IDs increment along a run). */
  nextIpv4Id = 0;
  headerLength = 0;
  ipHeaderLength = 0;
  gsoSize = 0;
  nextSeq = 0;

  start(packet: Uint8Array, segment: Segment): void {
    this.buffer.set(packet, VIRTIO_NET_HDR_SIZE);
    this.length = packet.length;
    this.segments = 1;
    this.tcp = segment.tcp;
    this.coalescable = segment.coalescable;
    this.open = segment.coalescable && (segment.flags & TCP_PSH) === 0;
    if (!segment.tcp) return;
    this.v6 = segment.v6;
    this.ipHeaderLength = segment.ipHeaderLength;
    if (!segment.coalescable) return;
    this.nextIpv4Id = (segment.ipv4Id + 1) & 0xffff;
    this.headerLength = segment.ipHeaderLength + segment.tcpHeaderLength;
    this.gsoSize = segment.payloadLength;
    this.nextSeq = (segment.seq + segment.payloadLength) % 0x1_0000_0000;
  }

  /** Same flow: addresses and ports (both are TCP packets whose headers parse). */
  sameFlow(packet: Uint8Array, segment: Segment): boolean {
    if (segment.v6 !== this.v6 || segment.ipHeaderLength !== this.ipHeaderLength) return false;
    const b = this.buffer;
    const o = VIRTIO_NET_HDR_SIZE;
    const [from, to] = this.v6 ? [8, 40] : [12, 20];
    for (let i = from; i < to; i++) if (packet[i] !== b[o + i]) return false;
    const tcp = segment.ipHeaderLength;
    for (let i = 0; i < 4; i++) if (packet[tcp + i] !== b[o + tcp + i]) return false;
    return true;
  }

  /** May `packet` (same flow) extend this run? */
  accepts(packet: Uint8Array, segment: Segment): boolean {
    if (!this.open || !segment.coalescable || segment.ipHeaderLength + segment.tcpHeaderLength !== this.headerLength) return false;
    if (!this.v6 && segment.ipv4Id !== this.nextIpv4Id) return false;
    if (segment.seq !== this.nextSeq || segment.payloadLength > this.gsoSize || this.length + segment.payloadLength > MAX_COALESCED) return false;
    const b = this.buffer;
    const o = VIRTIO_NET_HDR_SIZE;
    // IP fields that must agree: v4 TOS, flags, TTL; v6 traffic class, flow label, hop limit.
    if (this.v6) {
      for (let i = 0; i < 4; i++) if (packet[i] !== b[o + i]) return false;
      if (packet[7] !== b[o + 7]) return false;
    } else if (packet[1] !== b[o + 1] || packet[6] !== b[o + 6] || packet[8] !== b[o + 8]) return false;
    // TCP: ACK number, data offset, window, then the options, byte for byte (flags were checked).
    const tcp = this.ipHeaderLength;
    for (let i = 8; i < 13; i++) if (packet[tcp + i] !== b[o + tcp + i]) return false;
    if (packet[tcp + 14] !== b[o + tcp + 14] || packet[tcp + 15] !== b[o + tcp + 15]) return false;
    for (let i = tcp + 20; i < this.headerLength; i++) if (packet[i] !== b[o + i]) return false;
    return true;
  }

  append(packet: Uint8Array, segment: Segment): void {
    this.buffer.set(packet.subarray(this.headerLength), VIRTIO_NET_HDR_SIZE + this.length);
    this.length += segment.payloadLength;
    this.segments++;
    this.nextSeq = (this.nextSeq + segment.payloadLength) % 0x1_0000_0000;
    this.nextIpv4Id = (segment.ipv4Id + 1) & 0xffff;
    if ((segment.flags & TCP_PSH) !== 0) {
      this.buffer[VIRTIO_NET_HDR_SIZE + this.ipHeaderLength + 13]! |= TCP_PSH;
      this.open = false;
    }
    if (segment.payloadLength < this.gsoSize) this.open = false;
  }

  /** The bytes to write: virtio header and packet; a joined run gets its lengths and checksums for GSO. */
  finish(): Uint8Array {
    const b = this.buffer;
    b.fill(0, 0, VIRTIO_NET_HDR_SIZE);
    if (this.segments > 1) {
      const ip = VIRTIO_NET_HDR_SIZE;
      if (this.v6) put16(b, ip + 4, this.length - 40);
      else {
        put16(b, ip + 2, this.length);
        setIpv4HeaderChecksum(b, ip);
      }
      const tcpLength = this.length - this.ipHeaderLength;
      // CHECKSUM_PARTIAL: the field holds the pseudo-header sum; the kernel treats the payload as verified.
      put16(b, ip + this.ipHeaderLength + 16, fold(pseudoHeaderSum(b, ip, TCP_PROTOCOL, tcpLength)));
      b[FLAGS] = VIRTIO_NET_HDR_F_NEEDS_CSUM;
      b[GSO_TYPE] = this.v6 ? VIRTIO_NET_HDR_GSO_TCPV6 : VIRTIO_NET_HDR_GSO_TCPV4;
      setField(b, HDR_LEN, this.headerLength);
      setField(b, GSO_SIZE, this.gsoSize);
      setField(b, CSUM_START, this.ipHeaderLength);
      setField(b, CSUM_OFFSET, 16);
    } else {
      b[GSO_TYPE] = VIRTIO_NET_HDR_GSO_NONE;
    }
    return b;
  }
}

export class TcpCoalescer {
  private readonly runs = Array.from({ length: MAX_PENDING }, () => new Run());
  private readonly segment = new Segment();
  private count = 0;

  /** `write(bytes, length)` writes one virtio header + packet to the TUN fd. */
  constructor(private readonly write: (bytes: Uint8Array, length: number) => void) {}

  get pending(): number {
    return this.count;
  }

  add(packet: Uint8Array): void {
    const segment = this.segment;
    segment.read(packet);
    if (segment.tcp) {
      for (let i = this.count - 1; i >= 0 && i >= this.count - MAX_SCAN; i--) {
        const run = this.runs[i]!;
        if (!run.tcp || !run.sameFlow(packet, segment)) continue;
        if (run.accepts(packet, segment)) {
          run.append(packet, segment);
          return;
        }
        // Only the flow's latest run may grow, or its packets would be reordered; this one is done.
        run.open = false;
        break;
      }
    }
    if (this.count === MAX_PENDING) this.flush();
    this.runs[this.count++]!.start(packet, segment);
  }

  /** Write every run, in order. */
  flush(): void {
    for (let i = 0; i < this.count; i++) {
      const run = this.runs[i]!;
      this.write(run.finish(), VIRTIO_NET_HDR_SIZE + run.length);
    }
    this.count = 0;
  }
}
