/**
 * Small helpers for fuzz tests: a seeded PRNG (mulberry32),
 * byte mutators, and hex formatting. Everything that draws randomness takes
 * the Rng, so a failing run reproduces from its seed.
 */

import { concatBytes } from '../../src/noise/bytes.js';

/** mulberry32: a tiny 32-bit PRNG; good enough to drive a fuzzer, and reproducible. */
export class Rng {
  private state: number;

  constructor(readonly seed: number) {
    this.state = seed >>> 0;
  }

  /** A uniformly random unsigned 32-bit integer. */
  u32(): number {
    let t = (this.state = (this.state + 0x6d2b79f5) >>> 0);
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return (t ^ (t >>> 14)) >>> 0;
  }

  /** A uniformly random unsigned 64-bit integer. */
  u64(): bigint {
    return (BigInt(this.u32()) << 32n) | BigInt(this.u32());
  }

  /** A float in [0, 1). */
  float(): number {
    return this.u32() / 4294967296;
  }

  /** An integer in [0, n). */
  int(n: number): number {
    return Math.floor(this.float() * n);
  }

  /** An integer in [lo, hi] (inclusive). */
  range(lo: number, hi: number): number {
    return lo + this.int(hi - lo + 1);
  }

  chance(p: number): boolean {
    return this.float() < p;
  }

  pick<T>(items: readonly T[]): T {
    if (items.length === 0) throw new Error('pick from an empty list');
    return items[this.int(items.length)]!;
  }

  bytes(length: number): Uint8Array {
    const out = new Uint8Array(length);
    let i = 0;
    for (; i + 4 <= length; i += 4) {
      const v = this.u32();
      out[i] = v;
      out[i + 1] = v >>> 8;
      out[i + 2] = v >>> 16;
      out[i + 3] = v >>> 24;
    }
    for (; i < length; i++) out[i] = this.u32();
    return out;
  }
}

/** A seed from FUZZ_SEED (decimal or 0x-hex), else a fresh random one. */
export function fuzzSeed(): number {
  const fromEnv = process.env.FUZZ_SEED;
  if (fromEnv !== undefined && fromEnv !== '') {
    const seed = Number(fromEnv);
    if (!Number.isInteger(seed) || seed < 0 || seed > 0xffffffff) throw new Error(`FUZZ_SEED must be a uint32, got ${fromEnv}`);
    return seed;
  }
  return (Math.random() * 0x100000000) >>> 0;
}

export function hex(bytes: Uint8Array | null | undefined): string {
  if (bytes == null) return '-';
  return Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength).toString('hex');
}

/** Hex of a datagram for a failure message, shortened when long. */
export function shortHex(bytes: Uint8Array): string {
  if (bytes.length <= 200) return hex(bytes);
  return `${hex(bytes.subarray(0, 96))}…(${bytes.length} bytes)…${hex(bytes.subarray(bytes.length - 32))}`;
}

export function bytesEqual(a: Uint8Array, b: Uint8Array): boolean {
  if (a.length !== b.length) return false;
  for (let i = 0; i < a.length; i++) if (a[i] !== b[i]) return false;
  return true;
}


/** Byte ranges of interest inside a message, used by field-aware mutations. */
export interface Field {
  offset: number;
  length: number;
}

export interface MutationContext {
  /** Fields of the base message worth overwriting as a whole (indices, counter, keys, MACs). */
  fields?: readonly Field[];
  /** Values to write into 4-byte index fields (e.g. indices that are live on the receiver). */
  indices?: readonly number[];
  /** 32-byte values to write into key fields (e.g. low-order points). */
  keys?: readonly Uint8Array[];
  /** 8-byte little-endian counters worth trying. */
  counters?: readonly bigint[];
  /** Longest datagram an extension may produce (default 70,000). */
  maxLength?: number;
}

/**
 * One random mutation of `input` (never modified in place). The result may
 * equal the input (e.g. a byte set to its own value); callers that need a
 * change must check.
 */
export function mutateOnce(rng: Rng, input: Uint8Array, ctx: MutationContext = {}): Uint8Array {
  const len = input.length;
  const maxLength = ctx.maxLength ?? 70_000;
  const op = rng.int(14);
  const copy = () => new Uint8Array(input);
  switch (op) {
    case 0: {
      // xor one byte with a non-zero value: always a change
      if (len === 0) return rng.bytes(1);
      const out = copy();
      out[rng.int(len)]! ^= rng.range(1, 255);
      return out;
    }
    case 1: {
      // flip one bit
      if (len === 0) return rng.bytes(1);
      const out = copy();
      out[rng.int(len)]! ^= 1 << rng.int(8);
      return out;
    }
    case 2: {
      // set one byte to a random value
      if (len === 0) return rng.bytes(1);
      const out = copy();
      out[rng.int(len)] = rng.int(256);
      return out;
    }
    case 3: {
      // truncate: usually by a little, sometimes to anything
      if (len === 0) return input;
      const cut = rng.chance(0.6) ? rng.range(1, Math.min(len, 17)) : rng.range(1, len);
      return input.slice(0, len - cut);
    }
    case 4: {
      // extend: usually by a little, rarely past MAX_MESSAGE_SIZE
      const extra = rng.chance(0.995) ? rng.range(1, 33) : rng.range(1, Math.max(1, maxLength - len));
      return concatBytes(input, rng.chance(0.5) ? rng.bytes(extra) : new Uint8Array(extra));
    }
    case 5: {
      // a non-zero reserved byte (1..3)
      const out = len >= 4 ? copy() : concatBytes(input, new Uint8Array(4 - len));
      out[rng.range(1, 3)] = rng.range(1, 255);
      return out;
    }
    case 6: {
      // a different (or the same) message type
      const out = len >= 1 ? copy() : new Uint8Array(1);
      out[0] = rng.pick([0, 1, 2, 3, 4, 5, 0x80, 0xff, rng.int(256)]);
      return out;
    }
    case 7: {
      // overwrite a random range with random bytes
      if (len === 0) return rng.bytes(rng.range(1, 8));
      const out = copy();
      const start = rng.int(len);
      const n = Math.min(len - start, rng.range(1, 32));
      out.set(rng.bytes(n), start);
      return out;
    }
    case 8: {
      // zero or saturate a random range
      if (len === 0) return new Uint8Array(1);
      const out = copy();
      const start = rng.int(len);
      out.fill(rng.chance(0.5) ? 0 : 0xff, start, Math.min(len, start + rng.range(1, 32)));
      return out;
    }
    case 9: {
      // insert a byte (shifts everything after it)
      const at = rng.int(len + 1);
      return concatBytes(input.subarray(0, at), Uint8Array.of(rng.int(256)), input.subarray(at));
    }
    case 10: {
      // delete a byte
      if (len === 0) return input;
      const at = rng.int(len);
      return concatBytes(input.subarray(0, at), input.subarray(at + 1));
    }
    case 11: {
      // overwrite a whole field with random bytes or all zeros
      const field = pickField(rng, ctx, len);
      if (field === null) return mutateOnce(rng, input, ctx);
      const out = copy();
      out.set(rng.chance(0.8) ? rng.bytes(field.length) : new Uint8Array(field.length), field.offset);
      return out;
    }
    case 12: {
      // an index field (sender or receiver) set to a chosen index
      if (len < 12 || ctx.indices === undefined || ctx.indices.length === 0) return mutateOnce(rng, input, ctx);
      const out = copy();
      new DataView(out.buffer).setUint32(rng.chance(0.5) ? 4 : 8, rng.pick(ctx.indices), true);
      return out;
    }
    default: {
      // a key field set to a special point, or the counter to a special value
      const out = copy();
      if (ctx.keys !== undefined && ctx.keys.length > 0 && rng.chance(0.5)) {
        const field = (ctx.fields ?? []).filter((f) => f.length === 32 && f.offset + 32 <= len);
        if (field.length > 0) {
          out.set(rng.pick(ctx.keys), rng.pick(field).offset);
          return out;
        }
      }
      if (ctx.counters !== undefined && ctx.counters.length > 0 && len >= 16) {
        new DataView(out.buffer).setBigUint64(8, BigInt.asUintN(64, rng.pick(ctx.counters)), true);
        return out;
      }
      return mutateOnce(rng, input, ctx);
    }
  }
}

function pickField(rng: Rng, ctx: MutationContext, len: number): Field | null {
  const fields = (ctx.fields ?? []).filter((f) => f.offset + f.length <= len);
  return fields.length === 0 ? null : rng.pick(fields);
}

/** 1..maxOps mutations in a row. */
export function mutate(rng: Rng, input: Uint8Array, ctx: MutationContext = {}, maxOps = 3): Uint8Array {
  let out = input;
  const ops = rng.range(1, maxOps);
  for (let i = 0; i < ops; i++) out = mutateOnce(rng, out, ctx);
  return out;
}

/**
 * Present `bytes` the way a caller might: a plain Uint8Array, a Node Buffer,
 * or a view at an odd offset into a larger buffer with garbage around it
 * (parsers must honour byteOffset). The content is always `bytes`.
 */
export function present(rng: Rng, bytes: Uint8Array): Uint8Array {
  const how = rng.int(4);
  if (how === 0) return bytes;
  if (how === 1) return Buffer.from(bytes);
  const before = rng.range(1, 13);
  const after = rng.range(0, 13);
  const backing = rng.bytes(before + bytes.length + after);
  backing.set(bytes, before);
  return backing.subarray(before, before + bytes.length);
}
