/**
 * What the main thread does with a packet read from a TUN device with
 * offloads on, before the device sees it: the virtio_net_hdr in front of it
 * (in the slot's header room) says whether its checksum is still to be
 * finished or whether it is a TCP super-packet to cut into segments. Segments
 * go into the ring's spare slots; when those run out, the device flushes
 * (sends) what it has, and they are reused.
 */
import { TransportSlot } from '../noise/transport-slot.js';
import type { PacketRingConsumer } from '../platform/packet-ring.js';
import { completeChecksum, splitTcpSegments, tcpSegmentCount, type SegmentSink } from './gso.js';
import {
  CSUM_OFFSET,
  CSUM_START,
  FLAGS,
  GSO_MAX_SEGMENTS,
  GSO_MIN_SIZE,
  GSO_SIZE,
  GSO_TYPE,
  VIRTIO_NET_HDR_F_NEEDS_CSUM,
  VIRTIO_NET_HDR_GSO_ECN,
  VIRTIO_NET_HDR_GSO_NONE,
  VIRTIO_NET_HDR_GSO_TCPV4,
  VIRTIO_NET_HDR_GSO_TCPV6,
  VIRTIO_NET_HDR_SIZE,
  getField,
} from './virtio-net.js';

const HEADER_AT = TransportSlot.PACKET_OFFSET - VIRTIO_NET_HDR_SIZE;

export class OffloadReader implements SegmentSink {
  private used = 0;
  private readonly spareOffsets: number[];
  /** Packets dropped because their header made no sense (for the log, by the caller). */
  dropped = 0;
  /** Of those, super-packets refused for a gso_size below GSO_MIN_SIZE or more than GSO_MAX_SEGMENTS segments. */
  oversegmented = 0;

  constructor(
    private readonly ring: PacketRingConsumer,
    private readonly deliver: (slot: TransportSlot, length: number) => void,
    private readonly deviceFlush: () => void,
  ) {
    // Offsets in ring.memory: a slot's view starts at its place in the shared buffer.
    this.spareOffsets = ring.spares.map((spare) => spare.bytes.byteOffset + TransportSlot.PACKET_OFFSET);
  }

  /** A packet at slot.bytes[16, 16 + length) with its virtio header just before. */
  packet(slot: TransportSlot, length: number): void {
    const bytes = slot.bytes;
    const gsoType = bytes[HEADER_AT + GSO_TYPE]! & ~VIRTIO_NET_HDR_GSO_ECN;
    const csumStart = getField(bytes, HEADER_AT + CSUM_START);
    if (gsoType === VIRTIO_NET_HDR_GSO_NONE) {
      if ((bytes[HEADER_AT + FLAGS]! & VIRTIO_NET_HDR_F_NEEDS_CSUM) !== 0) {
        if (!completeChecksum(bytes, TransportSlot.PACKET_OFFSET, length, csumStart, getField(bytes, HEADER_AT + CSUM_OFFSET))) {
          this.dropped++;
          return;
        }
      }
      this.deliver(slot, length);
      return;
    }
    if (gsoType !== VIRTIO_NET_HDR_GSO_TCPV4 && gsoType !== VIRTIO_NET_HDR_GSO_TCPV6) {
      this.dropped++; // never asked for (no UDP segmentation offload)
      return;
    }
    const start = slot.bytes.byteOffset + TransportSlot.PACKET_OFFSET;
    const gsoSize = getField(bytes, HEADER_AT + GSO_SIZE);
    // The header is the kernel's word, but one broken or hostile header must not turn a read into 64K sends.
    if (gsoSize < GSO_MIN_SIZE || tcpSegmentCount(this.ring.memory, start, length, csumStart, gsoSize) > GSO_MAX_SEGMENTS) {
      this.oversegmented++;
      this.dropped++;
      return;
    }
    if (splitTcpSegments(this.ring.memory, start, length, csumStart, gsoSize, this) === 0) this.dropped++;
  }

  /** The device sends what the batch built; the spare slots are free again. */
  flush(): void {
    this.deviceFlush();
    this.used = 0;
  }

  reserve(): number {
    if (this.used === this.spareOffsets.length) this.flush();
    return this.spareOffsets[this.used]!;
  }

  commit(length: number): void {
    this.deliver(this.ring.spares[this.used++]!, length);
  }
}
