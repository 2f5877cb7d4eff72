/**
 * The bytes of packets staged (waiting for a handshake) across every tunnel
 * that shares one budget — a device shares one among all its peers. Past the
 * limit, new packets are refused (counted) rather than old ones dropped: each
 * peer already drops its own oldest beyond MAX_STAGED_PACKETS.
 */
import { MAX_STAGED_BYTES } from './constants.js';

export class StagingBudget {
  /** Bytes staged now. */
  bytes = 0;
  /** Packets dropped because the budget was full (a tunnel counts them here). */
  refused = 0;

  constructor(readonly limitBytes = MAX_STAGED_BYTES) {}

  /** Account for a packet of `length` bytes; false when it does not fit. */
  reserve(length: number): boolean {
    if (this.bytes + length > this.limitBytes) return false;
    this.bytes += length;
    return true;
  }

  release(length: number): void {
    this.bytes -= length;
  }
}
