/**
 * The wire protocol of the built-in relay (UDP), version 2: tswg's own
 * format (nodes all run tswg; version 1 is not understood).
 *
 * Every message starts with a kind byte in 0xF1..0xF9, a range no WireGuard
 * (1..4), STUN (top two bits 00) or TURN ChannelData (0x40..0x7F) datagram
 * uses. Integers are big endian. `K` is the cluster key
 * deriveRelayAuthKey(credential); `P` the key-proof key of auth.ts:
 * BLAKE2b(K, context | X25519(node static private, relay public) | relay
 * public | node public). tag(k) = keyed BLAKE2b-256 of everything before it.
 *
 * Registration (a return-routability round trip, then a static-key proof):
 *   HELLO          F8 | version | nonce (16) | zero padding (56) | tag(K)
 *                  client → server. Padded to the CHALLENGE's size: no amplification.
 *   CHALLENGE      F9 | version | nonce (16, echoed) | relay public key (32) | issued ms (u64) | cookie (16) | tag(K)
 *                  server → the HELLO's source. cookie = BLAKE2b-128(per-process secret,
 *                  source ip|port|issued): stateless, good for 20 s, bound to that source.
 *                  The relay key is an X25519 key made per server process.
 *   REGISTER       F1 | version | node public key (32) | timestamp ms (u64) | nonce (16)
 *                     | relay public key (32) | issued ms (u64) | cookie (16) | tag(P)
 *                  client → server, from the source the cookie was made for. The server
 *                  checks: its own relay key, the cookie (this source, not expired, never
 *                  used before), the timestamp (±120 s), then tag(P), which proves the node's
 *                  WireGuard private key and binds the message to this relay process. Only
 *                  then is a registration created or moved to this source. The proof is
 *                  bound to the relay by its key, not by its address: a relay behind NAT
 *                  or a port forward does not know the address its clients dial, while its
 *                  key is unique to the process (a restart or another relay has another).
 *   REGISTERED     F2 | version | nonce (16, echoed) | token (8) | lifetime s (u32) | tag(P)
 *                  server → client. The token is random per (node, source): a registration
 *                  that moves gets a new one, and a token is never sent to another source.
 *   REFUSED        F3 | version | nonce (16, echoed) | reason (1) | tag(K)
 *                  A client ignores a REFUSED whose tag does not verify (spoofed); it then
 *                  only mentions it in the error of a registration that timed out.
 *
 * Data (the token is the session secret; an off-path sender does not know it):
 *   DATA (to)      F4 | token (8) | to: public key (32) | payload     client → server
 *   DATA (from)    F5 | token of the recipient (8) | from: public key (32) | payload
 *                  server → client; the client drops DATA without its current token.
 *   KEEPALIVE      F6 | token (8) | zero padding (16)                 client → server
 *   NOT-REGISTERED F7 | token answered (8) | BLAKE2b-128(K, context | token)
 *                  server → client: register again. Only for the client's current token.
 *
 * Payloads are opaque (WireGuard datagrams, already encrypted end to end);
 * the server never holds a WireGuard key, only node public keys as names.
 */
import {
  CHALLENGE_SIZE,
  COOKIE_SIZE,
  DATA_FROM_HEADER_SIZE,
  DATA_TO_HEADER_SIZE,
  HELLO_SIZE,
  KEEPALIVE_SIZE,
  MAX_DATAGRAM_SIZE,
  NONCE_SIZE,
  NOT_REGISTERED_SIZE,
  PUBLIC_KEY_SIZE,
  REFUSED_SIZE,
  REGISTERED_SIZE,
  REGISTER_SIZE,
  RELAY_PROTOCOL_VERSION,
  RefusedReason,
  RelayKind,
  SHORT_TAG_SIZE,
  TAG_SIZE,
  TOKEN_SIZE,
  type RefusedReasonValue,
} from './constants.js';

/** A malformed relay message; the only error decodeRelayMessage throws. */
export class RelayProtocolError extends Error {
  override readonly name = 'RelayProtocolError';
}

export interface HelloMessage {
  kind: 'hello';
  version: number;
  nonce: Uint8Array;
  tag: Uint8Array;
}

export interface ChallengeMessage {
  kind: 'challenge';
  version: number;
  nonce: Uint8Array;
  relayPublicKey: Uint8Array;
  issuedMs: number;
  cookie: Uint8Array;
  tag: Uint8Array;
}

/** The fields of a REGISTER its tag covers. */
export interface RegisterFields {
  publicKey: Uint8Array;
  timestampMs: number;
  nonce: Uint8Array;
  relayPublicKey: Uint8Array;
  issuedMs: number;
  cookie: Uint8Array;
}

export interface RegisterMessage extends RegisterFields {
  kind: 'register';
  version: number;
  tag: Uint8Array;
}

export interface RegisteredMessage {
  kind: 'registered';
  version: number;
  nonce: Uint8Array;
  token: Uint8Array;
  lifetimeSeconds: number;
  tag: Uint8Array;
}

export interface RefusedMessage {
  kind: 'refused';
  version: number;
  nonce: Uint8Array;
  reason: RefusedReasonValue;
  tag: Uint8Array;
}

export interface DataToPeerMessage {
  kind: 'data-to-peer';
  token: Uint8Array;
  peer: Uint8Array;
  payload: Uint8Array;
}

export interface DataFromPeerMessage {
  kind: 'data-from-peer';
  token: Uint8Array;
  peer: Uint8Array;
  payload: Uint8Array;
}

export interface KeepaliveMessage {
  kind: 'keepalive';
  token: Uint8Array;
}

export interface NotRegisteredMessage {
  kind: 'not-registered';
  token: Uint8Array;
  tag: Uint8Array;
}

export type RelayMessage =
  | HelloMessage
  | ChallengeMessage
  | RegisterMessage
  | RegisteredMessage
  | RefusedMessage
  | DataToPeerMessage
  | DataFromPeerMessage
  | KeepaliveMessage
  | NotRegisteredMessage;

/** True when the first byte is a relay kind (a cheap test before decoding). */
export function isRelayMessage(datagram: Uint8Array): boolean {
  const kind = datagram[0];
  return kind !== undefined && kind >= RelayKind.register && kind <= RelayKind.challenge;
}

function checkSize(name: string, bytes: Uint8Array, size: number): void {
  if (bytes.length !== size) throw new RelayProtocolError(`relay ${name}: ${name} is ${size} bytes, got ${bytes.length}`);
}

function checkTimestamp(name: string, ms: number): void {
  if (!Number.isSafeInteger(ms) || ms < 0) throw new RelayProtocolError(`relay ${name} ${ms} is not a non-negative integer`);
}

/** A signed part: kind and version, then the fields, room for nothing else. */
function signed(kind: number, size: number): { out: Uint8Array; view: DataView } {
  const out = new Uint8Array(size - TAG_SIZE);
  out[0] = kind;
  out[1] = RELAY_PROTOCOL_VERSION;
  return { out, view: new DataView(out.buffer) };
}

/** The bytes a HELLO's tag covers. */
export function helloSignedPart(nonce: Uint8Array): Uint8Array {
  checkSize('nonce', nonce, NONCE_SIZE);
  const { out } = signed(RelayKind.hello, HELLO_SIZE);
  out.set(nonce, 2); // the padding after it stays zero
  return out;
}

/** The bytes a CHALLENGE's tag covers. */
export function challengeSignedPart(nonce: Uint8Array, relayPublicKey: Uint8Array, issuedMs: number, cookie: Uint8Array): Uint8Array {
  checkSize('nonce', nonce, NONCE_SIZE);
  checkSize('public key', relayPublicKey, PUBLIC_KEY_SIZE);
  checkSize('cookie', cookie, COOKIE_SIZE);
  checkTimestamp('cookie time', issuedMs);
  const { out, view } = signed(RelayKind.challenge, CHALLENGE_SIZE);
  out.set(nonce, 2);
  out.set(relayPublicKey, 2 + NONCE_SIZE);
  view.setBigUint64(2 + NONCE_SIZE + PUBLIC_KEY_SIZE, BigInt(issuedMs));
  out.set(cookie, 2 + NONCE_SIZE + PUBLIC_KEY_SIZE + 8);
  return out;
}

/** The bytes a REGISTER's tag covers: everything before the tag. */
export function registerSignedPart(fields: RegisterFields): Uint8Array {
  checkSize('public key', fields.publicKey, PUBLIC_KEY_SIZE);
  checkSize('nonce', fields.nonce, NONCE_SIZE);
  checkSize('public key', fields.relayPublicKey, PUBLIC_KEY_SIZE);
  checkSize('cookie', fields.cookie, COOKIE_SIZE);
  checkTimestamp('timestamp', fields.timestampMs);
  checkTimestamp('cookie time', fields.issuedMs);
  const { out, view } = signed(RelayKind.register, REGISTER_SIZE);
  let at = 2;
  out.set(fields.publicKey, at);
  view.setBigUint64((at += PUBLIC_KEY_SIZE), BigInt(fields.timestampMs));
  out.set(fields.nonce, (at += 8));
  out.set(fields.relayPublicKey, (at += NONCE_SIZE));
  view.setBigUint64((at += PUBLIC_KEY_SIZE), BigInt(fields.issuedMs));
  out.set(fields.cookie, at + 8);
  return out;
}

/** The bytes a REGISTERED's tag covers. */
export function registeredSignedPart(nonce: Uint8Array, token: Uint8Array, lifetimeSeconds: number): Uint8Array {
  checkSize('nonce', nonce, NONCE_SIZE);
  checkSize('token', token, TOKEN_SIZE);
  if (!Number.isInteger(lifetimeSeconds) || lifetimeSeconds < 0 || lifetimeSeconds > 0xffffffff) {
    throw new RelayProtocolError(`relay lifetime ${lifetimeSeconds} is not a u32`);
  }
  const { out, view } = signed(RelayKind.registered, REGISTERED_SIZE);
  out.set(nonce, 2);
  out.set(token, 2 + NONCE_SIZE);
  view.setUint32(2 + NONCE_SIZE + TOKEN_SIZE, lifetimeSeconds);
  return out;
}

/** The bytes a REFUSED's tag covers. */
export function refusedSignedPart(nonce: Uint8Array, reason: RefusedReasonValue): Uint8Array {
  checkSize('nonce', nonce, NONCE_SIZE);
  const { out } = signed(RelayKind.refused, REFUSED_SIZE);
  out.set(nonce, 2);
  out[2 + NONCE_SIZE] = reason;
  return out;
}

/** Append a (32-byte) tag to its signed part. */
export function withTag(signedPart: Uint8Array, tag: Uint8Array): Uint8Array {
  checkSize('tag', tag, TAG_SIZE);
  const out = new Uint8Array(signedPart.length + TAG_SIZE);
  out.set(signedPart);
  out.set(tag, signedPart.length);
  return out;
}

export function encodeDataToPeer(token: Uint8Array, peer: Uint8Array, payload: Uint8Array): Uint8Array {
  checkSize('token', token, TOKEN_SIZE);
  checkSize('public key', peer, PUBLIC_KEY_SIZE);
  if (DATA_TO_HEADER_SIZE + payload.length > MAX_DATAGRAM_SIZE) throw new RelayProtocolError(`relay payload of ${payload.length} bytes is too large`);
  const out = new Uint8Array(DATA_TO_HEADER_SIZE + payload.length);
  out[0] = RelayKind.dataToPeer;
  out.set(token, 1);
  out.set(peer, 1 + TOKEN_SIZE);
  out.set(payload, DATA_TO_HEADER_SIZE);
  return out;
}

export function encodeDataFromPeer(token: Uint8Array, peer: Uint8Array, payload: Uint8Array): Uint8Array {
  checkSize('token', token, TOKEN_SIZE);
  checkSize('public key', peer, PUBLIC_KEY_SIZE);
  if (DATA_FROM_HEADER_SIZE + payload.length > MAX_DATAGRAM_SIZE) throw new RelayProtocolError(`relay payload of ${payload.length} bytes is too large`);
  const out = new Uint8Array(DATA_FROM_HEADER_SIZE + payload.length);
  out[0] = RelayKind.dataFromPeer;
  out.set(token, 1);
  out.set(peer, 1 + TOKEN_SIZE);
  out.set(payload, DATA_FROM_HEADER_SIZE);
  return out;
}

export function encodeKeepalive(token: Uint8Array): Uint8Array {
  checkSize('token', token, TOKEN_SIZE);
  const out = new Uint8Array(KEEPALIVE_SIZE);
  out[0] = RelayKind.keepalive;
  out.set(token, 1);
  return out;
}

export function encodeNotRegistered(token: Uint8Array, tag: Uint8Array): Uint8Array {
  checkSize('token', token, TOKEN_SIZE);
  checkSize('tag', tag, SHORT_TAG_SIZE);
  const out = new Uint8Array(NOT_REGISTERED_SIZE);
  out[0] = RelayKind.notRegistered;
  out.set(token, 1);
  out.set(tag, 1 + TOKEN_SIZE);
  return out;
}

/** Copy so that decoded fields never alias a socket buffer that gets reused. */
function field(bytes: Uint8Array, offset: number, length: number): Uint8Array {
  return bytes.slice(offset, offset + length);
}

function expectSize(name: string, bytes: Uint8Array, size: number): void {
  if (bytes.length !== size) throw new RelayProtocolError(`relay ${name} must be ${size} bytes, got ${bytes.length}`);
}

function expectVersion(name: string, bytes: Uint8Array): number {
  const version = bytes[1]!;
  if (version !== RELAY_PROTOCOL_VERSION) throw new RelayProtocolError(`relay ${name} has unsupported version ${version}`);
  return version;
}

const REFUSED_REASONS = new Set<number>(Object.values(RefusedReason));

/** Padding must be zero: only canonical messages are accepted. */
function expectZero(name: string, bytes: Uint8Array, from: number, to: number): void {
  for (let i = from; i < to; i++) if (bytes[i] !== 0) throw new RelayProtocolError(`relay ${name} padding is not zero`);
}

function readTime(view: DataView, offset: number, name: string): number {
  const value = view.getBigUint64(offset);
  if (value > BigInt(Number.MAX_SAFE_INTEGER)) throw new RelayProtocolError(`relay ${name} time is out of range`);
  return Number(value);
}

/**
 * Decode one relay datagram. Throws RelayProtocolError (and nothing else)
 * when it is not a well-formed relay message. Tags are not checked here.
 */
export function decodeRelayMessage(bytes: Uint8Array): RelayMessage {
  if (bytes.length === 0) throw new RelayProtocolError('relay message is empty');
  const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  switch (bytes[0]) {
    case RelayKind.hello: {
      expectSize('HELLO', bytes, HELLO_SIZE);
      const version = expectVersion('HELLO', bytes);
      expectZero('HELLO', bytes, 2 + NONCE_SIZE, HELLO_SIZE - TAG_SIZE);
      return { kind: 'hello', version, nonce: field(bytes, 2, NONCE_SIZE), tag: field(bytes, HELLO_SIZE - TAG_SIZE, TAG_SIZE) };
    }
    case RelayKind.challenge: {
      expectSize('CHALLENGE', bytes, CHALLENGE_SIZE);
      const version = expectVersion('CHALLENGE', bytes);
      return {
        kind: 'challenge',
        version,
        nonce: field(bytes, 2, NONCE_SIZE),
        relayPublicKey: field(bytes, 2 + NONCE_SIZE, PUBLIC_KEY_SIZE),
        issuedMs: readTime(view, 2 + NONCE_SIZE + PUBLIC_KEY_SIZE, 'CHALLENGE'),
        cookie: field(bytes, 2 + NONCE_SIZE + PUBLIC_KEY_SIZE + 8, COOKIE_SIZE),
        tag: field(bytes, CHALLENGE_SIZE - TAG_SIZE, TAG_SIZE),
      };
    }
    case RelayKind.register: {
      expectSize('REGISTER', bytes, REGISTER_SIZE);
      const version = expectVersion('REGISTER', bytes);
      let at = 2;
      const publicKey = field(bytes, at, PUBLIC_KEY_SIZE);
      const timestampMs = readTime(view, (at += PUBLIC_KEY_SIZE), 'REGISTER');
      const nonce = field(bytes, (at += 8), NONCE_SIZE);
      const relayPublicKey = field(bytes, (at += NONCE_SIZE), PUBLIC_KEY_SIZE);
      const issuedMs = readTime(view, (at += PUBLIC_KEY_SIZE), 'REGISTER');
      const cookie = field(bytes, (at += 8), COOKIE_SIZE);
      return { kind: 'register', version, publicKey, timestampMs, nonce, relayPublicKey, issuedMs, cookie, tag: field(bytes, REGISTER_SIZE - TAG_SIZE, TAG_SIZE) };
    }
    case RelayKind.registered: {
      expectSize('REGISTERED', bytes, REGISTERED_SIZE);
      const version = expectVersion('REGISTERED', bytes);
      return {
        kind: 'registered',
        version,
        nonce: field(bytes, 2, NONCE_SIZE),
        token: field(bytes, 2 + NONCE_SIZE, TOKEN_SIZE),
        lifetimeSeconds: view.getUint32(2 + NONCE_SIZE + TOKEN_SIZE),
        tag: field(bytes, REGISTERED_SIZE - TAG_SIZE, TAG_SIZE),
      };
    }
    case RelayKind.refused: {
      expectSize('REFUSED', bytes, REFUSED_SIZE);
      const version = expectVersion('REFUSED', bytes);
      const reason = bytes[2 + NONCE_SIZE]!;
      if (!REFUSED_REASONS.has(reason)) throw new RelayProtocolError(`relay REFUSED has unknown reason ${reason}`);
      return { kind: 'refused', version, nonce: field(bytes, 2, NONCE_SIZE), reason: reason as RefusedReasonValue, tag: field(bytes, REFUSED_SIZE - TAG_SIZE, TAG_SIZE) };
    }
    case RelayKind.dataToPeer:
      if (bytes.length < DATA_TO_HEADER_SIZE) throw new RelayProtocolError(`relay DATA (to) is at least ${DATA_TO_HEADER_SIZE} bytes, got ${bytes.length}`);
      return {
        kind: 'data-to-peer',
        token: field(bytes, 1, TOKEN_SIZE),
        peer: field(bytes, 1 + TOKEN_SIZE, PUBLIC_KEY_SIZE),
        payload: bytes.slice(DATA_TO_HEADER_SIZE),
      };
    case RelayKind.dataFromPeer:
      if (bytes.length < DATA_FROM_HEADER_SIZE) throw new RelayProtocolError(`relay DATA (from) is at least ${DATA_FROM_HEADER_SIZE} bytes, got ${bytes.length}`);
      return {
        kind: 'data-from-peer',
        token: field(bytes, 1, TOKEN_SIZE),
        peer: field(bytes, 1 + TOKEN_SIZE, PUBLIC_KEY_SIZE),
        payload: bytes.slice(DATA_FROM_HEADER_SIZE),
      };
    case RelayKind.keepalive:
      expectSize('KEEPALIVE', bytes, KEEPALIVE_SIZE);
      expectZero('KEEPALIVE', bytes, 1 + TOKEN_SIZE, KEEPALIVE_SIZE);
      return { kind: 'keepalive', token: field(bytes, 1, TOKEN_SIZE) };
    case RelayKind.notRegistered:
      expectSize('NOT-REGISTERED', bytes, NOT_REGISTERED_SIZE);
      return { kind: 'not-registered', token: field(bytes, 1, TOKEN_SIZE), tag: field(bytes, 1 + TOKEN_SIZE, SHORT_TAG_SIZE) };
    default:
      throw new RelayProtocolError(`0x${bytes[0]!.toString(16).padStart(2, '0')} is not a relay message kind`);
  }
}

/** A readable name for a refusal reason (error messages). */
export function describeRefusal(reason: RefusedReasonValue): string {
  switch (reason) {
    case RefusedReason.badAuthentication:
      return 'authentication failed (the relay credential differs)';
    case RefusedReason.staleTimestamp:
      return 'the timestamp is outside the accepted window (clock skew?)';
    case RefusedReason.replayedNonce:
      return 'the nonce was seen before (replay)';
    case RefusedReason.serverFull:
      return 'the relay holds its maximum number of registrations';
    case RefusedReason.unsupportedVersion:
      return 'the relay speaks another protocol version';
    case RefusedReason.badCookie:
      return 'the challenge cookie is expired, used, or for another address';
    case RefusedReason.badKeyProof:
      return 'the REGISTER does not prove the node key for this relay';
  }
}
