/**
 * The per-peer timer state machine of the WireGuard paper §6, after
 * wireguard-go's timers.go, with deadlines instead of OS timers. The tunnel
 * reports events (data sent, handshake complete, ...); `takeDue(now)` hands
 * out the timers that have fired, and `nextDeadline()` when to ask again.
 * The deadlines live in a fixed array: a ping sets and clears a timer on
 * every packet, and a Map would allocate as its deleted entries pile up.
 */
import {
  KEEPALIVE_TIMEOUT_MS,
  REKEY_TIMEOUT_JITTER_MAX_MS,
  REKEY_TIMEOUT_MS,
  ZERO_KEY_MATERIAL_AFTER_MS,
} from './constants.js';

export type TimerName =
  /** Our initiation got no response: retry, or give up after REKEY_ATTEMPT_TIME. */
  | 'retransmit-handshake'
  /** We received data and sent nothing back for KEEPALIVE_TIMEOUT: send a keepalive. */
  | 'send-keepalive'
  /** We sent data and heard nothing for KEEPALIVE_TIMEOUT + REKEY_TIMEOUT: start a new handshake. */
  | 'new-handshake'
  /** No new session for 3 × REJECT_AFTER_TIME: wipe all keys. */
  | 'zero-key-material'
  /** The configured persistent keepalive interval passed without traffic. */
  | 'persistent-keepalive';

/** Fire order when several timers are due at once; a timer's place here is its slot in the deadlines. */
const TIMER_NAMES: readonly TimerName[] = [
  'retransmit-handshake',
  'send-keepalive',
  'new-handshake',
  'zero-key-material',
  'persistent-keepalive',
];

const SLOT = Object.fromEntries(TIMER_NAMES.map((name, slot) => [name, slot])) as Readonly<Record<TimerName, number>>;

/** A slot with no timer pending. */
const NOT_PENDING = Number.NaN;

export class PeerTimers {
  private readonly deadlines = new Float64Array(TIMER_NAMES.length).fill(NOT_PENDING);
  handshakeAttempts = 0;
  needAnotherKeepalive = false;
  sentLastMinuteHandshake = false;
  /** Persistent keepalive interval in ms; 0 disables it. */
  persistentKeepaliveMs = 0;

  constructor(private readonly jitter: () => number = defaultJitter) {}

  isPending(name: TimerName): boolean {
    return !Number.isNaN(this.deadlines[SLOT[name]]!);
  }

  deadline(name: TimerName): number | undefined {
    const at = this.deadlines[SLOT[name]]!;
    return Number.isNaN(at) ? undefined : at;
  }

  set(name: TimerName, at: number): void {
    if (Number.isNaN(at)) throw new RangeError(`timer '${name}': the deadline must be a number`);
    this.deadlines[SLOT[name]] = at;
  }

  clear(name: TimerName): void {
    this.deadlines[SLOT[name]] = NOT_PENDING;
  }

  clearAll(): void {
    this.deadlines.fill(NOT_PENDING);
  }

  /** The earliest pending deadline, or null when nothing is scheduled. */
  nextDeadline(): number | null {
    let next: number | null = null;
    for (const at of this.deadlines) if (!Number.isNaN(at) && (next === null || at < next)) next = at;
    return next;
  }

  /**
   * Remove and return the earliest timer due at `now` (ties in TIMER_NAMES
   * order), or null. Callers take one at a time, so a handler that clears
   * another timer stops it from firing, as with real timers.
   */
  takeDue(now: number): TimerName | null {
    let due: TimerName | null = null;
    let dueAt = Infinity;
    for (let slot = 0; slot < TIMER_NAMES.length; slot++) {
      const at = this.deadlines[slot]!;
      // NaN (not pending) compares false.
      if (at <= now && at < dueAt) {
        due = TIMER_NAMES[slot]!;
        dueAt = at;
      }
    }
    if (due !== null) this.clear(due);
    return due;
  }

  // Events, named as in wireguard-go.

  /** We sent a data packet (not a keepalive). */
  dataSent(now: number): void {
    if (!this.isPending('new-handshake')) this.set('new-handshake', now + KEEPALIVE_TIMEOUT_MS + REKEY_TIMEOUT_MS + this.jitter());
  }

  /** We received a data packet (not a keepalive). */
  dataReceived(now: number): void {
    if (!this.isPending('send-keepalive')) this.set('send-keepalive', now + KEEPALIVE_TIMEOUT_MS);
    else this.needAnotherKeepalive = true;
  }

  /** Any authenticated packet went out: it carries the keepalive's news. */
  anyAuthenticatedPacketSent(): void {
    this.clear('send-keepalive');
  }

  /** Any authenticated packet came in: the peer is alive. */
  anyAuthenticatedPacketReceived(): void {
    this.clear('new-handshake');
  }

  /** Any authenticated packet went either way. */
  anyAuthenticatedPacketTraversal(now: number): void {
    if (this.persistentKeepaliveMs > 0) this.set('persistent-keepalive', now + this.persistentKeepaliveMs);
  }

  handshakeInitiated(now: number): void {
    this.set('retransmit-handshake', now + REKEY_TIMEOUT_MS + this.jitter());
  }

  handshakeComplete(): void {
    this.clear('retransmit-handshake');
    this.handshakeAttempts = 0;
    this.sentLastMinuteHandshake = false;
  }

  sessionDerived(now: number): void {
    this.set('zero-key-material', now + ZERO_KEY_MATERIAL_AFTER_MS);
  }
}

function defaultJitter(): number {
  return Math.floor(Math.random() * (REKEY_TIMEOUT_JITTER_MAX_MS + 1));
}
