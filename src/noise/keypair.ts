/**
 * A transport session: the two symmetric keys a handshake derives, our and
 * the peer's index, the send counter and the receive replay window.
 */
import { wipe } from './bytes.js';
import { ReplayWindow } from './replay.js';

export class Keypair {
  sendCounter = 0n;
  readonly replay = new ReplayWindow();

  constructor(
    readonly sendKey: Uint8Array,
    readonly receiveKey: Uint8Array,
    /** Our index: the peer puts it in the receiver field of messages to us. */
    readonly localIndex: number,
    /** The peer's index: we put it in the receiver field of messages to the peer. */
    readonly remoteIndex: number,
    readonly isInitiator: boolean,
    /** Clock.now() when the keys were derived. */
    readonly createdAt: number,
  ) {}

  wipe(): void {
    wipe(this.sendKey);
    wipe(this.receiveKey);
  }
}

/**
 * The current, previous and next keypairs of a peer. A responder's new
 * keypair waits in `next` until the first data packet arrives under it, which
 * confirms that the initiator has it too (the paper's key confirmation).
 */
export class Keypairs {
  current: Keypair | null = null;
  previous: Keypair | null = null;
  next: Keypair | null = null;

  /** Install a freshly derived keypair; returns the keypairs that were dropped. */
  install(keypair: Keypair): Keypair[] {
    const dropped: Keypair[] = [];
    const drop = (k: Keypair | null) => {
      if (k !== null) dropped.push(k);
    };
    if (keypair.isInitiator) {
      if (this.next !== null) {
        drop(this.previous);
        this.previous = this.next;
        this.next = null;
        drop(this.current);
      } else {
        drop(this.previous);
        this.previous = this.current;
      }
      this.current = keypair;
    } else {
      drop(this.next);
      drop(this.previous);
      this.next = keypair;
      this.previous = null;
    }
    return dropped;
  }

  /** Data arrived under `keypair`: promote it if it was `next`. Returns the dropped keypair, if any, and whether it rotated. */
  confirm(keypair: Keypair): { rotated: boolean; dropped: Keypair | null } {
    if (this.next !== keypair) return { rotated: false, dropped: null };
    const dropped = this.previous;
    this.previous = this.current;
    this.current = keypair;
    this.next = null;
    return { rotated: true, dropped };
  }

  byLocalIndex(index: number): Keypair | null {
    if (this.current?.localIndex === index) return this.current;
    if (this.next?.localIndex === index) return this.next;
    if (this.previous?.localIndex === index) return this.previous;
    return null;
  }

  all(): Keypair[] {
    return [this.current, this.previous, this.next].filter((k): k is Keypair => k !== null);
  }

  clear(): Keypair[] {
    const all = this.all();
    this.current = this.previous = this.next = null;
    return all;
  }
}
