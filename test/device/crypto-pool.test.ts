/**
 * The packet AEAD on worker threads (CryptoPool + TransportBatch) against
 * the inline fast path: the same bytes on the wire, per-peer order kept with
 * several workers and mixed sizes, replays and forgeries refused, and a
 * worker killed mid-stream replaced while the stream goes on.
 */
import { afterEach, describe, expect, it } from 'vitest';
import { TransportBatch, type TransportDrop } from '../../src/device/crypto-batch.js';
import { CryptoPool, cryptoWorkersFromEnvironment, defaultCryptoWorkers } from '../../src/device/crypto-pool.js';
import { silentLogger, type Logger } from '../../src/device/logger.js';
import { ManualClock } from '../../src/noise/clock.js';
import { StaticIdentity } from '../../src/noise/identity.js';
import { generatePrivateKey } from '../../src/noise/keys.js';
import { parseTransportHeader } from '../../src/noise/messages.js';
import { TransportSlot } from '../../src/noise/transport-slot.js';
import { defaultPrimitives } from '../../src/noise/default-backend.js';
import type { Primitives } from '../../src/noise/primitives.js';
import { CLAIMED } from '../../src/device/crypto-jobs.js';
import { Tunnel } from '../../src/noise/tunnel.js';
import { Rng } from '../helpers/fuzz.js';

/** Poll until `condition` holds; a new worker thread can take seconds to start on a loaded machine. The deadline only matters on failure. */
async function until(condition: () => boolean, timeoutMs = 30_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!condition() && Date.now() < deadline) await new Promise((resolve) => setTimeout(resolve, 20));
}

const SLOT_BYTES = 4096;
const MTU = 1420;
const pools: CryptoPool[] = [];

afterEach(async () => {
  await Promise.all(pools.splice(0).map((pool) => pool.close()));
});

function makePool(workers: number, options: { log?: Logger; stallTimeoutMs?: number } = {}): CryptoPool {
  const pool = new CryptoPool({ workers, log: options.log ?? silentLogger, ...(options.stallTimeoutMs !== undefined ? { stallTimeoutMs: options.stallTimeoutMs } : {}) });
  pools.push(pool);
  return pool;
}

/** Two tunnels after a handshake: a initiated, b confirmed the session. */
function connectedPair(clock = new ManualClock()): { a: Tunnel; b: Tunnel } {
  const idA = new StaticIdentity(generatePrivateKey(), undefined, clock);
  const idB = new StaticIdentity(generatePrivateKey(), undefined, clock);
  const a = new Tunnel({ identity: idA, peerPublicKey: idB.publicKey, clock, jitter: () => 0, mtu: MTU });
  const b = new Tunnel({ identity: idB, peerPublicKey: idA.publicKey, clock, jitter: () => 0, mtu: MTU });
  const response = b.decapsulate(a.initiateHandshake().network[0]!).network[0]!;
  const keepalive = a.decapsulate(response).network[0]!;
  expect(b.decapsulate(keepalive).error).toBeNull();
  return { a, b };
}

function sharedSlots(count: number): TransportSlot[] {
  const memory = new SharedArrayBuffer(count * SLOT_BYTES);
  return Array.from({ length: count }, (_, i) => new TransportSlot(new Uint8Array(memory, i * SLOT_BYTES, SLOT_BYTES)));
}

/** An IPv4-looking packet of `size` bytes that carries `id` and a pattern. */
function packet(id: number, size: number): Uint8Array {
  const bytes = new Uint8Array(size);
  for (let i = 0; i < size; i++) bytes[i] = (id * 31 + i) & 0xff;
  bytes[0] = 0x45;
  new DataView(bytes.buffer).setUint32(4, id);
  return bytes;
}

interface Delivery {
  owner: number;
  bytes: Uint8Array;
}

/** A batch that records, in the order the handlers hear them, what was sealed, opened and dropped. */
/** A packet large enough that one AEAD takes a while on the pure-JS backend. */
const LARGE_PACKET = 65_000;

/** 64 slots in one shared buffer, each room for a LARGE_PACKET and its header and tag. */
function largeSlots(): TransportSlot[] {
  const slotBytes = LARGE_PACKET + 64;
  const memory = new SharedArrayBuffer(64 * slotBytes);
  return Array.from({ length: 64 }, (_, i) => new TransportSlot(new Uint8Array(memory, i * slotBytes, slotBytes)));
}

function recordingBatch(pool: CryptoPool) {
  const sealed: Delivery[] = [];
  const opened: Delivery[] = [];
  const dropped: { owner: number; reason: TransportDrop }[] = [];
  const batch = new TransportBatch<number, null>(pool, {
    sealed: (owner, slot, length) => sealed.push({ owner, bytes: slot.bytes.slice(0, length) }),
    opened: (owner, slot, length) => opened.push({ owner, bytes: slot.plaintext(length).slice() }),
    dropped: (owner, reason) => dropped.push({ owner, reason }),
  });
  return { batch, sealed, opened, dropped };
}

/** Seal `packets` for `tunnels[peerOf[i]]` in batches of the slots' count; returns the datagrams in order. */
function sealAll(batch: TransportBatch<number, null>, slots: TransportSlot[], tunnels: Tunnel[], packets: Uint8Array[], peerOf: number[]): void {
  packets.forEach((p, i) => {
    const slot = slots[i % slots.length]!;
    slot.packetArea.set(p);
    expect(batch.seal(tunnels[peerOf[i]!]!, slot, p.length, i, null)).toBe(true);
    if (i % slots.length === slots.length - 1) batch.finish();
  });
  batch.finish();
}

function openAll(batch: TransportBatch<number, null>, slots: TransportSlot[], tunnels: Tunnel[], datagrams: Uint8Array[], peerOf: number[]): boolean[] {
  const accepted = datagrams.map((d, i) => {
    const slot = slots[i % slots.length]!;
    slot.bytes.set(d);
    const taken = batch.open(tunnels[peerOf[i]!]!, slot, d.length, i, null);
    if (i % slots.length === slots.length - 1) batch.finish();
    return taken;
  });
  batch.finish();
  return accepted;
}

describe('crypto workers', () => {
  it('seal exactly the bytes the inline fast path seals', async () => {
    const pool = makePool(2);
    await pool.ready();
    const { a } = connectedPair();
    const { batch, sealed } = recordingBatch(pool);
    const sizes = [1420, 8, 15, 16, 17, 100, 576, 1419, 1280, 40];
    const packets = Array.from({ length: 200 }, (_, i) => packet(i, sizes[i % sizes.length]!));
    const keypair = a.keypairs.current!;
    const firstCounter = keypair.sendCounter;
    sealAll(batch, sharedSlots(64), [a], packets, packets.map(() => 0));
    expect(sealed.map((s) => s.owner)).toEqual(packets.map((_, i) => i));

    keypair.sendCounter = firstCounter;
    const inlineSlot = new TransportSlot(new Uint8Array(SLOT_BYTES));
    packets.forEach((p, i) => {
      inlineSlot.packetArea.set(p);
      const length = a.sealTransport(inlineSlot, p.length);
      expect(Buffer.from(sealed[i]!.bytes).equals(inlineSlot.bytes.subarray(0, length))).toBe(true);
    });
  });

  it('keep each peer in order with several workers and packets of mixed sizes', async () => {
    const pool = makePool(3);
    await pool.ready();
    const pairs = Array.from({ length: 5 }, () => connectedPair());
    const senders = pairs.map((pair) => pair.a);
    const receivers = pairs.map((pair) => pair.b);
    const { batch, sealed, opened, dropped } = recordingBatch(pool);
    const rng = new Rng(7);
    const random = (n: number): number => rng.int(n);
    const count = 3000;
    const packets = Array.from({ length: count }, (_, i) => packet(i, 20 + random(1401)));
    const peerOf = packets.map(() => random(pairs.length));
    sealAll(batch, sharedSlots(64), senders, packets, peerOf);
    expect(sealed.map((s) => s.owner)).toEqual(packets.map((_, i) => i));
    // Each peer's counters rise by one, in the order its packets came.
    const counters = pairs.map(() => [] as bigint[]);
    for (const { owner, bytes } of sealed) counters[peerOf[owner]!]!.push(parseTransportHeader(bytes)!.counter);
    for (const list of counters) list.forEach((counter, i) => i > 0 && expect(counter).toBe(list[i - 1]! + 1n));

    const rxBefore = receivers.reduce((sum, b) => sum + b.rxBytes, 0);
    const accepted = openAll(batch, sharedSlots(64), receivers, sealed.map((s) => s.bytes), peerOf);
    expect(accepted.every(Boolean)).toBe(true);
    expect(dropped).toEqual([]);
    expect(opened.map((o) => o.owner)).toEqual(packets.map((_, i) => i));
    for (const { owner, bytes } of opened) expect(Buffer.from(bytes.subarray(0, packets[owner]!.length)).equals(packets[owner]!)).toBe(true);
    expect(receivers.reduce((sum, b) => sum + b.rxBytes, 0) - rxBefore).toBe(sealed.reduce((sum, s) => sum + s.bytes.length, 0));
  });

  it('refuse a replayed and a forged datagram; a forgery leaves its counter usable', async () => {
    const pool = makePool(2);
    await pool.ready();
    const { a, b } = connectedPair();
    const { batch, sealed, opened, dropped } = recordingBatch(pool);
    // Enough packets that the batch is shared with the workers, not run on this thread alone.
    const packets = Array.from({ length: 12 }, (_, i) => packet(i, 100 + 50 * i));
    sealAll(batch, sharedSlots(16), [a], packets, packets.map(() => 0));
    const datagrams = sealed.map((s) => s.bytes);
    const [d0, d1] = datagrams;
    const forged = d1!.slice();
    forged[40]! ^= 1;
    // One batch: d0 twice (the second is a replay), the forgery, then the real d1 and the rest.
    const arriving = [d0!, d0!, forged, ...datagrams.slice(1)];
    const accepted = openAll(batch, sharedSlots(16), [b], arriving, arriving.map(() => 0));
    expect(accepted.every(Boolean)).toBe(true);
    expect(dropped).toEqual([
      { owner: 1, reason: 'replayed' },
      { owner: 2, reason: 'forged' },
    ]);
    expect(opened.map((o) => o.owner)).toEqual([0, ...arriving.slice(3).map((_, i) => i + 3)]);
    // Later, d0 again: the window refuses it before any AEAD, and the ordinary path says why.
    const slot = sharedSlots(1)[0]!;
    slot.bytes.set(d0!);
    expect(batch.open(b, slot, d0!.length, 9, null)).toBe(false);
    expect(b.decapsulate(d0!).error?.code).toBe('ReplayedCounter');
  });

  it('replace a worker killed mid-stream; the stream goes on and every packet is delivered or counted', async () => {
    const lines: string[] = [];
    const log: Logger = { verbose: () => undefined, error: (line) => lines.push(line) };
    const pool = makePool(2, { log, stallTimeoutMs: 100 });
    await pool.ready();
    const { a, b } = connectedPair();
    const { batch, sealed, opened, dropped } = recordingBatch(pool);
    const sendSlots = sharedSlots(64);
    const receiveSlots = sharedSlots(64);
    let next = 0;
    const stream = (batches: number) => {
      for (let n = 0; n < batches; n++) {
        const packets = Array.from({ length: 64 }, () => packet(next++, 1420));
        const from = sealed.length;
        sealAll(batch, sendSlots, [a], packets, packets.map(() => 0));
        openAll(batch, receiveSlots, [b], sealed.slice(from).map((s) => s.bytes), sealed.slice(from).map(() => 0));
      }
    };
    stream(20);
    const victim = pool.threads[0]!;
    void victim.terminate();
    stream(40); // the termination lands somewhere in here
    await until(() => pool.replaced > 0);
    expect(pool.replaced).toBe(1);
    expect(pool.size).toBe(2);
    expect(pool.threads).not.toContain(victim);
    expect(lines.some((line) => line.includes('exited') && line.includes('starting another'))).toBe(true);
    const before = opened.length;
    stream(20);
    expect(opened.length - before).toBe(20 * 64);
    // Nothing vanished: every packet either arrived (in order) or was dropped and counted.
    const sealedLost = dropped.filter((d) => d.reason === 'lost').length;
    expect(dropped.every((d) => d.reason === 'lost')).toBe(true);
    expect(pool.lost).toBe(sealedLost);
    expect(opened.length + sealedLost).toBe(next);
    const ids = opened.map((o) => new DataView(o.bytes.buffer).getUint32(4));
    expect(ids).toEqual([...ids].sort((x, y) => x - y));
  });

  it('drop and count the jobs of a worker that stalls past the timeout, terminate it and start another', async () => {
    const lines: string[] = [];
    const log: Logger = { verbose: () => undefined, error: (line) => lines.push(line) };
    // The workers run the pure-JS backend (many times slower than this thread's libsodium) and the
    // timeout is 0: a worker still busy when this thread runs out of jobs has stalled.
    const saved = process.env.TSWG_CRYPTO;
    process.env.TSWG_CRYPTO = 'noble';
    const pool = new CryptoPool({ workers: 2, log, stallTimeoutMs: 0, mainSpinChecks: 0 });
    if (saved === undefined) delete process.env.TSWG_CRYPTO;
    else process.env.TSWG_CRYPTO = saved;
    pools.push(pool);
    const { a } = connectedPair();
    const { batch, sealed, dropped } = recordingBatch(pool);
    const size = LARGE_PACKET;
    const big = largeSlots();
    let batches = 0;
    // A worker might just have finished when this thread did; a few batches make a stall certain.
    for (; batches < 10 && pool.lost === 0; batches++) {
      await pool.ready();
      big.forEach((slot, i) => expect(batch.seal(a, slot, size, i, null)).toBe(true));
      batch.finish();
    }
    expect(pool.lost).toBeGreaterThan(0);
    expect(dropped.length).toBe(pool.lost);
    expect(dropped.every((d) => d.reason === 'lost')).toBe(true);
    expect(sealed.length + dropped.length).toBe(64 * batches);
    expect(lines.some((line) => line.includes('stalled'))).toBe(true);
    await until(() => pool.replaced > 0 && pool.size === 2);
    expect(pool.replaced).toBeGreaterThan(0);
    expect(pool.size).toBe(2);
  });

  it('notice a worker that died holding jobs once its thread is gone, long before the stall timeout: its jobs dropped and counted, the rest run here, the worker replaced', async () => {
    const lines: string[] = [];
    const log: Logger = { verbose: () => undefined, error: (line) => lines.push(line) };
    // The worker runs the pure-JS backend, so each of its large jobs takes a while: time to die inside one.
    const saved = process.env.TSWG_CRYPTO;
    process.env.TSWG_CRYPTO = 'noble';
    let pool: CryptoPool | undefined;
    let armed = false;
    let victimHeldJob = false;
    // This thread's AEAD: on its first job of the batch it waits until the worker holds one, then terminates the worker.
    const primitives: Primitives = {
      ...defaultPrimitives,
      aeadSealInPlace: (...args) => {
        if (armed) {
          armed = false;
          const victim = pool!.threads[0]!;
          const victimState = CLAIMED + 1;
          for (const deadline = Date.now() + 10_000; !victimHeldJob && Date.now() < deadline; ) {
            for (let i = 0; i < pool!.pending; i++) if (pool!.outcome(i) === victimState) victimHeldJob = true;
          }
          void victim.terminate();
        }
        return defaultPrimitives.aeadSealInPlace(...args);
      },
    };
    pool = new CryptoPool({ workers: 1, log, primitives, stallTimeoutMs: 20_000 });
    if (saved === undefined) delete process.env.TSWG_CRYPTO;
    else process.env.TSWG_CRYPTO = saved;
    pools.push(pool);
    await pool.ready();
    const { a } = connectedPair();
    const { batch, sealed, dropped } = recordingBatch(pool);
    const size = LARGE_PACKET;
    const big = largeSlots();
    big.forEach((slot, i) => expect(batch.seal(a, slot, size, i, null)).toBe(true));
    armed = true;
    batch.finish();
    expect(victimHeldJob, 'the worker held a job when it was terminated').toBe(true);
    expect(lines.filter((line) => line.includes('stalled')), lines.join('\n')).toEqual([]);
    expect(lines.some((line) => /worker\(s\) 1 died/.test(line)), lines.join('\n')).toBe(true);
    expect(pool.lost).toBeGreaterThan(0);
    expect(dropped.length).toBe(pool.lost);
    expect(dropped.every((d) => d.reason === 'lost')).toBe(true);
    expect(sealed.length + dropped.length).toBe(64);
    await until(() => pool.replaced > 0 && pool.size === 1);
    expect(pool.replaced).toBe(1);
    // The pool goes on with its new worker: every packet of the next batch leaves.
    const before = sealed.length;
    big.forEach((slot, i) => expect(batch.seal(a, slot, size, 64 + i, null)).toBe(true));
    batch.finish();
    expect(sealed.length - before).toBe(64);
  });

  it('read the worker count from TSWG_CRYPTO_WORKERS, refusing nonsense with a log line', () => {
    const lines: string[] = [];
    const log: Logger = { verbose: () => undefined, error: (line) => lines.push(line) };
    expect(cryptoWorkersFromEnvironment(log, undefined, 2)).toBe(0);
    expect(cryptoWorkersFromEnvironment(log, undefined, 16)).toBe(8);
    expect(cryptoWorkersFromEnvironment(log, '3', 16)).toBe(3);
    expect(cryptoWorkersFromEnvironment(log, ' 0 ')).toBe(0);
    expect(lines).toEqual([]);
    for (const bad of ['-1', 'two', '1.5', '100000']) expect(cryptoWorkersFromEnvironment(log, bad, 2)).toBe(0);
    expect(lines).toHaveLength(4);
    expect(lines[0]).toContain('TSWG_CRYPTO_WORKERS=-1');
  });

  it('choose the default from the core count: none below 4 cores, then all but two, at most 8', () => {
    expect([1, 2, 3, 4, 6, 10, 16, 64].map((cores) => defaultCryptoWorkers(cores))).toEqual([0, 0, 0, 2, 4, 8, 8, 8]);
  });
});
