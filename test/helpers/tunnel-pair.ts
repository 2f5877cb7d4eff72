/**
 * Two Tunnels wired back to back over a simulated network, on one
 * ManualClock. Self-contained: imports only from src/noise.
 *
 *   const pair = new TunnelPair();          // jitter 0 unless told otherwise
 *   pair.handshake();                       // a initiates, everything delivered
 *   pair.send('a', pair.a.encapsulate(p));  // put a's output on the wire
 *   pair.advanceTo(16_000);                 // fire every due timer on both sides
 *
 * Every datagram that goes on the wire is logged in `pair.sent` (with the
 * clock time it was sent and whether it was delivered). `pair.drop` decides
 * per datagram whether the network loses it. Delivery is FIFO and immediate:
 * a reply produced by the receiver is put on the wire straight away.
 * No real timers are used anywhere: time moves only through the clock.
 */
import { ManualClock } from '../../src/noise/clock.js';
import type { NoiseError } from '../../src/noise/errors.js';
import { StaticIdentity } from '../../src/noise/identity.js';
import { generatePrivateKey } from '../../src/noise/keys.js';
import { parseTransportHeader } from '../../src/noise/messages.js';
import { Tunnel, type TunnelOutput } from '../../src/noise/tunnel.js';

export type Side = 'a' | 'b';

export const MSG_INITIATION = 1;
export const MSG_RESPONSE = 2;
export const MSG_COOKIE_REPLY = 3;
export const MSG_TRANSPORT = 4;
/** A keepalive: a transport message with an empty plaintext (16-byte header + 16-byte tag). */
export const KEEPALIVE_SIZE = 32;

export interface SentDatagram {
  from: Side;
  /** clock.now() when it went on the wire. */
  at: number;
  type: number;
  datagram: Uint8Array;
  /** The transport counter, for type 4. */
  counter: bigint | null;
  delivered: boolean;
}

export interface TunnelPairOptions {
  clock?: ManualClock;
  /** Jitter for both sides; default `() => 0`. Pass `null` to use the Tunnel's own random jitter. */
  jitter?: (() => number) | null;
  jitterA?: (() => number) | null;
  jitterB?: (() => number) | null;
  persistentKeepaliveA?: number;
  persistentKeepaliveB?: number;
}

export function other(side: Side): Side {
  return side === 'a' ? 'b' : 'a';
}

export function isKeepalive(datagram: Uint8Array): boolean {
  return datagram[0] === MSG_TRANSPORT && datagram.length === KEEPALIVE_SIZE;
}

export function isData(datagram: Uint8Array): boolean {
  return datagram[0] === MSG_TRANSPORT && datagram.length > KEEPALIVE_SIZE;
}

/** The message types of a list of datagrams, e.g. [1] or [4, 4]. */
export function types(datagrams: readonly Uint8Array[]): number[] {
  return datagrams.map((d) => d[0]!);
}

/** A fake IP packet of `size` bytes (a multiple of 16, so it is never padded) tagged with `id`. */
export function packet(id: number, size = 32): Uint8Array {
  const p = new Uint8Array(size);
  p[0] = 0x45;
  new DataView(p.buffer).setUint32(4, id);
  return p;
}

/** The id `packet()` put into a (decrypted) packet. */
export function packetId(p: Uint8Array): number {
  return new DataView(p.buffer, p.byteOffset, p.byteLength).getUint32(4);
}

export function makeTunnel(
  clock: ManualClock,
  identity: StaticIdentity,
  peerPublicKey: Uint8Array,
  jitter: (() => number) | null,
  persistentKeepaliveSeconds?: number,
): Tunnel {
  return new Tunnel({
    identity,
    peerPublicKey,
    clock,
    ...(jitter !== null ? { jitter } : {}),
    ...(persistentKeepaliveSeconds !== undefined ? { persistentKeepaliveSeconds } : {}),
  });
}

export class TunnelPair {
  readonly clock: ManualClock;
  readonly idA: StaticIdentity;
  readonly idB: StaticIdentity;
  readonly a: Tunnel;
  readonly b: Tunnel;
  /** Every datagram put on the wire, in order. */
  readonly sent: SentDatagram[] = [];
  /** Decrypted IP packets each side's TUN device received. */
  readonly received: Record<Side, Uint8Array[]> = { a: [], b: [] };
  /** Why each side dropped a datagram it was given. */
  readonly errors: Record<Side, NoiseError[]> = { a: [], b: [] };
  /** Return true to lose a datagram on the wire. */
  drop: (d: SentDatagram) => boolean = () => false;

  constructor(options: TunnelPairOptions = {}) {
    this.clock = options.clock ?? new ManualClock();
    this.idA = new StaticIdentity(generatePrivateKey(), undefined, this.clock);
    this.idB = new StaticIdentity(generatePrivateKey(), undefined, this.clock);
    const base = options.jitter === undefined ? () => 0 : options.jitter;
    const jitterA = options.jitterA === undefined ? base : options.jitterA;
    const jitterB = options.jitterB === undefined ? base : options.jitterB;
    this.a = makeTunnel(this.clock, this.idA, this.idB.publicKey, jitterA, options.persistentKeepaliveA);
    this.b = makeTunnel(this.clock, this.idB, this.idA.publicKey, jitterB, options.persistentKeepaliveB);
  }

  tunnel(side: Side): Tunnel {
    return side === 'a' ? this.a : this.b;
  }

  get now(): number {
    return this.clock.now();
  }

  /** Put `out.network` of `from` on the wire and deliver until the network is quiet. */
  send(from: Side, out: TunnelOutput): TunnelOutput {
    const queue: { from: Side; datagram: Uint8Array }[] = out.network.map((datagram) => ({ from, datagram }));
    while (queue.length > 0) {
      const { from: sender, datagram } = queue.shift()!;
      const record: SentDatagram = {
        from: sender,
        at: this.clock.now(),
        type: datagram[0]!,
        datagram,
        counter: datagram[0] === MSG_TRANSPORT ? (parseTransportHeader(datagram)?.counter ?? null) : null,
        delivered: false,
      };
      this.sent.push(record);
      if (this.drop(record)) continue;
      record.delivered = true;
      const to = other(sender);
      const result = this.tunnel(to).decapsulate(datagram);
      this.collect(to, result);
      for (const reply of result.network) queue.push({ from: to, datagram: reply });
    }
    return out;
  }

  /** Hand one datagram to `to` now, bypassing the drop rule (delayed or replayed delivery). */
  deliver(to: Side, datagram: Uint8Array): TunnelOutput {
    const result = this.tunnel(to).decapsulate(datagram);
    this.collect(to, result);
    this.send(to, result);
    return result;
  }

  encapsulate(from: Side, p: Uint8Array): TunnelOutput {
    return this.send(from, this.tunnel(from).encapsulate(p));
  }

  /** `initiator` starts a handshake; with no loss it completes (response and keepalive delivered). */
  handshake(initiator: Side = 'a'): TunnelOutput {
    return this.send(initiator, this.tunnel(initiator).initiateHandshake());
  }

  /** Run the due timers of both sides at the current time and deliver what they send. */
  tick(): void {
    this.send('a', this.a.updateTimers());
    this.send('b', this.b.updateTimers());
  }

  /** The earliest deadline of either side, or null. */
  nextDeadline(): number | null {
    const da = this.a.nextDeadline();
    const db = this.b.nextDeadline();
    if (da === null) return db;
    if (db === null) return da;
    return Math.min(da, db);
  }

  /** Move the clock to `target`, stopping at every deadline on the way to fire the due timers. */
  advanceTo(target: number): void {
    for (let guard = 0; ; guard++) {
      if (guard > 100_000) throw new Error('advanceTo: timers do not settle');
      const next = this.nextDeadline();
      if (next === null || next > target) break;
      if (next > this.clock.now()) this.clock.advance(next - this.clock.now());
      this.tick();
    }
    if (target > this.clock.now()) this.clock.advance(target - this.clock.now());
  }

  advance(ms: number): void {
    this.advanceTo(this.clock.now() + ms);
  }

  /** Datagrams sent by `from` (optionally of one type), in order. */
  sentBy(from: Side, type?: number): SentDatagram[] {
    return this.sent.filter((d) => d.from === from && (type === undefined || d.type === type));
  }

  /** Send times of the initiations `from` sent. */
  initiationTimes(from: Side): number[] {
    return this.sentBy(from, MSG_INITIATION).map((d) => d.at);
  }

  /** Send times of the keepalives `from` sent. */
  keepaliveTimes(from: Side): number[] {
    return this.sentBy(from, MSG_TRANSPORT)
      .filter((d) => isKeepalive(d.datagram))
      .map((d) => d.at);
  }

  private collect(side: Side, result: TunnelOutput): void {
    if (result.tunnel !== null) this.received[side].push(result.tunnel);
    if (result.error !== null) this.errors[side].push(result.error);
  }
}
