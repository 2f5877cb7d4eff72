/**
 * The STUN message codec (RFC 8489), shared by the STUN client and the TURN
 * client: header, attributes, XOR-MAPPED-ADDRESS and friends, ERROR-CODE,
 * MESSAGE-INTEGRITY (HMAC-SHA1) and FINGERPRINT (CRC-32). Pure functions over
 * bytes: no I/O. Decoding never trusts a length it has not checked and throws
 * only StunError, with a message naming what is wrong.
 */
import { createHash, createHmac, randomBytes, timingSafeEqual } from 'node:crypto';
import { crc32 } from 'node:zlib';
import { AddressError, bytesToIp, ipToBytes, type Endpoint } from '../../device/index.js';
import {
  FINGERPRINT_LENGTH,
  FINGERPRINT_XOR,
  MESSAGE_INTEGRITY_LENGTH,
  STUN_ATTRIBUTE_HEADER_LENGTH,
  STUN_FAMILY_IPV4,
  STUN_FAMILY_IPV6,
  STUN_HEADER_LENGTH,
  STUN_MAGIC_COOKIE,
  STUN_MAX_BODY_LENGTH,
  STUN_TRANSACTION_ID_LENGTH,
  StunAttributeType,
} from './constants.js';

export interface StunAttribute {
  type: number;
  value: Uint8Array;
}

export interface StunMessage {
  /** The 14-bit message type (method and class; see stunMessageType). */
  type: number;
  /** 12 bytes. */
  transactionId: Uint8Array;
  /** In wire order. MESSAGE-INTEGRITY and FINGERPRINT appear here when present. */
  attributes: StunAttribute[];
}

export class StunError extends Error {
  override readonly name = 'StunError';
}

export interface EncodeOptions {
  /** Append MESSAGE-INTEGRITY computed with this key (the password for short-term, longTermKey() for long-term credentials). */
  integrityKey?: Uint8Array;
  /** Append FINGERPRINT (last). */
  fingerprint?: boolean;
}

const MAX_MESSAGE_TYPE = 0x3fff;
const MAX_ATTRIBUTE_VALUE = 0xffff;

const padded = (length: number): number => (length + 3) & ~3;

function readUint16(bytes: Uint8Array, at: number): number {
  return (bytes[at]! << 8) | bytes[at + 1]!;
}

function readUint32(bytes: Uint8Array, at: number): number {
  return ((bytes[at]! << 24) | (bytes[at + 1]! << 16) | (bytes[at + 2]! << 8) | bytes[at + 3]!) >>> 0;
}

function writeUint16(bytes: Uint8Array, at: number, value: number): void {
  bytes[at] = value >>> 8;
  bytes[at + 1] = value & 0xff;
}

function writeUint32(bytes: Uint8Array, at: number, value: number): void {
  bytes[at] = value >>> 24;
  bytes[at + 1] = (value >>> 16) & 0xff;
  bytes[at + 2] = (value >>> 8) & 0xff;
  bytes[at + 3] = value & 0xff;
}

const hex = (value: number, digits: number): string => `0x${value.toString(16).padStart(digits, '0')}`;

/**
 * A cheap test for "is this datagram STUN?" (RFC 8489 §5, for demultiplexing
 * on a shared port): the top two bits are zero, the magic cookie is there,
 * and the length field is a multiple of 4 that matches the datagram.
 * WireGuard messages never pass: their bytes 1..3 are zero, so a STUN length
 * field of 0 would need a 20-byte datagram, which no WireGuard message is
 * (and the cookie would not match).
 */
export function isStunMessage(bytes: Uint8Array): boolean {
  if (bytes.length < STUN_HEADER_LENGTH) return false;
  if ((bytes[0]! & 0xc0) !== 0) return false;
  const length = readUint16(bytes, 2);
  return length % 4 === 0 && STUN_HEADER_LENGTH + length === bytes.length && readUint32(bytes, 4) === STUN_MAGIC_COOKIE;
}

export function newTransactionId(): Uint8Array {
  return new Uint8Array(randomBytes(STUN_TRANSACTION_ID_LENGTH));
}

function hmacSha1(key: Uint8Array, ...parts: Uint8Array[]): Uint8Array {
  const hmac = createHmac('sha1', key);
  for (const part of parts) hmac.update(part);
  return new Uint8Array(hmac.digest());
}

function fingerprintOf(bytes: Uint8Array): number {
  return (crc32(bytes) ^ FINGERPRINT_XOR) >>> 0;
}

/** MD5(username ":" realm ":" password) (RFC 8489 §9.2.2). The strings are used as given (already prepared, e.g. OpaqueString/SASLprep), UTF-8 encoded. */
export function longTermKey(username: string, realm: string, password: string): Uint8Array {
  return new Uint8Array(createHash('md5').update(`${username}:${realm}:${password}`, 'utf8').digest());
}

/** Encode a message; MESSAGE-INTEGRITY and FINGERPRINT are appended when asked for. Throws StunError on values that do not fit the wire format. */
export function encodeStunMessage(message: StunMessage, options: EncodeOptions = {}): Uint8Array {
  if (!Number.isInteger(message.type) || message.type < 0 || message.type > MAX_MESSAGE_TYPE) {
    throw new StunError(`STUN message type ${message.type} does not fit in 14 bits`);
  }
  if (message.transactionId.length !== STUN_TRANSACTION_ID_LENGTH) {
    throw new StunError(`STUN transaction id must be ${STUN_TRANSACTION_ID_LENGTH} bytes, got ${message.transactionId.length}`);
  }
  let bodyLength = 0;
  for (const attribute of message.attributes) {
    if (!Number.isInteger(attribute.type) || attribute.type < 0 || attribute.type > 0xffff) {
      throw new StunError(`STUN attribute type ${attribute.type} does not fit in 16 bits`);
    }
    if (attribute.value.length > MAX_ATTRIBUTE_VALUE) {
      throw new StunError(`STUN attribute ${hex(attribute.type, 4)} value is ${attribute.value.length} bytes, more than ${MAX_ATTRIBUTE_VALUE}`);
    }
    bodyLength += STUN_ATTRIBUTE_HEADER_LENGTH + padded(attribute.value.length);
  }
  const integrityLength = options.integrityKey !== undefined ? STUN_ATTRIBUTE_HEADER_LENGTH + MESSAGE_INTEGRITY_LENGTH : 0;
  const fingerprintLength = options.fingerprint === true ? STUN_ATTRIBUTE_HEADER_LENGTH + FINGERPRINT_LENGTH : 0;
  const totalBody = bodyLength + integrityLength + fingerprintLength;
  if (totalBody > STUN_MAX_BODY_LENGTH) throw new StunError(`STUN message body of ${totalBody} bytes is longer than ${STUN_MAX_BODY_LENGTH}`);

  const out = new Uint8Array(STUN_HEADER_LENGTH + totalBody);
  writeUint16(out, 0, message.type);
  writeUint32(out, 4, STUN_MAGIC_COOKIE);
  out.set(message.transactionId, 8);
  let at = STUN_HEADER_LENGTH;
  for (const attribute of message.attributes) {
    writeUint16(out, at, attribute.type);
    writeUint16(out, at + 2, attribute.value.length);
    out.set(attribute.value, at + STUN_ATTRIBUTE_HEADER_LENGTH);
    at += STUN_ATTRIBUTE_HEADER_LENGTH + padded(attribute.value.length); // padding stays zero
  }
  if (options.integrityKey !== undefined) {
    // RFC 8489 §14.5: the length field covers MESSAGE-INTEGRITY but not what follows it.
    writeUint16(out, 2, at - STUN_HEADER_LENGTH + integrityLength);
    const mac = hmacSha1(options.integrityKey, out.subarray(0, at));
    writeUint16(out, at, StunAttributeType.MessageIntegrity);
    writeUint16(out, at + 2, MESSAGE_INTEGRITY_LENGTH);
    out.set(mac, at + STUN_ATTRIBUTE_HEADER_LENGTH);
    at += integrityLength;
  }
  writeUint16(out, 2, totalBody);
  if (options.fingerprint === true) {
    const crc = fingerprintOf(out.subarray(0, at));
    writeUint16(out, at, StunAttributeType.Fingerprint);
    writeUint16(out, at + 2, FINGERPRINT_LENGTH);
    writeUint32(out, at + STUN_ATTRIBUTE_HEADER_LENGTH, crc);
  }
  return out;
}

/** Check the header; returns the body length. */
function checkHeader(bytes: Uint8Array): number {
  if (bytes.length < STUN_HEADER_LENGTH) {
    throw new StunError(`STUN message of ${bytes.length} bytes is shorter than the ${STUN_HEADER_LENGTH}-byte header`);
  }
  if ((bytes[0]! & 0xc0) !== 0) throw new StunError(`not a STUN message: the first two bits are not zero (byte 0 is ${hex(bytes[0]!, 2)})`);
  const cookie = readUint32(bytes, 4);
  if (cookie !== STUN_MAGIC_COOKIE) throw new StunError(`not a STUN message: magic cookie is ${hex(cookie, 8)}, expected ${hex(STUN_MAGIC_COOKIE, 8)}`);
  const length = readUint16(bytes, 2);
  if (length % 4 !== 0) throw new StunError(`STUN message length ${length} is not a multiple of 4`);
  if (STUN_HEADER_LENGTH + length !== bytes.length) {
    throw new StunError(`STUN message length field says ${length} bytes of attributes but ${bytes.length - STUN_HEADER_LENGTH} follow the header`);
  }
  return length;
}

interface RawAttribute {
  type: number;
  /** Offset of the attribute header. */
  offset: number;
  length: number;
}

/** Walk the attributes; throws StunError when one overruns the message. */
function walkAttributes(bytes: Uint8Array): RawAttribute[] {
  const found: RawAttribute[] = [];
  let at = STUN_HEADER_LENGTH;
  while (at < bytes.length) {
    if (bytes.length - at < STUN_ATTRIBUTE_HEADER_LENGTH) {
      throw new StunError(`STUN attribute header at offset ${at} is truncated (${bytes.length - at} bytes left)`);
    }
    const type = readUint16(bytes, at);
    const length = readUint16(bytes, at + 2);
    const end = at + STUN_ATTRIBUTE_HEADER_LENGTH + padded(length);
    if (end > bytes.length) {
      throw new StunError(`STUN attribute ${hex(type, 4)} at offset ${at} claims ${length} bytes but only ${bytes.length - at - STUN_ATTRIBUTE_HEADER_LENGTH} remain`);
    }
    found.push({ type, offset: at, length });
    at = end;
  }
  return found;
}

/**
 * Decode and check a message: header, attribute framing and, when present,
 * FINGERPRINT (which must be last and match). Attributes after
 * MESSAGE-INTEGRITY other than FINGERPRINT are ignored, as RFC 8489 §14.5
 * requires. MESSAGE-INTEGRITY is not checked here (it needs the key): use
 * verifyMessageIntegrity. Throws StunError.
 */
export function decodeStunMessage(bytes: Uint8Array): StunMessage {
  checkHeader(bytes);
  const raw = walkAttributes(bytes);
  const attributes: StunAttribute[] = [];
  let afterIntegrity = false;
  for (let i = 0; i < raw.length; i++) {
    const { type, offset, length } = raw[i]!;
    const value = bytes.slice(offset + STUN_ATTRIBUTE_HEADER_LENGTH, offset + STUN_ATTRIBUTE_HEADER_LENGTH + length);
    if (type === StunAttributeType.Fingerprint) {
      if (i !== raw.length - 1) throw new StunError(`STUN FINGERPRINT at offset ${offset} is not the last attribute`);
      if (length !== FINGERPRINT_LENGTH) throw new StunError(`STUN FINGERPRINT is ${length} bytes, expected ${FINGERPRINT_LENGTH}`);
      const expected = fingerprintOf(bytes.subarray(0, offset));
      const got = readUint32(value, 0);
      if (got !== expected) throw new StunError(`STUN FINGERPRINT mismatch: message carries ${hex(got, 8)}, computed ${hex(expected, 8)}`);
      attributes.push({ type, value });
      continue;
    }
    if (afterIntegrity && type !== StunAttributeType.MessageIntegritySha256) continue;
    if (type === StunAttributeType.MessageIntegrity) {
      if (length !== MESSAGE_INTEGRITY_LENGTH) {
        throw new StunError(`STUN MESSAGE-INTEGRITY is ${length} bytes, expected ${MESSAGE_INTEGRITY_LENGTH}`);
      }
      afterIntegrity = true;
    }
    attributes.push({ type, value });
  }
  return { type: readUint16(bytes, 0), transactionId: bytes.slice(8, 8 + STUN_TRANSACTION_ID_LENGTH), attributes };
}

/**
 * Check MESSAGE-INTEGRITY (RFC 8489 §14.5): HMAC-SHA1 with `key` over the
 * message up to the attribute, with the length field adjusted to end right
 * after it. False when it is absent, malformed or does not match.
 */
export function verifyMessageIntegrity(bytes: Uint8Array, key: Uint8Array): boolean {
  let raw: RawAttribute[];
  try {
    checkHeader(bytes);
    raw = walkAttributes(bytes);
  } catch {
    return false;
  }
  const integrity = raw.find((attribute) => attribute.type === StunAttributeType.MessageIntegrity);
  if (integrity === undefined || integrity.length !== MESSAGE_INTEGRITY_LENGTH) return false;
  const header = bytes.slice(0, STUN_HEADER_LENGTH);
  writeUint16(header, 2, integrity.offset - STUN_HEADER_LENGTH + STUN_ATTRIBUTE_HEADER_LENGTH + MESSAGE_INTEGRITY_LENGTH);
  const expected = hmacSha1(key, header, bytes.subarray(STUN_HEADER_LENGTH, integrity.offset));
  const got = bytes.subarray(integrity.offset + STUN_ATTRIBUTE_HEADER_LENGTH, integrity.offset + STUN_ATTRIBUTE_HEADER_LENGTH + MESSAGE_INTEGRITY_LENGTH);
  return timingSafeEqual(expected, got);
}

/** The value of the first attribute of `type`, if any. */
export function findAttribute(message: StunMessage, type: number): Uint8Array | undefined {
  return message.attributes.find((attribute) => attribute.type === type)?.value;
}

/** The XOR mask for the address bytes: the magic cookie, then (IPv6) the transaction id. */
function xorMask(transactionId: Uint8Array): Uint8Array {
  if (transactionId.length !== STUN_TRANSACTION_ID_LENGTH) {
    throw new StunError(`STUN transaction id must be ${STUN_TRANSACTION_ID_LENGTH} bytes, got ${transactionId.length}`);
  }
  const mask = new Uint8Array(16);
  writeUint32(mask, 0, STUN_MAGIC_COOKIE);
  mask.set(transactionId, 4);
  return mask;
}

function encodeAddressValue(endpoint: Endpoint, mask: Uint8Array | null): Uint8Array {
  let ip: Uint8Array;
  try {
    ip = ipToBytes(endpoint.address);
  } catch (error) {
    throw new StunError(`cannot encode STUN address: ${error instanceof AddressError ? error.message : String(error)}`);
  }
  if (ip.length !== (endpoint.family === 4 ? 4 : 16)) {
    throw new StunError(`cannot encode STUN address: '${endpoint.address}' is not an IPv${endpoint.family} address`);
  }
  if (!Number.isInteger(endpoint.port) || endpoint.port < 0 || endpoint.port > 0xffff) {
    throw new StunError(`cannot encode STUN address: port ${endpoint.port} is not 0..65535`);
  }
  const out = new Uint8Array(4 + ip.length);
  out[1] = ip.length === 4 ? STUN_FAMILY_IPV4 : STUN_FAMILY_IPV6;
  writeUint16(out, 2, mask === null ? endpoint.port : endpoint.port ^ (STUN_MAGIC_COOKIE >>> 16));
  for (let i = 0; i < ip.length; i++) out[4 + i] = mask === null ? ip[i]! : ip[i]! ^ mask[i]!;
  return out;
}

function decodeAddressValue(value: Uint8Array, mask: Uint8Array | null, what: string): Endpoint {
  if (value.length < 4) throw new StunError(`${what} is ${value.length} bytes, too short for family and port`);
  const family = value[1]!;
  const ipLength = family === STUN_FAMILY_IPV4 ? 4 : family === STUN_FAMILY_IPV6 ? 16 : 0;
  if (ipLength === 0) throw new StunError(`${what} has unknown address family ${hex(family, 2)}`);
  if (value.length !== 4 + ipLength) {
    throw new StunError(`${what} for IPv${ipLength === 4 ? 4 : 6} must be ${4 + ipLength} bytes, got ${value.length}`);
  }
  const rawPort = readUint16(value, 2);
  const ip = new Uint8Array(ipLength);
  for (let i = 0; i < ipLength; i++) ip[i] = mask === null ? value[4 + i]! : value[4 + i]! ^ mask[i]!;
  return {
    family: ipLength === 4 ? 4 : 6,
    address: bytesToIp(ip),
    port: mask === null ? rawPort : rawPort ^ (STUN_MAGIC_COOKIE >>> 16),
  };
}

/** XOR-MAPPED-ADDRESS / XOR-PEER-ADDRESS / XOR-RELAYED-ADDRESS value (RFC 8489 §14.2). */
export function encodeXorAddress(endpoint: Endpoint, transactionId: Uint8Array): Uint8Array {
  return encodeAddressValue(endpoint, xorMask(transactionId));
}

export function decodeXorAddress(value: Uint8Array, transactionId: Uint8Array): Endpoint {
  return decodeAddressValue(value, xorMask(transactionId), 'STUN XOR address');
}

/** MAPPED-ADDRESS value (RFC 8489 §14.1; old servers send only this). */
export function encodeMappedAddress(endpoint: Endpoint): Uint8Array {
  return encodeAddressValue(endpoint, null);
}

export function decodeMappedAddress(value: Uint8Array): Endpoint {
  return decodeAddressValue(value, null, 'STUN MAPPED-ADDRESS');
}

/** ERROR-CODE value (RFC 8489 §14.8): class (3..6) and number (0..99), then a UTF-8 reason. */
export function encodeErrorCode(code: number, reason = ''): Uint8Array {
  if (!Number.isInteger(code) || code < 300 || code > 699) throw new StunError(`STUN error code ${code} is not in 300..699`);
  const text = new TextEncoder().encode(reason);
  const out = new Uint8Array(4 + text.length);
  out[2] = Math.floor(code / 100);
  out[3] = code % 100;
  out.set(text, 4);
  return out;
}

export function decodeErrorCode(value: Uint8Array): { code: number; reason: string } {
  if (value.length < 4) throw new StunError(`STUN ERROR-CODE is ${value.length} bytes, too short`);
  const errorClass = value[2]! & 0x07;
  const number = value[3]!;
  if (errorClass < 3 || errorClass > 6 || number > 99) {
    throw new StunError(`STUN ERROR-CODE has class ${errorClass} and number ${number}; expected class 3..6 and number 0..99`);
  }
  return { code: errorClass * 100 + number, reason: new TextDecoder().decode(value.subarray(4)) };
}

/** UTF-8 text attributes (USERNAME, REALM, NONCE, SOFTWARE). */
export function encodeTextAttribute(type: number, text: string): StunAttribute {
  return { type, value: new TextEncoder().encode(text) };
}

export function decodeText(value: Uint8Array): string {
  return new TextDecoder().decode(value);
}
