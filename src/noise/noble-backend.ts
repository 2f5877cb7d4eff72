/** The reference backend: every primitive from @noble, pure JavaScript. */
import { x25519 } from '@noble/curves/ed25519.js';
import { chacha20poly1305, xchacha20poly1305 } from '@noble/ciphers/chacha.js';
import { blake2s } from '@noble/hashes/blake2.js';
import { hmac } from '@noble/hashes/hmac.js';
import { randomBytes } from 'node:crypto';
import { KEY_SIZE, MAC_SIZE } from './constants.js';
import { NoiseError } from './errors.js';
import type { Primitives } from './primitives.js';
import { concatBytes, counterNonce, isAllZero } from './bytes.js';

export const nobleBackend: Primitives = {
  name: 'noble',
  x25519(privateKey, publicKey) {
    requireKeyLength(privateKey, 'X25519 private key');
    requireKeyLength(publicKey, 'X25519 public key');
    let shared: Uint8Array;
    try {
      shared = x25519.getSharedSecret(privateKey, publicKey);
    } catch {
      // @noble refuses low-order points itself.
      throw new NoiseError('LowOrderPoint', 'X25519 produced the all-zero shared secret');
    }
    if (isAllZero(shared)) throw new NoiseError('LowOrderPoint', 'X25519 produced the all-zero shared secret');
    return shared;
  },
  forgetPrivateKey() {
    // Nothing is kept: @noble works on the array itself.
  },
  x25519PublicKey(privateKey) {
    requireKeyLength(privateKey, 'X25519 private key');
    return x25519.getPublicKey(privateKey);
  },
  aeadSeal(key, counter, plaintext, ad) {
    return chacha20poly1305(key, counterNonce(counter), ad).encrypt(plaintext);
  },
  aeadOpen(key, counter, ciphertext, ad) {
    try {
      return chacha20poly1305(key, counterNonce(counter), ad).decrypt(ciphertext);
    } catch {
      return null;
    }
  },
  aeadSealInPlace(key, nonce, sealed, plaintext) {
    sealed.set(chacha20poly1305(key, nonce).encrypt(plaintext));
  },
  aeadOpenInPlace(key, nonce, sealed, plaintext) {
    try {
      plaintext.set(chacha20poly1305(key, nonce).decrypt(sealed));
      return true;
    } catch {
      return false;
    }
  },
  xaeadSeal(key, nonce, plaintext, ad) {
    return xchacha20poly1305(key, nonce, ad).encrypt(plaintext);
  },
  xaeadOpen(key, nonce, ciphertext, ad) {
    try {
      return xchacha20poly1305(key, nonce, ad).decrypt(ciphertext);
    } catch {
      return null;
    }
  },
  hash(...parts) {
    const h = blake2s.create();
    for (const part of parts) h.update(part);
    return h.digest();
  },
  mac(key, data) {
    return blake2s(data, { key, dkLen: MAC_SIZE });
  },
  hmac(key, ...parts) {
    return hmac(blake2s, key, parts.length === 1 ? parts[0]! : concatBytes(...parts));
  },
  randomBytes(length) {
    return new Uint8Array(randomBytes(length));
  },
};

function requireKeyLength(key: Uint8Array, what: string): void {
  if (key.length !== KEY_SIZE) throw new NoiseError('InvalidKey', `${what} must be ${KEY_SIZE} bytes, got ${key.length}`);
}
