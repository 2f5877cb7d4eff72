/**
 * Receiver indices: random 32-bit numbers that name a handshake or session
 * on our side. A device shares one table between all its peers so that an
 * incoming message's receiver field finds its peer in one lookup.
 *
 * Indices are kept as signed 32-bit words (index | 0), as
 * Keypairs.byReceiverField compares them: most indices are no small integer
 * to V8, and one read unsigned from a datagram (2^31 and up) and used as a
 * Map key is boxed, one allocation per packet; a signed word never is.
 */
import { randomInt } from 'node:crypto';

export class IndexTable<Owner> {
  private readonly owners = new Map<number, Owner>();

  /** A fresh random index, unused by anyone else, now owned by `owner`. */
  allocate(owner: Owner): number {
    for (;;) {
      const index = randomInt(0, 2 ** 32) >>> 0;
      if (!this.owners.has(index | 0)) {
        this.owners.set(index | 0, owner);
        return index;
      }
    }
  }

  release(index: number): void {
    this.owners.delete(index | 0);
  }

  /** The owner of `index` (signed or unsigned, the same 32-bit word). */
  lookup(index: number): Owner | undefined {
    return this.owners.get(index | 0);
  }

  /** lookup() for the receiver field of a message in `view` at `offset` (little endian), without allocating. */
  lookupReceiverField(view: DataView, offset: number): Owner | undefined {
    return this.owners.get(view.getInt32(offset, true));
  }

  get size(): number {
    return this.owners.size;
  }
}
