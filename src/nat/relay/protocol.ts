/**
 * The wire protocol of the built-in relay (UDP). The seeds name the relay and
 * its BLAKE2b-derived key but not its messages; this is tswg's own format.
 *
 * Every message starts with a kind byte in 0xF1..0xF7, a range no WireGuard
 * (1..4), STUN (top two bits 00) or TURN ChannelData (0x40..0x7F) datagram
 * uses. Integers are big endian. `key` is deriveRelayAuthKey(credential).
 *
 *   REGISTER       F1 | version | public key (32) | timestamp ms (u64) | nonce (16) | tag (32)
 *                  client → server; tag = BLAKE2b-256(key, everything before the tag).
 *                  The server accepts a timestamp within ±120 s of its clock and a nonce
 *                  it has not seen in that window (replay protection).
 *   REGISTERED     F2 | version | nonce (16, echoed) | token (8) | lifetime s (u32) | tag (32)
 *                  server → client; tag as above, so the client knows the server holds the key.
 *                  The token is random per registration and accompanies the client's later messages.
 *   REFUSED        F3 | version | nonce (16, echoed) | reason (1)     (unauthenticated: the
 *                  server cannot prove anything to a client whose key is wrong)
 *   DATA (to)      F4 | token (8) | to: public key (32) | payload      client → server
 *   DATA (from)    F5 | from: public key (32) | payload               server → client
 *   KEEPALIVE      F6 | token (8)                                     client → server
 *   NOT-REGISTERED F7                                                 server → client: register again
 *
 * Payloads are opaque (WireGuard datagrams, already encrypted end to end);
 * the server never holds a WireGuard key, only node public keys as names.
 */
import {
  DATA_FROM_HEADER_SIZE,
  DATA_TO_HEADER_SIZE,
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
  TAG_SIZE,
  TOKEN_SIZE,
  type RefusedReasonValue,
} from './constants.js';

/** A malformed relay message; the only error decodeRelayMessage throws. */
export class RelayProtocolError extends Error {
  override readonly name = 'RelayProtocolError';
}

export interface RegisterMessage {
  kind: 'register';
  version: number;
  publicKey: Uint8Array;
  timestampMs: number;
  nonce: Uint8Array;
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
}

export interface DataToPeerMessage {
  kind: 'data-to-peer';
  token: Uint8Array;
  peer: Uint8Array;
  payload: Uint8Array;
}

export interface DataFromPeerMessage {
  kind: 'data-from-peer';
  peer: Uint8Array;
  payload: Uint8Array;
}

export interface KeepaliveMessage {
  kind: 'keepalive';
  token: Uint8Array;
}

export interface NotRegisteredMessage {
  kind: 'not-registered';
}

export type RelayMessage =
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
  return kind !== undefined && kind >= RelayKind.register && kind <= RelayKind.notRegistered;
}

function checkSize(name: string, bytes: Uint8Array, size: number): void {
  if (bytes.length !== size) throw new RelayProtocolError(`relay ${name}: ${name} is ${size} bytes, got ${bytes.length}`);
}

/** The bytes a REGISTER's tag covers: everything before the tag. */
export function registerSignedPart(publicKey: Uint8Array, timestampMs: number, nonce: Uint8Array): Uint8Array {
  checkSize('public key', publicKey, PUBLIC_KEY_SIZE);
  checkSize('nonce', nonce, NONCE_SIZE);
  if (!Number.isSafeInteger(timestampMs) || timestampMs < 0) throw new RelayProtocolError(`relay timestamp ${timestampMs} is not a non-negative integer`);
  const out = new Uint8Array(REGISTER_SIZE - TAG_SIZE);
  out[0] = RelayKind.register;
  out[1] = RELAY_PROTOCOL_VERSION;
  out.set(publicKey, 2);
  new DataView(out.buffer).setBigUint64(2 + PUBLIC_KEY_SIZE, BigInt(timestampMs));
  out.set(nonce, 2 + PUBLIC_KEY_SIZE + 8);
  return out;
}

/** The bytes a REGISTERED's tag covers. */
export function registeredSignedPart(nonce: Uint8Array, token: Uint8Array, lifetimeSeconds: number): Uint8Array {
  checkSize('nonce', nonce, NONCE_SIZE);
  checkSize('token', token, TOKEN_SIZE);
  if (!Number.isInteger(lifetimeSeconds) || lifetimeSeconds < 0 || lifetimeSeconds > 0xffffffff) {
    throw new RelayProtocolError(`relay lifetime ${lifetimeSeconds} is not a u32`);
  }
  const out = new Uint8Array(REGISTERED_SIZE - TAG_SIZE);
  out[0] = RelayKind.registered;
  out[1] = RELAY_PROTOCOL_VERSION;
  out.set(nonce, 2);
  out.set(token, 2 + NONCE_SIZE);
  new DataView(out.buffer).setUint32(2 + NONCE_SIZE + TOKEN_SIZE, lifetimeSeconds);
  return out;
}

/** Append a tag to its signed part. */
export function withTag(signedPart: Uint8Array, tag: Uint8Array): Uint8Array {
  checkSize('tag', tag, TAG_SIZE);
  const out = new Uint8Array(signedPart.length + TAG_SIZE);
  out.set(signedPart);
  out.set(tag, signedPart.length);
  return out;
}

export function encodeRefused(nonce: Uint8Array, reason: RefusedReasonValue): Uint8Array {
  checkSize('nonce', nonce, NONCE_SIZE);
  const out = new Uint8Array(REFUSED_SIZE);
  out[0] = RelayKind.refused;
  out[1] = RELAY_PROTOCOL_VERSION;
  out.set(nonce, 2);
  out[2 + NONCE_SIZE] = reason;
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

export function encodeDataFromPeer(peer: Uint8Array, payload: Uint8Array): Uint8Array {
  checkSize('public key', peer, PUBLIC_KEY_SIZE);
  if (DATA_FROM_HEADER_SIZE + payload.length > MAX_DATAGRAM_SIZE) throw new RelayProtocolError(`relay payload of ${payload.length} bytes is too large`);
  const out = new Uint8Array(DATA_FROM_HEADER_SIZE + payload.length);
  out[0] = RelayKind.dataFromPeer;
  out.set(peer, 1);
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

export function encodeNotRegistered(): Uint8Array {
  return Uint8Array.of(RelayKind.notRegistered);
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

/**
 * Decode one relay datagram. Throws RelayProtocolError (and nothing else)
 * when it is not a well-formed relay message. Tags are not checked here.
 */
export function decodeRelayMessage(bytes: Uint8Array): RelayMessage {
  if (bytes.length === 0) throw new RelayProtocolError('relay message is empty');
  const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  switch (bytes[0]) {
    case RelayKind.register: {
      expectSize('REGISTER', bytes, REGISTER_SIZE);
      const version = expectVersion('REGISTER', bytes);
      const timestamp = view.getBigUint64(2 + PUBLIC_KEY_SIZE);
      if (timestamp > BigInt(Number.MAX_SAFE_INTEGER)) throw new RelayProtocolError('relay REGISTER timestamp is out of range');
      return {
        kind: 'register',
        version,
        publicKey: field(bytes, 2, PUBLIC_KEY_SIZE),
        timestampMs: Number(timestamp),
        nonce: field(bytes, 2 + PUBLIC_KEY_SIZE + 8, NONCE_SIZE),
        tag: field(bytes, REGISTER_SIZE - TAG_SIZE, TAG_SIZE),
      };
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
      return { kind: 'refused', version, nonce: field(bytes, 2, NONCE_SIZE), reason: reason as RefusedReasonValue };
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
      return { kind: 'data-from-peer', peer: field(bytes, 1, PUBLIC_KEY_SIZE), payload: bytes.slice(DATA_FROM_HEADER_SIZE) };
    case RelayKind.keepalive:
      expectSize('KEEPALIVE', bytes, KEEPALIVE_SIZE);
      return { kind: 'keepalive', token: field(bytes, 1, TOKEN_SIZE) };
    case RelayKind.notRegistered:
      expectSize('NOT-REGISTERED', bytes, NOT_REGISTERED_SIZE);
      return { kind: 'not-registered' };
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
  }
}
