/**
 * The cryptographic primitives WireGuard needs, behind one small interface
 * so the backend can be chosen by measurement. Two backends exist:
 * `nobleBackend` (@noble/*, the audited pure-JS reference), `nodeBackend`
 * (node:crypto / OpenSSL where Node exposes the primitive, @noble elsewhere)
 * and, when the optional sodium-native package is installed, `sodiumBackend`
 * (libsodium's ChaCha20-Poly1305 over the node backend). Tests prove they
 * agree on thousands of random inputs.
 */
export interface Primitives {
  readonly name: string;
  /** X25519(privateKey, publicKey). Throws NoiseError('LowOrderPoint') when the result is all zeros. */
  x25519(privateKey: Uint8Array, publicKey: Uint8Array): Uint8Array;
  /** The X25519 public key of a private key. */
  x25519PublicKey(privateKey: Uint8Array): Uint8Array;
  /**
   * The private key is being discarded: drop whatever the backend keeps of
   * it (node:crypto caches an imported KeyObject per key array). Call before
   * wiping the array.
   */
  forgetPrivateKey(privateKey: Uint8Array): void;
  /** ChaCha20-Poly1305 with WireGuard's nonce: 32 zero bits then the 64-bit little-endian counter. Returns ciphertext||tag. */
  aeadSeal(key: Uint8Array, counter: bigint, plaintext: Uint8Array, ad: Uint8Array): Uint8Array;
  /** Inverse of aeadSeal; null when the tag does not verify. */
  aeadOpen(key: Uint8Array, counter: bigint, ciphertext: Uint8Array, ad: Uint8Array): Uint8Array | null;
  /**
   * The transport fast path: seal `plaintext`, a view of the first
   * sealed.length − 16 bytes of `sealed`, in place; the tag lands in the last
   * 16. `nonce` is the 12-byte WireGuard nonce. The sodium backend allocates
   * nothing here; the others copy.
   */
  aeadSealInPlace(key: Uint8Array, nonce: Uint8Array, sealed: Uint8Array, plaintext: Uint8Array): void;
  /**
   * Open `sealed` (ciphertext || tag) in place: on success `plaintext`, a view
   * of sealed's first sealed.length − 16 bytes, holds the plaintext. False when
   * the tag does not verify; the bytes are then unspecified (libsodium wipes them).
   */
  aeadOpenInPlace(key: Uint8Array, nonce: Uint8Array, sealed: Uint8Array, plaintext: Uint8Array): boolean;
  /** XChaCha20-Poly1305 with a 24-byte nonce (cookie replies). */
  xaeadSeal(key: Uint8Array, nonce: Uint8Array, plaintext: Uint8Array, ad: Uint8Array): Uint8Array;
  xaeadOpen(key: Uint8Array, nonce: Uint8Array, ciphertext: Uint8Array, ad: Uint8Array): Uint8Array | null;
  /** BLAKE2s-256 of the concatenation of parts. */
  hash(...parts: Uint8Array[]): Uint8Array;
  /** Keyed BLAKE2s with a 16-byte output (MAC1, MAC2, cookies). */
  mac(key: Uint8Array, data: Uint8Array): Uint8Array;
  /** HMAC-BLAKE2s-256 of the concatenation of parts. */
  hmac(key: Uint8Array, ...parts: Uint8Array[]): Uint8Array;
  randomBytes(length: number): Uint8Array;
}
