/**
 * The sliding replay window of RFC 6479 with the Linux kernel's semantics
 * (and wireguard-go's replay/replay.go): a ring of bit blocks; a counter is
 * accepted when it is new and no more than WINDOW_SIZE behind the highest
 * counter seen. Call it only for packets that already authenticated.
 */
import { REJECT_AFTER_MESSAGES } from './constants.js';

const BLOCK_BITS_LOG = 5n; // 32-bit blocks
const BLOCK_BITS = 1n << BLOCK_BITS_LOG;
const RING_BLOCKS = 256n; // 8192 bits, as the kernel's COUNTER_BITS_TOTAL
const BLOCK_MASK = RING_BLOCKS - 1n;
const BIT_MASK = BLOCK_BITS - 1n;
/** How far behind the newest counter a packet may arrive: the kernel's 8192 - 64. */
export const REPLAY_WINDOW_SIZE = 8192n - 64n;

export class ReplayWindow {
  private readonly ring = new Uint32Array(Number(RING_BLOCKS));
  private last = 0n;

  reset(): void {
    this.ring.fill(0);
    this.last = 0n;
  }

  /** Accept (and record) `counter`, or refuse it as replayed, too old, or at/over `limit`. */
  /** Would check() accept `counter`? Changes nothing (the receive fast path asks before it decrypts in place). */
  isFresh(counter: bigint, limit: bigint = REJECT_AFTER_MESSAGES): boolean {
    if (counter >= limit || counter < 0n) return false;
    if (counter > this.last) return true;
    if (this.last - counter > REPLAY_WINDOW_SIZE) return false;
    const slot = Number((counter >> BLOCK_BITS_LOG) & BLOCK_MASK);
    return (this.ring[slot]! & (1 << Number(counter & BIT_MASK))) === 0;
  }

  check(counter: bigint, limit: bigint = REJECT_AFTER_MESSAGES): boolean {
    if (counter >= limit || counter < 0n) return false;
    const blockIndex = counter >> BLOCK_BITS_LOG;
    if (counter > this.last) {
      const current = this.last >> BLOCK_BITS_LOG;
      let diff = blockIndex - current;
      if (diff > RING_BLOCKS) diff = RING_BLOCKS;
      for (let i = current + 1n; i <= current + diff; i++) this.ring[Number(i & BLOCK_MASK)] = 0;
      this.last = counter;
    } else if (this.last - counter > REPLAY_WINDOW_SIZE) {
      return false;
    }
    const slot = Number(blockIndex & BLOCK_MASK);
    const bit = 1 << Number(counter & BIT_MASK);
    const old = this.ring[slot]!;
    if ((old & bit) !== 0) return false;
    this.ring[slot] = old | bit;
    return true;
  }
}
