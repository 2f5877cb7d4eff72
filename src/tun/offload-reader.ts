/**
 * What the main thread does with a packet read from a TUN device with
 * offloads on, before the device sees it: the virtio_net_hdr in front of it
 * (in the slot's header room) says whether its checksum is still to be
 * finished or whether it is a TCP super-packet to cut into segments. Segments
 * go into the ring's spare slots; when those run out, the device flushes
 * (sends) what it has, and they are reused.
 */
import type { PacketRingConsumer, RingSlot } from '../platform/index.js';
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

export class OffloadReader<S extends RingSlot> implements SegmentSink {
  private used = 0;
  private readonly spareOffsets: number[];
  /** Where a packet starts in its slot; its virtio header lies just before. */
  private readonly packetAt: number;
  private readonly headerAt: number;
  /** Packets dropped because their header made no sense (for the log, by the caller). */
  dropped = 0;
  /** Of those, super-packets refused for a gso_size below GSO_MIN_SIZE or more than GSO_MAX_SEGMENTS segments. */
  oversegmented = 0;

  constructor(
    private readonly ring: PacketRingConsumer<S>,
    private readonly deliver: (slot: S, length: number) => void,
    private readonly deviceFlush: () => void,
  ) {
    this.packetAt = ring.headroom;
    this.headerAt = ring.headroom - VIRTIO_NET_HDR_SIZE;
    if (this.headerAt < 0) throw new RangeError(`a ring with ${ring.headroom} bytes of headroom has no room for the ${VIRTIO_NET_HDR_SIZE}-byte virtio_net_hdr`);
    // Offsets in ring.memory: a slot's view starts at its place in the shared buffer.
    this.spareOffsets = ring.spares.map((spare) => spare.bytes.byteOffset + this.packetAt);
  }

  /** A packet at slot.bytes[headroom, headroom + length) with its virtio header just before. */
  packet(slot: S, length: number): void {
    const header = this.headerAt;
    const bytes = slot.bytes;
    const gsoType = bytes[header + GSO_TYPE]! & ~VIRTIO_NET_HDR_GSO_ECN;
    const csumStart = getField(bytes, header + CSUM_START);
    if (gsoType === VIRTIO_NET_HDR_GSO_NONE) {
      if ((bytes[header + FLAGS]! & VIRTIO_NET_HDR_F_NEEDS_CSUM) !== 0) {
        if (!completeChecksum(bytes, this.packetAt, length, csumStart, getField(bytes, header + CSUM_OFFSET))) {
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
    const start = slot.bytes.byteOffset + this.packetAt;
    const gsoSize = getField(bytes, header + GSO_SIZE);
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
