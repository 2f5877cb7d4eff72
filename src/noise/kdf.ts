/**
 * WireGuard's HKDF over HMAC-BLAKE2s (the paper's KDF1/KDF2/KDF3):
 *   t0 = HMAC(key, input); t1 = HMAC(t0, 0x1); t2 = HMAC(t0, t1 || 0x2); t3 = HMAC(t0, t2 || 0x3)
 */
import type { Primitives } from './primitives.js';

const ONE = Uint8Array.of(1);
const TWO = Uint8Array.of(2);
const THREE = Uint8Array.of(3);

export function kdf1(p: Primitives, key: Uint8Array, input: Uint8Array): Uint8Array {
  const t0 = p.hmac(key, input);
  const t1 = p.hmac(t0, ONE);
  t0.fill(0);
  return t1;
}

export function kdf2(p: Primitives, key: Uint8Array, input: Uint8Array): [Uint8Array, Uint8Array] {
  const t0 = p.hmac(key, input);
  const t1 = p.hmac(t0, ONE);
  const t2 = p.hmac(t0, t1, TWO);
  t0.fill(0);
  return [t1, t2];
}

export function kdf3(p: Primitives, key: Uint8Array, input: Uint8Array): [Uint8Array, Uint8Array, Uint8Array] {
  const t0 = p.hmac(key, input);
  const t1 = p.hmac(t0, ONE);
  const t2 = p.hmac(t0, t1, TWO);
  const t3 = p.hmac(t0, t2, THREE);
  t0.fill(0);
  return [t1, t2, t3];
}
