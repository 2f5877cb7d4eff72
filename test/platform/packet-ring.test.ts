/**
 * The shared-memory packet ring between a reader thread and the main thread
 * (src/platform/packet-ring.ts) and the struct mmsghdr[] vector the UDP
 * reader and sender hand to recvmmsg(2) / sendmmsg(2)
 * (src/platform/message-vector.ts, native-memory.ts).
 *
 * The ring is driven first from one thread (exact control-word states:
 * batches, wrap-around of the Int32 counters, a full ring, the doorbell, a
 * throwing handler), then with a real worker_threads producer. The worker
 * runs the compiled dist/ copy, so `npm run build` must have run.
 */
import { existsSync } from 'node:fs';
import { fileURLToPath, pathToFileURL } from 'node:url';
import { Worker } from 'node:worker_threads';
import { afterAll, describe, expect, it, vi } from 'vitest';
import { sockaddrOf, endpointFromSockaddr } from '../../src/device/sockaddr.js';
import { MSG_DONTWAIT, MSG_TRUNC, loadLibc } from '../../src/platform/libc.js';
import { MessageVector, NAME_ROOM } from '../../src/platform/message-vector.js';
import { addressOf, writePointer } from '../../src/platform/native-memory.js';
import {
  MAX_PACKET_SIZE,
  PacketRingConsumer,
  PacketRingProducer,
  RELEASE_BATCH,
  RING_SLOTS,
  createPacketRingMemory,
  slotSizeFor,
  type PacketRingMemory,
  type RingSlot,
} from '../../src/platform/packet-ring.js';
import { openRawUdpSocket } from '../../src/platform/udp-socket.js';
import { Rng, hex } from '../helpers/fuzz.js';

// Control words, as packet-ring.ts lays them out.
const HEAD = 0;
const TAIL = 1;
const STOP = 2;
const DOORBELL = 3;
const META_SIZE = 8;
/** Packets start their slots, as received datagrams do. */
const LAYOUT = { headroom: 0, tailroom: 0 };

/** The slot type these tests wrap the ring's memory in: a DataView over it, made once per slot. */
interface ViewSlot extends RingSlot {
  readonly view: DataView;
}
const viewSlot = (bytes: Uint8Array, address: number): ViewSlot => ({ bytes, address, view: new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength) });

const BUILT_RING = fileURLToPath(new URL('../../dist/src/platform/packet-ring.js', import.meta.url));

/** One thread playing the reader: writes packets (a sequence number and a pattern) and meta bytes, publishes them. */
class TestProducer {
  readonly producer: PacketRingProducer;
  readonly control: Int32Array;
  rings = 0;
  private readonly slots: Uint8Array;
  private readonly meta: Uint8Array;

  constructor(readonly memory: PacketRingMemory) {
    this.producer = new PacketRingProducer(memory, () => this.rings++);
    this.control = new Int32Array(memory.control);
    this.slots = new Uint8Array(memory.slots);
    this.meta = new Uint8Array(memory.meta);
  }

  /** Publish packet `seq`: length 4 + seq % 97, bytes [seq LE32, then seq & 0xff...], meta = 8 bytes derived from seq. */
  publish(seq: number): void {
    const slot = this.producer.nextSlot;
    const length = packetLength(seq);
    const at = slot * this.memory.slotSize;
    new DataView(this.memory.slots, at, 4).setUint32(0, seq, true);
    this.slots.fill(seq & 0xff, at + 4, at + length);
    this.meta.set(metaOf(seq), slot * META_SIZE);
    this.producer.publish(length);
  }
}

const packetLength = (seq: number) => 4 + (seq % 97);
const metaOf = (seq: number) => Uint8Array.from([seq & 0xff, (seq >> 8) & 0xff, 0xa0, 0xa1, 0xa2, 0xa3, 0xa4, seq % 7]);

interface Received {
  seq: number;
  length: number;
  meta: string;
  slot: ViewSlot;
  /** control[TAIL] while the handler ran. */
  tail: number;
}

/** A handler that records each packet and checks its bytes. */
function recorder(control: Int32Array, into: Received[]): (slot: ViewSlot, length: number, meta: Uint8Array) => void {
  return (slot, length, meta) => {
    const seq = slot.view.getUint32(0, true);
    const body = slot.bytes.subarray(4, length);
    if (!body.every((b) => b === (seq & 0xff))) throw new Error(`packet ${seq}: body corrupted`);
    into.push({ seq, length, meta: hex(meta), slot, tail: Atomics.load(control, TAIL) });
  };
}

describe('PacketRing in one thread', () => {
  it('publish then drain: order, lengths and meta carried; slots released after each RELEASE_BATCH with flush first', () => {
    const memory = createPacketRingMemory(LAYOUT, META_SIZE);
    const p = new TestProducer(memory);
    const consumer = new PacketRingConsumer(memory, -1, viewSlot);
    const total = 2 * RELEASE_BATCH + 17;
    for (let seq = 0; seq < total; seq++) p.publish(seq);
    expect(p.producer.free).toBe(RING_SLOTS - total);
    const received: Received[] = [];
    const flushTails: number[] = [];
    consumer.drain(recorder(p.control, received), () => flushTails.push(Atomics.load(p.control, TAIL)));
    expect(received.map((r) => r.seq)).toEqual(Array.from({ length: total }, (_, i) => i));
    expect(received.every((r) => r.length === packetLength(r.seq) && r.meta === hex(metaOf(r.seq)))).toBe(true);
    expect(received.map((r) => r.slot)).toEqual(consumer.slots.slice(0, total));
    // A packet's slot is not released before its batch is flushed: TAIL moves in steps of RELEASE_BATCH, after flush.
    expect(received.map((r) => r.tail)).toEqual(received.map((_, i) => Math.floor(i / RELEASE_BATCH) * RELEASE_BATCH));
    expect(flushTails).toEqual([0, RELEASE_BATCH, 2 * RELEASE_BATCH]);
    expect(Atomics.load(p.control, TAIL)).toBe(total);
    expect(p.producer.free).toBe(RING_SLOTS);
  });

  it('the counters wrap as Int32 past 2^31 and past -1: slots, order and free space stay right', () => {
    for (const start of [2 ** 31 - 10, -5]) {
      const memory = createPacketRingMemory(LAYOUT, META_SIZE);
      const control = new Int32Array(memory.control);
      control[HEAD] = start | 0;
      control[TAIL] = start | 0;
      const p = new TestProducer(memory);
      const consumer = new PacketRingConsumer(memory, -1, viewSlot);
      expect(p.producer.free).toBe(RING_SLOTS);
      const expectedSlots = Array.from({ length: 20 }, (_, i) => ((start + i) | 0) & (RING_SLOTS - 1));
      expect(p.producer.nextSlot).toBe(expectedSlots[0]);
      for (let seq = 0; seq < 20; seq++) p.publish(seq);
      expect(control[HEAD]).toBe((start + 20) | 0);
      expect(p.producer.free).toBe(RING_SLOTS - 20);
      const received: Received[] = [];
      consumer.drain(recorder(control, received), () => {});
      expect(received.map((r) => r.seq)).toEqual(Array.from({ length: 20 }, (_, i) => i));
      expect(received.map((r) => consumer.slots.indexOf(r.slot))).toEqual(expectedSlots);
      expect(received.every((r) => r.meta === hex(metaOf(r.seq)))).toBe(true);
      expect(control[TAIL]).toBe((start + 20) | 0);
      expect(p.producer.free).toBe(RING_SLOTS);
    }
  });

  it('a full ring: no free slot; waitForRoom returns false at once when STOP is set (with or without room)', () => {
    const memory = createPacketRingMemory(LAYOUT, META_SIZE);
    const p = new TestProducer(memory);
    for (let seq = 0; seq < RING_SLOTS; seq++) p.publish(seq);
    expect(p.producer.free).toBe(0);
    const consumer = new PacketRingConsumer(memory, -1, viewSlot);
    p.control[STOP] = 1;
    // "At once": it never blocks on the tail (an Atomics.wait here would be a 100 ms stall per stop).
    const waits = vi.spyOn(Atomics, 'wait');
    try {
      expect(p.producer.waitForRoom()).toBe(false);
      expect(waits).not.toHaveBeenCalled();
    } finally {
      waits.mockRestore();
    }
    p.control[STOP] = 0;
    const received: Received[] = [];
    consumer.drain(recorder(p.control, received), () => {});
    expect(received).toHaveLength(RING_SLOTS);
    expect(p.producer.free).toBe(RING_SLOTS);
    expect(p.producer.waitForRoom()).toBe(true);
    expect(p.producer.stopRequested).toBe(false);
    consumer.stop();
    expect(p.producer.stopRequested).toBe(true);
    expect(p.producer.waitForRoom()).toBe(false);
  });

  it('the doorbell rings once until the consumer drains, then once again', () => {
    const memory = createPacketRingMemory(LAYOUT, META_SIZE);
    const p = new TestProducer(memory);
    const consumer = new PacketRingConsumer(memory, -1, viewSlot);
    p.publish(0);
    p.producer.ringDoorbell();
    p.publish(1);
    p.producer.ringDoorbell();
    p.producer.ringDoorbell();
    expect(p.rings).toBe(1);
    expect(p.control[DOORBELL]).toBe(1);
    consumer.drain(() => {}, () => {});
    expect(p.control[DOORBELL]).toBe(0);
    p.producer.ringDoorbell();
    p.producer.ringDoorbell();
    expect(p.rings).toBe(2);
  });

  it('a handler that throws: the error reaches the caller, its packet is not seen again, the ring stays consistent', () => {
    const memory = createPacketRingMemory(LAYOUT, META_SIZE);
    const p = new TestProducer(memory);
    const consumer = new PacketRingConsumer(memory, -1, viewSlot);
    for (let seq = 0; seq < 10; seq++) p.publish(seq);
    const seen: number[] = [];
    let flushes = 0;
    const handler = (slot: ViewSlot) => {
      const seq = slot.view.getUint32(0, true);
      seen.push(seq);
      if (seq === 2) throw new Error('handler failed on packet 2');
    };
    expect(() => consumer.drain(handler, () => flushes++)).toThrow('handler failed on packet 2');
    expect(flushes).toBe(1); // what was handled before the throw is flushed
    expect(p.control[TAIL]).toBe(3); // ...and released, including the packet that threw
    expect(p.producer.free).toBe(RING_SLOTS - 7);
    consumer.drain(handler, () => flushes++); // not stuck in "draining"
    expect(seen).toEqual([0, 1, 2, 3, 4, 5, 6, 7, 8, 9]);
    expect(p.control[TAIL]).toBe(10);
    expect(p.producer.free).toBe(RING_SLOTS);
  });

  it('a backlog larger than one turn (RING_SLOTS) is worked off in further turns (setImmediate), in order', async () => {
    const memory = createPacketRingMemory(LAYOUT, META_SIZE);
    const p = new TestProducer(memory);
    const consumer = new PacketRingConsumer(memory, -1, viewSlot);
    const total = RING_SLOTS + 3 * RELEASE_BATCH;
    let published = 0;
    const topUp = () => {
      while (published < total && p.producer.free > 0) p.publish(published++);
    };
    topUp();
    const received: Received[] = [];
    const record = recorder(p.control, received);
    let turns = 0;
    const flush = () => topUp(); // slots freed by this batch are refilled at once, as a fast reader would
    consumer.drain((slot, length, meta) => {
      if (received.length === 0 || received.length === RING_SLOTS) turns++;
      record(slot, length, meta);
    }, flush);
    expect(received.length).toBeLessThanOrEqual(RING_SLOTS);
    for (let i = 0; i < 20 && received.length < total; i++) await new Promise((resolve) => setImmediate(resolve));
    expect(received.map((r) => r.seq)).toEqual(Array.from({ length: total }, (_, i) => i));
    expect(turns).toBe(2);
  });
});

describe('PacketRing: the main thread reading the source itself (holdReads / readHeld)', () => {
  it('reads only while holding the source with the ring empty; the reader keeps off meanwhile', () => {
    const memory = createPacketRingMemory(LAYOUT, META_SIZE, 2);
    const p = new TestProducer(memory);
    const consumer = new PacketRingConsumer(memory, -1, viewSlot);
    let reads = 0;
    const read = () => {
      reads++;
      return 42;
    };
    // Not holding: no read.
    expect(consumer.readHeld(read)).toBe(0);
    expect(consumer.holdReads()).toBe(true);
    expect(consumer.holdReads()).toBe(false);
    expect(consumer.readHeld(read)).toBe(42);
    expect(reads).toBe(1);
    // The reader waits out its short limit, then gives up and polls again.
    const started = performance.now();
    expect(p.producer.lockReads()).toBe(false);
    expect(performance.now() - started).toBeGreaterThanOrEqual(0.5);
    consumer.releaseReads();
    // The reader is reading: the main thread cannot hold the source and leaves the packet to it.
    expect(p.producer.lockReads()).toBe(true);
    expect(consumer.holdReads()).toBe(false);
    expect(consumer.readHeld(read)).toBe(0);
    p.publish(0);
    p.producer.unlockReads();
    // A published packet not yet drained would be overtaken: no read until it is handled.
    expect(consumer.holdReads()).toBe(true);
    expect(consumer.readHeld(read)).toBe(0);
    expect(reads).toBe(1);
    const received: Received[] = [];
    consumer.drain(recorder(p.control, received), () => undefined);
    expect(received.map((r) => r.seq)).toEqual([0]);
    expect(consumer.readHeld(read)).toBe(42);
    expect(reads).toBe(2);
    consumer.releaseReads();
    expect(p.producer.lockReads()).toBe(true);
    p.producer.unlockReads();
    consumer.stop();
    expect(consumer.holdReads()).toBe(true);
    expect(consumer.readHeld(read)).toBe(0);
    expect(reads).toBe(2);
  });

  it('a reader waiting for the source takes it as soon as the main thread gives it back', async () => {
    const memory = createPacketRingMemory(LAYOUT, META_SIZE);
    const consumer = new PacketRingConsumer(memory, -1, viewSlot);
    expect(consumer.holdReads()).toBe(true);
    const worker = new Worker(
      `const { workerData, parentPort } = require('node:worker_threads');
       import(workerData.ring).then(({ PacketRingProducer }) => {
         const producer = new PacketRingProducer(workerData.memory, () => undefined);
         parentPort.postMessage('ready');
         const tries = [];
         for (let i = 0; i < 200 && tries.length === 0; i++) if (producer.lockReads()) tries.push(i);
         parentPort.postMessage(tries);
       });`,
      { eval: true, workerData: { ring: pathToFileURL(BUILT_RING).href, memory } },
    );
    const messages: unknown[] = [];
    const answered = new Promise<number[]>((resolve) => worker.on('message', (message) => (messages.push(message), messages.length === 2 && resolve(message as number[]))));
    await vi.waitFor(() => expect(messages).toEqual(['ready']));
    await new Promise((resolve) => setTimeout(resolve, 20));
    consumer.releaseReads();
    const tries = await answered;
    await worker.terminate();
    // It waited in 1 ms steps while held, and got the source once released.
    expect(tries).toHaveLength(1);
    expect(tries[0]).toBeGreaterThan(0);
    expect(consumer.holdReads()).toBe(false);
  });

  it('takeSpare keeps the last spare for its taker and leaves the rest', () => {
    const memory = createPacketRingMemory(LAYOUT, META_SIZE, 2);
    const consumer = new PacketRingConsumer(memory, -1, viewSlot);
    const last = consumer.spares[1];
    expect(consumer.takeSpare()).toBe(last);
    expect(consumer.spares).toHaveLength(1);
    consumer.takeSpare();
    expect(() => consumer.takeSpare()).toThrow(/no spare slot/);
  });
});

describe('PacketRing slot layout: the room its user asks for around each packet', () => {
  it.each([
    { headroom: 0, tailroom: 0 },
    { headroom: 16, tailroom: 31 },
    { headroom: 10, tailroom: 0 },
    { headroom: 100, tailroom: 7 },
  ])('headroom $headroom, tailroom $tailroom: slots of whole cache lines holding both and the largest packet; packets handed over at the headroom', (layout) => {
    const memory = createPacketRingMemory(layout, META_SIZE, 3, 8);
    expect(memory.slotSize).toBe(slotSizeFor(layout));
    expect(memory.slotSize % 64).toBe(0);
    expect(memory.slotSize).toBeGreaterThanOrEqual(layout.headroom + MAX_PACKET_SIZE + layout.tailroom);
    expect(memory.slotSize - 64).toBeLessThan(layout.headroom + MAX_PACKET_SIZE + layout.tailroom);
    expect(memory.packetCapacity).toBe(memory.slotSize - layout.headroom - layout.tailroom);
    expect(memory.slots.byteLength).toBe((8 + 3) * memory.slotSize);
    const wrapped: { offset: number; address: number }[] = [];
    const consumer = new PacketRingConsumer(memory, 4096, (bytes, address) => {
      wrapped.push({ offset: bytes.byteOffset, address });
      return viewSlot(bytes, address);
    });
    // The wrapper ran once per slot, the spares included, over the slot's whole memory.
    expect(wrapped).toEqual(Array.from({ length: 11 }, (_, i) => ({ offset: i * memory.slotSize, address: 4096 + i * memory.slotSize })));
    expect(consumer.slots.map((slot) => slot.bytes.length)).toEqual(new Array(8).fill(memory.slotSize));
    expect(consumer.spares).toHaveLength(3);
    expect(consumer.headroom).toBe(layout.headroom);
    // A reader puts each packet at the headroom; the consumer hands over the slot it lies in.
    const producer = new PacketRingProducer(memory, () => undefined);
    const slots = new Uint8Array(memory.slots);
    for (let seq = 0; seq < 5; seq++) {
      slots.fill(seq + 1, producer.nextSlot * memory.slotSize + layout.headroom, producer.nextSlot * memory.slotSize + layout.headroom + 20 + seq);
      producer.publish(20 + seq);
    }
    const seen: string[] = [];
    consumer.drain((slot, length) => {
      const packet = slot.bytes.subarray(layout.headroom, layout.headroom + length);
      seen.push(`${length}:${packet.every((b) => b === packet[0]) ? packet[0] : 'mixed'}:${slot.bytes.subarray(0, layout.headroom).every((b) => b === 0)}`);
    }, () => undefined);
    expect(seen).toEqual(['20:1:true', '21:2:true', '22:3:true', '23:4:true', '24:5:true']);
  });

  it('refuses a layout that is no whole number of bytes', () => {
    expect(() => createPacketRingMemory({ headroom: -1, tailroom: 0 })).toThrow(RangeError);
    expect(() => createPacketRingMemory({ headroom: 16, tailroom: 1.5 })).toThrow(/tailroom/);
  });
});

describe('PacketRing with a real producer thread', () => {
  const workers: Worker[] = [];
  afterAll(async () => {
    await Promise.all(workers.map((w) => w.terminate()));
  });

  /** A worker that publishes `count` sequence-numbered packets, ringing after each, and reports how often the ring was full. */
  function startProducer(memory: PacketRingMemory, count: number): Worker {
    if (!existsSync(BUILT_RING)) throw new Error(`${BUILT_RING} is missing: run \`npm run build\` first`);
    const code = `
      const { parentPort, workerData } = require('node:worker_threads');
      import(workerData.url).then(({ PacketRingProducer }) => {
        const { memory, count } = workerData;
        const producer = new PacketRingProducer(memory, () => parentPort.postMessage('ready'));
        const slots = new DataView(memory.slots);
        const meta = new DataView(memory.meta);
        let fullWaits = 0;
        for (let seq = 0; seq < count; seq++) {
          if (producer.free === 0) {
            fullWaits++;
            if (!producer.waitForRoom()) { parentPort.postMessage({ stoppedAt: seq, fullWaits }); return; }
          }
          const slot = producer.nextSlot;
          const length = 8 + (seq % 61);
          slots.setUint32(slot * memory.slotSize, seq, true);
          slots.setUint32(slot * memory.slotSize + length - 4, ~seq >>> 0, true);
          meta.setUint32(slot * memory.metaSize, (seq * 2654435761) >>> 0, true);
          producer.publish(length);
          producer.ringDoorbell();
        }
        parentPort.postMessage({ done: count, fullWaits });
      });
    `;
    const worker = new Worker(code, { eval: true, workerData: { url: pathToFileURL(BUILT_RING).href, memory, count } });
    workers.push(worker);
    return worker;
  }

  it('100,000 packets with sequence numbers arrive in order, none lost, none corrupted (the ring fills up on the way)', async () => {
    const COUNT = 100_000;
    const memory = createPacketRingMemory(LAYOUT, META_SIZE);
    const consumer = new PacketRingConsumer(memory, -1, viewSlot);
    let next = 0;
    const problems: string[] = [];
    const handle = (slot: ViewSlot, length: number, meta: Uint8Array) => {
      const seq = slot.view.getUint32(0, true);
      const ok =
        seq === next &&
        length === 8 + (seq % 61) &&
        slot.view.getUint32(length - 4, true) === ~seq >>> 0 &&
        new DataView(meta.buffer, meta.byteOffset, 4).getUint32(0, true) === (seq * 2654435761) >>> 0;
      if (!ok && problems.length < 5) problems.push(`expected packet ${next}, got ${seq} (${length} bytes)`);
      next = seq + 1;
    };
    let open = false; // hold off at first, so the producer meets a full ring and must wait for room
    const worker = startProducer(memory, COUNT);
    const result = await new Promise<{ done?: number; fullWaits: number }>((resolve, reject) => {
      let report: { done?: number; fullWaits: number } | null = null;
      const finishIfDone = () => {
        if (report !== null && next === COUNT) resolve(report);
      };
      worker.on('error', reject);
      worker.on('message', (message: unknown) => {
        if (message === 'ready') {
          if (open) consumer.drain(handle, () => {});
        } else report = message as { done?: number; fullWaits: number };
        setImmediate(finishIfDone);
      });
      const control = new Int32Array(memory.control);
      const gate = setInterval(() => {
        if (((Atomics.load(control, HEAD) - Atomics.load(control, TAIL)) | 0) < RING_SLOTS) return;
        clearInterval(gate); // the ring is full: from now on drain on every doorbell
        open = true;
        consumer.drain(handle, () => {});
      }, 5);
      const poll = setInterval(() => {
        finishIfDone();
        if (report !== null && next === COUNT) clearInterval(poll);
      }, 20);
      setTimeout(() => {
        clearInterval(poll);
        reject(new Error(`timed out: ${next} of ${COUNT} packets arrived`));
      }, 25_000).unref();
    });
    expect(problems).toEqual([]);
    expect(next).toBe(COUNT);
    expect(result.done).toBe(COUNT);
    expect(result.fullWaits).toBeGreaterThan(0);
    consumer.stop();
  });

  it('a producer blocked on a full ring leaves when the consumer stops', async () => {
    const memory = createPacketRingMemory(LAYOUT, META_SIZE);
    const consumer = new PacketRingConsumer(memory, -1, viewSlot);
    const worker = startProducer(memory, RING_SLOTS + 10);
    const result = await new Promise<{ stoppedAt?: number }>((resolve, reject) => {
      worker.on('error', reject);
      worker.on('message', (message: unknown) => {
        if (message !== 'ready') resolve(message as { stoppedAt?: number });
      });
      // Stop only once the producer has filled the ring, so that it is blocked in waitForRoom.
      const control = new Int32Array(memory.control);
      const full = setInterval(() => {
        if (((Atomics.load(control, HEAD) - Atomics.load(control, TAIL)) | 0) < RING_SLOTS) return;
        clearInterval(full);
        consumer.stop();
      }, 5);
      setTimeout(() => {
        clearInterval(full);
        reject(new Error(`the producer did not stop (ring head ${Atomics.load(control, HEAD)}, tail ${Atomics.load(control, TAIL)})`));
      }, 30_000).unref();
    });
    expect(result.stoppedAt).toBe(RING_SLOTS);
  });
});

// ---------------------------------------------------------------------------

const MMSGHDR_SIZE = 64;
const IOVEC_SIZE = 16;

/** A 64-bit little-endian pointer as a Number. */
function readPointer(bytes: Uint8Array, offset: number): number {
  const view = new DataView(bytes.buffer, bytes.byteOffset);
  return view.getUint32(offset, true) + view.getUint32(offset + 4, true) * 0x1_0000_0000;
}

describe('MessageVector layout (struct mmsghdr with one iovec and a name each)', () => {
  const CAPACITY = 3;
  const IOVECS = CAPACITY * MMSGHDR_SIZE;
  const NAMES = IOVECS + CAPACITY * IOVEC_SIZE;

  it('a fresh vector: msg_name → its name room, msg_namelen = NAME_ROOM, msg_iov → its iovec, msg_iovlen = 1, the rest zero', () => {
    const vector = new MessageVector(CAPACITY);
    const base = addressOf(vector.bytes);
    expect(vector.bytes.buffer).toBeInstanceOf(SharedArrayBuffer);
    expect(vector.bytes.length).toBe(NAMES + CAPACITY * NAME_ROOM);
    const view = new DataView(vector.bytes.buffer);
    for (let i = 0; i < CAPACITY; i++) {
      const at = i * MMSGHDR_SIZE;
      expect(readPointer(vector.bytes, at + 0)).toBe(base + NAMES + i * NAME_ROOM); // msg_name
      expect(view.getUint32(at + 8, true)).toBe(NAME_ROOM); // msg_namelen
      expect(readPointer(vector.bytes, at + 16)).toBe(base + IOVECS + i * IOVEC_SIZE); // msg_iov
      expect(readPointer(vector.bytes, at + 24)).toBe(1); // msg_iovlen (size_t)
      expect(readPointer(vector.bytes, at + 32)).toBe(0); // msg_control
      expect(readPointer(vector.bytes, at + 40)).toBe(0); // msg_controllen
      expect(view.getUint32(at + 48, true)).toBe(0); // msg_flags
      expect(view.getUint32(at + 56, true)).toBe(0); // msg_len
      expect(vector.name(i).byteOffset).toBe(NAMES + i * NAME_ROOM);
      expect(vector.name(i).length).toBe(NAME_ROOM);
    }
  });

  it('setName copies the sockaddr and sets msg_namelen; setBuffer writes iov_base and iov_len; resetForReceive restores namelen and clears flags', () => {
    const vector = new MessageVector(CAPACITY);
    const view = new DataView(vector.bytes.buffer);
    const v4 = sockaddrOf({ family: 4, address: '127.0.0.1', port: 5000 });
    const v6 = sockaddrOf({ family: 6, address: 'fd00::1', port: 6000 });
    vector.setName(1, v4);
    vector.setName(2, v6);
    expect(view.getUint32(1 * MMSGHDR_SIZE + 8, true)).toBe(16);
    expect(view.getUint32(2 * MMSGHDR_SIZE + 8, true)).toBe(28);
    expect(hex(vector.bytes.subarray(NAMES + NAME_ROOM, NAMES + NAME_ROOM + 16))).toBe(hex(v4));
    expect(hex(vector.name(2).subarray(0, 28))).toBe(hex(v6));
    expect(view.getUint32(0 * MMSGHDR_SIZE + 8, true)).toBe(NAME_ROOM); // neighbours untouched

    const address = 0x7f12_3456_789a; // above 2^32: both pointer words matter
    vector.setBuffer(2, address, 1500);
    expect(readPointer(vector.bytes, IOVECS + 2 * IOVEC_SIZE)).toBe(address);
    expect(readPointer(vector.bytes, IOVECS + 2 * IOVEC_SIZE + 8)).toBe(1500);
    expect(readPointer(vector.bytes, IOVECS + 1 * IOVEC_SIZE)).toBe(0);

    view.setUint32(1 * MMSGHDR_SIZE + 48, MSG_TRUNC, true);
    view.setUint32(1 * MMSGHDR_SIZE + 56, 1234, true);
    expect(vector.flags(1)).toBe(MSG_TRUNC);
    expect(vector.transferred(1)).toBe(1234);
    vector.resetForReceive(1);
    expect(view.getUint32(1 * MMSGHDR_SIZE + 8, true)).toBe(NAME_ROOM);
    expect(vector.flags(1)).toBe(0);
  });

  it('addressOf: views of a SharedArrayBuffer share its base; anything else is refused; writePointer splits at 2^32', () => {
    const shared = new Uint8Array(new SharedArrayBuffer(4096));
    const base = addressOf(shared);
    expect(base).toBeGreaterThan(0);
    expect(addressOf(shared.subarray(100))).toBe(base + 100);
    expect(addressOf(new Uint8Array(shared.buffer, 2048, 16))).toBe(base + 2048);
    expect(() => addressOf(new Uint8Array(16))).toThrow(TypeError);
    const out = new Uint8Array(8);
    writePointer(new DataView(out.buffer), 0, 2 ** 52 + 2 ** 32 + 7);
    expect(hex(out)).toBe('0700000001001000');
  });
});

describe('sendmmsg and recvmmsg through two UDP sockets on 127.0.0.1', () => {
  const libc = loadLibc();
  const fds: number[] = [];
  afterAll(() => {
    for (const fd of fds) libc.close(fd);
  });

  const BUFFER_ROOM = 4096;

  /** recvmmsg until `count` datagrams arrived (or 5 s passed); each result copied out before the next call. */
  async function receiveAll(fd: number, count: number, bufferSize: number): Promise<{ bytes: Uint8Array; length: number; flags: number; from: string }[]> {
    const memory = new Uint8Array(new SharedArrayBuffer(count * BUFFER_ROOM));
    const base = addressOf(memory);
    const vector = new MessageVector(count);
    const got: { bytes: Uint8Array; length: number; flags: number; from: string }[] = [];
    const deadline = Date.now() + 5000;
    while (got.length < count && Date.now() < deadline) {
      for (let i = 0; i < count; i++) {
        vector.resetForReceive(i);
        vector.setBuffer(i, base + i * BUFFER_ROOM, bufferSize);
      }
      const received = libc.recvmmsg(fd, vector.bytes, count - got.length, MSG_DONTWAIT, null);
      if (received <= 0) {
        await new Promise((resolve) => setTimeout(resolve, 10));
        continue;
      }
      for (let i = 0; i < received; i++) {
        const length = vector.transferred(i);
        const endpoint = endpointFromSockaddr(vector.name(i));
        got.push({ bytes: memory.slice(i * BUFFER_ROOM, i * BUFFER_ROOM + length), length, flags: vector.flags(i), from: endpoint === null ? 'null' : `${endpoint.address}:${endpoint.port}` });
      }
    }
    return got;
  }

  it('10 datagrams of different sizes move in one sendmmsg, with the right bytes, lengths and source address', async () => {
    const sender = openRawUdpSocket(4, 0);
    const receiver = openRawUdpSocket(4, 0);
    fds.push(sender.fd, receiver.fd);
    const COUNT = 10;
    const memory = new Uint8Array(new SharedArrayBuffer(COUNT * BUFFER_ROOM));
    const base = addressOf(memory);
    const rng = new Rng(0x33a9);
    const vector = new MessageVector(COUNT);
    const destination = sockaddrOf({ family: 4, address: '127.0.0.1', port: receiver.port });
    const sent: Uint8Array[] = [];
    for (let i = 0; i < COUNT; i++) {
      const length = i === 0 ? 1 : i === 1 ? 1500 : rng.range(2, 3000);
      const payload = rng.bytes(length);
      memory.set(payload, i * BUFFER_ROOM);
      vector.setName(i, destination);
      vector.setBuffer(i, base + i * BUFFER_ROOM, length);
      sent.push(payload);
    }
    expect(libc.sendmmsg(sender.fd, vector.bytes, COUNT, 0)).toBe(COUNT);
    expect(sent.map((_, i) => vector.transferred(i))).toEqual(sent.map((p) => p.length)); // the kernel fills msg_len on send too
    const got = await receiveAll(receiver.fd, COUNT, BUFFER_ROOM);
    expect(got.map((g) => g.length)).toEqual(sent.map((p) => p.length));
    expect(got.map((g) => hex(g.bytes))).toEqual(sent.map((p) => hex(p)));
    expect(got.every((g) => g.flags === 0 && g.from === `127.0.0.1:${sender.port}`)).toBe(true);
  });

  it('a datagram larger than the receive buffer comes back truncated with MSG_TRUNC', async () => {
    const sender = openRawUdpSocket(4, 0);
    const receiver = openRawUdpSocket(4, 0);
    fds.push(sender.fd, receiver.fd);
    const memory = new Uint8Array(new SharedArrayBuffer(BUFFER_ROOM));
    memory.fill(0x5c, 0, 3000);
    const vector = new MessageVector(1);
    vector.setName(0, sockaddrOf({ family: 4, address: '127.0.0.1', port: receiver.port }));
    vector.setBuffer(0, addressOf(memory), 3000);
    expect(libc.sendmmsg(sender.fd, vector.bytes, 1, 0)).toBe(1);
    const [got] = await receiveAll(receiver.fd, 1, 1000);
    expect(got!.length).toBe(1000);
    expect(got!.flags & MSG_TRUNC).toBe(MSG_TRUNC);
    expect(got!.bytes.every((b) => b === 0x5c)).toBe(true);
  });
});
