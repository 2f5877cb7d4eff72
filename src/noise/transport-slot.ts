/**
 * A buffer laid out for building a transport message in place: 16 bytes of
 * header room, the IP packet, then room for padding and the 16-byte tag. The
 * AEAD needs views of exact lengths; the slot keeps the last pair it made, so
 * a stream of same-size packets (bulk traffic) allocates nothing.
 */
import { AEAD_TAG_SIZE, MESSAGE_TRANSPORT_HEADER_SIZE } from './constants.js';

export class TransportSlot {
  /** The packet starts here (after the header). */
  static readonly PACKET_OFFSET = MESSAGE_TRANSPORT_HEADER_SIZE;
  /** Bytes a slot needs beyond the largest padded packet it carries. */
  static readonly OVERHEAD = MESSAGE_TRANSPORT_HEADER_SIZE + AEAD_TAG_SIZE;

  /** bytes[16, end): the packet is written here. */
  readonly packetArea: Uint8Array;
  /** A DataView of bytes, for reading header fields. */
  readonly view: DataView;
  private viewLength = -1;
  private plaintextView: Uint8Array;
  private sealedView: Uint8Array;

  /**
   * `address` is the native address of bytes[0] when the memory is pinned (a
   * SharedArrayBuffer), so the datagram can go to sendmmsg(2) from where it
   * was built; -1 otherwise.
   */
  constructor(
    readonly bytes: Uint8Array,
    readonly address = -1,
  ) {
    this.packetArea = bytes.subarray(TransportSlot.PACKET_OFFSET);
    this.view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
    this.plaintextView = this.sealedView = bytes.subarray(0, 0);
  }

  /** The largest padded plaintext this slot can seal. */
  get capacity(): number {
    return this.bytes.length - TransportSlot.OVERHEAD;
  }

  /** bytes[16, 16 + length): the (padded) plaintext. */
  plaintext(length: number): Uint8Array {
    this.prepare(length);
    return this.plaintextView;
  }

  /** bytes[16, 16 + length + 16): plaintext and tag, sealed in place. */
  sealed(length: number): Uint8Array {
    this.prepare(length);
    return this.sealedView;
  }

  private prepare(length: number): void {
    if (length === this.viewLength) return;
    const start = TransportSlot.PACKET_OFFSET;
    this.plaintextView = this.bytes.subarray(start, start + length);
    this.sealedView = this.bytes.subarray(start, start + length + AEAD_TAG_SIZE);
    this.viewLength = length;
  }
}
