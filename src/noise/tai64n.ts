/**
 * TAI64N timestamps for handshake initiations. As wireguard-go does, the
 * nanoseconds are rounded down to 2^24 ns (~16.8 ms) so that a timestamp
 * does not leak a precise clock reading.
 */
import { TIMESTAMP_SIZE } from './constants.js';

const TAI64_BASE = 0x400000000000000an;
const WHITENER_MASK = 0x1000000 - 1;

export function tai64n(unixMs: number): Uint8Array {
  const out = new Uint8Array(TIMESTAMP_SIZE);
  const view = new DataView(out.buffer);
  const seconds = Math.floor(unixMs / 1000);
  const nanos = Math.floor((unixMs - seconds * 1000) * 1e6);
  view.setBigUint64(0, TAI64_BASE + BigInt(seconds));
  view.setUint32(8, (nanos & ~WHITENER_MASK) >>> 0);
  return out;
}

/** True when timestamp a is strictly later than b (big-endian byte order is time order). */
export function isAfter(a: Uint8Array, b: Uint8Array): boolean {
  for (let i = 0; i < TIMESTAMP_SIZE; i++) {
    if (a[i] !== b[i]) return a[i]! > b[i]!;
  }
  return false;
}
