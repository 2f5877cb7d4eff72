/**
 * The device's timers: every peer's next protocol deadline, as one pending
 * setTimeout per peer.
 *
 * A Tunnel knows its deadlines (rekey, retransmit, keepalive, expiry) but
 * has no clock of its own to wake it: after anything moves a peer's state,
 * schedule() asks it for the next deadline and arms a timeout that calls
 * updateTimers() then; a pending timeout at or before that deadline stays,
 * since it reschedules when it fires. The fast paths move a peer's state
 * once per packet, so they only mark the peer (touched()) and the batch's
 * end reschedules each marked peer once (flushTouched()).
 */
import type { Clock, Tunnel, TunnelOutput } from '../noise/index.js';
import type { Peer } from './peer.js';

/** What to do with the output of a timer that fired: the device carries it out. */
export type TimerOutputHandler = (peer: Peer, output: TunnelOutput) => void;

export class PeerTimers {
  /**
   * Peers whose timers the fast paths touched since the last flush: the
   * first `touchedCount` entries. The array keeps its length between batches
   * (truncating it would free its storage and grow it again on every packet).
   */
  private readonly touchedPeers: (Peer | null)[] = [];
  private touchedCount = 0;
  private stopped = false;

  constructor(
    private readonly clock: Clock,
    private readonly fired: TimerOutputHandler,
  ) {}

  /** A fast path moved this peer's timers: reschedule once, at the end of the batch. */
  touched(peer: Peer): void {
    if (peer.timersDirty) return;
    peer.timersDirty = true;
    this.touchedPeers[this.touchedCount++] = peer;
  }

  /** The batch is over: reschedule every peer it touched. */
  flushTouched(): void {
    const peers = this.touchedPeers;
    // schedule() never touches a peer, so the count cannot grow meanwhile; a slot is null after a flush that threw.
    for (let i = 0; i < this.touchedCount; i++) {
      const peer = peers[i];
      if (peer === null || peer === undefined) continue;
      peers[i] = null;
      peer.timersDirty = false;
      this.schedule(peer);
    }
    this.touchedCount = 0;
  }

  /** Arm the peer's timeout for its tunnel's next deadline (unless an earlier one is pending). */
  schedule(peer: Peer): void {
    const tunnel = peer.tunnel;
    if (tunnel === null || this.stopped) return;
    const deadline = tunnel.nextDeadline();
    if (deadline === null) return;
    // A pending earlier (or equal) timeout will reschedule when it fires.
    if (peer.timerDeadline !== null && peer.timerDeadline <= deadline) return;
    cancelPeerTimer(peer);
    peer.timerDeadline = deadline;
    peer.timer = setTimeout(() => this.expire(peer, tunnel), Math.max(0, Math.ceil(deadline - this.clock.now())));
  }

  /** The device is closing: no timeout is armed from now on. */
  stop(): void {
    this.stopped = true;
  }

  private expire(peer: Peer, tunnel: Tunnel): void {
    peer.timer = null;
    peer.timerDeadline = null;
    // A tunnel replaced since (new private key) has its own timers.
    if (peer.tunnel === tunnel) this.fired(peer, tunnel.updateTimers());
  }
}

/** Disarm the peer's pending timeout (its tunnel is dropped or replaced). */
export function cancelPeerTimer(peer: Peer): void {
  if (peer.timer !== null) clearTimeout(peer.timer);
  peer.timer = null;
  peer.timerDeadline = null;
}
