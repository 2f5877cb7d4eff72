/**
 * Fuzz tests for the message codecs and the Tunnel's receive path.
 *
 * Requirement: every malformed, truncated, oversized or wrong-type datagram,
 * and every forged MAC or tag, yields a typed error or a silent drop, never
 * an exception escaping the API and never a change to session state.
 *
 * 1. Parser fuzz (> 100,000 inputs): random bytes, header-valid random bodies
 *    at every length around the exact message sizes, and 1–3 mutations of the
 *    valid messages of a real handshake. Each input goes through messageType
 *    and the four parsers, which must not throw and must accept exactly the
 *    inputs with the right length, type byte and zero reserved bytes.
 *
 * 2. Tunnel fuzz (> 100,000 decapsulate calls): two peers A and B with an
 *    established session and a second handshake half done (A has a pending
 *    initiation whose response and cookie reply exist but were not delivered),
 *    fed mutated copies of every captured datagram, splices, forgeries with
 *    recomputed MACs, and random bytes. After every call the receiving
 *    tunnel's whole state (including private fields) must equal its state
 *    before the fuzz, and afterwards the session and the pending handshake
 *    must still work.
 *
 * Randomness: inputs come from a seeded PRNG; so do the tunnels' keys,
 * ephemerals, cookie secrets and nonces (a node backend whose randomBytes is
 * seeded). Only the 32-bit session indices come from node:crypto. The seed is
 * random per run unless FUZZ_SEED is set; it is printed, and every failure
 * message carries it: rerun with FUZZ_SEED=<seed>.
 *
 * Cost: a datagram that fails a length or MAC1 check is cheap; one that
 * passes MAC1 costs one or two X25519s (about 1 ms each here), so only
 * ~8% of candidates carry forged MACs. ~10–15 s in all on 2 cores.
 */
import { blake2s } from '@noble/hashes/blake2.js';
import { beforeAll, describe, expect, it } from 'vitest';
import {
  INITIATION_MAC1_OFFSET,
  LABEL_MAC1,
  MAC_SIZE,
  MAX_MESSAGE_SIZE,
  MESSAGE_COOKIE_REPLY_SIZE,
  MESSAGE_INITIATION_SIZE,
  MESSAGE_RESPONSE_SIZE,
  MESSAGE_TRANSPORT_MIN_SIZE,
  ManualClock,
  NoiseError,
  REJECT_AFTER_MESSAGES,
  RESPONSE_MAC1_OFFSET,
  StaticIdentity,
  Tunnel,
  clampPrivateKey,
  messageType,
  nodeBackend,
  padPacket,
  parseCookieReply,
  parseInitiation,
  parseResponse,
  parseTransportHeader,
  readInitiation,
  serializeCookieReply,
  serializeInitiation,
  serializeResponse,
  serializeTransport,
  type DecapsulateOptions,
  type InitiationStart,
  type Keypair,
  type MessageType,
  type NoiseErrorCode,
  type Primitives,
  type TunnelOutput,
} from '../../src/noise/index.js';
import { Rng, bytesEqual, fuzzSeed, hex, mutate, mutateOnce, present, shortHex, type Field, type MutationContext } from '../helpers/fuzz.js';
import { LOW_ORDER_POINTS, pointBytes } from '../helpers/low-order-points.js';

const SEED = fuzzSeed();
const PARSER_MIN_INPUTS = 100_000;
const TUNNEL_DECAPSULATE_CALLS = 110_000;
const MAX_REPORTED_FAILURES = 20;

// ---------------------------------------------------------------- scenario

type PeerName = 'A' | 'B' | 'C';

interface PoolEntry {
  name: string;
  bytes: Uint8Array;
  /** Whose static key the message is addressed to (its MAC1 key, its AEAD key). */
  to: PeerName;
}

interface Scenario {
  clock: ManualClock;
  A: Tunnel;
  B: Tunnel;
  srcA: Uint8Array;
  srcB: Uint8Array;
  /** Every valid datagram captured while setting the scenario up. */
  pool: PoolEntry[];
  /** B's response to A's pending initiation: valid, never delivered during the fuzz. */
  pendingResponse: Uint8Array;
  /** B's cookie reply to A's pending initiation: valid, never delivered during the fuzz. */
  pendingCookieReply: Uint8Array;
  /** Every session/handshake index either side uses. */
  indices: number[];
}

function only(out: TunnelOutput, what: string): Uint8Array {
  expect(out.network.length, `${what}: one datagram`).toBe(1);
  return out.network[0]!;
}

function expectAuthenticated(out: TunnelOutput, what: string): void {
  expect(out.error, `${what}: ${out.error?.message}`).toBeNull();
  expect(out.authenticated, what).toBe(true);
}

/**
 * A and B: handshake 1 initiated by B, data both ways, keepalives; then,
 * 6 s later, handshake 2 initiated by A: B consumed the initiation and
 * answered, but the response (and a cookie reply for it) are held back, so A
 * stays in 'initiation-created' and B holds an unconfirmed `next` keypair.
 * C is a stranger who knows B's public key.
 */
function buildScenario(seed: number): Scenario {
  const cryptoRng = new Rng(seed ^ 0x5eed_c0de);
  // node:crypto for every primitive, with seeded randomness so a run reproduces.
  const primitives: Primitives = { ...nodeBackend, randomBytes: (n: number) => cryptoRng.bytes(n) };
  const clock = new ManualClock();
  const identity = () => new StaticIdentity(clampPrivateKey(cryptoRng.bytes(32)), primitives, clock);
  const idA = identity();
  const idB = identity();
  const idC = identity();
  const presharedKey = cryptoRng.bytes(32);
  const A = new Tunnel({ identity: idA, peerPublicKey: idB.publicKey, presharedKey, clock, jitter: () => 0 });
  const B = new Tunnel({ identity: idB, peerPublicKey: idA.publicKey, presharedKey, clock, jitter: () => 0 });
  const C = new Tunnel({ identity: idC, peerPublicKey: idB.publicKey, clock, jitter: () => 0 });
  const srcA = Uint8Array.of(192, 0, 2, 1, 0xca, 0x6c);
  const srcB = Uint8Array.of(198, 51, 100, 7, 0xca, 0x6c);
  const pool: PoolEntry[] = [];
  const add = (name: string, bytes: Uint8Array, to: PeerName) => pool.push({ name, bytes: new Uint8Array(bytes), to });

  // Handshake 1, initiated by B.
  const initB = only(B.initiateHandshake(), 'B initiation');
  add('initiation B->A', initB, 'A');
  const underLoad = A.decapsulate(initB, { source: srcB, underLoad: true });
  expect(underLoad.error?.code).toBe('CookieRequired');
  expect(underLoad.cookieReply).not.toBeNull();
  add('cookie reply A->B (stale)', underLoad.cookieReply!, 'B');
  const r1 = A.decapsulate(initB, { source: srcB });
  expectAuthenticated(r1, 'A consumes initiation');
  const respA = only(r1, 'A response');
  add('response A->B (consumed)', respA, 'B');
  const r2 = B.decapsulate(respA, { source: srcA });
  expectAuthenticated(r2, 'B consumes response');
  const kaB = only(r2, 'B keepalive');
  add('keepalive B->A', kaB, 'A');
  expectAuthenticated(A.decapsulate(kaB), 'A confirms the session');

  // Data both ways, every size class of padding.
  for (const size of [1, 15, 16, 17, 100, 1400]) {
    const packet = cryptoRng.bytes(size);
    const toB = only(A.encapsulate(packet), `A data ${size}`);
    add(`transport A->B ${size}`, toB, 'B');
    const atB = B.decapsulate(toB);
    expectAuthenticated(atB, `B receives ${size}`);
    expect(hex(atB.tunnel)).toBe(hex(padPacket(packet)));
    const toA = only(B.encapsulate(packet), `B data ${size}`);
    add(`transport B->A ${size}`, toA, 'A');
    const atA = A.decapsulate(toA);
    expectAuthenticated(atA, `A receives ${size}`);
    expect(hex(atA.tunnel)).toBe(hex(padPacket(packet)));
  }
  const kaA = only(A.sendKeepalive(), 'A keepalive');
  add('keepalive A->B', kaA, 'B');
  expectAuthenticated(B.decapsulate(kaA), 'B receives keepalive');

  // Handshake 2, initiated by A, left pending on A's side.
  clock.advance(6_000);
  const initA = only(A.initiateHandshake(), 'A initiation');
  add('initiation A->B (consumed)', initA, 'B');
  const cookie = B.decapsulate(initA, { source: srcA, underLoad: true });
  expect(cookie.error?.code).toBe('CookieRequired');
  const pendingCookieReply = cookie.cookieReply!;
  add('cookie reply B->A (pending)', pendingCookieReply, 'A');
  const r3 = B.decapsulate(initA, { source: srcA });
  expectAuthenticated(r3, 'B consumes the second initiation');
  const pendingResponse = only(r3, 'B response');
  add('response B->A (pending)', pendingResponse, 'A');

  // A stranger's initiation: valid for B's key, from the wrong peer.
  const initC = only(C.initiateHandshake(), 'C initiation');
  add('initiation C->B (wrong peer)', initC, 'B');
  expect(B.decapsulate(initC).error?.code).toBe('WrongPeer');
  const cookieC = B.decapsulate(initC, { underLoad: true, source: srcA });
  expect(cookieC.error?.code).toBe('CookieRequired');
  add('cookie reply B->C', cookieC.cookieReply!, 'C');

  expect(A.handshake.state).toBe('initiation-created');
  expect(B.keypairs.next).not.toBeNull();
  const indices = [A, B, C].flatMap((t) => [
    t.handshake.localIndex,
    t.handshake.remoteIndex,
    ...t.keypairs.all().flatMap((k) => [k.localIndex, k.remoteIndex]),
  ]);
  return { clock, A, B, srcA, srcB, pool, pendingResponse, pendingCookieReply, indices: [...new Set(indices)] };
}

// ---------------------------------------------------------------- state snapshots

// Private fields the snapshot reads; checked to exist so a refactor cannot make it vacuous.
interface TunnelInternals {
  cookies: { cookie: Uint8Array | null; cookieSetAt: number; lastMac1: Uint8Array | null };
  staged: Uint8Array[];
  handshakeIndexLive: boolean;
}
interface HandshakeInternals {
  hash: Uint8Array;
  chainKey: Uint8Array;
  localEphemeral: Uint8Array | null;
  remoteEphemeral: Uint8Array | null;
}
interface ReplayInternals {
  ring: Uint16Array;
  lastLow: number;
  lastHigh: number;
}
interface TimersInternals {
  deadlines: Float64Array;
}
interface IndexTableInternals {
  owners: Map<number, unknown>;
}
interface CheckerInternals {
  secret: Uint8Array;
  secretSetAt: number;
}

function assertInternalsExist(t: Tunnel): void {
  const ti = t as unknown as TunnelInternals;
  expect(ti.cookies).toBeTypeOf('object');
  expect(Array.isArray(ti.staged)).toBe(true);
  expect(ti.handshakeIndexLive).toBeTypeOf('boolean');
  expect((t.handshake as unknown as HandshakeInternals).hash).toBeInstanceOf(Uint8Array);
  expect((t.timers as unknown as TimersInternals).deadlines).toBeInstanceOf(Float64Array);
  expect((t.indexTable as unknown as IndexTableInternals).owners).toBeInstanceOf(Map);
  expect((t.identity.cookieChecker as unknown as CheckerInternals).secret).toBeInstanceOf(Uint8Array);
  for (const k of t.keypairs.all()) expect((k.replay as unknown as ReplayInternals).ring).toBeInstanceOf(Uint16Array);
}

function keypairState(k: Keypair | null): unknown {
  if (k === null) return null;
  const replay = k.replay as unknown as ReplayInternals;
  return [
    k.localIndex,
    k.remoteIndex,
    k.isInitiator,
    k.createdAt,
    String(k.sendCounter),
    hex(k.sendKey),
    hex(k.receiveKey),
    replay.lastLow,
    replay.lastHigh,
    Buffer.from(replay.ring.buffer, replay.ring.byteOffset, replay.ring.byteLength).toString('base64'),
  ];
}

/** Everything a datagram could change in a tunnel, as one string (object identities are compared apart). */
function snapshot(t: Tunnel): string {
  const ti = t as unknown as TunnelInternals;
  const h = t.handshake;
  const hi = h as unknown as HandshakeInternals;
  const timers = t.timers as unknown as TimersInternals;
  const checker = t.identity.cookieChecker as unknown as CheckerInternals;
  return JSON.stringify([
    t.rxBytes,
    t.txBytes,
    t.lastHandshakeWallTime,
    t.mtu,
    ti.staged.map(hex),
    ti.handshakeIndexLive,
    [hex(ti.cookies.cookie), ti.cookies.cookieSetAt, hex(ti.cookies.lastMac1)],
    [h.state, h.localIndex, h.remoteIndex, hex(h.lastTimestamp), h.lastInitiationConsumedAt, h.lastSentAt, hex(h.presharedKey)],
    [hex(hi.hash), hex(hi.chainKey), hex(hi.localEphemeral), hex(hi.remoteEphemeral)],
    keypairState(t.keypairs.current),
    keypairState(t.keypairs.previous),
    keypairState(t.keypairs.next),
    [...timers.deadlines].map(String),
    [t.timers.handshakeAttempts, t.timers.needAnotherKeepalive, t.timers.sentLastMinuteHandshake, t.timers.persistentKeepaliveMs],
    [...(t.indexTable as unknown as IndexTableInternals).owners.keys()].sort((a, b) => a - b),
    [hex(checker.secret), checker.secretSetAt],
  ]);
}

function keypairRefs(t: Tunnel): [Keypair | null, Keypair | null, Keypair | null] {
  return [t.keypairs.current, t.keypairs.previous, t.keypairs.next];
}

/** First difference between two snapshots, for failure messages. */
function snapshotDiff(before: string, after: string): string {
  const a = JSON.parse(before) as unknown[];
  const b = JSON.parse(after) as unknown[];
  for (let i = 0; i < Math.max(a.length, b.length); i++) {
    const x = JSON.stringify(a[i]);
    const y = JSON.stringify(b[i]);
    if (x !== y) return `field #${i}: ${x.slice(0, 300)} -> ${y.slice(0, 300)}`;
  }
  return 'no difference';
}

// ---------------------------------------------------------------- MACs (independent of src/noise/cookie.ts)

const encoder = new TextEncoder();

function mac(key: Uint8Array, data: Uint8Array): Uint8Array {
  return blake2s(data, { key, dkLen: MAC_SIZE });
}

function mac1Key(publicKey: Uint8Array): Uint8Array {
  return blake2s(new Uint8Array([...encoder.encode(LABEL_MAC1), ...publicKey]));
}

function mac1Offset(bytes: Uint8Array): number {
  return bytes[0] === 1 ? INITIATION_MAC1_OFFSET : RESPONSE_MAC1_OFFSET;
}

/** The MAC2 cookie `t` would expect from `source` (its secret is private; reading it does not change it). */
function cookieFor(t: Tunnel, source: Uint8Array | undefined): Uint8Array {
  return mac((t.identity.cookieChecker as unknown as CheckerInternals).secret, source ?? new Uint8Array(0));
}

/** A copy of a handshake message with MAC1 valid for `t` and, when `withMac2`, MAC2 valid for `source`. */
function forgeMacs(bytes: Uint8Array, t: Tunnel, withMac2: boolean, source: Uint8Array | undefined): Uint8Array {
  const out = new Uint8Array(bytes);
  const offset = mac1Offset(out);
  out.set(mac(mac1Key(t.identity.publicKey), out.subarray(0, offset)), offset);
  if (withMac2) out.set(mac(cookieFor(t, source), out.subarray(0, offset + MAC_SIZE)), offset + MAC_SIZE);
  return out;
}

function macsPass(bytes: Uint8Array, t: Tunnel, options: DecapsulateOptions): boolean {
  const offset = mac1Offset(bytes);
  if (!bytesEqual(mac(mac1Key(t.identity.publicKey), bytes.subarray(0, offset)), bytes.subarray(offset, offset + MAC_SIZE))) return false;
  if (!options.underLoad) return true;
  const mac2 = bytes.subarray(offset + MAC_SIZE, offset + 2 * MAC_SIZE);
  return !mac2.every((b) => b === 0) && bytesEqual(mac(cookieFor(t, options.source), bytes.subarray(0, offset + MAC_SIZE)), mac2);
}

// ---------------------------------------------------------------- message layout

function fieldsOf(bytes: Uint8Array): Field[] {
  const f = (offset: number, length: number): Field => ({ offset, length });
  switch (bytes[0]) {
    case 1: // sender, ephemeral, static, timestamp, mac1, mac2
      return [f(4, 4), f(8, 32), f(40, 48), f(88, 28), f(116, 16), f(132, 16)];
    case 2: // sender, receiver, ephemeral, empty, mac1, mac2
      return [f(4, 4), f(8, 4), f(12, 32), f(44, 16), f(60, 16), f(76, 16)];
    case 3: // receiver, nonce, encrypted cookie
      return [f(4, 4), f(8, 24), f(32, 32)];
    default: // receiver, counter, ciphertext head, tag
      return bytes.length >= 32 ? [f(4, 4), f(8, 8), f(16, Math.min(16, bytes.length - 32)), f(bytes.length - 16, 16)] : [f(4, 4)];
  }
}

const LOW_ORDER_KEYS = LOW_ORDER_POINTS.map(pointBytes);

const SPECIAL_COUNTERS = [0n, 1n, 2n, 8191n, 8192n, 1n << 32n, REJECT_AFTER_MESSAGES - 1n, REJECT_AFTER_MESSAGES, (1n << 64n) - 1n];

function mutationContext(bytes: Uint8Array, indices: readonly number[]): MutationContext {
  return { fields: fieldsOf(bytes), indices, keys: LOW_ORDER_KEYS, counters: bytes[0] === 4 ? SPECIAL_COUNTERS : [] };
}

/** The lengths around each exact size, and the transport bounds. */
const INTERESTING_LENGTHS = [
  0, 1, 2, 3, 4, 5, 8, 15, 16, 17, 31, 32, 33, 48, 63, 64, 65, 91, 92, 93, 147, 148, 149, 150, 1500, MAX_MESSAGE_SIZE - 1, MAX_MESSAGE_SIZE,
  MAX_MESSAGE_SIZE + 1,
];

// ---------------------------------------------------------------- parser reference

function hasHeader(x: Uint8Array, type: number): boolean {
  return x.length >= 4 && x[0] === type && x[1] === 0 && x[2] === 0 && x[3] === 0;
}

function expectedType(x: Uint8Array): MessageType | null {
  if (x.length === MESSAGE_INITIATION_SIZE && hasHeader(x, 1)) return 'initiation';
  if (x.length === MESSAGE_RESPONSE_SIZE && hasHeader(x, 2)) return 'response';
  if (x.length === MESSAGE_COOKIE_REPLY_SIZE && hasHeader(x, 3)) return 'cookie-reply';
  if (x.length >= MESSAGE_TRANSPORT_MIN_SIZE && x.length <= MAX_MESSAGE_SIZE && hasHeader(x, 4)) return 'transport';
  return null;
}

/** A parsed field must be a view of exactly bytes [offset, offset + length) of the datagram. */
function isViewOf(field: Uint8Array, x: Uint8Array, offset: number, length: number): boolean {
  return field.buffer === x.buffer && field.byteOffset === x.byteOffset + offset && field.byteLength === length;
}

/** Run every parser on x; returns a description of what is wrong, or null. */
function checkParsers(x: Uint8Array): string | null {
  const expected = expectedType(x);
  let type: MessageType | null;
  let init: ReturnType<typeof parseInitiation>;
  let resp: ReturnType<typeof parseResponse>;
  let cookie: ReturnType<typeof parseCookieReply>;
  let transport: ReturnType<typeof parseTransportHeader>;
  try {
    type = messageType(x);
    init = parseInitiation(x);
    resp = parseResponse(x);
    cookie = parseCookieReply(x);
    transport = parseTransportHeader(x);
  } catch (error) {
    return `a parser threw ${String(error)}`;
  }
  if (type !== expected) return `messageType returned ${type}, expected ${expected}`;
  if ((init !== null) !== (expected === 'initiation')) return `parseInitiation ${init === null ? 'refused' : 'accepted'} it`;
  if ((resp !== null) !== (expected === 'response')) return `parseResponse ${resp === null ? 'refused' : 'accepted'} it`;
  if ((cookie !== null) !== (expected === 'cookie-reply')) return `parseCookieReply ${cookie === null ? 'refused' : 'accepted'} it`;
  if ((transport !== null) !== (expected === 'transport')) return `parseTransportHeader ${transport === null ? 'refused' : 'accepted'} it`;

  const v = new DataView(x.buffer, x.byteOffset, x.byteLength);
  if (init !== null) {
    if (init.sender !== v.getUint32(4, true)) return 'initiation sender';
    if (!isViewOf(init.ephemeral, x, 8, 32) || !isViewOf(init.encryptedStatic, x, 40, 48) || !isViewOf(init.encryptedTimestamp, x, 88, 28)) {
      return 'initiation fields are not views of the right bytes';
    }
    if (!isViewOf(init.mac1, x, 116, 16) || !isViewOf(init.mac2, x, 132, 16)) return 'initiation MACs are not views of the right bytes';
    if (!bytesEqual(serializeInitiation(init), x)) return 'initiation does not round-trip';
  }
  if (resp !== null) {
    if (resp.sender !== v.getUint32(4, true) || resp.receiver !== v.getUint32(8, true)) return 'response indices';
    if (!isViewOf(resp.ephemeral, x, 12, 32) || !isViewOf(resp.encryptedNothing, x, 44, 16)) return 'response fields are not views of the right bytes';
    if (!isViewOf(resp.mac1, x, 60, 16) || !isViewOf(resp.mac2, x, 76, 16)) return 'response MACs are not views of the right bytes';
    if (!bytesEqual(serializeResponse(resp), x)) return 'response does not round-trip';
  }
  if (cookie !== null) {
    if (cookie.receiver !== v.getUint32(4, true)) return 'cookie reply receiver';
    if (!isViewOf(cookie.nonce, x, 8, 24) || !isViewOf(cookie.encryptedCookie, x, 32, 32)) return 'cookie reply fields are not views of the right bytes';
    if (!bytesEqual(serializeCookieReply(cookie), x)) return 'cookie reply does not round-trip';
  }
  if (transport !== null) {
    if (transport.receiver !== v.getUint32(4, true) || transport.counter !== v.getBigUint64(8, true)) return 'transport header fields';
    if (!isViewOf(transport.ciphertext, x, 16, x.length - 16)) return 'transport ciphertext is not a view of bytes 16..';
    if (!bytesEqual(serializeTransport(transport.receiver, transport.counter, transport.ciphertext), x)) return 'transport does not round-trip';
  }
  return null;
}

// ---------------------------------------------------------------- tunnel fuzz oracle

/** The error codes each kind of datagram may legitimately produce. */
const ALLOWED_CODES: Record<MessageType | 'malformed', readonly NoiseErrorCode[]> = {
  malformed: ['InvalidMessage'],
  initiation: ['InvalidMac1', 'CookieRequired', 'DecryptionFailed', 'WrongPeer', 'ReplayedTimestamp', 'InitiationFlood'],
  response: ['UnknownIndex', 'InvalidMac1', 'CookieRequired', 'DecryptionFailed', 'LowOrderPoint', 'UnexpectedMessage'],
  'cookie-reply': ['UnknownIndex', 'DecryptionFailed'],
  transport: ['UnknownIndex', 'ExpiredKeypair', 'ReplayedCounter', 'DecryptionFailed'],
};

/**
 * Which mutated datagrams may authenticate, and why only these:
 *
 * - Transport: receiver index, counter (the nonce) and ciphertext are all
 *   bound by the AEAD or the index lookup; every captured transport was
 *   delivered already, so even an identical copy would be a ReplayedCounter.
 *   A changed transport never authenticates.
 * - Cookie reply: the receiver index must name the pending initiation, and
 *   nonce and sealed cookie are bound by XChaCha20-Poly1305 with the
 *   initiation's MAC1 as associated data. A changed one never decrypts.
 *   (A valid one is accepted silently, error null: none is fed here.)
 * - Initiation: MAC1 covers everything before it and MAC2 is only checked
 *   under load; the sender index is not bound by the Noise handshake. So a
 *   copy that differs only in MAC2, or in the sender index with MAC1 forged,
 *   gets through both MAC checks and decrypts, but every captured initiation
 *   was consumed already (or comes from the wrong peer), so its timestamp is
 *   refused as ReplayedTimestamp (or WrongPeer). It never authenticates.
 * - Response: the same holds for MAC2 and the sender index, and A really has
 *   a pending initiation that B's held-back response answers. A copy of that
 *   response whose bytes 0..60 (type, receiver, ephemeral, sealed empty) are
 *   unchanged and whose MACs pass for A WILL authenticate: that is
 *   WireGuard's design, not a forgery. Those candidates are skipped (counted),
 *   the pending response is delivered at the end instead. Every other
 *   response never authenticates.
 * - Cookie reply: the receiver index is not authenticated (wireguard-go and
 *   the kernel look it up among handshakes and sessions), so the pending
 *   cookie reply with only its receiver changed to another index of A's is
 *   accepted by design. Those candidates are skipped too.
 */
function wouldAuthenticate(s: Scenario, target: Tunnel, x: Uint8Array, options: DecapsulateOptions): boolean {
  if (target === s.A && messageType(x) === 'cookie-reply') {
    return bytesEqual(x.subarray(0, 4), s.pendingCookieReply.subarray(0, 4)) && bytesEqual(x.subarray(8), s.pendingCookieReply.subarray(8));
  }
  if (target !== s.A || messageType(x) !== 'response') return false;
  if (!bytesEqual(x.subarray(0, 4), s.pendingResponse.subarray(0, 4))) return false;
  if (!bytesEqual(x.subarray(8, RESPONSE_MAC1_OFFSET), s.pendingResponse.subarray(8, RESPONSE_MAC1_OFFSET))) return false;
  return macsPass(x, target, options);
}

// ---------------------------------------------------------------- tests

describe('noise fuzz', () => {
  let scenario: Scenario;

  beforeAll(() => {
    console.log(`noise fuzz seed ${SEED} (rerun with FUZZ_SEED=${SEED})`);
    scenario = buildScenario(SEED);
  });

  it('parsers never throw and accept exactly the well-formed datagrams', () => {
    const rng = new Rng(SEED);
    const failures: string[] = [];
    const counts = { random: 0, randomLarge: 0, headerValid: 0, mutatedValid: 0 };
    const valid = scenario.pool.map((e) => e.bytes);
    const indices = scenario.indices;
    const started = performance.now();

    const check = (x: Uint8Array, kind: keyof typeof counts) => {
      counts[kind]++;
      const problem = checkParsers(present(rng, x));
      if (problem !== null && failures.length < MAX_REPORTED_FAILURES) {
        failures.push(`seed ${SEED}, ${kind} #${counts[kind]}: ${problem}; input ${shortHex(x)}`);
      }
    };

    // Random bytes of random length, mostly short, some up to 70,000.
    for (let i = 0; i < 40_000; i++) check(rng.bytes(rng.range(0, 200)), 'random');
    for (let i = 0; i < 300; i++) check(rng.bytes(rng.range(201, 70_000)), 'randomLarge');
    // A valid header (type 1..4, reserved 000000) at every length around the exact sizes;
    // a quarter of them with one reserved byte set, some with types 0 and 5.
    for (let rep = 0; rep < 230; rep++) {
      for (const type of [1, 2, 3, 4]) {
        for (const length of INTERESTING_LENGTHS) {
          if (length > 200 && rep % 10 !== 0) continue; // big bodies are slow to make; fewer of them
          const x = rng.bytes(length);
          if (length > 0) x[0] = rng.chance(0.05) ? rng.pick([0, 5]) : type;
          for (let j = 1; j < Math.min(4, length); j++) x[j] = 0;
          if (length >= 4 && rng.chance(0.25)) x[rng.range(1, 3)] = rng.range(1, 255);
          check(x, 'headerValid');
        }
      }
    }
    // The valid messages themselves, then 1–3 flips / truncations / extensions / reserved-byte changes each.
    for (const x of valid) check(x, 'mutatedValid');
    while (counts.random + counts.randomLarge + counts.headerValid + counts.mutatedValid < PARSER_MIN_INPUTS + 5_000) {
      const base = rng.pick(valid);
      check(mutate(rng, base, mutationContext(base, indices)), 'mutatedValid');
    }

    const total = counts.random + counts.randomLarge + counts.headerValid + counts.mutatedValid;
    console.log(`parser fuzz (seed ${SEED}): ${total} inputs ${JSON.stringify(counts)} in ${Math.round(performance.now() - started)} ms`);
    expect(failures, `seed ${SEED}`).toEqual([]);
    expect(total).toBeGreaterThanOrEqual(PARSER_MIN_INPUTS);
  });

  it('decapsulate never throws, never authenticates a mutated datagram, and never changes state', () => {
    const s = scenario;
    const { A, B } = s;
    const rng = new Rng((SEED ^ 0x7e57_f00d) >>> 0);
    const failures: string[] = [];
    const fail = (message: string) => {
      if (failures.length < MAX_REPORTED_FAILURES) failures.push(`seed ${SEED}: ${message}`);
    };
    assertInternalsExist(A);
    assertInternalsExist(B);
    const tunnels = [
      { name: 'A', t: A, baseline: snapshot(A), refs: keypairRefs(A) },
      { name: 'B', t: B, baseline: snapshot(B), refs: keypairRefs(B) },
    ] as const;
    const validHex = new Set(s.pool.map((e) => hex(e.bytes)));
    const handshakePool = s.pool.filter((e) => e.bytes[0] === 1 || e.bytes[0] === 2);
    const sources: (Uint8Array | undefined)[] = [s.srcA, s.srcB, undefined, new Uint8Array(0), Uint8Array.of(10, 0, 0, 1)];
    const histogram = new Map<string, number>();
    let calls = 0;
    let skippedIdentical = 0;
    let skippedWouldAuthenticate = 0;
    let forgedMacs = 0;
    let readInitiationCalls = 0;

    /** Check one result of feeding `x` to `target`; false when the state changed (the baseline is stale then). */
    const judge = (target: (typeof tunnels)[number], x: Uint8Array, type: MessageType | null, out: TunnelOutput, what: () => string): boolean => {
      const code = out.error instanceof NoiseError ? out.error.code : String(out.error);
      const key = `${target.name} ${type ?? 'malformed'} ${code}`;
      histogram.set(key, (histogram.get(key) ?? 0) + 1);

      if (out.authenticated) fail(`a mutated datagram authenticated; ${what()}`);
      if (!Array.isArray(out.network) || out.network.length !== 0) fail(`sent ${out.network?.length} datagrams; ${what()}`);
      if (out.tunnel !== null) fail(`delivered a packet to TUN; ${what()}`);
      // The API allows error null for a silent drop, but the only silent drop is an accepted cookie
      // reply, which no mutated datagram is; so every result here carries a typed error.
      if (!(out.error instanceof NoiseError) || typeof out.error.code !== 'string') {
        fail(`error is not a NoiseError with a code: ${String(out.error)}; ${what()}`);
      } else {
        const allowed = ALLOWED_CODES[type ?? 'malformed'];
        if (!allowed.includes(out.error.code)) fail(`unexpected code ${out.error.code} (${out.error.message}) for a ${type}; ${what()}`);
        // InvalidMessage for a well-formed datagram would mean a handler threw and the defensive catch hid it.
        if (out.error.code === 'InvalidMessage' && type !== null) fail(`a handler threw: ${out.error.message}; ${what()}`);
      }
      if (out.cookieReply !== null) {
        if (out.error?.code !== 'CookieRequired') fail(`cookie reply without CookieRequired; ${what()}`);
        const reply = parseCookieReply(out.cookieReply);
        if (reply === null || reply.receiver !== new DataView(x.buffer, x.byteOffset).getUint32(4, true)) {
          fail(`malformed cookie reply ${hex(out.cookieReply)}; ${what()}`);
        }
      } else if (out.error?.code === 'CookieRequired') {
        fail(`CookieRequired without a cookie reply; ${what()}`);
      }

      const after = snapshot(target.t);
      const refs = keypairRefs(target.t);
      if (after !== target.baseline || refs.some((k, i) => k !== target.refs[i])) {
        fail(`state of ${target.name} changed: ${snapshotDiff(target.baseline, after)}; ${what()}`);
        return false;
      }
      return true;
    };

    const started = performance.now();

    while (calls < TUNNEL_DECAPSULATE_CALLS && failures.length < MAX_REPORTED_FAILURES) {
      const target = rng.chance(0.5) ? tunnels[0] : tunnels[1];
      const options: DecapsulateOptions = {};
      if (rng.chance(0.3)) options.underLoad = true;
      const source = rng.pick(sources);
      if (source !== undefined) options.source = source;
      const addressed = s.pool.filter((e) => e.to === target.name);

      // Make a candidate datagram.
      let x: Uint8Array;
      let mode: string;
      const r = rng.float();
      if (r < 0.6) {
        // 1–3 mutations of a captured datagram (half the time one addressed to the target), MACs sometimes re-forged.
        const base = rng.chance(0.5) ? rng.pick(addressed) : rng.pick(s.pool);
        mode = `mutated ${base.name}`;
        x = mutate(rng, base.bytes, mutationContext(base.bytes, s.indices));
        const t = messageType(x);
        if ((t === 'initiation' || t === 'response') && rng.chance(0.15)) {
          x = forgeMacs(x, target.t, options.underLoad === true && rng.chance(0.7), options.source);
          mode += ' + forged MACs';
          forgedMacs++;
        }
      } else if (r < 0.67) {
        // One change to the content of a handshake message, then valid MACs for the target: reaches DH and AEAD.
        const base = rng.chance(0.7) ? rng.pick(handshakePool.filter((e) => e.to === target.name)) : rng.pick(handshakePool);
        const ctx = mutationContext(base.bytes, s.indices);
        // Keep length, type and reserved bytes so the datagram reaches the handshake code.
        let y = base.bytes;
        for (let tries = 0; tries < 8 && (y.length !== base.bytes.length || bytesEqual(y, base.bytes)); tries++) {
          y = new Uint8Array(mutateOnce(rng, base.bytes, ctx));
          if (y.length === base.bytes.length) y.set(base.bytes.subarray(0, 4));
        }
        x = messageType(y) === null ? y : forgeMacs(y, target.t, options.underLoad === true && rng.chance(0.8), options.source);
        mode = `forged ${base.name}`;
        forgedMacs++;
      } else if (r < 0.78) {
        // Splice: the head of one datagram and the tail of another.
        const a = rng.pick(s.pool).bytes;
        const b = rng.pick(s.pool).bytes;
        const cut = rng.int(a.length + 1);
        const from = rng.int(b.length + 1);
        x = new Uint8Array(cut + b.length - from);
        x.set(a.subarray(0, cut));
        x.set(b.subarray(from), cut);
        mode = 'splice';
      } else if (r < 0.89) {
        // A valid header and a random body at an interesting length.
        const length = rng.chance(0.02) ? rng.pick(INTERESTING_LENGTHS) : rng.pick(INTERESTING_LENGTHS.filter((n) => n <= 1500));
        x = rng.bytes(length);
        if (length > 0) x[0] = rng.range(1, 4);
        for (let j = 1; j < Math.min(4, length); j++) x[j] = 0;
        if (messageType(x) === 'transport' && rng.chance(0.5)) {
          // ... with an index the target really uses
          new DataView(x.buffer).setUint32(4, rng.pick(s.indices), true);
        }
        if ((messageType(x) === 'initiation' || messageType(x) === 'response') && rng.chance(0.2)) {
          x = forgeMacs(x, target.t, options.underLoad === true && rng.chance(0.7), options.source);
          forgedMacs++;
        }
        mode = 'random body';
      } else {
        x = rng.bytes(rng.chance(0.995) ? rng.range(0, 200) : rng.range(201, 70_000));
        mode = 'random bytes';
      }

      // Never feed an unmodified valid datagram, nor one that legitimately authenticates (see wouldAuthenticate).
      if (validHex.has(hex(x))) {
        skippedIdentical++;
        continue;
      }
      if (wouldAuthenticate(s, target.t, x, options)) {
        skippedWouldAuthenticate++;
        continue;
      }

      calls++;
      if (calls % 1_000 === 0) s.clock.advance(1); // time moves a little (~0.1 s in all); no deadline is near
      const type = messageType(x);
      const what = () =>
        `call ${calls} to ${target.name} (${mode}, underLoad=${options.underLoad === true}, source=${hex(options.source)}): ${shortHex(x)}`;
      let out: TunnelOutput;
      try {
        out = target.t.decapsulate(present(rng, x), options);
      } catch (error) {
        fail(`exception escaped decapsulate: ${String(error)}; ${what()}`);
        continue;
      }
      if (!judge(target, x, type, out, what)) break;

      // The device's entry point for initiations: readInitiation (after MAC1), then handleReadInitiation.
      if (type === 'initiation' && macsPass(x, target.t, {}) && rng.chance(0.5)) {
        let start: InitiationStart | null;
        try {
          start = readInitiation(target.t.identity, parseInitiation(x)!);
        } catch (error) {
          fail(`exception escaped readInitiation: ${String(error)}; ${what()}`);
          continue;
        }
        if (start === null) continue;
        readInitiationCalls++;
        try {
          out = target.t.handleReadInitiation(present(rng, x), start, options);
        } catch (error) {
          fail(`exception escaped handleReadInitiation: ${String(error)}; ${what()}`);
          continue;
        }
        if (!judge(target, x, type, out, () => `handleReadInitiation: ${what()}`)) break;
      }
    }

    const elapsed = Math.round(performance.now() - started);
    const codes = [...histogram.entries()].sort().map(([k, n]) => `${k}: ${n}`);
    console.log(
      `tunnel fuzz (seed ${SEED}): ${calls} decapsulate calls (+ ${readInitiationCalls} handleReadInitiation) in ${elapsed} ms; ` +
        `${forgedMacs} with forged MACs; ` +
        `skipped ${skippedIdentical} identical to a valid datagram, ${skippedWouldAuthenticate} that legitimately authenticate\n  ` +
        codes.join('\n  '),
    );
    expect(failures, `seed ${SEED}`).toEqual([]);
    expect(calls).toBe(TUNNEL_DECAPSULATE_CALLS);
    for (const entry of tunnels) expect(snapshot(entry.t), `seed ${SEED}: ${entry.name} state`).toBe(entry.baseline);

    // The fuzzer reached the deep paths, not only the length checks.
    for (const reached of [
      'A malformed InvalidMessage',
      'B malformed InvalidMessage',
      'A initiation InvalidMac1',
      'B initiation InvalidMac1',
      'A initiation CookieRequired',
      'B initiation CookieRequired',
      'A initiation DecryptionFailed',
      'B initiation DecryptionFailed',
      'A initiation ReplayedTimestamp',
      'B initiation ReplayedTimestamp',
      'B initiation WrongPeer',
      'A response InvalidMac1',
      'A response DecryptionFailed',
      'A response LowOrderPoint',
      'A response CookieRequired',
      'B response UnknownIndex',
      'A cookie-reply DecryptionFailed',
      'A cookie-reply UnknownIndex',
      'B cookie-reply UnknownIndex',
      'A transport DecryptionFailed',
      'B transport DecryptionFailed',
      'A transport UnknownIndex',
      'B transport UnknownIndex',
      'B transport ReplayedCounter',
    ]) {
      expect(histogram.get(reached) ?? 0, `seed ${SEED}: never reached "${reached}"`).toBeGreaterThan(0);
    }

    // The established session still works both ways.
    for (const [from, to] of [
      [A, B],
      [B, A],
    ] as const) {
      const packet = rng.bytes(77);
      const sent = from.encapsulate(packet);
      expect(sent.error).toBeNull();
      const received = to.decapsulate(only(sent, 'data after the fuzz'));
      expectAuthenticated(received, 'data after the fuzz');
      expect(hex(received.tunnel)).toBe(hex(padPacket(packet)));
    }

    // And the pending handshake was not disturbed: A takes B's cookie reply and response.
    const cookie = A.decapsulate(s.pendingCookieReply);
    expect(cookie.error, `seed ${SEED}: ${cookie.error?.message}`).toBeNull();
    expect((A as unknown as TunnelInternals).cookies.cookie).not.toBeNull();
    const oldB = B.keypairs.current;
    const response = A.decapsulate(s.pendingResponse, { source: s.srcB });
    expectAuthenticated(response, 'A consumes the held-back response');
    expectAuthenticated(B.decapsulate(only(response, 'A keepalive on the new session')), 'B confirms the new session');
    expect(B.keypairs.current).not.toBe(oldB);
    expect(B.keypairs.previous).toBe(oldB);
    const packet = rng.bytes(500);
    const received = A.decapsulate(only(B.encapsulate(packet), 'B data on the new session'));
    expectAuthenticated(received, 'A receives on the new session');
    expect(hex(received.tunnel)).toBe(hex(padPacket(packet)));
  });
});
