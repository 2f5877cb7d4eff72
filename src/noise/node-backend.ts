/**
 * The fast backend: node:crypto (OpenSSL) for X25519, ChaCha20-Poly1305,
 * BLAKE2s-256 and HMAC-BLAKE2s. Node exposes neither keyed BLAKE2s nor
 * XChaCha20, so MAC and the cookie AEAD come from the @noble reference.
 */
import {
  createCipheriv,
  createDecipheriv,
  createHash,
  createHmac,
  createPrivateKey,
  createPublicKey,
  diffieHellman,
  randomBytes,
  type KeyObject,
} from 'node:crypto';
import { AEAD_TAG_SIZE, KEY_SIZE } from './constants.js';
import { NoiseError } from './errors.js';
import { nobleBackend } from './noble-backend.js';
import type { Primitives } from './primitives.js';
import { counterNonce, isAllZero } from './bytes.js';

// DER prefixes that wrap a raw 32-byte X25519 key (RFC 8410).
const PKCS8_X25519_PREFIX = Buffer.from('302e020100300506032b656e04220420', 'hex');
const SPKI_X25519_PREFIX = Buffer.from('302a300506032b656e032100', 'hex');

/**
 * Importing a raw key into OpenSSL costs far more than the X25519 itself, so
 * the KeyObject of each key array is kept (static keys are reused for every
 * handshake, an ephemeral key two or three times). The cached bytes are
 * compared on each hit, because key arrays are wiped or rewritten in place.
 * A private key's entry (a KeyObject and a copy of the key) goes as soon as
 * its owner discards the key (forgetPrivateKey), not when the GC gets to it.
 */
type KeyCache = WeakMap<Uint8Array, { bytes: Buffer; key: KeyObject }>;
const privateKeyObjects: KeyCache = new WeakMap();
const publicKeyObjects: KeyCache = new WeakMap();

function cachedKeyObject(keyObjects: KeyCache, raw: Uint8Array, what: string, make: (raw: Uint8Array) => KeyObject): KeyObject {
  if (raw.length !== KEY_SIZE) throw new NoiseError('InvalidKey', `${what} must be ${KEY_SIZE} bytes, got ${raw.length}`);
  const hit = keyObjects.get(raw);
  if (hit !== undefined && hit.bytes.equals(raw)) return hit.key;
  if (hit !== undefined) hit.bytes.fill(0);
  const key = make(raw);
  // Not from Buffer's shared pool: this copy may be of a private key, and is wiped on its own.
  const bytes = Buffer.alloc(KEY_SIZE);
  bytes.set(raw);
  keyObjects.set(raw, { bytes, key });
  return key;
}

function privateKeyObject(raw: Uint8Array): KeyObject {
  return cachedKeyObject(privateKeyObjects, raw, 'X25519 private key', (bytes) => {
    const der = Buffer.alloc(PKCS8_X25519_PREFIX.length + KEY_SIZE);
    PKCS8_X25519_PREFIX.copy(der);
    der.set(bytes, PKCS8_X25519_PREFIX.length);
    try {
      return createPrivateKey({ key: der, format: 'der', type: 'pkcs8' });
    } finally {
      der.fill(0);
    }
  });
}

/** Whether a KeyObject of this private key array is cached (for tests of forgetPrivateKey). */
export function holdsPrivateKeyObject(raw: Uint8Array): boolean {
  return privateKeyObjects.has(raw);
}

function publicKeyObject(raw: Uint8Array): KeyObject {
  return cachedKeyObject(publicKeyObjects, raw, 'X25519 public key', (bytes) =>
    createPublicKey({ key: Buffer.concat([SPKI_X25519_PREFIX, bytes]), format: 'der', type: 'spki' }),
  );
}

function toUint8(buffer: Buffer): Uint8Array {
  return new Uint8Array(buffer.buffer, buffer.byteOffset, buffer.byteLength);
}

export const nodeBackend: Primitives = {
  name: 'node',
  x25519(privateKey, publicKey) {
    let shared: Buffer;
    try {
      shared = diffieHellman({ privateKey: privateKeyObject(privateKey), publicKey: publicKeyObject(publicKey) });
    } catch (error) {
      if (error instanceof NoiseError) throw error;
      // OpenSSL fails the derivation when the result is all zeros (a low-order point).
      throw new NoiseError('LowOrderPoint', 'X25519 produced the all-zero shared secret');
    }
    if (isAllZero(shared)) throw new NoiseError('LowOrderPoint', 'X25519 produced the all-zero shared secret');
    return toUint8(shared);
  },
  forgetPrivateKey(privateKey) {
    privateKeyObjects.get(privateKey)?.bytes.fill(0);
    privateKeyObjects.delete(privateKey);
  },
  x25519PublicKey(privateKey) {
    const spki = createPublicKey(privateKeyObject(privateKey)).export({ format: 'der', type: 'spki' });
    return toUint8(spki.subarray(SPKI_X25519_PREFIX.length));
  },
  aeadSeal(key, counter, plaintext, ad) {
    const cipher = createCipheriv('chacha20-poly1305', key, counterNonce(counter), { authTagLength: AEAD_TAG_SIZE });
    if (ad.length > 0) cipher.setAAD(ad, { plaintextLength: plaintext.length });
    const out = Buffer.allocUnsafe(plaintext.length + AEAD_TAG_SIZE);
    const written = cipher.update(plaintext).copy(out, 0);
    cipher.final();
    cipher.getAuthTag().copy(out, written);
    return toUint8(out);
  },
  aeadOpen(key, counter, ciphertext, ad) {
    if (ciphertext.length < AEAD_TAG_SIZE) return null;
    const bodyLength = ciphertext.length - AEAD_TAG_SIZE;
    try {
      const decipher = createDecipheriv('chacha20-poly1305', key, counterNonce(counter), { authTagLength: AEAD_TAG_SIZE });
      if (ad.length > 0) decipher.setAAD(ad, { plaintextLength: bodyLength });
      decipher.setAuthTag(ciphertext.subarray(bodyLength));
      const plaintext = decipher.update(ciphertext.subarray(0, bodyLength));
      decipher.final();
      return toUint8(plaintext);
    } catch {
      return null;
    }
  },
  aeadSealInPlace(key, nonce, sealed, plaintext) {
    const cipher = createCipheriv('chacha20-poly1305', key, nonce, { authTagLength: AEAD_TAG_SIZE });
    sealed.set(cipher.update(plaintext));
    cipher.final();
    sealed.set(cipher.getAuthTag(), plaintext.length);
  },
  aeadOpenInPlace(key, nonce, sealed, plaintext) {
    if (sealed.length < AEAD_TAG_SIZE) return false;
    try {
      const decipher = createDecipheriv('chacha20-poly1305', key, nonce, { authTagLength: AEAD_TAG_SIZE });
      decipher.setAuthTag(sealed.subarray(plaintext.length));
      const opened = decipher.update(sealed.subarray(0, plaintext.length));
      decipher.final();
      plaintext.set(opened);
      return true;
    } catch {
      return false;
    }
  },
  xaeadSeal: nobleBackend.xaeadSeal,
  xaeadOpen: nobleBackend.xaeadOpen,
  hash(...parts) {
    const h = createHash('blake2s256');
    for (const part of parts) h.update(part);
    return toUint8(h.digest());
  },
  mac: nobleBackend.mac,
  hmac(key, ...parts) {
    const h = createHmac('blake2s256', key);
    for (const part of parts) h.update(part);
    return toUint8(h.digest());
  },
  randomBytes(length) {
    return toUint8(randomBytes(length));
  },
};
