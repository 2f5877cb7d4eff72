/**
 * Hostile datagrams for a WireGuard listen port, drawn from a seeded Rng so a
 * failing run reproduces: random bytes, every message type with wrong
 * lengths, valid-looking headers with random bodies, transport and cookie
 * messages for live receiver indices, replays of real traffic, and
 * handshake messages with a *valid MAC1* for the target's public key (fresh
 * initiations from keys the target does not know, and mutated ones), which
 * make the target do real X25519 work.
 *
 * fateOf() says what the target must do with each datagram (drop as
 * malformed, drop for its MAC1, ...), so a test can check the target's log
 * against what was sent. Also: a minimal pcap reader for tcpdump -w files.
 */
import {
  CookieChecker,
  CookieGenerator,
  Handshake,
  MESSAGE_COOKIE_REPLY_SIZE,
  MESSAGE_COOKIE_REPLY_TYPE,
  MESSAGE_INITIATION_SIZE,
  MESSAGE_INITIATION_TYPE,
  MESSAGE_RESPONSE_SIZE,
  MESSAGE_RESPONSE_TYPE,
  MESSAGE_TRANSPORT_MIN_SIZE,
  MESSAGE_TRANSPORT_TYPE,
  StaticIdentity,
  defaultPrimitives,
  generatePrivateKey,
  messageType,
  systemClock,
} from '../../src/noise/index.js';
import type { Rng } from './fuzz.js';
import { LOW_ORDER_POINTS, NON_CANONICAL_LOW_ORDER_POINTS, pointBytes } from './low-order-points.js';

/** Every encoding of a small-order point, canonical or not, as key bytes. */
const LOW_ORDER_KEYS: readonly Uint8Array[] = [...LOW_ORDER_POINTS, ...NON_CANONICAL_LOW_ORDER_POINTS].map(pointBytes);

const u32le = (bytes: Uint8Array, offset: number): number => new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength).getUint32(offset, true);

function setU32le(bytes: Uint8Array, offset: number, value: number): void {
  new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength).setUint32(offset, value >>> 0, true);
}

function header(type: number, length: number, rng: Rng): Uint8Array {
  const out = rng.bytes(length);
  if (length > 0) out[0] = type;
  for (let i = 1; i < Math.min(4, length); i++) out[i] = 0;
  return out;
}

/** What the target device must do with a datagram. */
export type Fate =
  /** messageType() is null: wrong length, bad header. */
  | 'malformed'
  /** An initiation or response whose MAC1 is not valid for the target. */
  | 'invalid-mac1'
  /** An initiation with a valid MAC1: the target runs the handshake (X25519). */
  | 'initiation'
  /** A response, cookie reply or transport message (responses with a valid MAC1) for an index the target does not have. */
  | 'unknown-index'
  /** The same, for one of the target's live indices: handed to that peer's tunnel. */
  | 'known-index';

/** Builds hostile datagrams for one target device. */
export class HostileFactory {
  readonly checker: CookieChecker;
  private readonly stamper: CookieGenerator;
  private readonly strangers: StaticIdentity[] = [];
  private nextStranger = 0;

  constructor(
    readonly rng: Rng,
    /** The target's public key: handshake messages get a valid MAC1 for it. */
    readonly targetPublicKey: Uint8Array,
    /** The target's live receiver indices (sessions of its peers). */
    readonly liveIndices: readonly number[],
    strangerCount = 16,
  ) {
    this.checker = new CookieChecker(targetPublicKey, defaultPrimitives, systemClock);
    this.stamper = new CookieGenerator(targetPublicKey, defaultPrimitives, systemClock);
    for (let i = 0; i < strangerCount; i++) this.strangers.push(new StaticIdentity(generatePrivateKey()));
  }

  fateOf(datagram: Uint8Array): Fate {
    const type = messageType(datagram);
    if (type === null) return 'malformed';
    if ((type === 'initiation' || type === 'response') && !this.checker.checkMac1(datagram)) return 'invalid-mac1';
    if (type === 'initiation') return 'initiation';
    const receiver = u32le(datagram, type === 'response' ? 8 : 4);
    return this.liveIndices.includes(receiver) ? 'known-index' : 'unknown-index';
  }

  /** A receiver index that is none of the live ones. */
  randomDeadIndex(): number {
    for (;;) {
      const index = this.rng.u32();
      if (!this.liveIndices.includes(index)) return index;
    }
  }

  /** Write a valid MAC1 (and a zero MAC2) for the target into a copy of an initiation or response. */
  stampMac1(message: Uint8Array): Uint8Array {
    const copy = Uint8Array.from(message);
    this.stamper.addMacs(copy);
    return copy;
  }

  /** MAC2 for `message` (MAC1 already in place) under a cookie the target gave us. */
  static withMac2(message: Uint8Array, cookie: Uint8Array): Uint8Array {
    const copy = Uint8Array.from(message);
    const mac2Offset = (copy[0] === MESSAGE_INITIATION_TYPE ? 116 : 60) + 16;
    copy.set(defaultPrimitives.mac(cookie, copy.subarray(0, mac2Offset)), mac2Offset);
    return copy;
  }

  // ---- garbage (no valid MAC) -------------------------------------------

  /** Random bytes, length uniform in [min, max]. */
  randomBytes(min = 0, max = 1500): Uint8Array {
    return this.rng.bytes(this.rng.range(min, max));
  }

  /** Each message type (and a few that do not exist) with a length that is wrong for it, or a bad header. */
  wrongLength(): Uint8Array {
    const sizes: Record<number, number> = {
      [MESSAGE_INITIATION_TYPE]: MESSAGE_INITIATION_SIZE,
      [MESSAGE_RESPONSE_TYPE]: MESSAGE_RESPONSE_SIZE,
      [MESSAGE_COOKIE_REPLY_TYPE]: MESSAGE_COOKIE_REPLY_SIZE,
    };
    const rng = this.rng;
    const type = rng.pick([1, 1, 2, 2, 3, 3, 4, 4, 0, 5, 255]);
    const size = sizes[type];
    if (type === MESSAGE_TRANSPORT_TYPE) {
      if (rng.chance(0.2)) {
        // Right length, non-zero reserved bytes.
        const out = header(type, rng.range(MESSAGE_TRANSPORT_MIN_SIZE, 1500), rng);
        out[1 + rng.int(3)] = 1 + rng.int(255);
        return out;
      }
      return header(type, rng.range(0, MESSAGE_TRANSPORT_MIN_SIZE - 1), rng);
    }
    if (size === undefined) return header(type, rng.range(0, 1500), rng);
    const choice = rng.int(8);
    if (choice === 0) {
      const out = header(type, size, rng);
      out[1 + rng.int(3)] = 1 + rng.int(255);
      return out;
    }
    const lengths = [0, 1, 2, 3, 4, size - 1, size + 1, size - 16, size + 16, 2 * size, 1500];
    let length = choice <= 5 ? rng.pick(lengths) : rng.range(0, 1500);
    if (length === size) length += 1;
    return header(type, length, rng);
  }

  /** The right length and header for a type, a random body (random MAC1, random receiver). */
  validHeaderRandomBody(): Uint8Array {
    const rng = this.rng;
    switch (rng.int(4)) {
      case 0:
        return header(MESSAGE_INITIATION_TYPE, MESSAGE_INITIATION_SIZE, rng);
      case 1: {
        const out = header(MESSAGE_RESPONSE_TYPE, MESSAGE_RESPONSE_SIZE, rng);
        setU32le(out, 8, this.randomDeadIndex());
        return out;
      }
      case 2: {
        const out = header(MESSAGE_COOKIE_REPLY_TYPE, MESSAGE_COOKIE_REPLY_SIZE, rng);
        setU32le(out, 4, this.randomDeadIndex());
        return out;
      }
      default: {
        const out = header(MESSAGE_TRANSPORT_TYPE, rng.range(MESSAGE_TRANSPORT_MIN_SIZE, 1500), rng);
        setU32le(out, 4, this.randomDeadIndex());
        return out;
      }
    }
  }

  /** Transport data for a live index: random counter (sometimes huge) and a random (unauthenticated) body. */
  transportForLiveIndex(): Uint8Array {
    const rng = this.rng;
    const out = header(MESSAGE_TRANSPORT_TYPE, rng.range(MESSAGE_TRANSPORT_MIN_SIZE, 1500), rng);
    setU32le(out, 4, rng.pick(this.liveIndices));
    const view = new DataView(out.buffer);
    const counter = rng.pick([0n, 1n, BigInt(rng.u32()), (1n << 64n) - 1n, (1n << 64n) - (1n << 13n) - 1n, 1n << 60n]);
    view.setBigUint64(8, counter, true);
    return out;
  }

  /** A cookie reply for a live index: random nonce and cookie, never authenticates. */
  cookieReplyForLiveIndex(): Uint8Array {
    const out = header(MESSAGE_COOKIE_REPLY_TYPE, MESSAGE_COOKIE_REPLY_SIZE, this.rng);
    setU32le(out, 4, this.rng.pick(this.liveIndices));
    return out;
  }

  /** A real datagram with its counter (or one bit of its body) changed. */
  tamperedTransport(real: Uint8Array): Uint8Array {
    const out = Uint8Array.from(real);
    if (this.rng.chance(0.5)) new DataView(out.buffer).setBigUint64(8, BigInt(this.rng.u32()), true);
    else {
      const index = 16 + this.rng.int(out.length - 16);
      out[index] = out[index]! ^ (1 << this.rng.int(8));
    }
    return out;
  }

  // ---- handshake messages with a valid MAC1 (the target does X25519) ---------

  /** A correct initiation from a key the target does not have as a peer (two X25519 on the target). */
  strangerInitiation(): Uint8Array {
    const identity = this.strangers[this.nextStranger++ % this.strangers.length]!;
    const handshake = new Handshake(identity, this.targetPublicKey, new Uint8Array(32), systemClock);
    return this.stampMac1(handshake.createInitiation(this.rng.u32()));
  }

  /**
   * A mutation of a real initiation (`base`), MAC1 recomputed so it passes:
   * a flipped bit in ephemeral, static or timestamp, a low-order or random
   * ephemeral, or an entirely random body.
   */
  mutatedInitiation(base: Uint8Array): Uint8Array {
    const rng = this.rng;
    const out = Uint8Array.from(base);
    switch (rng.int(6)) {
      case 0: // ephemeral
        out[8 + rng.int(32)]! ^= 1 << rng.int(8);
        break;
      case 1: // encrypted static
        out[40 + rng.int(48)]! ^= 1 << rng.int(8);
        break;
      case 2: // encrypted timestamp
        out[88 + rng.int(28)]! ^= 1 << rng.int(8);
        break;
      case 3:
        out.set(rng.pick(LOW_ORDER_KEYS), 8);
        break;
      case 4:
        out.set(rng.bytes(32), 8);
        break;
      default:
        out.set(rng.bytes(MESSAGE_INITIATION_SIZE - 4), 4);
        break;
    }
    return this.stampMac1(out);
  }

  /** A response with a valid MAC1 and a random body, for a dead index or (sometimes) a live one. */
  responseWithMac1(): Uint8Array {
    const rng = this.rng;
    const out = header(MESSAGE_RESPONSE_TYPE, MESSAGE_RESPONSE_SIZE, rng);
    setU32le(out, 8, rng.chance(0.25) && this.liveIndices.length > 0 ? rng.pick(this.liveIndices) : this.randomDeadIndex());
    if (rng.chance(0.2)) out.set(rng.pick(LOW_ORDER_KEYS), 12);
    return this.stampMac1(out);
  }

  /**
   * A plaintext for an authenticated peer to send inside its tunnel: random
   * bytes, IPv4/IPv6 headers whose length fields lie, packets from a spoofed
   * source, or well-formed-enough IPv4 from `own` carrying garbage. Never empty
   * (an empty plaintext is a keepalive), at most 1000 bytes.
   */
  innerGarbage(own: Uint8Array, spoofed: Uint8Array, destination: Uint8Array): Uint8Array {
    const rng = this.rng;
    const kind = rng.int(6);
    if (kind === 0) return this.randomBytes(1, 1000);
    if (kind === 5) {
      const out = rng.bytes(rng.range(40, 1000));
      out[0] = 0x60 | (out[0]! & 0x0f);
      new DataView(out.buffer).setUint16(4, rng.chance(0.5) ? rng.u32() & 0xffff : out.length - 40);
      return out;
    }
    const length = rng.range(kind === 1 ? 1 : 20, 1000);
    const out = rng.bytes(length);
    out[0] = 0x40 | (rng.chance(0.8) ? 5 : rng.int(16));
    const view = new DataView(out.buffer);
    if (length >= 4) view.setUint16(2, kind === 1 ? rng.u32() & 0xffff : rng.chance(0.2) ? rng.int(20) : length);
    if (length >= 20) {
      out.set(kind === 2 ? spoofed : kind === 3 ? rng.bytes(4) : own, 12);
      out.set(destination, 16);
    }
    return out;
  }

  /** A random-bodied initiation with a valid MAC1 (cheap to make; costs the target one X25519). */
  cheapInitiationWithMac1(): Uint8Array {
    const out = header(MESSAGE_INITIATION_TYPE, MESSAGE_INITIATION_SIZE, this.rng);
    return this.stampMac1(out);
  }
}

/** The cookie inside a cookie reply to `message` (whose MAC1 it is bound to), or null. */
export function openCookieReply(reply: Uint8Array, message: Uint8Array, targetPublicKey: Uint8Array): Uint8Array | null {
  if (messageType(reply) !== 'cookie-reply') return null;
  const cookieKey = defaultPrimitives.hash(new TextEncoder().encode('cookie--'), targetPublicKey);
  const offset = message[0] === MESSAGE_INITIATION_TYPE ? 116 : 60;
  return defaultPrimitives.xaeadOpen(cookieKey, reply.subarray(8, 32), reply.subarray(32, 64), message.subarray(offset, offset + 16));
}

// ---- pcap --------------------------------------------------------------------

export interface CapturedUdp {
  source: string;
  destination: string;
  sourcePort: number;
  destinationPort: number;
  payload: Uint8Array;
}

/** UDP datagrams in a classic pcap file (Ethernet link type) written by tcpdump -w; fragments are skipped. */
export function readPcapUdp(file: Uint8Array): CapturedUdp[] {
  const view = new DataView(file.buffer, file.byteOffset, file.byteLength);
  if (file.length < 24) return [];
  const magic = view.getUint32(0, true);
  const little = magic === 0xa1b2c3d4 || magic === 0xa1b23c4d;
  if (!little && view.getUint32(0, false) !== 0xa1b2c3d4 && view.getUint32(0, false) !== 0xa1b23c4d) throw new Error('not a pcap file');
  const linkType = view.getUint32(20, little);
  if (linkType !== 1) throw new Error(`pcap link type ${linkType}, expected Ethernet (1)`);
  const out: CapturedUdp[] = [];
  for (let pos = 24; pos + 16 <= file.length; ) {
    const captured = view.getUint32(pos + 8, little);
    const frame = file.subarray(pos + 16, pos + 16 + captured);
    pos += 16 + captured;
    if (frame.length < 14) continue;
    const fv = new DataView(frame.buffer, frame.byteOffset, frame.byteLength);
    const etherType = fv.getUint16(12);
    let udpOffset: number;
    let source: string;
    let destination: string;
    if (etherType === 0x0800) {
      const ihl = (frame[14]! & 0x0f) * 4;
      if (frame[14 + 9] !== 17 || (fv.getUint16(14 + 6) & 0x3fff) !== 0) continue;
      source = Array.from(frame.subarray(26, 30)).join('.');
      destination = Array.from(frame.subarray(30, 34)).join('.');
      udpOffset = 14 + ihl;
    } else if (etherType === 0x86dd) {
      if (frame[14 + 6] !== 17) continue;
      const hex = (b: Uint8Array) => Array.from({ length: 8 }, (_, i) => ((b[2 * i]! << 8) | b[2 * i + 1]!).toString(16)).join(':');
      source = hex(frame.subarray(22, 38));
      destination = hex(frame.subarray(38, 54));
      udpOffset = 54;
    } else continue;
    if (udpOffset + 8 > frame.length) continue;
    const length = fv.getUint16(udpOffset + 4);
    out.push({
      source,
      destination,
      sourcePort: fv.getUint16(udpOffset),
      destinationPort: fv.getUint16(udpOffset + 2),
      payload: Uint8Array.from(frame.subarray(udpOffset + 8, udpOffset + Math.max(8, length))),
    });
  }
  return out;
}
