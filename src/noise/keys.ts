/**
 * Key generation and the base64 text form used by wg(8):
 * 32 bytes, standard base64 with padding (44 characters).
 */
import { randomBytes } from 'node:crypto';
import { KEY_SIZE } from './constants.js';
import { NoiseError } from './errors.js';
import { defaultPrimitives } from './default-backend.js';
import type { Primitives } from './primitives.js';

const BASE64_KEY = /^[A-Za-z0-9+/]{42}[AEIMQUYcgkosw048]=$/;

/** Clamp a Curve25519 scalar as RFC 7748 and wg genkey do. */
export function clampPrivateKey(key: Uint8Array): Uint8Array {
  key[0]! &= 248;
  key[31]! = (key[31]! & 127) | 64;
  return key;
}

export function generatePrivateKey(): Uint8Array {
  return clampPrivateKey(new Uint8Array(randomBytes(KEY_SIZE)));
}

/** A random 32-byte pre-shared key (wg genpsk). */
export function generatePresharedKey(): Uint8Array {
  return new Uint8Array(randomBytes(KEY_SIZE));
}

export function publicKeyOf(privateKey: Uint8Array, primitives: Primitives = defaultPrimitives): Uint8Array {
  return primitives.x25519PublicKey(privateKey);
}

export function encodeKey(key: Uint8Array): string {
  if (key.length !== KEY_SIZE) throw new NoiseError('InvalidKey', `a key is ${KEY_SIZE} bytes, got ${key.length}`);
  return Buffer.from(key).toString('base64');
}

/** Parse a base64 key as wg(8) does: exactly 44 characters decoding to 32 bytes. */
export function decodeKey(text: string, what = 'key'): Uint8Array {
  if (!BASE64_KEY.test(text)) {
    throw new NoiseError('InvalidKey', `${what} is not a valid base64 WireGuard key (44 characters decoding to 32 bytes)`);
  }
  return new Uint8Array(Buffer.from(text, 'base64'));
}

/** Parse a hex key as the UAPI writes it: 64 hex digits. */
export function decodeHexKey(text: string, what = 'key'): Uint8Array {
  if (!/^[0-9a-fA-F]{64}$/.test(text)) throw new NoiseError('InvalidKey', `${what} is not 64 hex digits`);
  return new Uint8Array(Buffer.from(text, 'hex'));
}
