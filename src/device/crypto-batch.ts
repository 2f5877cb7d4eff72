/**
 * The ordering side of the crypto pool: the transport fast paths
 * (Tunnel.sealTransport / openTransport) split around a CryptoPool. Each
 * packet's sequential part runs here as it arrives (counter and header on
 * send; the replay window asked on receive); its AEAD waits in the pool;
 * finish() runs the batch and then hands every packet, in arrival order, to
 * the handlers — where received ones are recorded in the replay window
 * (Tunnel.finishOpenTransport) before anything reaches the TUN device.
 *
 * A packet the fast path declines finishes the batch first, so that the
 * caller's ordinary path for it comes after every packet before it. Slots
 * outside shared memory are sealed or opened inline, in order too.
 */
import { OPEN_DECLINED, OPEN_FAILED, OPEN_REPLAYED, type Tunnel, TransportSlot } from '../noise/index.js';
import { FORGED, JOB_OPEN, JOB_SEAL, SUCCEEDED } from './crypto-jobs.js';
import type { CryptoPool } from './crypto-pool.js';

/** Why a packet of the batch was dropped. */
export type TransportDrop = 'forged' | 'replayed' | 'lost';

export interface TransportBatchHandlers<Owner, Aux> {
  /** A datagram of `datagramLength` bytes is ready in slot.bytes[0, n). */
  sealed(owner: Owner, slot: TransportSlot, datagramLength: number, aux: Aux): void;
  /** An authenticated, fresh datagram: slot.plaintext(n) (0: a keepalive). */
  opened(owner: Owner, slot: TransportSlot, plaintextLength: number, aux: Aux): void;
  dropped(owner: Owner, reason: TransportDrop): void;
}

interface Entry<Owner, Aux> {
  owner: Owner | null;
  aux: Aux | null;
  tunnel: Tunnel | null;
  slot: TransportSlot | null;
  /** Plaintext length (seal: padded). */
  length: number;
  open: boolean;
}

export class TransportBatch<Owner, Aux> {
  private readonly entries: Entry<Owner, Aux>[] = [];
  private count = 0;

  constructor(
    private readonly pool: CryptoPool,
    private readonly handlers: TransportBatchHandlers<Owner, Aux>,
  ) {}

  /**
   * Seal the IP packet in slot.bytes[16, 16 + length) for `tunnel`'s
   * session. False when the fast path declines it (see sealTransport): the
   * batch is finished then, and the caller takes its ordinary path.
   */
  seal(tunnel: Tunnel, slot: TransportSlot, length: number, owner: Owner, aux: Aux): boolean {
    if (!this.pool.carries(slot)) {
      this.finish();
      const datagramLength = tunnel.sealTransport(slot, length);
      if (datagramLength === 0) return false;
      this.handlers.sealed(owner, slot, datagramLength, aux);
      return true;
    }
    if (this.pool.full) this.finish();
    const padded = tunnel.beginSealTransport(slot, length, this.pool.nextKey());
    if (padded === 0) {
      this.finish();
      return false;
    }
    this.pool.add(JOB_SEAL, slot, padded);
    this.remember(tunnel, slot, padded, false, owner, aux);
    return true;
  }

  /**
   * Open the transport message in slot.bytes[0, length) for `tunnel`. False
   * when the fast path declines it (its bytes intact; the batch finished):
   * the caller takes its ordinary path.
   */
  open(tunnel: Tunnel, slot: TransportSlot, length: number, owner: Owner, aux: Aux): boolean {
    if (!this.pool.carries(slot)) {
      this.finish();
      const plaintextLength = tunnel.openTransport(slot, length);
      if (plaintextLength === OPEN_FAILED) this.handlers.dropped(owner, 'forged');
      else if (plaintextLength < 0) return false;
      else this.handlers.opened(owner, slot, plaintextLength, aux);
      return true;
    }
    if (this.pool.full) this.finish();
    const plaintextLength = tunnel.beginOpenTransport(slot, length, this.pool.nextKey());
    if (plaintextLength === OPEN_DECLINED) {
      this.finish();
      return false;
    }
    this.pool.add(JOB_OPEN, slot, plaintextLength);
    this.remember(tunnel, slot, plaintextLength, true, owner, aux);
    return true;
  }

  /** Run the queued AEADs and hand every packet to the handlers in order. */
  finish(): void {
    const count = this.count;
    if (count === 0) return;
    const pool = this.pool;
    pool.run();
    this.count = 0;
    try {
      for (let i = 0; i < count; i++) {
        const entry = this.entries[i]!;
        const owner = entry.owner!;
        const slot = entry.slot!;
        const outcome = pool.outcome(i);
        if (outcome !== SUCCEEDED) this.handlers.dropped(owner, outcome === FORGED ? 'forged' : 'lost');
        else if (!entry.open) this.handlers.sealed(owner, slot, entry.length + TransportSlot.OVERHEAD, entry.aux!);
        else {
          const plaintextLength = entry.tunnel!.finishOpenTransport(slot, entry.length + TransportSlot.OVERHEAD);
          if (plaintextLength === OPEN_REPLAYED) this.handlers.dropped(owner, 'replayed');
          else if (plaintextLength === OPEN_FAILED) this.handlers.dropped(owner, 'lost');
          else this.handlers.opened(owner, slot, plaintextLength, entry.aux!);
        }
        entry.owner = entry.aux = entry.tunnel = entry.slot = null;
      }
    } finally {
      pool.endBatch();
    }
  }

  private remember(tunnel: Tunnel, slot: TransportSlot, length: number, open: boolean, owner: Owner, aux: Aux): void {
    let entry = this.entries[this.count];
    if (entry === undefined) {
      entry = { owner: null, aux: null, tunnel: null, slot: null, length: 0, open: false };
      this.entries.push(entry);
    }
    entry.owner = owner;
    entry.aux = aux;
    entry.tunnel = tunnel;
    entry.slot = slot;
    entry.length = length;
    entry.open = open;
    this.count++;
  }
}
