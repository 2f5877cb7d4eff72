/**
 * Shared fixtures for the handshake, cookie and message tests
 * (test/noise/{handshake,cookie,messages,fast-path}.test.ts): hex helpers,
 * scripted randomness for deterministic transcripts, and a
 * pair of Tunnels wired to one ManualClock.
 */
import { NoiseError } from '../../src/noise/errors.js';
import { IndexTable } from '../../src/noise/index-table.js';
import { StaticIdentity } from '../../src/noise/identity.js';
import { generatePrivateKey } from '../../src/noise/keys.js';
import { ManualClock } from '../../src/noise/clock.js';
import { defaultPrimitives } from '../../src/noise/default-backend.js';
import type { Primitives } from '../../src/noise/primitives.js';
import { Tunnel, type TunnelOutput } from '../../src/noise/tunnel.js';

export function fromHex(hex: string): Uint8Array {
  if (!/^(?:[0-9a-f]{2})*$/i.test(hex)) throw new Error(`bad hex: ${hex}`);
  return new Uint8Array(Buffer.from(hex, 'hex'));
}

/** Hex of a byte array (null stays null), so assertions never compare Buffer with Uint8Array. */
export function hex(bytes: Uint8Array | null | undefined): string | null {
  if (bytes == null) return null;
  return Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength).toString('hex');
}

export function ascii(text: string): Uint8Array {
  return new Uint8Array(Buffer.from(text, 'utf8'));
}

/** A copy of `bytes` with bit `bit` of byte `index` flipped. */
export function flipBit(bytes: Uint8Array, index: number, bit = 0): Uint8Array {
  const copy = Uint8Array.from(bytes);
  copy[index] = copy[index]! ^ (1 << bit);
  return copy;
}

/** The error thrown by fn (fails the test when fn does not throw). */
export function thrown(fn: () => unknown): unknown {
  try {
    fn();
  } catch (error) {
    return error;
  }
  throw new Error('expected the call to throw');
}

export function errorCode(out: TunnelOutput): string | null {
  return out.error?.code ?? null;
}

/**
 * Primitives whose randomBytes() first hands out the byte strings queued in
 * `queue` (each must have the requested length), then falls back to the
 * base backend. Used to fix ephemeral keys for transcript tests.
 */
export function scriptedPrimitives(base: Primitives = defaultPrimitives): { primitives: Primitives; queue: Uint8Array[] } {
  const queue: Uint8Array[] = [];
  const primitives: Primitives = {
    ...base,
    name: `${base.name}+scripted`,
    randomBytes(length: number): Uint8Array {
      const next = queue.shift();
      if (next === undefined) return base.randomBytes(length);
      if (next.length !== length) throw new Error(`scripted random: queued ${next.length} bytes, asked for ${length}`);
      return Uint8Array.from(next); // the handshake clamps and later wipes what it gets
    },
  };
  return { primitives, queue };
}

export interface PairOptions {
  clock?: ManualClock;
  /** Pre-shared key on A's side (and on B's unless pskB is given). */
  psk?: Uint8Array;
  pskB?: Uint8Array;
  mtu?: number;
  indexTableA?: IndexTable<Tunnel>;
  indexTableB?: IndexTable<Tunnel>;
  identityA?: StaticIdentity;
  identityB?: StaticIdentity;
}

export interface Pair {
  clock: ManualClock;
  idA: StaticIdentity;
  idB: StaticIdentity;
  /** A's tunnel to B. */
  a: Tunnel;
  /** B's tunnel to A. */
  b: Tunnel;
}

export function newIdentity(clock: ManualClock, primitives: Primitives = defaultPrimitives): StaticIdentity {
  return new StaticIdentity(generatePrivateKey(), primitives, clock);
}

/** Two tunnels that are each other's peer, on one ManualClock, with zero jitter. */
export function makePair(options: PairOptions = {}): Pair {
  const clock = options.clock ?? new ManualClock();
  const idA = options.identityA ?? newIdentity(clock);
  const idB = options.identityB ?? newIdentity(clock);
  const a = new Tunnel({
    identity: idA,
    peerPublicKey: idB.publicKey,
    presharedKey: options.psk,
    clock,
    jitter: () => 0,
    mtu: options.mtu,
    indexTable: options.indexTableA,
  });
  const b = new Tunnel({
    identity: idB,
    peerPublicKey: idA.publicKey,
    presharedKey: options.pskB ?? options.psk,
    clock,
    jitter: () => 0,
    mtu: options.mtu,
    indexTable: options.indexTableB,
  });
  return { clock, idA, idB, a, b };
}

/** Exactly one datagram, or fail. */
export function only(datagrams: Uint8Array[]): Uint8Array {
  if (datagrams.length !== 1) throw new Error(`expected exactly one datagram, got ${datagrams.length}`);
  return datagrams[0]!;
}

function expectOk(out: TunnelOutput, what: string): TunnelOutput {
  if (out.error !== null) throw new NoiseError(out.error.code, `${what}: ${out.error.message}`);
  return out;
}

/**
 * Run a complete handshake initiated by `from` towards `to` and let the
 * initiator's keepalive confirm the session on the responder. Returns the
 * three datagrams exchanged.
 */
export function completeHandshake(from: Tunnel, to: Tunnel): { initiation: Uint8Array; response: Uint8Array; confirmation: Uint8Array } {
  const initiation = only(from.initiateHandshake().network);
  const response = only(expectOk(to.decapsulate(initiation), 'responder consuming initiation').network);
  const confirmation = only(expectOk(from.decapsulate(response), 'initiator consuming response').network);
  expectOk(to.decapsulate(confirmation), 'responder receiving the confirming keepalive');
  return { initiation, response, confirmation };
}

/** A fresh initiation from `identity` to `peerPublicKey`, made by a throwaway Tunnel on `clock`. */
export function freshInitiation(identity: StaticIdentity, peerPublicKey: Uint8Array, clock: ManualClock, psk?: Uint8Array): Uint8Array {
  const t = new Tunnel({ identity, peerPublicKey, presharedKey: psk, clock, jitter: () => 0 });
  return only(t.initiateHandshake().network);
}
