/**
 * Strict codecs for the four WireGuard messages. Parsing checks the exact
 * length, the type byte and that the three reserved bytes are zero; it
 * returns null for anything else, so a malformed datagram is a silent drop.
 * Parsed fields are views into the datagram, not copies.
 *
 *   initiation   type(4) sender(4) ephemeral(32) static(48) timestamp(28) mac1(16) mac2(16) = 148
 *   response     type(4) sender(4) receiver(4) ephemeral(32) empty(16) mac1(16) mac2(16)   = 92
 *   cookie reply type(4) receiver(4) nonce(24) cookie(32)                                  = 64
 *   transport    type(4) receiver(4) counter(8) ciphertext(>=16)
 */
import {
  MAX_MESSAGE_SIZE,
  MESSAGE_COOKIE_REPLY_SIZE,
  MESSAGE_COOKIE_REPLY_TYPE,
  MESSAGE_INITIATION_SIZE,
  MESSAGE_INITIATION_TYPE,
  MESSAGE_RESPONSE_SIZE,
  MESSAGE_RESPONSE_TYPE,
  MESSAGE_TRANSPORT_HEADER_SIZE,
  MESSAGE_TRANSPORT_MIN_SIZE,
  MESSAGE_TRANSPORT_TYPE,
} from './constants.js';

export interface HandshakeInitiation {
  sender: number;
  ephemeral: Uint8Array;
  encryptedStatic: Uint8Array;
  encryptedTimestamp: Uint8Array;
  mac1: Uint8Array;
  mac2: Uint8Array;
}

export interface HandshakeResponse {
  sender: number;
  receiver: number;
  ephemeral: Uint8Array;
  encryptedNothing: Uint8Array;
  mac1: Uint8Array;
  mac2: Uint8Array;
}

export interface CookieReply {
  receiver: number;
  nonce: Uint8Array;
  encryptedCookie: Uint8Array;
}

export interface TransportHeader {
  receiver: number;
  counter: bigint;
  /** Ciphertext and tag: a view into the datagram. */
  ciphertext: Uint8Array;
}

/** Byte offsets of the MAC fields: MAC1 covers everything before it, MAC2 everything before MAC2. */
export const INITIATION_MAC1_OFFSET = 116;
export const RESPONSE_MAC1_OFFSET = 60;

export type MessageType = 'initiation' | 'response' | 'cookie-reply' | 'transport';

function view(bytes: Uint8Array): DataView {
  return new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
}

function hasHeader(bytes: Uint8Array, type: number): boolean {
  return bytes[0] === type && bytes[1] === 0 && bytes[2] === 0 && bytes[3] === 0;
}

/** The message type of a datagram that has a valid header and length, else null. */
export function messageType(bytes: Uint8Array): MessageType | null {
  if (bytes.length < 4 || bytes[1] !== 0 || bytes[2] !== 0 || bytes[3] !== 0) return null;
  switch (bytes[0]) {
    case MESSAGE_INITIATION_TYPE:
      return bytes.length === MESSAGE_INITIATION_SIZE ? 'initiation' : null;
    case MESSAGE_RESPONSE_TYPE:
      return bytes.length === MESSAGE_RESPONSE_SIZE ? 'response' : null;
    case MESSAGE_COOKIE_REPLY_TYPE:
      return bytes.length === MESSAGE_COOKIE_REPLY_SIZE ? 'cookie-reply' : null;
    case MESSAGE_TRANSPORT_TYPE:
      return bytes.length >= MESSAGE_TRANSPORT_MIN_SIZE && bytes.length <= MAX_MESSAGE_SIZE ? 'transport' : null;
    default:
      return null;
  }
}

export function parseInitiation(bytes: Uint8Array): HandshakeInitiation | null {
  if (bytes.length !== MESSAGE_INITIATION_SIZE || !hasHeader(bytes, MESSAGE_INITIATION_TYPE)) return null;
  return {
    sender: view(bytes).getUint32(4, true),
    ephemeral: bytes.subarray(8, 40),
    encryptedStatic: bytes.subarray(40, 88),
    encryptedTimestamp: bytes.subarray(88, 116),
    mac1: bytes.subarray(116, 132),
    mac2: bytes.subarray(132, 148),
  };
}

export function serializeInitiation(m: HandshakeInitiation): Uint8Array {
  const out = new Uint8Array(MESSAGE_INITIATION_SIZE);
  out[0] = MESSAGE_INITIATION_TYPE;
  view(out).setUint32(4, m.sender, true);
  out.set(m.ephemeral, 8);
  out.set(m.encryptedStatic, 40);
  out.set(m.encryptedTimestamp, 88);
  out.set(m.mac1, 116);
  out.set(m.mac2, 132);
  return out;
}

export function parseResponse(bytes: Uint8Array): HandshakeResponse | null {
  if (bytes.length !== MESSAGE_RESPONSE_SIZE || !hasHeader(bytes, MESSAGE_RESPONSE_TYPE)) return null;
  const v = view(bytes);
  return {
    sender: v.getUint32(4, true),
    receiver: v.getUint32(8, true),
    ephemeral: bytes.subarray(12, 44),
    encryptedNothing: bytes.subarray(44, 60),
    mac1: bytes.subarray(60, 76),
    mac2: bytes.subarray(76, 92),
  };
}

export function serializeResponse(m: HandshakeResponse): Uint8Array {
  const out = new Uint8Array(MESSAGE_RESPONSE_SIZE);
  out[0] = MESSAGE_RESPONSE_TYPE;
  const v = view(out);
  v.setUint32(4, m.sender, true);
  v.setUint32(8, m.receiver, true);
  out.set(m.ephemeral, 12);
  out.set(m.encryptedNothing, 44);
  out.set(m.mac1, 60);
  out.set(m.mac2, 76);
  return out;
}

export function parseCookieReply(bytes: Uint8Array): CookieReply | null {
  if (bytes.length !== MESSAGE_COOKIE_REPLY_SIZE || !hasHeader(bytes, MESSAGE_COOKIE_REPLY_TYPE)) return null;
  return {
    receiver: view(bytes).getUint32(4, true),
    nonce: bytes.subarray(8, 32),
    encryptedCookie: bytes.subarray(32, 64),
  };
}

export function serializeCookieReply(m: CookieReply): Uint8Array {
  const out = new Uint8Array(MESSAGE_COOKIE_REPLY_SIZE);
  out[0] = MESSAGE_COOKIE_REPLY_TYPE;
  view(out).setUint32(4, m.receiver, true);
  out.set(m.nonce, 8);
  out.set(m.encryptedCookie, 32);
  return out;
}

export function parseTransportHeader(bytes: Uint8Array): TransportHeader | null {
  if (bytes.length < MESSAGE_TRANSPORT_MIN_SIZE || bytes.length > MAX_MESSAGE_SIZE) return null;
  if (!hasHeader(bytes, MESSAGE_TRANSPORT_TYPE)) return null;
  const v = view(bytes);
  return {
    receiver: v.getUint32(4, true),
    counter: v.getBigUint64(8, true),
    ciphertext: bytes.subarray(MESSAGE_TRANSPORT_HEADER_SIZE),
  };
}

export function serializeTransport(receiver: number, counter: bigint, ciphertext: Uint8Array): Uint8Array {
  const out = new Uint8Array(MESSAGE_TRANSPORT_HEADER_SIZE + ciphertext.length);
  out[0] = MESSAGE_TRANSPORT_TYPE;
  const v = view(out);
  v.setUint32(4, receiver, true);
  v.setBigUint64(8, counter, true);
  out.set(ciphertext, MESSAGE_TRANSPORT_HEADER_SIZE);
  return out;
}
