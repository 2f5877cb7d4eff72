/**
 * Deterministic interface names, the same as ZLayer's for the same parts:
 * "zl-" + parts joined by "-" (+ "-" + suffix) when that fits in 15 bytes,
 * else a hash of the parts and the suffix.
 *
 * The hash is Rust's std DefaultHasher, which is SipHash-1-3 with keys
 * (0, 0); hashing a `&str` writes its UTF-8 bytes then one 0xff byte
 * (core's `write_str`: 0xff never occurs in UTF-8, so the encoding is
 * prefix-free). The hash is rendered as `{:x}` (lower-case hex, no padding).
 * Reproducing it exactly keeps the names of hosts set up by ZLayer's own
 * daemon (test/overlay/core-naming.test.ts checks names printed by rustc).
 */
import {
  BRIDGE_SUFFIX,
  DEDICATED_SUFFIX,
  GLOBAL_SUFFIX,
  HASHED_NAME_HEX_LEN,
  INTERFACE_PREFIX,
  MAX_IFNAME_LEN,
  SHARED_BRIDGE_PART,
  SHARED_BRIDGE_SUFFIX,
} from './constants.js';

const MASK_64 = (1n << 64n) - 1n;

function rotl(x: bigint, bits: bigint): bigint {
  return ((x << bits) | (x >> (64n - bits))) & MASK_64;
}

function readLe64(bytes: Uint8Array, offset: number, length = 8): bigint {
  let value = 0n;
  for (let i = length - 1; i >= 0; i--) value = (value << 8n) | BigInt(bytes[offset + i]!);
  return value;
}

/**
 * SipHash-c-d of `data` under a 16-byte key (k0 = key[0..8], k1 = key[8..16],
 * little endian), as the 64-bit value Rust's Hasher::finish returns. c = 2,
 * d = 4 is the reference SipHash-2-4; c = 1, d = 3 is Rust's DefaultHasher.
 */
export function sipHash(key: Uint8Array, data: Uint8Array, compressionRounds: number, finalizationRounds: number): bigint {
  if (key.length !== 16) throw new RangeError(`a SipHash key is 16 bytes, got ${key.length}`);
  const k0 = readLe64(key, 0);
  const k1 = readLe64(key, 8);
  let v0 = k0 ^ 0x736f6d6570736575n;
  let v1 = k1 ^ 0x646f72616e646f6dn;
  let v2 = k0 ^ 0x6c7967656e657261n;
  let v3 = k1 ^ 0x7465646279746573n;
  const round = (): void => {
    v0 = (v0 + v1) & MASK_64;
    v1 = rotl(v1, 13n) ^ v0;
    v0 = rotl(v0, 32n);
    v2 = (v2 + v3) & MASK_64;
    v3 = rotl(v3, 16n) ^ v2;
    v0 = (v0 + v3) & MASK_64;
    v3 = rotl(v3, 21n) ^ v0;
    v2 = (v2 + v1) & MASK_64;
    v1 = rotl(v1, 17n) ^ v2;
    v2 = rotl(v2, 32n);
  };
  const wholeWords = data.length - (data.length % 8);
  for (let offset = 0; offset < wholeWords; offset += 8) {
    const m = readLe64(data, offset);
    v3 ^= m;
    for (let i = 0; i < compressionRounds; i++) round();
    v0 ^= m;
  }
  const last = (BigInt(data.length & 0xff) << 56n) | readLe64(data, wholeWords, data.length - wholeWords);
  v3 ^= last;
  for (let i = 0; i < compressionRounds; i++) round();
  v0 ^= last;
  v2 ^= 0xffn;
  for (let i = 0; i < finalizationRounds; i++) round();
  return v0 ^ v1 ^ v2 ^ v3;
}

const ZERO_KEY = new Uint8Array(16);
const encoder = new TextEncoder();

/** What Rust's `DefaultHasher::new()` gives after hashing each string (`&str`) in order, then `finish()`. */
export function rustDefaultHashOfStrings(strings: readonly string[]): bigint {
  const chunks = strings.map((s) => encoder.encode(s));
  const total = chunks.reduce((sum, chunk) => sum + chunk.length + 1, 0);
  const stream = new Uint8Array(total);
  let offset = 0;
  for (const chunk of chunks) {
    stream.set(chunk, offset);
    offset += chunk.length;
    stream[offset++] = 0xff;
  }
  return sipHash(ZERO_KEY, stream, 1, 3);
}

function byteLength(text: string): number {
  return encoder.encode(text).length;
}

/**
 * The interface name for `parts` and `suffix`: never longer than 15 bytes,
 * always starting with "zl-", deterministic:
 *  - "zl-" + parts.join("-") + ("-" + suffix if any), when it fits;
 *  - else, with a suffix, "zl-" + hash[..15-4-len(suffix)] + "-" + suffix;
 *  - else (no suffix, or a suffix of 11 bytes or more) "zl-" + hash[..12].
 */
export function makeInterfaceName(parts: readonly string[], suffix: string): string {
  const base = `${INTERFACE_PREFIX}${parts.join('-')}`;
  const candidate = suffix === '' ? base : `${base}-${suffix}`;
  if (byteLength(candidate) <= MAX_IFNAME_LEN) return candidate;
  const hash = rustDefaultHashOfStrings([...parts, suffix]).toString(16);
  if (suffix !== '') {
    const hashBudget = MAX_IFNAME_LEN - INTERFACE_PREFIX.length - 1 - byteLength(suffix);
    if (hashBudget > 0) return `${INTERFACE_PREFIX}${hash.slice(0, hashBudget)}-${suffix}`;
  }
  return `${INTERFACE_PREFIX}${hash.slice(0, HASHED_NAME_HEX_LEN)}`;
}

/** The node's one global device: zl-{deployment}-{instanceId}-g (or its hashed form). */
export function globalInterfaceName(deployment: string, instanceId: string): string {
  return makeInterfaceName([deployment, instanceId], GLOBAL_SUFFIX);
}

/** A service's own bridge: zl-{deployment}-{instanceId}-{service}-b (or its hashed form). */
export function serviceBridgeName(deployment: string, instanceId: string, service: string): string {
  return makeInterfaceName([deployment, instanceId, service], BRIDGE_SUFFIX);
}

/** A service's dedicated WireGuard device: zl-{deployment}-{instanceId}-{service}-d (or its hashed form). */
export function dedicatedInterfaceName(deployment: string, instanceId: string, service: string): string {
  return makeInterfaceName([deployment, instanceId, service], DEDICATED_SUFFIX);
}

/** The node-wide shared bridge: zl-{deployment}-{instanceId}-shared-sh (or its hashed form). */
export function sharedBridgeName(deployment: string, instanceId: string): string {
  return makeInterfaceName([deployment, instanceId, SHARED_BRIDGE_PART], SHARED_BRIDGE_SUFFIX);
}
