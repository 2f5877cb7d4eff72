/**
 * A transport session: the two symmetric keys a handshake derives, our and
 * the peer's index, the send counter and the receive replay window.
 */
import { wipe } from './bytes.js';
import { REJECT_AFTER_MESSAGES, REKEY_AFTER_MESSAGES } from './constants.js';
import { ReplayWindow } from './replay.js';

const WORD = 0x1_0000_0000;
const high = (value: bigint) => Number(value >> 32n);
const low = (value: bigint) => Number(value & 0xffff_ffffn);
const REJECT_HIGH = high(REJECT_AFTER_MESSAGES);
const REJECT_LOW = low(REJECT_AFTER_MESSAGES);
const REKEY_HIGH = high(REKEY_AFTER_MESSAGES);
const REKEY_LOW = low(REKEY_AFTER_MESSAGES);

export class Keypair {
  readonly replay = new ReplayWindow();
  /**
   * The next send counter as two 32-bit words [low, high]: taking one on the
   * data path allocates nothing, where incrementing a BigInt would.
   */
  private readonly counterWords = new Uint32Array(2);
  /** The 12-byte AEAD nonce of the transport fast path (four zero bytes, then the counter). */
  readonly sendNonce = new Uint8Array(12);
  /** The same for the receive fast path. */
  readonly receiveNonce = new Uint8Array(12);

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

  get sendCounter(): bigint {
    return (BigInt(this.counterWords[1]!) << 32n) | BigInt(this.counterWords[0]!);
  }

  set sendCounter(value: bigint) {
    this.counterWords[0] = low(value);
    this.counterWords[1] = high(value);
  }

  /** The counter reached REJECT_AFTER_MESSAGES: nothing more may be sent under these keys. */
  get sendExhausted(): boolean {
    const lo = this.counterWords[0]!;
    const hi = this.counterWords[1]!;
    return hi > REJECT_HIGH || (hi === REJECT_HIGH && lo >= REJECT_LOW);
  }

  /** The counter passed REKEY_AFTER_MESSAGES: a new handshake is due. */
  get sendRekeyDue(): boolean {
    const lo = this.counterWords[0]!;
    const hi = this.counterWords[1]!;
    return hi > REKEY_HIGH || (hi === REKEY_HIGH && lo > REKEY_LOW);
  }

  /** Sending one more message passes REKEY_AFTER_MESSAGES (the counter is at or past it now). */
  get rekeyDueAfterSend(): boolean {
    const lo = this.counterWords[0]!;
    const hi = this.counterWords[1]!;
    return hi > REKEY_HIGH || (hi === REKEY_HIGH && lo >= REKEY_LOW);
  }

  /**
   * Take the next send counter without allocating: it goes into sendNonce and,
   * little endian, into datagram[8, 16) (the transport header's counter field).
   */
  takeSendCounter(datagram: Uint8Array): void {
    const words = this.counterWords;
    const nonce = this.sendNonce;
    for (let word = 0; word < 2; word++) {
      const value = words[word]!;
      for (let byte = 0; byte < 4; byte++) {
        const b = (value >>> (8 * byte)) & 0xff;
        nonce[4 + 4 * word + byte] = b;
        datagram[8 + 4 * word + byte] = b;
      }
    }
    if (words[0] === WORD - 1) {
      words[0] = 0;
      words[1]!++;
    } else words[0]!++;
  }

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

  /**
   * byLocalIndex() for the receiver field of a message in `view` at `offset`
   * (little endian). The receive fast path asks this way: an index is no
   * small integer to V8 (most are above 2^30) and, read as an unsigned number
   * and handed on, may be boxed, one allocation per packet; read here as a
   * signed 32-bit word and compared in place, it never is.
   */
  byReceiverField(view: DataView, offset: number): Keypair | null {
    const index = view.getInt32(offset, true);
    const { current, next, previous } = this;
    if (current !== null && (current.localIndex | 0) === index) return current;
    if (next !== null && (next.localIndex | 0) === index) return next;
    if (previous !== null && (previous.localIndex | 0) === index) return previous;
    return null;
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
