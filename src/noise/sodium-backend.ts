/**
 * The fastest backend here: libsodium (through the optional sodium-native
 * package, which ships prebuilt binaries and needs no install script) for
 * ChaCha20-Poly1305 — about 3× node:crypto per packet, because node:crypto
 * needs a new cipher object for every nonce — and for X25519, where
 * node:crypto must import every fresh (ephemeral) key into OpenSSL first,
 * which costs ~15× the DH itself (bench:micro) — and for the cookie AEAD
 * (XChaCha20-Poly1305), which a device under a handshake flood runs for
 * every cookie reply, with its random nonce (node:crypto's randomBytes costs
 * ~4× the seal for 24 bytes). BLAKE2s and HMAC come from the node backend.
 *
 * sodium-native is optional: when it is missing or cannot load on this
 * platform, `sodiumBackend` is null and the node backend serves.
 */
import { createRequire } from 'node:module';
import { AEAD_TAG_SIZE, COOKIE_NONCE_SIZE, KEY_SIZE } from './constants.js';
import { NoiseError } from './errors.js';
import { counterNonce } from './bytes.js';
import { nodeBackend } from './node-backend.js';
import type { Primitives } from './primitives.js';

/** The part of sodium-native's API used here (its own typings are not published). */
interface SodiumApi {
  crypto_scalarmult(shared: Uint8Array, privateKey: Uint8Array, publicKey: Uint8Array): void;
  crypto_scalarmult_base(publicKey: Uint8Array, privateKey: Uint8Array): void;
  crypto_aead_chacha20poly1305_ietf_encrypt(ciphertext: Uint8Array, message: Uint8Array, ad: Uint8Array | null, nsec: null, nonce: Uint8Array, key: Uint8Array): number;
  crypto_aead_chacha20poly1305_ietf_decrypt(message: Uint8Array, nsec: null, ciphertext: Uint8Array, ad: Uint8Array | null, nonce: Uint8Array, key: Uint8Array): number;
  crypto_aead_xchacha20poly1305_ietf_encrypt(ciphertext: Uint8Array, message: Uint8Array, ad: Uint8Array | null, nsec: null, nonce: Uint8Array, key: Uint8Array): number;
  crypto_aead_xchacha20poly1305_ietf_decrypt(message: Uint8Array, nsec: null, ciphertext: Uint8Array, ad: Uint8Array | null, nonce: Uint8Array, key: Uint8Array): number;
  randombytes_buf(buffer: Uint8Array): void;
}

function loadSodium(): SodiumApi | null {
  try {
    return createRequire(import.meta.url)('sodium-native') as SodiumApi;
  } catch {
    return null;
  }
}

function requireKey(key: Uint8Array, what: string): void {
  if (key.length !== KEY_SIZE) throw new NoiseError('InvalidKey', `${what} must be ${KEY_SIZE} bytes, got ${key.length}`);
}

function makeSodiumBackend(sodium: SodiumApi): Primitives {
  const { crypto_aead_chacha20poly1305_ietf_encrypt: encrypt, crypto_aead_chacha20poly1305_ietf_decrypt: decrypt } = sodium;
  const { crypto_aead_xchacha20poly1305_ietf_encrypt: xencrypt, crypto_aead_xchacha20poly1305_ietf_decrypt: xdecrypt } = sodium;
  return {
    ...nodeBackend,
    name: 'sodium',
    x25519(privateKey, publicKey) {
      requireKey(privateKey, 'X25519 private key');
      requireKey(publicKey, 'X25519 public key');
      const shared = new Uint8Array(KEY_SIZE);
      try {
        sodium.crypto_scalarmult(shared, privateKey, publicKey);
      } catch {
        // libsodium refuses a result of all zeros (a low-order point).
        throw new NoiseError('LowOrderPoint', 'X25519 produced the all-zero shared secret');
      }
      return shared;
    },
    x25519PublicKey(privateKey) {
      requireKey(privateKey, 'X25519 private key');
      const publicKey = new Uint8Array(KEY_SIZE);
      sodium.crypto_scalarmult_base(publicKey, privateKey);
      return publicKey;
    },
    aeadSeal(key, counter, plaintext, ad) {
      const out = new Uint8Array(plaintext.length + AEAD_TAG_SIZE);
      encrypt(out, plaintext, ad.length > 0 ? ad : null, null, counterNonce(counter), key);
      return out;
    },
    aeadOpen(key, counter, ciphertext, ad) {
      if (ciphertext.length < AEAD_TAG_SIZE) return null;
      const out = new Uint8Array(ciphertext.length - AEAD_TAG_SIZE);
      try {
        decrypt(out, null, ciphertext, ad.length > 0 ? ad : null, counterNonce(counter), key);
        return out;
      } catch {
        return null; // sodium-native throws when the tag does not verify
      }
    },
    xaeadSeal(key, nonce, plaintext, ad) {
      requireKey(key, 'XChaCha20-Poly1305 key');
      const out = new Uint8Array(plaintext.length + AEAD_TAG_SIZE);
      xencrypt(out, plaintext, ad.length > 0 ? ad : null, null, nonce, key);
      return out;
    },
    xaeadOpen(key, nonce, ciphertext, ad) {
      if (ciphertext.length < AEAD_TAG_SIZE || key.length !== KEY_SIZE || nonce.length !== COOKIE_NONCE_SIZE) return null;
      const out = new Uint8Array(ciphertext.length - AEAD_TAG_SIZE);
      try {
        xdecrypt(out, null, ciphertext, ad.length > 0 ? ad : null, nonce, key);
        return out;
      } catch {
        return null;
      }
    },
    randomBytes(length) {
      const out = new Uint8Array(length);
      sodium.randombytes_buf(out);
      return out;
    },
    aeadSealInPlace(key, nonce, sealed, plaintext) {
      // libsodium seals in place when the message and the ciphertext share their start.
      encrypt(sealed, plaintext, null, null, nonce, key);
    },
    aeadOpenInPlace(key, nonce, sealed, plaintext) {
      if (sealed.length < AEAD_TAG_SIZE) return false;
      try {
        decrypt(plaintext, null, sealed, null, nonce, key);
        return true;
      } catch {
        return false;
      }
    },
  };
}

const sodium = loadSodium();

/** libsodium's AEAD over the node backend, or null when sodium-native is not installed. */
export const sodiumBackend: Primitives | null = sodium === null ? null : makeSodiumBackend(sodium);
