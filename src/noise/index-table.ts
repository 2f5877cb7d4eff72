/**
 * Receiver indices: random 32-bit numbers that name a handshake or session
 * on our side. A device shares one table between all its peers so that an
 * incoming message's receiver field finds its peer in one lookup.
 */
import { randomInt } from 'node:crypto';

export class IndexTable<Owner> {
  private readonly owners = new Map<number, Owner>();

  /** A fresh random index, unused by anyone else, now owned by `owner`. */
  allocate(owner: Owner): number {
    for (;;) {
      const index = randomInt(0, 2 ** 32) >>> 0;
      if (!this.owners.has(index)) {
        this.owners.set(index, owner);
        return index;
      }
    }
  }

  release(index: number): void {
    this.owners.delete(index);
  }

  lookup(index: number): Owner | undefined {
    return this.owners.get(index);
  }

  get size(): number {
    return this.owners.size;
  }
}
