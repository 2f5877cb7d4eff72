/**
 * The receive replay window (RFC 6479 with the Linux kernel's and
 * wireguard-go's semantics).
 *
 * tswg keeps 256 blocks of 32 bits; wireguard-go (replay/replay.go) keeps
 * 128 blocks of 64 bits and the kernel (drivers/net/wireguard/receive.c,
 * counter_validate) 8192 bits in longs, indexed by counter + 1. All three
 * accept a counter iff it is below the limit, has not been accepted before,
 * and is at most 8128 (= 8192 - 64) behind the highest accepted counter.
 * The randomized test runs all of them (ports below) and a plain Set model
 * on the same inputs.
 */
import { describe, expect, it } from 'vitest';
import { REJECT_AFTER_MESSAGES } from '../../src/noise/constants.js';
import { REPLAY_WINDOW_SIZE, ReplayWindow } from '../../src/noise/replay.js';
import { Prng } from '../helpers/handshake-fixtures.js';

const W = 8128n;

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
    const prng = new Prng(seed);
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
