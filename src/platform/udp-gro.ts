/**
 * UDP GRO on the receive side: with UDP_GRO on, the kernel may hand over a
 * run of same-size datagrams from one sender as one, its segment size in a
 * UDP_GRO control message (the last segment may be shorter). The splitter
 * turns a batch that recvmmsg(2) put into consecutive ring slots into one
 * slot per datagram, in order, in place: a datagram that was not joined
 * stays where it landed, segments are copied into the slots after it. What
 * cannot be right (a segment size of 0 or past the datagram's end, a
 * datagram or its control data cut short) is dropped and counted. The
 * reader (udp-receiver.ts) asks the kernel for no more datagrams than the
 * free slots hold at UDP_GRO_MAX_SEGMENTS each, so the ring never runs out
 * of room for a split; should it anyway (a kernel that joins more), what
 * does not fit is dropped and counted as overflow.
 */
import { NOT_COALESCED } from './udp-control-message.js';

/**
 * The most datagrams the kernel joins into one (UDP_GRO_CNT_MAX in
 * include/net/udp.h, since UDP GRO came in Linux 5.0): a received datagram
 * fills at most this many slots once split.
 */
const UDP_GRO_MAX_SEGMENTS = 64;

/**
 * Slots a received datagram may need once split: UDP_GRO_MAX_SEGMENTS where
 * the kernel may join datagrams, else 1 (never more than the ring has).
 */
export function slotsPerReceive(coalescing: boolean, slotCount: number): number {
  return coalescing ? Math.min(UDP_GRO_MAX_SEGMENTS, slotCount) : 1;
}

/** A datagram that must be dropped: its segment size cannot describe it. */
export const MALFORMED = -1;

/** How many datagrams a received one holds: 1 when not joined, MALFORMED when its segment size is impossible. */
export function segmentCount(length: number, segmentSize: number): number {
  if (segmentSize === NOT_COALESCED) return 1;
  if (segmentSize <= 0 || segmentSize > length) return MALFORMED;
  return Math.ceil(length / segmentSize);
}

/** The ring memory the splitter works in: slotCount slots of slotSize bytes, each with metaSize meta bytes. */
export interface SlotArea {
  slots: Uint8Array;
  slotSize: number;
  /** Where a datagram starts in its slot. */
  headroom: number;
  /** A power of two. */
  slotCount: number;
  meta: Uint8Array;
  metaSize: number;
}

// Words of the shared receive counters.
const COALESCED = 0;
const SEGMENTS = 1;
const MALFORMED_DROPS = 2;
const TRUNCATED_DROPS = 3;
const OVERFLOW_DROPS = 4;
const COUNTER_WORDS = 5;

/**
 * What the receive side of a UDP port saw of GRO, in shared memory: the I/O
 * thread writes, the owner reads (a figure may lag by a batch).
 */
export class UdpReceiveCounters {
  private readonly words: Float64Array;

  constructor(readonly memory: SharedArrayBuffer = new SharedArrayBuffer(COUNTER_WORDS * Float64Array.BYTES_PER_ELEMENT)) {
    this.words = new Float64Array(memory);
  }

  /** Datagrams the kernel had joined, split again. */
  get coalesced(): number {
    return this.words[COALESCED]!;
  }

  /** Datagrams those held. */
  get segments(): number {
    return this.words[SEGMENTS]!;
  }

  /** Joined datagrams dropped for an impossible segment size (0, or past the datagram's end). */
  get malformed(): number {
    return this.words[MALFORMED_DROPS]!;
  }

  /** Datagrams dropped because they, or their control data, did not fit the receive buffers. */
  get truncated(): number {
    return this.words[TRUNCATED_DROPS]!;
  }

  /** Datagrams dropped because the ring had no slot left for them (none while joins stay within UDP_GRO_MAX_SEGMENTS). */
  get overflow(): number {
    return this.words[OVERFLOW_DROPS]!;
  }

  add(splitter: SegmentSplitter): void {
    const words = this.words;
    words[COALESCED]! += splitter.coalesced;
    words[SEGMENTS]! += splitter.segments;
    words[MALFORMED_DROPS]! += splitter.malformed;
    words[TRUNCATED_DROPS]! += splitter.truncatedDrops;
    words[OVERFLOW_DROPS]! += splitter.overflow;
  }
}

export class SegmentSplitter {
  /** In, per received datagram: its length. */
  readonly lengths: Int32Array;
  /** In: its UDP_GRO segment size, or NOT_COALESCED. */
  readonly segmentSizes: Int32Array;
  /** In: 1 when it (or its control data) was cut short. */
  readonly truncated: Uint8Array;
  /** Out: the length of each datagram, one per slot from the batch's first. */
  readonly out: Int32Array;
  // Figures of the last split().
  coalesced = 0;
  segments = 0;
  malformed = 0;
  truncatedDrops = 0;
  overflow = 0;
  private readonly counts: Int32Array;
  private readonly starts: Int32Array;
  private readonly mask: number;

  /** `capacity`: the most datagrams one recvmmsg call receives. */
  constructor(
    private readonly area: SlotArea,
    capacity: number,
  ) {
    this.lengths = new Int32Array(capacity);
    this.segmentSizes = new Int32Array(capacity);
    this.truncated = new Uint8Array(capacity);
    this.counts = new Int32Array(capacity);
    this.starts = new Int32Array(capacity);
    this.out = new Int32Array(area.slotCount);
    this.mask = area.slotCount - 1;
  }

  /**
   * `count` datagrams sit in slots first, first + 1, … (wrapping), with
   * lengths, segmentSizes and truncated filled in; `room` slots from first
   * are free (room ≥ count). Rearranges them into one slot per datagram and
   * returns how many slots are filled (their lengths in out).
   */
  split(first: number, count: number, room: number): number {
    this.coalesced = this.segments = this.malformed = this.truncatedDrops = this.overflow = 0;
    // Drop what cannot be split, closing the gaps: afterwards the k-th kept datagram is in slot first + k.
    let kept = 0;
    for (let i = 0; i < count; i++) {
      const length = this.lengths[i]!;
      let n = 0;
      if (this.truncated[i] !== 0) this.truncatedDrops++;
      else {
        n = segmentCount(length, this.segmentSizes[i]!);
        if (n === MALFORMED) {
          this.malformed++;
          n = 0;
        }
      }
      if (n === 0) continue;
      if (kept !== i) {
        this.move(first + i, first + kept, 0, length);
        this.lengths[kept] = length;
        this.segmentSizes[kept] = this.segmentSizes[i]!;
      }
      this.counts[kept] = n;
      if (this.segmentSizes[kept] !== NOT_COALESCED) {
        this.coalesced++;
        this.segments += n;
      }
      kept++;
    }
    // Where each kept datagram's segments go; what does not fit the room is dropped.
    let total = 0;
    let placed = 0;
    for (; placed < kept; placed++) {
      const n = this.counts[placed]!;
      if (total + n > room) {
        const fit = room - total;
        this.overflow += n - fit;
        for (let k = placed + 1; k < kept; k++) this.overflow += this.counts[k]!;
        this.counts[placed] = fit;
        this.starts[placed] = total;
        total = room;
        if (fit > 0) placed++;
        break;
      }
      this.starts[placed] = total;
      total += n;
    }
    // Spread from the back: every destination lies at or after its source, and past every source still unread.
    for (let k = placed - 1; k >= 0; k--) {
      const n = this.counts[k]!;
      const length = this.lengths[k]!;
      const size = this.segmentSizes[k] === NOT_COALESCED ? length : this.segmentSizes[k]!;
      const start = this.starts[k]!;
      for (let m = n - 1; m >= 0; m--) {
        const segmentLength = Math.min(size, length - m * size);
        if (m !== 0 || start !== k) this.move(first + k, first + start + m, m * size, segmentLength);
        this.out[start + m] = segmentLength;
      }
    }
    return total;
  }

  /** Copy `length` bytes at `offset` of the datagram in slot `from` to where slot `to`'s datagram starts, with the meta bytes. */
  private move(from: number, to: number, offset: number, length: number): void {
    const { slots, slotSize, headroom, meta, metaSize } = this.area;
    const source = (from & this.mask) * slotSize + headroom + offset;
    slots.copyWithin((to & this.mask) * slotSize + headroom, source, source + length);
    const metaSource = (from & this.mask) * metaSize;
    meta.copyWithin((to & this.mask) * metaSize, metaSource, metaSource + metaSize);
  }
}
