/**
 * The Noise_IKpsk2 handshake and the transport it sets up, through the
 * Tunnel API (WireGuard paper §5.4, wireguard-go noise-protocol.go /
 * send.go / receive.go).
 *
 * The "independent reference" block re-derives the whole construction from
 * the paper with nothing but @noble primitives (no code from src/), and pins
 * it to a golden transcript produced by Python (hashlib + pyca/cryptography,
 * i.e. CPython's BLAKE2 and OpenSSL), so the handshake is checked against
 * two implementations that share no code with tswg.
 */
import { chacha20poly1305 } from '@noble/ciphers/chacha.js';
import { x25519 } from '@noble/curves/ed25519.js';
import { blake2s } from '@noble/hashes/blake2.js';
import { hmac } from '@noble/hashes/hmac.js';
import { describe, expect, it } from 'vitest';
import { ManualClock } from '../../src/noise/clock.js';
import {
  HANDSHAKE_INITIATION_RATE_MS,
  MESSAGE_INITIATION_SIZE,
  MESSAGE_RESPONSE_SIZE,
  REKEY_TIMEOUT_MS,
} from '../../src/noise/constants.js';
import { NoiseError } from '../../src/noise/errors.js';
import { initialState, readInitiation } from '../../src/noise/handshake.js';
import { StaticIdentity } from '../../src/noise/identity.js';
import { IndexTable } from '../../src/noise/index-table.js';
import { generatePresharedKey, generatePrivateKey } from '../../src/noise/keys.js';
import { messageType, parseInitiation, parseResponse, parseTransportHeader } from '../../src/noise/messages.js';
import { nobleBackend } from '../../src/noise/noble-backend.js';
import { nodeBackend } from '../../src/noise/node-backend.js';
import { padPacket, Tunnel } from '../../src/noise/tunnel.js';
import {
  completeHandshake,
  errorCode,
  flipBit,
  freshInitiation,
  fromHex,
  hex,
  makePair,
  newIdentity,
  only,
  scriptedPrimitives,
  thrown,
} from '../helpers/handshake-fixtures.js';
import { Rng } from '../helpers/fuzz.js';
import { LOW_ORDER_POINTS } from '../helpers/low-order-points.js';

// ------------------------------------------------------------------ helpers

const rng = new Rng(0x5eed);

function packet(length: number): Uint8Array {
  const p = rng.bytes(length);
  if (length > 0) p[0] = 0x45; // looks like IPv4; the tunnel does not care
  return p;
}

function ceil16(n: number): number {
  return Math.ceil(n / 16) * 16;
}

/** The plaintext a transport carries: the packet then zeros up to `paddedLength`. */
function paddedHex(p: Uint8Array, paddedLength: number): string | null {
  const out = new Uint8Array(paddedLength);
  out.set(p);
  return hex(out);
}

// ------------------------------------------------------------------ full handshake

describe.each([
  { name: 'without PSK', psk: undefined },
  { name: 'with PSK', psk: generatePresharedKey() },
])('full handshake $name', ({ psk }) => {
  it('handshakes on first data, carries data both ways, with the right message sizes', () => {
    const { a, b } = makePair({ psk });
    const first = packet(100);

    // A has no session: the packet is staged and an initiation goes out.
    const outA = a.encapsulate(first);
    const initiation = only(outA.network);
    expect(initiation.length).toBe(MESSAGE_INITIATION_SIZE);
    expect(initiation.length).toBe(148);
    expect(messageType(initiation)).toBe('initiation');
    expect(hex(initiation.subarray(132, 148))).toBe('00'.repeat(16)); // no cookie: MAC2 zero
    expect(a.stagedCount).toBe(1);
    expect(a.keypairs.current).toBeNull();

    // B answers and holds the new session as `next` until A proves it has it.
    const outB = b.decapsulate(initiation);
    expect(outB.error).toBeNull();
    expect(outB.authenticated).toBe(true);
    expect(outB.tunnel).toBeNull();
    const response = only(outB.network);
    expect(response.length).toBe(MESSAGE_RESPONSE_SIZE);
    expect(response.length).toBe(92);
    expect(messageType(response)).toBe('response');
    expect(b.keypairs.next).not.toBeNull();
    expect(b.keypairs.current).toBeNull();
    expect(parseResponse(response)!.receiver).toBe(parseInitiation(initiation)!.sender);

    // A completes and sends the staged packet straight away.
    const outA2 = a.decapsulate(response);
    expect(outA2.error).toBeNull();
    expect(outA2.authenticated).toBe(true);
    const transport = only(outA2.network);
    expect(messageType(transport)).toBe('transport');
    expect(transport.length).toBe(16 + ceil16(100) + 16);
    expect(a.stagedCount).toBe(0);
    expect(a.keypairs.current).not.toBeNull();
    expect(a.handshake.state).toBe('zeroed');

    const header = parseTransportHeader(transport)!;
    expect(header.receiver).toBe(parseResponse(response)!.sender);
    expect(header.counter).toBe(0n);

    // B decrypts; the padded plaintext is the packet then zeros; B's session is confirmed.
    const outB2 = b.decapsulate(transport);
    expect(outB2.error).toBeNull();
    expect(outB2.authenticated).toBe(true);
    expect(hex(outB2.tunnel)).toBe(paddedHex(first, 112));
    expect(b.keypairs.current).not.toBeNull();
    expect(b.keypairs.next).toBeNull();

    // The two sides derived mirrored keys.
    const ka = a.keypairs.current!;
    const kb = b.keypairs.current!;
    expect(hex(ka.sendKey)).toBe(hex(kb.receiveKey));
    expect(hex(ka.receiveKey)).toBe(hex(kb.sendKey));
    expect(hex(ka.sendKey)).not.toBe(hex(ka.receiveKey));
    expect(ka.localIndex).toBe(kb.remoteIndex);
    expect(ka.remoteIndex).toBe(kb.localIndex);
    expect(ka.isInitiator).toBe(true);
    expect(kb.isInitiator).toBe(false);

    // Data B -> A and more A -> B, counters increasing.
    for (let i = 0; i < 5; i++) {
      const back = packet(40 + i);
      const t = only(b.encapsulate(back).network);
      expect(parseTransportHeader(t)!.counter).toBe(BigInt(i));
      const got = a.decapsulate(t);
      expect(got.error).toBeNull();
      expect(hex(got.tunnel)).toBe(paddedHex(back, 48));

      const forth = packet(1 + i * 17);
      const u = only(a.encapsulate(forth).network);
      expect(parseTransportHeader(u)!.counter).toBe(BigInt(i + 1));
      expect(hex(b.decapsulate(u).tunnel)).toBe(paddedHex(forth, ceil16(1 + i * 17)));
    }
  });

  it('a keepalive is 32 bytes and delivers nothing to the TUN device', () => {
    const { a, b } = makePair({ psk });
    completeHandshake(a, b);
    for (const [from, to] of [
      [a, b],
      [b, a],
    ] as const) {
      const keepalive = only(from.sendKeepalive().network);
      expect(keepalive.length).toBe(32);
      expect(messageType(keepalive)).toBe('transport');
      const out = to.decapsulate(keepalive);
      expect(out.error).toBeNull();
      expect(out.authenticated).toBe(true);
      expect(out.tunnel).toBeNull();
      expect(out.network).toEqual([]);
    }
  });

  it('the initiator confirms the session with a keepalive when nothing was staged', () => {
    const { a, b } = makePair({ psk });
    const { confirmation } = completeHandshake(a, b);
    expect(confirmation.length).toBe(32);
    expect(b.keypairs.current).not.toBeNull();
  });
});

describe('transport sizes and padding', () => {
  it.each([1, 15, 16, 17, 31, 32, 100, 1280, 1400, 1419, 1420, 1421, 1500])(
    'a %i-byte packet travels as 16 + pad16(len) + 16 bytes without an MTU',
    (length) => {
      const { a, b } = makePair();
      completeHandshake(a, b);
      const p = packet(length);
      const t = only(a.encapsulate(p).network);
      expect(t.length).toBe(16 + ceil16(length) + 16);
      expect(hex(b.decapsulate(t).tunnel)).toBe(paddedHex(p, ceil16(length)));
    },
  );

  it.each([
    [1, 16],
    [1400, 1408],
    [1405, 1408],
    [1408, 1408],
    [1409, 1420], // would be 1424, capped at the MTU
    [1419, 1420], // would be 1424, capped at the MTU
    [1420, 1420],
  ])('with mtu=1420 a %i-byte packet is padded to %i', (length, padded) => {
    const { a, b } = makePair({ mtu: 1420 });
    completeHandshake(a, b);
    const p = packet(length);
    const t = only(a.encapsulate(p).network);
    expect(t.length).toBe(16 + padded + 16);
    expect(hex(b.decapsulate(t).tunnel)).toBe(paddedHex(p, padded));
  });

  it('padPacket pads with zeros to 16, caps at the MTU and leaves keepalives empty', () => {
    expect(padPacket(new Uint8Array(0)).length).toBe(0);
    expect(padPacket(new Uint8Array(0), 1420).length).toBe(0);
    expect(padPacket(new Uint8Array(1419)).length).toBe(1424);
    expect(padPacket(new Uint8Array(1419), 1420).length).toBe(1420);
    const p = new Uint8Array(17).fill(0xaa);
    const padded = padPacket(p, 1420);
    expect(padded.length).toBe(32);
    expect(hex(padded)).toBe('aa'.repeat(17) + '00'.repeat(15));
  });

  // wireguard-go's calculatePaddingSize (device/send.go) and the kernel's calculate_skb_padding pad the
  // remainder `len % mtu` to 16 (capped at the MTU): 1425 bytes with mtu 1420 -> 1436.
  it('a packet longer than the MTU is padded like wireguard-go (len % mtu rounded up to 16)', () => {
    expect(padPacket(new Uint8Array(1425), 1420).length).toBe(1436);
    expect(padPacket(new Uint8Array(1500), 1420).length).toBe(1500); // 80 % 16 == 0: no padding
  });
});

// ------------------------------------------------------------------ failures

describe('handshake failures', () => {
  it('mismatched PSK: the initiator refuses the response (DecryptionFailed) and installs nothing', () => {
    const { a, b } = makePair({ psk: generatePresharedKey(), pskB: generatePresharedKey() });
    const initiation = only(a.encapsulate(packet(60)).network);
    // The PSK is mixed in only in the second message: B cannot tell yet.
    const outB = b.decapsulate(initiation);
    expect(outB.error).toBeNull();
    const response = only(outB.network);

    const outA = a.decapsulate(response);
    expect(errorCode(outA)).toBe('DecryptionFailed');
    expect(outA.error).toBeInstanceOf(NoiseError);
    expect(outA.authenticated).toBe(false);
    expect(outA.network).toEqual([]);
    expect(a.keypairs.current).toBeNull();
    expect(a.keypairs.next).toBeNull();
    expect(a.keypairs.previous).toBeNull();
    expect(a.handshake.state).toBe('initiation-created'); // still waiting for a real answer
    expect(a.stagedCount).toBe(1);
  });

  it('PSK on one side only also fails', () => {
    const { a, b } = makePair({ psk: new Uint8Array(32), pskB: generatePresharedKey() });
    const initiation = only(a.initiateHandshake().network);
    const response = only(b.decapsulate(initiation).network);
    expect(errorCode(a.decapsulate(response))).toBe('DecryptionFailed');
    expect(a.keypairs.current).toBeNull();
  });

  it('an initiation addressed to another responder key fails MAC1', () => {
    const clock = new ManualClock();
    const { b, idA } = makePair({ clock });
    const someoneElse = newIdentity(clock);
    // A's key, but the initiation is encrypted (and MACed) to someoneElse.
    const initiation = freshInitiation(idA, someoneElse.publicKey, clock);
    const out = b.decapsulate(initiation);
    expect(errorCode(out)).toBe('InvalidMac1');
    expect(out.network).toEqual([]);
    expect(out.cookieReply).toBeNull();
    expect(b.handshake.state).toBe('zeroed');
    expect(b.keypairs.next).toBeNull();
    expect(readInitiation(b.identity, parseInitiation(initiation)!)).toBeNull();
  });

  it('an initiation from a key that is not this tunnel\'s peer is WrongPeer; readInitiation names the sender', () => {
    const clock = new ManualClock();
    const { b, idA, idB } = makePair({ clock });
    const stranger = newIdentity(clock);
    const initiation = freshInitiation(stranger, idB.publicKey, clock);
    expect(idB.cookieChecker.checkMac1(initiation)).toBe(true); // addressed to B: MAC1 is fine

    const out = b.decapsulate(initiation);
    expect(errorCode(out)).toBe('WrongPeer');
    expect(out.authenticated).toBe(false);
    expect(out.network).toEqual([]);
    expect(b.handshake.state).toBe('zeroed');
    expect(b.keypairs.next).toBeNull();

    const start = readInitiation(idB, parseInitiation(initiation)!);
    expect(start).not.toBeNull();
    expect(hex(start!.peerPublicKey)).toBe(hex(stranger.publicKey));
    expect(hex(start!.peerPublicKey)).not.toBe(hex(idA.publicKey));

    // handleReadInitiation (the device's path) refuses it the same way.
    expect(errorCode(b.handleReadInitiation(initiation, start!))).toBe('WrongPeer');
    // ...and accepts A's own initiation read the same way.
    const fromA = freshInitiation(idA, idB.publicKey, clock);
    const startA = readInitiation(idB, parseInitiation(fromA)!)!;
    expect(hex(startA.peerPublicKey)).toBe(hex(idA.publicKey));
    const ok = b.handleReadInitiation(fromA, startA);
    expect(ok.error).toBeNull();
    expect(only(ok.network).length).toBe(92);
  });

  it('a tampered initiation or response is refused and changes nothing', () => {
    const { a, b } = makePair();
    const initiation = only(a.initiateHandshake().network);
    // Flip a bit in every field in turn (MAC2 is not checked when not under load).
    for (const index of [0, 1, 4, 8, 39, 40, 87, 88, 115, 116, 131]) {
      const out = b.decapsulate(flipBit(initiation, index));
      expect(out.error, `initiation byte ${index}`).not.toBeNull();
      expect(out.network).toEqual([]);
    }
    expect(b.handshake.state).toBe('zeroed');
    expect(b.keypairs.next).toBeNull();
    const response = only(b.decapsulate(initiation).network);
    for (const index of [0, 4, 12, 43, 44, 59, 60, 75]) {
      const out = a.decapsulate(flipBit(response, index));
      expect(out.error, `response byte ${index}`).not.toBeNull();
      expect(out.network).toEqual([]);
      expect(a.keypairs.current).toBeNull();
      expect(a.handshake.state).toBe('initiation-created');
    }
    expect(a.decapsulate(response).error).toBeNull();
  });

  it('a tampered transport fails to decrypt; a replayed one is refused', () => {
    const { a, b } = makePair();
    completeHandshake(a, b);
    const t = only(a.encapsulate(packet(64)).network);
    expect(errorCode(b.decapsulate(flipBit(t, 20)))).toBe('DecryptionFailed');
    expect(errorCode(b.decapsulate(flipBit(t, t.length - 1)))).toBe('DecryptionFailed');
    expect(errorCode(b.decapsulate(flipBit(t, 8)))).toBe('DecryptionFailed'); // counter is the nonce
    expect(b.decapsulate(t).error).toBeNull();
    expect(errorCode(b.decapsulate(t))).toBe('ReplayedCounter');
  });

  it('malformed datagrams are InvalidMessage', () => {
    const { b } = makePair();
    for (const d of [new Uint8Array(0), new Uint8Array(3), new Uint8Array(148), Uint8Array.of(1, 0, 0, 0), new Uint8Array(31).fill(4)]) {
      expect(errorCode(b.decapsulate(d))).toBe('InvalidMessage');
    }
  });
});

// ------------------------------------------------------------------ timestamps and flood

describe('initiation replay and flood protection', () => {
  it('re-delivering an accepted initiation is ReplayedTimestamp and changes no state', () => {
    const { a, b, clock } = makePair();
    const initiation = only(a.initiateHandshake().network);
    expect(b.decapsulate(initiation).error).toBeNull();
    const next = b.keypairs.next;
    const lastTimestamp = hex(b.handshake.lastTimestamp);
    const consumedAt = b.handshake.lastInitiationConsumedAt;
    expect(next).not.toBeNull();

    for (const wait of [0, 1, HANDSHAKE_INITIATION_RATE_MS + 1, 1_000, 60_000]) {
      clock.advance(wait);
      const out = b.decapsulate(initiation);
      expect(errorCode(out)).toBe('ReplayedTimestamp');
      expect(out.authenticated).toBe(false);
      expect(out.network).toEqual([]);
      expect(b.keypairs.next).toBe(next);
      expect(b.keypairs.current).toBeNull();
      expect(b.keypairs.previous).toBeNull();
      expect(hex(b.handshake.lastTimestamp)).toBe(lastTimestamp);
      expect(b.handshake.lastInitiationConsumedAt).toBe(consumedAt);
    }
  });

  it('an initiation with an older wall clock is refused; a newer one is accepted', () => {
    const { b, idA, idB, clock } = makePair();
    const wall = clock.wallTime();
    expect(b.decapsulate(freshInitiation(idA, idB.publicKey, clock)).error).toBeNull();
    const accepted = b.keypairs.next;
    clock.advance(1_000); // past the flood limit

    // Same peer key, its clock 10 s behind.
    const oldClock = new ManualClock(0, wall - 10_000);
    const stale = freshInitiation(idA, idB.publicKey, oldClock);
    const out = b.decapsulate(stale);
    expect(errorCode(out)).toBe('ReplayedTimestamp');
    expect(b.keypairs.next).toBe(accepted);

    // A timestamp in the same ~16.8 ms whitening bucket is not newer either.
    const sameBucket = freshInitiation(idA, idB.publicKey, new ManualClock(0, wall + 1));
    expect(errorCode(b.decapsulate(sameBucket))).toBe('ReplayedTimestamp');

    // Newer by more than one bucket: accepted, a new session replaces `next`.
    const fresh = freshInitiation(idA, idB.publicKey, new ManualClock(0, wall + 25));
    const ok = b.decapsulate(fresh);
    expect(ok.error).toBeNull();
    expect(only(ok.network).length).toBe(92);
    expect(b.keypairs.next).not.toBe(accepted);
  });

  it('initiations within HANDSHAKE_INITIATION_RATE_MS (20 ms) of the last accepted are InitiationFlood', () => {
    expect(HANDSHAKE_INITIATION_RATE_MS).toBe(20);
    const { b, idA, idB, clock } = makePair();
    expect(b.decapsulate(freshInitiation(idA, idB.publicKey, clock)).error).toBeNull();
    const accepted = b.keypairs.next;

    clock.advance(18); // 18 ms > one 16.8 ms timestamp bucket: the timestamp is newer
    let out = b.decapsulate(freshInitiation(idA, idB.publicKey, clock));
    expect(errorCode(out)).toBe('InitiationFlood');
    expect(out.network).toEqual([]);
    expect(b.keypairs.next).toBe(accepted);

    clock.advance(2); // exactly 20 ms: still a flood (wireguard-go: <= HandshakeInitationRate)
    out = b.decapsulate(freshInitiation(idA, idB.publicKey, clock));
    expect(errorCode(out)).toBe('InitiationFlood');
    expect(b.keypairs.next).toBe(accepted);

    clock.advance(1); // 21 ms
    out = b.decapsulate(freshInitiation(idA, idB.publicKey, clock));
    expect(out.error).toBeNull();
    expect(b.keypairs.next).not.toBe(accepted);
  });

  it('the replay check wins over the flood check', () => {
    const { a, b } = makePair();
    const initiation = only(a.initiateHandshake().network);
    expect(b.decapsulate(initiation).error).toBeNull();
    expect(errorCode(b.decapsulate(initiation))).toBe('ReplayedTimestamp');
  });
});

// ------------------------------------------------------------------ independent reference

/** Everything below uses only @noble primitives and follows the paper, not src/. */
const ref = {
  concat(...parts: Uint8Array[]): Uint8Array {
    const out = new Uint8Array(parts.reduce((n, p) => n + p.length, 0));
    let o = 0;
    for (const p of parts) {
      out.set(p, o);
      o += p.length;
    }
    return out;
  },
  hash(...parts: Uint8Array[]): Uint8Array {
    return blake2s(ref.concat(...parts));
  },
  mac(key: Uint8Array, data: Uint8Array): Uint8Array {
    return blake2s(data, { key, dkLen: 16 });
  },
  hmac(key: Uint8Array, data: Uint8Array): Uint8Array {
    return hmac(blake2s, key, data);
  },
  /** HKDF as in the paper: τ0 = HMAC(key, input), τi = HMAC(τ0, τ(i-1) || i). */
  kdf(n: number, key: Uint8Array, input: Uint8Array): Uint8Array[] {
    const t0 = ref.hmac(key, input);
    const out: Uint8Array[] = [];
    let prev: Uint8Array = new Uint8Array(0);
    for (let i = 1; i <= n; i++) {
      prev = ref.hmac(t0, ref.concat(prev, Uint8Array.of(i)));
      out.push(prev);
    }
    return out;
  },
  nonce(counter: bigint): Uint8Array {
    const n = new Uint8Array(12);
    for (let i = 0; i < 8; i++) n[4 + i] = Number((counter >> BigInt(8 * i)) & 0xffn);
    return n;
  },
  seal(key: Uint8Array, counter: bigint, plaintext: Uint8Array, ad: Uint8Array): Uint8Array {
    return chacha20poly1305(key, ref.nonce(counter), ad).encrypt(plaintext);
  },
  open(key: Uint8Array, counter: bigint, ciphertext: Uint8Array, ad: Uint8Array): Uint8Array | null {
    try {
      return chacha20poly1305(key, ref.nonce(counter), ad).decrypt(ciphertext);
    } catch {
      return null;
    }
  },
  dh(privateKey: Uint8Array, publicKey: Uint8Array): Uint8Array {
    return x25519.getSharedSecret(privateKey, publicKey);
  },
  pub(privateKey: Uint8Array): Uint8Array {
    return x25519.getPublicKey(privateKey);
  },
  u32le(n: number): Uint8Array {
    return Uint8Array.of(n & 0xff, (n >>> 8) & 0xff, (n >>> 16) & 0xff, n >>> 24);
  },
  readU32le(b: Uint8Array, at: number): number {
    return (b[at]! | (b[at + 1]! << 8) | (b[at + 2]! << 16) | (b[at + 3]! << 24)) >>> 0;
  },
  /** TAI64N: 8-byte big-endian 2^62 + 10 + seconds, 4-byte big-endian nanoseconds rounded down to 2^24. */
  tai64n(unixMs: number): Uint8Array {
    const out = new Uint8Array(12);
    let secs = 0x400000000000000an + BigInt(Math.floor(unixMs / 1000));
    for (let i = 7; i >= 0; i--) {
      out[i] = Number(secs & 0xffn);
      secs >>= 8n;
    }
    const nanos = (unixMs % 1000) * 1_000_000;
    const whitened = nanos - (nanos % 2 ** 24);
    out[8] = (whitened >>> 24) & 0xff;
    out[9] = (whitened >>> 16) & 0xff;
    out[10] = (whitened >>> 8) & 0xff;
    out[11] = whitened & 0xff;
    return out;
  },
  ascii(s: string): Uint8Array {
    return new TextEncoder().encode(s);
  },
  initial(): { ck: Uint8Array; h: Uint8Array } {
    const ck = ref.hash(ref.ascii('Noise_IKpsk2_25519_ChaChaPoly_BLAKE2s'));
    const h = ref.hash(ck, ref.ascii('WireGuard v1 zx2c4 Jason@zx2c4.com'));
    return { ck, h };
  },
  mac1Key(receiverPublic: Uint8Array): Uint8Array {
    return ref.hash(ref.ascii('mac1----'), receiverPublic);
  },
};

interface RefInitiation {
  message: Uint8Array;
  ck: Uint8Array;
  h: Uint8Array;
}

/** Paper §5.4.2: the initiator's first message. */
function refCreateInitiation(args: {
  staticPrivate: Uint8Array;
  responderPublic: Uint8Array;
  ephemeralPrivate: Uint8Array;
  sender: number;
  timestamp: Uint8Array;
}): RefInitiation {
  let { ck, h } = ref.initial();
  h = ref.hash(h, args.responderPublic);
  const ephemeral = ref.pub(args.ephemeralPrivate);
  [ck] = ref.kdf(1, ck, ephemeral) as [Uint8Array];
  h = ref.hash(h, ephemeral);
  let k: Uint8Array;
  [ck, k] = ref.kdf(2, ck, ref.dh(args.ephemeralPrivate, args.responderPublic)) as [Uint8Array, Uint8Array];
  const encStatic = ref.seal(k, 0n, ref.pub(args.staticPrivate), h);
  h = ref.hash(h, encStatic);
  [ck, k] = ref.kdf(2, ck, ref.dh(args.staticPrivate, args.responderPublic)) as [Uint8Array, Uint8Array];
  const encTimestamp = ref.seal(k, 0n, args.timestamp, h);
  h = ref.hash(h, encTimestamp);
  const body = ref.concat(Uint8Array.of(1, 0, 0, 0), ref.u32le(args.sender), ephemeral, encStatic, encTimestamp);
  const message = ref.concat(body, ref.mac(ref.mac1Key(args.responderPublic), body), new Uint8Array(16));
  return { message, ck, h };
}

/** Paper §5.4.3 seen from the initiator: consume the response and derive (T_send, T_recv). */
function refConsumeResponse(
  state: RefInitiation,
  args: { staticPrivate: Uint8Array; ephemeralPrivate: Uint8Array; psk: Uint8Array; response: Uint8Array },
): { sendKey: Uint8Array; receiveKey: Uint8Array; responderIndex: number } | null {
  const r = args.response;
  if (r.length !== 92 || r[0] !== 2) return null;
  const ephemeral = r.subarray(12, 44);
  const empty = r.subarray(44, 60);
  let ck = state.ck;
  let h = ref.hash(state.h, ephemeral);
  [ck] = ref.kdf(1, ck, ephemeral) as [Uint8Array];
  [ck] = ref.kdf(1, ck, ref.dh(args.ephemeralPrivate, ephemeral)) as [Uint8Array];
  [ck] = ref.kdf(1, ck, ref.dh(args.staticPrivate, ephemeral)) as [Uint8Array];
  const [ck2, tau, k] = ref.kdf(3, ck, args.psk) as [Uint8Array, Uint8Array, Uint8Array];
  h = ref.hash(h, tau);
  if (ref.open(k, 0n, empty, h) === null) return null;
  const [sendKey, receiveKey] = ref.kdf(2, ck2, new Uint8Array(0)) as [Uint8Array, Uint8Array];
  return { sendKey, receiveKey, responderIndex: ref.readU32le(r, 4) };
}

/** Paper §5.4.2-5.4.3 seen from the responder: consume an initiation, build the response, derive keys. */
function refRespond(args: {
  staticPrivate: Uint8Array;
  ephemeralPrivate: Uint8Array;
  psk: Uint8Array;
  sender: number;
  initiation: Uint8Array;
}): { response: Uint8Array; initiatorPublic: Uint8Array; timestamp: Uint8Array; sendKey: Uint8Array; receiveKey: Uint8Array } {
  const m = args.initiation;
  const staticPublic = ref.pub(args.staticPrivate);
  expect(hex(m.subarray(116, 132))).toBe(hex(ref.mac(ref.mac1Key(staticPublic), m.subarray(0, 116))));
  const ei = m.subarray(8, 40);
  let { ck, h } = ref.initial();
  h = ref.hash(h, staticPublic);
  [ck] = ref.kdf(1, ck, ei) as [Uint8Array];
  h = ref.hash(h, ei);
  let k: Uint8Array;
  [ck, k] = ref.kdf(2, ck, ref.dh(args.staticPrivate, ei)) as [Uint8Array, Uint8Array];
  const initiatorPublic = ref.open(k, 0n, m.subarray(40, 88), h)!;
  expect(initiatorPublic).not.toBeNull();
  h = ref.hash(h, m.subarray(40, 88));
  [ck, k] = ref.kdf(2, ck, ref.dh(args.staticPrivate, initiatorPublic)) as [Uint8Array, Uint8Array];
  const timestamp = ref.open(k, 0n, m.subarray(88, 116), h)!;
  expect(timestamp).not.toBeNull();
  h = ref.hash(h, m.subarray(88, 116));

  const er = ref.pub(args.ephemeralPrivate);
  h = ref.hash(h, er);
  [ck] = ref.kdf(1, ck, er) as [Uint8Array];
  [ck] = ref.kdf(1, ck, ref.dh(args.ephemeralPrivate, ei)) as [Uint8Array];
  [ck] = ref.kdf(1, ck, ref.dh(args.ephemeralPrivate, initiatorPublic)) as [Uint8Array];
  const [ck2, tau, k3] = ref.kdf(3, ck, args.psk) as [Uint8Array, Uint8Array, Uint8Array];
  h = ref.hash(h, tau);
  const empty = ref.seal(k3, 0n, new Uint8Array(0), h);
  const body = ref.concat(Uint8Array.of(2, 0, 0, 0), ref.u32le(args.sender), m.subarray(4, 8), er, empty);
  const response = ref.concat(body, ref.mac(ref.mac1Key(initiatorPublic), body), new Uint8Array(16));
  const [initiatorSend, initiatorReceive] = ref.kdf(2, ck2, new Uint8Array(0)) as [Uint8Array, Uint8Array];
  return { response, initiatorPublic, timestamp, sendKey: initiatorReceive, receiveKey: initiatorSend };
}

function refTransport(key: Uint8Array, receiver: number, counter: bigint, payload: Uint8Array): Uint8Array {
  const padded = new Uint8Array(ceil16(payload.length));
  padded.set(payload);
  const counterBytes = new Uint8Array(8);
  for (let i = 0; i < 8; i++) counterBytes[i] = Number((counter >> BigInt(8 * i)) & 0xffn);
  return ref.concat(Uint8Array.of(4, 0, 0, 0), ref.u32le(receiver), counterBytes, ref.seal(key, counter, padded, new Uint8Array(0)));
}

function refOpenTransport(key: Uint8Array, datagram: Uint8Array): { receiver: number; counter: bigint; plaintext: Uint8Array | null } {
  let counter = 0n;
  for (let i = 7; i >= 0; i--) counter = (counter << 8n) | BigInt(datagram[8 + i]!);
  return { receiver: ref.readU32le(datagram, 4), counter, plaintext: ref.open(key, counter, datagram.subarray(16), new Uint8Array(0)) };
}

/**
 * Golden transcript from Python 3 (hashlib.blake2s, hmac, and pyca/cryptography's
 * X25519 and ChaCha20Poly1305, i.e. OpenSSL), following the paper step by step:
 *
 *   si = clamp(01..20)  sr = clamp(21..40)  ei = clamp(41..60)  er = clamp(61..80)  psk = 81..a0
 *   initiator index 0x11223344, responder index 0x55667788, wall clock 1_700_000_000_123 ms
 *   C = HASH(construction); H = HASH(C || identifier); H = HASH(H || Sr) ... exactly as refCreateInitiation
 *   TRANSPORT = initiator's first data message (counter 0) carrying 'golden transport payload!' padded to 32
 */
const GOLDEN = {
  C0: '60e26daef327efc02ec335e2a025d2d016eb4206f87277f52d38d1988b78cd36',
  H0: '2211b361081ac566691243db458ad5322d9c6c662293e8b70ee19c65ba079ef3',
  SI: '0002030405060708090a0b0c0d0e0f101112131415161718191a1b1c1d1e1f60',
  SR: '2022232425262728292a2b2c2d2e2f303132333435363738393a3b3c3d3e3f40',
  EI: '4042434445464748494a4b4c4d4e4f505152535455565758595a5b5c5d5e5f60',
  ER: '6062636465666768696a6b6c6d6e6f707172737475767778797a7b7c7d7e7f40',
  PSK: '8182838485868788898a8b8c8d8e8f909192939495969798999a9b9c9d9e9fa0',
  SI_PUB: '07a37cbc142093c8b755dc1b10e86cb426374ad16aa853ed0bdfc0b2b86d1c7c',
  SR_PUB: '5869aff450549732cbaaed5e5df9b30a6da31cb0e5742bad5ad4a1a768f1a67b',
  WALL_MS: 1_700_000_000_123,
  INITIATOR_INDEX: 0x11223344,
  RESPONDER_INDEX: 0x55667788,
  TIMESTAMP: '400000006553f10a07000000',
  INITIATION:
    '010000004433221164b101b1d0be5a8704bd078f9895001fc03e8e9f9522f188dd128d9846d48466158a0e4ca242d151ca97ab90159a98b67e61' +
    '6625e68b4065d357376b6598e644ad7d678c0295d22de4cb43d5135581ed36346bfa7cf42a122639f89315e67f2b43de40f99f8e6be9135e1632' +
    'd45237be41c55cffa3e7b390a525fe6500000000000000000000000000000000',
  RESPONSE:
    '020000008877665544332211244fe3b963e899dd295baffce248d3530f3a9a7479ba063002680ebfe7adad4927d9d0c10dbd892b072dfd62f2b6d4' +
    '2bee99ce22cd644e00a4f7522e3d9c984400000000000000000000000000000000',
  T_SEND_I: '248a29611829aaf7ee8bc8e87df805c1019f08f82d80eb79b7625821ba0a1317',
  T_RECV_I: '848308e622b3e15e5ebc5312111efc31082e86c85e9ee93fe8c5aa7f972cc9c3',
  PAYLOAD: 'golden transport payload!',
  TRANSPORT:
    '04000000887766550000000000000000bde016dfcec3ad4bb7fb93c46319ab2468e113d4141f59a348a902c057ea11f5ddddcbcf1d2c2282d7123' +
    '91d8b258cc8',
} as const;

describe('construction cross-checked against an independent reference', () => {
  it('initial chain key and hash are HASH(construction) and HASH(ck || identifier)', () => {
    for (const backend of [nodeBackend, nobleBackend]) {
      const { chainKey, hash } = initialState(backend);
      expect(hex(chainKey)).toBe(GOLDEN.C0);
      expect(hex(hash)).toBe(GOLDEN.H0);
    }
    const { ck, h } = ref.initial();
    expect(hex(ck)).toBe(GOLDEN.C0);
    expect(hex(ck)!.startsWith('60e26dae')).toBe(true);
    expect(hex(h)).toBe(GOLDEN.H0);
  });

  it('the @noble reference reproduces the Python golden transcript', () => {
    expect(hex(ref.pub(fromHex(GOLDEN.SI)))).toBe(GOLDEN.SI_PUB);
    expect(hex(ref.pub(fromHex(GOLDEN.SR)))).toBe(GOLDEN.SR_PUB);
    expect(hex(ref.tai64n(GOLDEN.WALL_MS))).toBe(GOLDEN.TIMESTAMP);
    const init = refCreateInitiation({
      staticPrivate: fromHex(GOLDEN.SI),
      responderPublic: fromHex(GOLDEN.SR_PUB),
      ephemeralPrivate: fromHex(GOLDEN.EI),
      sender: GOLDEN.INITIATOR_INDEX,
      timestamp: fromHex(GOLDEN.TIMESTAMP),
    });
    expect(hex(init.message)).toBe(GOLDEN.INITIATION);
    const resp = refRespond({
      staticPrivate: fromHex(GOLDEN.SR),
      ephemeralPrivate: fromHex(GOLDEN.ER),
      psk: fromHex(GOLDEN.PSK),
      sender: GOLDEN.RESPONDER_INDEX,
      initiation: init.message,
    });
    expect(hex(resp.response)).toBe(GOLDEN.RESPONSE);
    expect(hex(resp.timestamp)).toBe(GOLDEN.TIMESTAMP);
    const keys = refConsumeResponse(init, {
      staticPrivate: fromHex(GOLDEN.SI),
      ephemeralPrivate: fromHex(GOLDEN.EI),
      psk: fromHex(GOLDEN.PSK),
      response: resp.response,
    })!;
    expect(hex(keys.sendKey)).toBe(GOLDEN.T_SEND_I);
    expect(hex(keys.receiveKey)).toBe(GOLDEN.T_RECV_I);
    expect(hex(resp.receiveKey)).toBe(GOLDEN.T_SEND_I);
    expect(hex(refTransport(keys.sendKey, GOLDEN.RESPONDER_INDEX, 0n, ref.ascii(GOLDEN.PAYLOAD)))).toBe(GOLDEN.TRANSPORT);
  });

  it('a Tunnel initiator produces the golden initiation byte for byte (scripted ephemeral)', () => {
    const clock = new ManualClock(0, GOLDEN.WALL_MS);
    const { primitives, queue } = scriptedPrimitives(nodeBackend);
    const identity = new StaticIdentity(fromHex(GOLDEN.SI), primitives, clock);
    expect(hex(identity.publicKey)).toBe(GOLDEN.SI_PUB);
    const t = new Tunnel({ identity, peerPublicKey: fromHex(GOLDEN.SR_PUB), presharedKey: fromHex(GOLDEN.PSK), clock, jitter: () => 0 });
    queue.push(fromHex(GOLDEN.EI));
    const initiation = only(t.initiateHandshake().network);
    expect(queue).toHaveLength(0);
    const sender = ref.readU32le(initiation, 4);
    // Everything but the (random) sender index and the MAC1 that covers it is the golden message.
    expect(hex(initiation.subarray(8, 116))).toBe(GOLDEN.INITIATION.slice(16, 232));
    const expected = refCreateInitiation({
      staticPrivate: fromHex(GOLDEN.SI),
      responderPublic: fromHex(GOLDEN.SR_PUB),
      ephemeralPrivate: fromHex(GOLDEN.EI),
      sender,
      timestamp: fromHex(GOLDEN.TIMESTAMP),
    });
    expect(hex(initiation)).toBe(hex(expected.message));

    // A reference responder answers; the Tunnel derives the golden keys and its keepalive opens under them.
    const answer = refRespond({
      staticPrivate: fromHex(GOLDEN.SR),
      ephemeralPrivate: fromHex(GOLDEN.ER),
      psk: fromHex(GOLDEN.PSK),
      sender: GOLDEN.RESPONDER_INDEX,
      initiation,
    });
    expect(hex(answer.initiatorPublic)).toBe(GOLDEN.SI_PUB);
    const out = t.decapsulate(answer.response);
    expect(out.error).toBeNull();
    const kp = t.keypairs.current!;
    expect(hex(kp.sendKey)).toBe(GOLDEN.T_SEND_I);
    expect(hex(kp.receiveKey)).toBe(GOLDEN.T_RECV_I);
    expect(kp.remoteIndex).toBe(GOLDEN.RESPONDER_INDEX);
    const keepalive = refOpenTransport(answer.receiveKey, only(out.network));
    expect(keepalive.receiver).toBe(GOLDEN.RESPONDER_INDEX);
    expect(keepalive.counter).toBe(0n);
    expect(hex(keepalive.plaintext)).toBe('');

    // And a data packet encapsulated by the Tunnel is the golden transport message.
    const data = only(t.encapsulate(ref.ascii(GOLDEN.PAYLOAD)).network);
    expect(hex(data)).toBe(hex(refTransport(fromHex(GOLDEN.T_SEND_I), GOLDEN.RESPONDER_INDEX, 1n, ref.ascii(GOLDEN.PAYLOAD))));
    // Reference -> Tunnel direction.
    const back = t.decapsulate(refTransport(answer.sendKey, kp.localIndex, 0n, ref.ascii('hello initiator')));
    expect(back.error).toBeNull();
    expect(hex(back.tunnel?.subarray(0, 15))).toBe(hex(ref.ascii('hello initiator')));
  });

  it('a Tunnel responder accepts the golden initiation and answers with the golden response', () => {
    const clock = new ManualClock(5_000, GOLDEN.WALL_MS + 3_000);
    const { primitives, queue } = scriptedPrimitives(nodeBackend);
    const identity = new StaticIdentity(fromHex(GOLDEN.SR), primitives, clock);
    const t = new Tunnel({ identity, peerPublicKey: fromHex(GOLDEN.SI_PUB), presharedKey: fromHex(GOLDEN.PSK), clock, jitter: () => 0 });
    queue.push(fromHex(GOLDEN.ER));
    const out = t.decapsulate(fromHex(GOLDEN.INITIATION));
    expect(out.error).toBeNull();
    expect(queue).toHaveLength(0);
    const response = only(out.network);
    const sender = ref.readU32le(response, 4);
    expect(hex(response.subarray(8, 60))).toBe(GOLDEN.RESPONSE.slice(16, 120)); // receiver, ephemeral, empty
    expect(hex(response.subarray(60, 76))).toBe(hex(ref.mac(ref.mac1Key(fromHex(GOLDEN.SI_PUB)), response.subarray(0, 60))));
    expect(hex(response.subarray(76, 92))).toBe('00'.repeat(16));
    expect(hex(t.handshake.lastTimestamp)).toBe(GOLDEN.TIMESTAMP);

    const next = t.keypairs.next!;
    expect(hex(next.sendKey)).toBe(GOLDEN.T_RECV_I);
    expect(hex(next.receiveKey)).toBe(GOLDEN.T_SEND_I);
    expect(next.localIndex).toBe(sender);
    expect(next.remoteIndex).toBe(GOLDEN.INITIATOR_INDEX);

    // The golden transport, re-addressed to the Tunnel's index (the header is not authenticated).
    const golden = fromHex(GOLDEN.TRANSPORT);
    golden.set(ref.u32le(sender), 4);
    const data = t.decapsulate(golden);
    expect(data.error).toBeNull();
    expect(hex(data.tunnel)).toBe(hex(ref.ascii(GOLDEN.PAYLOAD)) + '00'.repeat(7));
    expect(t.keypairs.current).toBe(next);

    const reply = refOpenTransport(fromHex(GOLDEN.T_RECV_I), only(t.encapsulate(ref.ascii('hello back')).network));
    expect(reply.receiver).toBe(GOLDEN.INITIATOR_INDEX);
    expect(reply.counter).toBe(0n);
    expect(hex(reply.plaintext)).toBe(hex(ref.ascii('hello back')) + '00'.repeat(6));
  });

  it.each([
    { name: 'no PSK', withPsk: false },
    { name: 'PSK', withPsk: true },
  ])('random keys ($name): reference initiator <-> Tunnel responder agree on T_send/T_recv', ({ withPsk }) => {
    for (let round = 0; round < 4; round++) {
      const clock = new ManualClock();
      const responder = newIdentity(clock);
      const initiatorPrivate = generatePrivateKey();
      const psk = withPsk ? generatePresharedKey() : new Uint8Array(32);
      const t = new Tunnel({ identity: responder, peerPublicKey: ref.pub(initiatorPrivate), presharedKey: psk, clock, jitter: () => 0 });
      const ephemeralPrivate = generatePrivateKey();
      const sender = rng.u32();
      const init = refCreateInitiation({
        staticPrivate: initiatorPrivate,
        responderPublic: responder.publicKey,
        ephemeralPrivate,
        sender,
        timestamp: ref.tai64n(clock.wallTime()),
      });
      const out = t.decapsulate(init.message);
      expect(out.error).toBeNull();
      const response = only(out.network);
      expect(ref.readU32le(response, 8)).toBe(sender);
      const keys = refConsumeResponse(init, { staticPrivate: initiatorPrivate, ephemeralPrivate, psk, response });
      expect(keys).not.toBeNull();
      // Wrong PSK: the reference cannot open the response.
      expect(refConsumeResponse(init, { staticPrivate: initiatorPrivate, ephemeralPrivate, psk: generatePresharedKey(), response })).toBeNull();

      const payload = packet(77);
      const got = t.decapsulate(refTransport(keys!.sendKey, keys!.responderIndex, 0n, payload));
      expect(got.error).toBeNull();
      expect(hex(got.tunnel)).toBe(paddedHex(payload, 80));
      const answer = refOpenTransport(keys!.receiveKey, only(t.encapsulate(payload).network));
      expect(answer.receiver).toBe(sender);
      expect(hex(answer.plaintext)).toBe(paddedHex(payload, 80));
    }
  });
});

// ------------------------------------------------------------------ keys

describe('key validation', () => {
  it.each(LOW_ORDER_POINTS.map((p) => [p]))('a low-order peer public key %s is refused at construction', (point) => {
    const clock = new ManualClock();
    for (const identity of [newIdentity(clock), newIdentity(clock, nobleBackend)]) {
      const error = thrown(() => new Tunnel({ identity, peerPublicKey: fromHex(point), clock }));
      expect(error).toBeInstanceOf(NoiseError);
      expect(['LowOrderPoint', 'InvalidKey']).toContain((error as NoiseError).code);
    }
  });

  it('keys of the wrong length are InvalidKey', () => {
    const clock = new ManualClock();
    const identity = newIdentity(clock);
    const peer = newIdentity(clock).publicKey;
    const cases: Array<() => unknown> = [
      () => new Tunnel({ identity, peerPublicKey: peer.subarray(0, 31), clock }),
      () => new Tunnel({ identity, peerPublicKey: new Uint8Array(33), clock }),
      () => new Tunnel({ identity, peerPublicKey: new Uint8Array(0), clock }),
      () => new Tunnel({ identity, peerPublicKey: peer, presharedKey: new Uint8Array(31), clock }),
      () => new Tunnel({ identity, peerPublicKey: peer, presharedKey: new Uint8Array(64), clock }),
      () => new StaticIdentity(new Uint8Array(31), nodeBackend, clock),
      () => new StaticIdentity(new Uint8Array(33), nobleBackend, clock),
      () => {
        new Tunnel({ identity, peerPublicKey: peer, clock }).presharedKey = new Uint8Array(16);
      },
    ];
    for (const make of cases) {
      const error = thrown(make);
      expect(error).toBeInstanceOf(NoiseError);
      expect((error as NoiseError).code).toBe('InvalidKey');
    }
  });

  it('changing the PSK on both sides takes effect at the next handshake', () => {
    const { a, b, clock } = makePair();
    completeHandshake(a, b);
    const psk = generatePresharedKey();
    a.presharedKey = psk;
    clock.advance(REKEY_TIMEOUT_MS);
    const init = only(a.initiateHandshake().network);
    const resp = only(b.decapsulate(init).network);
    expect(errorCode(a.decapsulate(resp))).toBe('DecryptionFailed');
    b.presharedKey = psk;
    clock.advance(REKEY_TIMEOUT_MS);
    completeHandshake(a, b);
  });
});

// ------------------------------------------------------------------ indices

describe('receiver indices', () => {
  it('every session gets fresh indices and each side addresses the other by the peer\'s index', () => {
    const { a, b, clock } = makePair();
    const seen = new Set<number>();
    for (let i = 0; i < 12; i++) {
      const [from, to] = i % 3 === 2 ? [b, a] : [a, b];
      completeHandshake(from, to);
      const ka = a.keypairs.current!;
      const kb = b.keypairs.current!;
      expect(ka.localIndex).toBe(kb.remoteIndex);
      expect(kb.localIndex).toBe(ka.remoteIndex);
      expect(seen.has(ka.localIndex)).toBe(false);
      expect(seen.has(kb.localIndex)).toBe(false);
      seen.add(ka.localIndex);
      seen.add(kb.localIndex);
      clock.advance(REKEY_TIMEOUT_MS);
    }
  });

  it('a transport for an unknown receiver index is UnknownIndex', () => {
    const { a, b } = makePair();
    completeHandshake(a, b);
    const t = only(a.encapsulate(packet(20)).network);
    const known = new Set(b.keypairs.all().map((k) => k.localIndex));
    let bogus = 0x12345678;
    while (known.has(bogus)) bogus++;
    const forged = Uint8Array.from(t);
    forged.set(ref.u32le(bogus), 4);
    const out = b.decapsulate(forged);
    expect(errorCode(out)).toBe('UnknownIndex');
    expect(out.authenticated).toBe(false);
    expect(b.decapsulate(t).error).toBeNull(); // the real one still works
  });

  it('a response that does not answer our pending initiation is UnknownIndex', () => {
    const { a, b, clock } = makePair();
    // No initiation pending at all.
    const c = makePair();
    const strayInit = only(c.a.initiateHandshake().network);
    const strayResponse = only(c.b.decapsulate(strayInit).network);
    expect(errorCode(a.decapsulate(strayResponse))).toBe('UnknownIndex');

    // A response to an initiation that has since been superseded by a retry.
    const first = only(a.initiateHandshake().network);
    clock.advance(REKEY_TIMEOUT_MS);
    const retry = only(a.updateTimers().network); // retransmit-handshake with a new index
    expect(parseInitiation(retry)!.sender).not.toBe(parseInitiation(first)!.sender);
    const staleResponse = only(b.decapsulate(first).network);
    const out = a.decapsulate(staleResponse);
    expect(errorCode(out)).toBe('UnknownIndex');
    expect(a.keypairs.current).toBeNull();
    expect(a.handshake.state).toBe('initiation-created');

    // The retry's own response works, and replaying it afterwards is UnknownIndex.
    clock.advance(HANDSHAKE_INITIATION_RATE_MS + 1);
    const goodResponse = only(b.decapsulate(retry).network);
    expect(a.decapsulate(goodResponse).error).toBeNull();
    expect(errorCode(a.decapsulate(goodResponse))).toBe('UnknownIndex');
  });

  it('retransmitted initiations release the previous handshake index', () => {
    const table = new IndexTable<Tunnel>();
    const { a, clock } = makePair({ indexTableA: table });
    a.initiateHandshake();
    expect(table.size).toBe(1);
    for (let i = 0; i < 10; i++) {
      clock.advance(REKEY_TIMEOUT_MS);
      expect(only(a.updateTimers().network).length).toBe(148);
      expect(table.size).toBe(1);
      expect(table.lookup(a.handshake.localIndex)).toBe(a);
    }
    a.close();
    expect(table.size).toBe(0);
  });

  it('a shared IndexTable stays bounded over many rekeys and crossings, and close() releases a tunnel\'s indices', () => {
    const clock = new ManualClock();
    const tableA = new IndexTable<Tunnel>();
    const idA = newIdentity(clock);
    const pairs = [0, 1, 2].map(() => makePair({ clock, identityA: idA, indexTableA: tableA }));
    const tunnelsA = pairs.map((p) => p.a);
    const local = new Rng(42);

    const sessions = new Set<number>();
    const checkTable = () => {
      let bound = 0;
      for (const t of tunnelsA) {
        bound += t.keypairs.all().length + 1; // sessions plus at most one pending handshake
        for (const k of t.keypairs.all()) {
          expect(tableA.lookup(k.localIndex)).toBe(t);
          sessions.add(k.localIndex);
        }
      }
      expect(tableA.size).toBeLessThanOrEqual(bound);
      expect(tableA.size).toBeLessThanOrEqual(4 * tunnelsA.length);
    };

    /** Deliver datagrams back and forth until nothing more comes out; errors are expected and ignored. */
    const pump = (from: Tunnel, to: Tunnel, datagrams: Uint8Array[]) => {
      let queue = datagrams.map((d) => ({ d, to, from }));
      for (let hops = 0; queue.length > 0 && hops < 10; hops++) {
        const next: typeof queue = [];
        for (const { d, to: receiver, from: sender } of queue) {
          for (const r of receiver.decapsulate(d).network) next.push({ d: r, to: sender, from: receiver });
        }
        queue = next;
      }
    };

    for (let round = 0; round < 60; round++) {
      clock.advance(REKEY_TIMEOUT_MS + local.int(1000));
      const { a, b } = pairs[local.int(pairs.length)]!;
      switch (local.int(5)) {
        case 0:
          pump(a, b, a.initiateHandshake().network);
          break;
        case 1:
          pump(b, a, b.initiateHandshake().network);
          break;
        case 2: {
          // Both initiate at once; the initiations cross.
          const ia = a.initiateHandshake().network;
          const ib = b.initiateHandshake().network;
          pump(a, b, ia);
          pump(b, a, ib);
          break;
        }
        case 3:
          // The response is lost.
          for (const d of a.initiateHandshake().network) b.decapsulate(d);
          break;
        case 4:
          // Data, possibly starting a handshake.
          pump(a, b, a.encapsulate(packet(30)).network);
          break;
      }
      checkTable();
      clock.advance(REKEY_TIMEOUT_MS + local.int(1000));
      for (const { a, b } of pairs) {
        pump(a, b, a.updateTimers().network);
        pump(b, a, b.updateTimers().network);
      }
      checkTable();
    }

    expect(sessions.size).toBeGreaterThan(40); // the loop really did rekey a lot

    const before = tableA.size;
    const victim = tunnelsA[1]!;
    const victimIndices = [...new Set([...victim.keypairs.all().map((k) => k.localIndex), victim.handshake.localIndex])];
    const victimOwned = victimIndices.filter((i) => tableA.lookup(i) === victim).length;
    victim.close();
    expect(tableA.size).toBe(before - victimOwned);
    for (const i of victimIndices) expect(tableA.lookup(i)).not.toBe(victim);
    for (const t of tunnelsA) if (t !== victim) for (const k of t.keypairs.all()) expect(tableA.lookup(k.localIndex)).toBe(t);
    for (const t of tunnelsA) t.close();
    expect(tableA.size).toBe(0);
  });

  it('close() on a tunnel with a pending handshake and sessions frees all its indices', () => {
    const table = new IndexTable<Tunnel>();
    const { a, b, clock } = makePair({ indexTableA: table });
    completeHandshake(a, b);
    clock.advance(REKEY_TIMEOUT_MS);
    completeHandshake(a, b);
    clock.advance(REKEY_TIMEOUT_MS);
    a.initiateHandshake();
    expect(table.size).toBe(3); // current, previous, pending handshake
    a.close();
    expect(table.size).toBe(0);
    expect(a.keypairs.all()).toEqual([]);
    expect(a.stagedCount).toBe(0);
  });
});
