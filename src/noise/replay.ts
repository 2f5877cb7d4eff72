/**
 * The sliding replay window of RFC 6479 with the Linux kernel's semantics
 * (and wireguard-go's replay/replay.go): a ring of bit blocks; a counter is
 * accepted when it is new and no more than WINDOW_SIZE behind the highest
 * counter seen. Call it only for packets that already authenticated.
 *
 * The 64-bit counter is handled as two unsigned 32-bit words, low and high,
 * as the transport header carries it (little endian): the receive fast path
 * checks every datagram, and BigInt arithmetic would allocate on each one.
 * The bigint methods are the convenience of the reference path.
 */
import { REJECT_AFTER_MESSAGES } from './constants.js';

// 16-bit blocks: every block value and bit mask is a small integer, which V8 never boxes, even in code not yet optimized.
const BLOCK_BITS_LOG = 4;
const BIT_MASK = (1 << BLOCK_BITS_LOG) - 1;
const RING_BLOCKS = 512; // 8192 bits, as the kernel's COUNTER_BITS_TOTAL
const BLOCK_MASK = RING_BLOCKS - 1;
/** Blocks per high-word step: 2^32 counters are 2^28 blocks. */
const BLOCKS_PER_HIGH = 2 ** (32 - BLOCK_BITS_LOG);
const WORD = 0x1_0000_0000;
const WINDOW = 8192 - 64;
/** How far behind the newest counter a packet may arrive: the kernel's 8192 - 64. */
export const REPLAY_WINDOW_SIZE = BigInt(WINDOW);
const MAX_COUNTER = (1n << 64n) - 1n;
const REJECT_LOW = Number(REJECT_AFTER_MESSAGES & 0xffff_ffffn);
const REJECT_HIGH = Number(REJECT_AFTER_MESSAGES >> 32n);

/** The counter (low, high) is at or over REJECT_AFTER_MESSAGES. */
function atOrOverLimit(low: number, high: number): boolean {
  return high > REJECT_HIGH || (high === REJECT_HIGH && low >= REJECT_LOW);
}

export class ReplayWindow {
  private readonly ring = new Uint16Array(RING_BLOCKS);
  /** The highest accepted counter, as two words. */
  private lastLow = 0;
  private lastHigh = 0;

  reset(): void {
    this.ring.fill(0);
    this.lastLow = 0;
    this.lastHigh = 0;
  }

  /** Would checkWords() accept the counter high·2^32 + low? Changes nothing (the receive fast path asks before it decrypts in place). */
  isFreshWords(low: number, high: number): boolean {
    return !atOrOverLimit(low, high) && this.fresh(low, high);
  }

  /** Accept (and record) the counter high·2^32 + low, or refuse it as replayed, too old, or at/over REJECT_AFTER_MESSAGES. */
  checkWords(low: number, high: number): boolean {
    return !atOrOverLimit(low, high) && this.accept(low, high);
  }

  /** isFreshWords() for a bigint counter, refusing it at or over `limit`. */
  isFresh(counter: bigint, limit: bigint = REJECT_AFTER_MESSAGES): boolean {
    return inRange(counter, limit) && this.fresh(Number(counter & 0xffff_ffffn), Number(counter >> 32n));
  }

  /** checkWords() for a bigint counter, refusing it at or over `limit`. */
  check(counter: bigint, limit: bigint = REJECT_AFTER_MESSAGES): boolean {
    return inRange(counter, limit) && this.accept(Number(counter & 0xffff_ffffn), Number(counter >> 32n));
  }

  private fresh(low: number, high: number): boolean {
    if (this.isAhead(low, high)) return true;
    if (this.tooOld(low, high)) return false;
    return (this.ring[(low >>> BLOCK_BITS_LOG) & BLOCK_MASK]! & (1 << (low & BIT_MASK))) === 0;
  }

  private accept(low: number, high: number): boolean {
    if (this.isAhead(low, high)) {
      // Clear the blocks between the old newest and this one (all of them when it jumped a whole ring).
      const highStep = high - this.lastHigh;
      const blocks = highStep > 1 ? RING_BLOCKS : highStep * BLOCKS_PER_HIGH + (low >>> BLOCK_BITS_LOG) - (this.lastLow >>> BLOCK_BITS_LOG);
      const current = (this.lastLow >>> BLOCK_BITS_LOG) & BLOCK_MASK;
      const clear = blocks > RING_BLOCKS ? RING_BLOCKS : blocks;
      for (let i = 1; i <= clear; i++) this.ring[(current + i) & BLOCK_MASK] = 0;
      this.lastLow = low;
      this.lastHigh = high;
    } else if (this.tooOld(low, high)) {
      return false;
    }
    const slot = (low >>> BLOCK_BITS_LOG) & BLOCK_MASK;
    const bit = 1 << (low & BIT_MASK);
    const old = this.ring[slot]!;
    if ((old & bit) !== 0) return false;
    this.ring[slot] = old | bit;
    return true;
  }

  /** The counter is above the highest accepted one. */
  private isAhead(low: number, high: number): boolean {
    return high > this.lastHigh || (high === this.lastHigh && low > this.lastLow);
  }

  /** The counter (not ahead) lies more than the window behind the highest accepted one. */
  private tooOld(low: number, high: number): boolean {
    const highStep = this.lastHigh - high;
    return highStep > 1 || highStep * WORD + this.lastLow - low > WINDOW;
  }
}

function inRange(counter: bigint, limit: bigint): boolean {
  return counter >= 0n && counter < limit && counter <= MAX_COUNTER;
}
