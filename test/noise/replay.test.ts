/**
 * The receive replay window (RFC 6479 with the Linux kernel's and
 * wireguard-go's semantics).
 *
 * tswg keeps 512 blocks of 16 bits; wireguard-go (replay/replay.go) keeps
 * 128 blocks of 64 bits and the kernel (drivers/net/wireguard/receive.c,
 * counter_validate) 8192 bits in longs, indexed by counter + 1. All three
 * accept a counter iff it is below the limit, has not been accepted before,
 * and is at most 8128 (= 8192 - 64) behind the highest accepted counter.
 * The randomized test runs all of them (ports below) and a plain Set model
 * on the same inputs.
 *
 * The window takes the 64-bit counter as two 32-bit words (the receive fast
 * path allocates nothing); a copy of the earlier all-bigint window is kept
 * below as the oracle for the word arithmetic: where the low word wraps,
 * across the window's edge, at the limit and over big jumps.
 */
import { describe, expect, it } from 'vitest';
import { REJECT_AFTER_MESSAGES } from '../../src/noise/constants.js';
import { REPLAY_WINDOW_SIZE, ReplayWindow } from '../../src/noise/replay.js';
import { Rng } from '../helpers/fuzz.js';

const W = 8128n;
const WORD = 1n << 32n;
const MAX_U64 = (1n << 64n) - 1n;

const lowOf = (counter: bigint) => Number(counter & 0xffff_ffffn);
const highOf = (counter: bigint) => Number(counter >> 32n);

/** The earlier window, all bigint arithmetic: the oracle for the word-based one. */
class BigIntReplayWindow {
  private readonly ring = new Uint32Array(256);
  private last = 0n;
  isFresh(counter: bigint, limit: bigint = REJECT_AFTER_MESSAGES): boolean {
    if (counter >= limit || counter < 0n) return false;
    if (counter > this.last) return true;
    if (this.last - counter > W) return false;
    return (this.ring[Number((counter >> 5n) & 255n)]! & (1 << Number(counter & 31n))) === 0;
  }
  check(counter: bigint, limit: bigint = REJECT_AFTER_MESSAGES): boolean {
    if (counter >= limit || counter < 0n) return false;
    const blockIndex = counter >> 5n;
    if (counter > this.last) {
      const current = this.last >> 5n;
      let diff = blockIndex - current;
      if (diff > 256n) diff = 256n;
      for (let i = current + 1n; i <= current + diff; i++) this.ring[Number(i & 255n)] = 0;
      this.last = counter;
    } else if (this.last - counter > W) {
      return false;
    }
    const slot = Number(blockIndex & 255n);
    const bit = 1 << Number(counter & 31n);
    const old = this.ring[slot]!;
    if ((old & bit) !== 0) return false;
    this.ring[slot] = old | bit;
    return true;
  }
}

/** Port of wireguard-go replay.Filter.ValidateCounter (64-bit blocks, 128 of them). */
class GoFilter {
  private last = 0n;
  private readonly ring = new BigUint64Array(128);
  validate(counter: bigint, limit: bigint): boolean {
    if (counter >= limit) return false;
    let indexBlock = counter >> 6n;
    if (counter > this.last) {
      const current = this.last >> 6n;
      let diff = indexBlock - current;
      if (diff > 128n) diff = 128n;
      for (let i = current + 1n; i <= current + diff; i++) this.ring[Number(i & 127n)] = 0n;
      this.last = counter;
    } else if (this.last - counter > (128n - 1n) * 64n) {
      return false;
    }
    indexBlock &= 127n;
    const bit = 1n << (counter & 63n);
    const old = this.ring[Number(indexBlock)]!;
    this.ring[Number(indexBlock)] = old | bit;
    return (old | bit) !== old;
  }
}

/** Port of the kernel's counter_validate (BITS_PER_LONG = 64, COUNTER_BITS_TOTAL = 8192). */
class KernelCounter {
  private counter = 0n; // highest accepted + 1
  private readonly backtrack = new BigUint64Array(8192 / 64);
  validate(theirCounter: bigint, limit: bigint): boolean {
    if (this.counter >= limit + 1n || theirCounter >= limit) return false;
    const c = theirCounter + 1n;
    if (8192n - 64n + c < this.counter) return false;
    let index = c >> 6n;
    if (c > this.counter) {
      const indexCurrent = this.counter >> 6n;
      const top = index - indexCurrent < 128n ? index - indexCurrent : 128n;
      for (let i = 1n; i <= top; i++) this.backtrack[Number((i + indexCurrent) & 127n)] = 0n;
      this.counter = c;
    }
    index &= 127n;
    const bit = 1n << (c & 63n);
    const old = this.backtrack[Number(index)]!;
    this.backtrack[Number(index)] = old | bit;
    return (old & bit) === 0n;
  }
}

/** The specification as a set: accept iff below the limit, unseen, and no more than W behind the max. */
class SetModel {
  private readonly seen = new Set<bigint>();
  private max = 0n;
  validate(counter: bigint, limit: bigint): boolean {
    if (counter < 0n || counter >= limit) return false;
    if (counter <= this.max && this.max - counter > W) return false;
    if (this.seen.has(counter)) return false;
    this.seen.add(counter);
    if (counter > this.max) {
      this.max = counter;
      if (this.seen.size > 4 * Number(W)) for (const c of this.seen) if (this.max - c > W) this.seen.delete(c);
    }
    return true;
  }
}

describe('ReplayWindow', () => {
  it('has the kernel window size: 8192 - 64', () => {
    expect(REPLAY_WINDOW_SIZE).toBe(8128n);
  });

  it('accepts in-order counters once each', () => {
    const w = new ReplayWindow();
    const refused: bigint[] = [];
    for (let c = 0n; c < 20_000n; c++) if (!w.check(c)) refused.push(c);
    expect(refused).toEqual([]);
    for (let c = 20_000n - 8128n; c < 20_000n; c += 97n) expect(w.check(c)).toBe(false);
    expect(w.check(19_999n)).toBe(false);
  });

  it('starts empty: 0 is accepted once, and so is any first counter', () => {
    const w = new ReplayWindow();
    expect(w.check(0n)).toBe(true);
    expect(w.check(0n)).toBe(false);
    const v = new ReplayWindow();
    expect(v.check(5n)).toBe(true);
    expect(v.check(0n)).toBe(true);
    expect(v.check(5n)).toBe(false);
    expect(v.check(0n)).toBe(false);
  });

  it('refuses duplicates', () => {
    const w = new ReplayWindow();
    for (const c of [0n, 1n, 2n, 100n, 31n, 32n, 33n, 63n, 64n, 65n]) {
      expect(w.check(c)).toBe(true);
      expect(w.check(c)).toBe(false);
    }
  });

  it('accepts out-of-order counters within the window exactly once', () => {
    const w = new ReplayWindow();
    expect(w.check(1000n)).toBe(true);
    const order = [999n, 0n, 500n, 1n, 998n, 31n, 32n, 33n, 64n, 963n];
    for (const c of order) expect(w.check(c)).toBe(true);
    for (const c of order) expect(w.check(c)).toBe(false);
    expect(w.check(1000n)).toBe(false);
    expect(w.check(1001n)).toBe(true);
  });

  it('the edge is exact: 8128 behind the highest accepted is fine, 8129 is not', () => {
    for (const top of [8128n, 8129n, 10_000n, 65_535n, 1n << 40n, (1n << 62n) + 12345n]) {
      const w = new ReplayWindow();
      expect(w.check(top)).toBe(true);
      expect(w.check(top - 8129n), `top ${top}`).toBe(false);
      expect(w.check(top - 8128n), `top ${top}`).toBe(true);
      expect(w.check(top - 8128n)).toBe(false);
      expect(w.check(top - 8127n)).toBe(true);
      expect(w.check(top - 1n)).toBe(true);
    }
    // After moving the top by one, the old edge falls out.
    const w = new ReplayWindow();
    expect(w.check(10_000n)).toBe(true);
    expect(w.check(10_001n)).toBe(true);
    expect(w.check(10_000n - 8128n)).toBe(false);
    expect(w.check(10_001n - 8128n)).toBe(true);
  });

  it('a big jump forward clears the ring: everything in the new window that was never seen is accepted', () => {
    const w = new ReplayWindow();
    for (let c = 0n; c < 8192n; c++) expect(w.check(c)).toBe(true); // every bit of the ring set once
    for (const jump of [8192n * 3n + 5n, 8192n * 3n + 5n + 8192n + 31n, 1n << 50n]) {
      expect(w.check(jump)).toBe(true);
      for (let c = jump - 8128n; c < jump; c++) {
        if (!w.check(c)) throw new Error(`counter ${c} refused after jumping to ${jump}`);
      }
      for (let c = jump - 8128n; c <= jump; c += 61n) expect(w.check(c)).toBe(false);
    }
  });

  it('a jump of less than the window keeps the bits still inside it', () => {
    const w = new ReplayWindow();
    for (let c = 0n; c < 5000n; c++) w.check(c);
    expect(w.check(9000n)).toBe(true);
    // 9000 - 8128 = 872: 872..4999 were seen and are still in the window.
    for (let c = 872n; c < 5000n; c += 7n) expect(w.check(c)).toBe(false);
    for (let c = 5000n; c < 9000n; c += 7n) expect(w.check(c)).toBe(true);
    expect(w.check(871n)).toBe(false); // out of the window
  });

  it('refuses counters at or above the limit, and negative ones', () => {
    const w = new ReplayWindow();
    expect(w.check(REJECT_AFTER_MESSAGES)).toBe(false);
    expect(w.check(REJECT_AFTER_MESSAGES + 1n)).toBe(false);
    expect(w.check((1n << 64n) - 1n)).toBe(false);
    expect(w.check(REJECT_AFTER_MESSAGES - 1n)).toBe(true);
    expect(w.check(REJECT_AFTER_MESSAGES - 1n)).toBe(false);
    const v = new ReplayWindow();
    expect(v.check(5n, 5n)).toBe(false);
    expect(v.check(4n, 5n)).toBe(true);
    expect(v.check(-1n)).toBe(false);
    // Refusing an over-limit counter does not move the window.
    const u = new ReplayWindow();
    expect(u.check(10n, 1000n)).toBe(true);
    expect(u.check(1_000_000n, 1000n)).toBe(false);
    expect(u.check(11n, 1000n)).toBe(true);
    expect(u.check(9n, 1000n)).toBe(true);
  });

  it('reset() empties the window', () => {
    const w = new ReplayWindow();
    for (let c = 0n; c < 100n; c++) w.check(c);
    w.reset();
    for (let c = 0n; c < 100n; c++) expect(w.check(c)).toBe(true);
  });

  it('the ports of wireguard-go and the kernel agree with the set model on hand-picked cases', () => {
    const script = [0n, 0n, 5n, 3n, 8133n, 5n, 4n, 6n, 8134n, 6n, 7n, 100_000n, 91_872n, 91_871n, 100_000n];
    const results = (v: { validate(c: bigint, l: bigint): boolean }) => script.map((c) => v.validate(c, REJECT_AFTER_MESSAGES));
    const expected = results(new SetModel());
    expect(expected).toEqual([true, false, true, true, true, false, false, true, true, false, true, true, true, false, false]);
    expect(results(new GoFilter())).toEqual(expected);
    expect(results(new KernelCounter())).toEqual(expected);
    const w = new ReplayWindow();
    expect(script.map((c) => w.check(c))).toEqual(expected);
  });

  it.each([1, 2, 3, 4, 5, 6])('randomized: agrees with the set model, wireguard-go and the kernel (seed %i)', (seed) => {
    const prng = new Rng(seed);
    const limit = seed % 2 === 0 ? REJECT_AFTER_MESSAGES : 1n << 20n;
    const w = new ReplayWindow();
    const models = { set: new SetModel(), go: new GoFilter(), kernel: new KernelCounter() };
    let top = seed === 3 ? limit - 50_000n : 0n; // one run lives near the limit
    const recent: bigint[] = [];
    let accepted = 0;
    for (let step = 0; step < 12_000; step++) {
      let c: bigint;
      const r = prng.int(100);
      if (r < 35) c = top + BigInt(prng.int(4)); // mostly in order
      else if (r < 55) c = top - BigInt(prng.int(8200)); // anywhere around the window
      else if (r < 65) c = top - W + BigInt(prng.int(5)) - 2n; // the edge
      else if (r < 80 && recent.length > 0) c = recent[prng.int(recent.length)]!; // duplicates
      else if (r < 85) c = top + BigInt(prng.int(9000)); // forward jumps within a ring
      else if (r < 88) c = top + BigInt(prng.int(200_000)); // big jumps
      else if (r < 90) c = limit - BigInt(prng.int(3)); // around the limit
      else c = top + BigInt(prng.int(64)) - 32n;
      if (c < 0n) c = BigInt(prng.int(4));
      const got = w.check(c, limit);
      const want = models.set.validate(c, limit);
      const go = models.go.validate(c, limit);
      const kernel = models.kernel.validate(c, limit);
      if (got !== want || go !== want || kernel !== want) {
        throw new Error(`step ${step}: counter ${c} (top ${top}): tswg ${got}, set ${want}, wireguard-go ${go}, kernel ${kernel}`);
      }
      if (got) {
        accepted++;
        if (c > top) top = c;
        recent.push(c);
        if (recent.length > 64) recent.shift();
      }
    }
    expect(accepted).toBeGreaterThan(1_500);
  });
});

describe('ReplayWindow on two 32-bit words', () => {
  /** Check a counter through the word API, asking isFreshWords first (it must agree and change nothing). */
  function checkWords(w: ReplayWindow, counter: bigint): boolean {
    const fresh = w.isFreshWords(lowOf(counter), highOf(counter));
    expect(w.isFreshWords(lowOf(counter), highOf(counter))).toBe(fresh);
    const accepted = w.checkWords(lowOf(counter), highOf(counter));
    expect(accepted, `counter ${counter}`).toBe(fresh);
    return accepted;
  }

  it('the low word wrapping: in order across 2^32, 2·2^32 and 2^63, each counter once', () => {
    for (const boundary of [WORD, 2n * WORD, 1n << 63n]) {
      const w = new ReplayWindow();
      for (let c = boundary - 3000n; c < boundary + 3000n; c++) if (!checkWords(w, c)) throw new Error(`counter ${c} refused`);
      for (let c = boundary - 3000n; c < boundary + 3000n; c += 37n) expect(checkWords(w, c)).toBe(false);
    }
  });

  it('the window edge across the high word: 8128 behind is fine, 8129 is not', () => {
    for (const top of [WORD, WORD + 1n, WORD + 100n, WORD + 8127n, WORD + 8128n, WORD + 8129n, 5n * WORD + 31n, 5n * WORD + 32n]) {
      const w = new ReplayWindow();
      expect(checkWords(w, top)).toBe(true);
      expect(checkWords(w, top - 8129n), `top ${top}`).toBe(false);
      expect(checkWords(w, top - 8128n), `top ${top}`).toBe(true);
      expect(checkWords(w, top - 8128n)).toBe(false);
      expect(checkWords(w, top - 1n)).toBe(true);
      // A whole high word behind (same low word) is far out of the window.
      if (top >= WORD) expect(checkWords(w, top - WORD)).toBe(false);
    }
  });

  it('bits seen just below 2^32 stay seen after the top moves just past it', () => {
    const w = new ReplayWindow();
    const seen = [WORD - 1n, WORD - 32n, WORD - 33n, WORD - 4000n];
    for (const c of seen) expect(checkWords(w, c)).toBe(true);
    expect(checkWords(w, WORD + 10n)).toBe(true); // one block forward: only the new block is cleared
    for (const c of seen) expect(checkWords(w, c)).toBe(false);
    expect(checkWords(w, WORD - 2n)).toBe(true);
    expect(checkWords(w, WORD + 9n)).toBe(true);
  });

  it('REJECT_AFTER_MESSAGES: refused at and over it, accepted just below it', () => {
    const w = new ReplayWindow();
    for (const c of [REJECT_AFTER_MESSAGES, REJECT_AFTER_MESSAGES + 1n, REJECT_AFTER_MESSAGES + 0x1000n, MAX_U64]) expect(checkWords(w, c)).toBe(false);
    expect(checkWords(w, REJECT_AFTER_MESSAGES - 1n)).toBe(true);
    expect(checkWords(w, REJECT_AFTER_MESSAGES - 1n)).toBe(false);
    expect(checkWords(w, REJECT_AFTER_MESSAGES - 1n - 8128n)).toBe(true);
    expect(checkWords(w, REJECT_AFTER_MESSAGES - 1n - 8129n)).toBe(false);
    // The bigint wrapper refuses counters no header can carry.
    expect(w.check(1n << 64n, 1n << 65n)).toBe(false);
    expect(w.isFresh(-1n)).toBe(false);
  });

  it('big jumps (a block, a ring, a high word and more) clear exactly what the old window clears', () => {
    const jumps = [1n, 31n, 32n, 33n, 8192n, 8193n, 8192n * 2n, WORD - 1n, WORD, WORD + 1n, WORD + 8192n, 2n * WORD - 1n, 2n * WORD, 3n * WORD + 17n, 1n << 40n, 1n << 62n];
    for (const start of [0n, 100n, WORD - 5000n, WORD - 1n, 7n * WORD + 4096n]) {
      for (const jump of jumps) {
        const w = new ReplayWindow();
        const oracle = new BigIntReplayWindow();
        const script = [start, start - 7n, start - 40n, start - 3000n, start + jump, start + jump - 1n, start + jump - 8128n, start + jump - 8129n, start, start - 7n, start - 3000n];
        for (const c of script) {
          if (c < 0n) continue;
          expect({ start, jump, c, accepted: checkWords(w, c) }).toEqual({ start, jump, c, accepted: oracle.check(c) });
        }
        // Every counter of the window now answers as in the old window.
        const top = start + jump;
        const differing: bigint[] = [];
        for (let c = top - 8200n; c <= top + 40n; c += 3n) if (c >= 0n && w.isFreshWords(lowOf(c), highOf(c)) !== oracle.isFresh(c)) differing.push(c);
        expect({ start, jump, differing }).toEqual({ start, jump, differing: [] });
      }
    }
  });

  it.each([11, 12, 13, 14])('randomized: words, bigint wrapper and the old bigint window agree (seed %i)', (seed) => {
    const prng = new Rng(seed);
    const words = new ReplayWindow();
    const wrapped = new ReplayWindow();
    const oracle = new BigIntReplayWindow();
    // Start just below a high-word boundary (or the limit), so the low word wraps under the test.
    const boundaries = [WORD, 2n * WORD, 0xffff_fff0n * WORD, REJECT_AFTER_MESSAGES];
    let top = boundaries[seed % boundaries.length]! - BigInt(20_000 + prng.int(5000));
    const recent: bigint[] = [];
    for (let step = 0; step < 10_000; step++) {
      const r = prng.int(100);
      let c: bigint;
      if (r < 40) c = top + BigInt(1 + prng.int(4));
      else if (r < 60) c = top - BigInt(prng.int(8300));
      else if (r < 68) c = top - W + BigInt(prng.int(5)) - 2n;
      else if (r < 80 && recent.length > 0) c = recent[prng.int(recent.length)]!;
      else if (r < 88) c = top + BigInt(prng.int(10_000));
      else if (r < 91) c = top + (BigInt(prng.int(3)) << 32n) + BigInt(prng.int(9000)) - 4500n; // a high word or two ahead
      else if (r < 94) c = top - (BigInt(1 + prng.int(2)) << 32n) + BigInt(prng.int(9000)); // a high word or two behind
      else if (r < 97) c = REJECT_AFTER_MESSAGES - 2n + BigInt(prng.int(4));
      else {
        // Anywhere in the 64-bit range: asked only, so the window stays where the test drives it.
        c = prng.u64();
        expect({ step, c, fresh: words.isFreshWords(lowOf(c), highOf(c)) }).toEqual({ step, c, fresh: oracle.isFresh(c) });
        continue;
      }
      if (c < 0n) c = 0n;
      if (c > MAX_U64) c = MAX_U64;
      const want = oracle.isFresh(c);
      expect(wrapped.isFresh(c)).toBe(want);
      const got = checkWords(words, c);
      const wrappedGot = wrapped.check(c);
      const oracleGot = oracle.check(c);
      if (got !== oracleGot || wrappedGot !== oracleGot || want !== oracleGot) {
        throw new Error(`step ${step}: counter ${c} (top ${top}): words ${got}, bigint wrapper ${wrappedGot}, old window ${oracleGot}`);
      }
      if (got) {
        if (c > top) top = c;
        recent.push(c);
        if (recent.length > 64) recent.shift();
      }
    }
  });
});
