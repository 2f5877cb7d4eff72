/**
 * A single-producer, single-consumer ring of packet slots in shared memory,
 * joining the I/O thread, which blocks in syscalls (read(2) on TUN,
 * recvmmsg(2) on UDP) to the main thread. The reader fills slots and publishes
 * them by advancing HEAD; it "rings the doorbell" — sets DOORBELL and wakes
 * the main thread (wake-word.ts) — only when the main thread is not already
 * on its way, so a busy stream costs a wake-up per batch, not per packet. The main thread hands slots to a
 * handler and releases them by advancing TAIL after each batch's flush.
 *
 * The ring's user says how much room each slot keeps before the packet and
 * after it (SlotLayout: the device builds and opens its messages in place
 * there), and may wrap each slot's memory in its own type, once, when the
 * ring is made (SlotWrapper). The memory is pinned (SharedArrayBuffer), so
 * sendmmsg can send from it.
 */
import { HopTraceReader, HopTraceWriter, createHopTraceMemory } from './hop-trace.js';

/** control[HEAD]: packets the reader has published (wrapping Int32 counter). */
const HEAD = 0;
/** control[TAIL]: packets the main thread has finished with; their slots may be reused. */
const TAIL = 1;
/** control[STOP]: non-zero once the main thread wants the reader gone. */
const STOP = 2;
/** control[DOORBELL]: 1 while a wake-up message is on its way to the main thread. */
const DOORBELL = 3;
/**
 * control[READ_LOCK]: who is reading the source now (0: nobody). The main
 * thread may read a packet itself (readInline) only while it holds this and
 * the ring is empty, and the reader reads and publishes only while it holds
 * it, so neither can overtake a packet the other read first.
 */
const READ_LOCK = 4;
const CONTROL_WORDS = 5;
const READER_READING = 1;
const MAIN_READING = 2;

/**
 * Slots in a ring unless its creator says otherwise. When the main thread
 * falls this far behind, the reader stops reading: the kernel's queue fills
 * and drops, like wireguard-go's bounded queues, instead of packets piling up
 * in memory.
 */
export const RING_SLOTS = 512;
/** The largest packet or datagram a slot holds. */
export const MAX_PACKET_SIZE = 65_535;
/** Slots start on a cache line. */
const SLOT_ALIGNMENT = 64;
/** Packets the main thread handles before it flushes and releases their slots. */
export const RELEASE_BATCH = 64;

/** How long a reader with a full ring sleeps before it looks at STOP again. */
const RING_FULL_WAIT_MS = 100;
/** The longest the reader waits for the main thread to give the source back before it polls again. */
const READ_LOCK_WAIT_MS = 1;

/** The room a ring keeps around every packet, as its user asks. */
export interface SlotLayout {
  /** Bytes before the packet: a packet starts this far into its slot. */
  headroom: number;
  /** Bytes kept free after the largest packet. */
  tailroom: number;
}

/** One slot's memory as the consumer hands it on. */
export interface RingSlot {
  /** The whole slot; a packet of `length` bytes lies at [headroom, headroom + length). */
  readonly bytes: Uint8Array;
  /** The native address of bytes[0] (pinned shared memory), or -1 when unknown. */
  readonly address: number;
}

/** Wraps one slot's memory in the ring user's own type; called once per slot, when the consumer is made. */
export type SlotWrapper<S extends RingSlot> = (bytes: Uint8Array, address: number) => S;

/** The wrapper for users that need nothing but the memory. */
export const plainSlot: SlotWrapper<RingSlot> = (bytes, address) => ({ bytes, address });

/** The bytes of one slot: headroom, the largest packet and tailroom, rounded up to a cache line. */
export function slotSizeFor(layout: SlotLayout): number {
  return Math.ceil((layout.headroom + MAX_PACKET_SIZE + layout.tailroom) / SLOT_ALIGNMENT) * SLOT_ALIGNMENT;
}

/** The shared memory of one ring; passed to the I/O thread with its source. */
export interface PacketRingMemory {
  control: SharedArrayBuffer;
  /** Slots in the ring: a power of two. */
  slotCount: number;
  /** Bytes per slot (slotSizeFor the layout). */
  slotSize: number;
  /** Where a packet starts in its slot (the layout's headroom). */
  headroom: number;
  /** The most packet bytes a read may put into a slot: what lies between headroom and tailroom. */
  packetCapacity: number;
  /** slotCount Int32 packet lengths. */
  lengths: SharedArrayBuffer;
  /**
   * (slotCount + spareSlots) × slotSize bytes. Its pages are touched only as
   * packets of that size arrive. The spare slots, after the ring's, belong to
   * the main thread (the TUN side cuts super-packets into them).
   */
  slots: SharedArrayBuffer;
  spareSlots: number;
  /** slotCount × metaSize bytes the reader fills per packet (UDP: the source address). */
  meta: SharedArrayBuffer;
  metaSize: number;
  /** Hop timing memory (hop-trace.ts), only when tracing is on. */
  trace: SharedArrayBuffer | null;
}

export function createPacketRingMemory(layout: SlotLayout, metaSize = 0, spareSlots = 0, slotCount = RING_SLOTS): PacketRingMemory {
  if (slotCount < 1 || (slotCount & (slotCount - 1)) !== 0) throw new RangeError(`a packet ring needs a power-of-two slot count, got ${slotCount}`);
  for (const [name, room] of Object.entries(layout)) {
    if (!Number.isSafeInteger(room) || room < 0) throw new RangeError(`a packet ring's ${name} must be a whole number of bytes, got ${room}`);
  }
  const slotSize = slotSizeFor(layout);
  return {
    control: new SharedArrayBuffer(CONTROL_WORDS * Int32Array.BYTES_PER_ELEMENT),
    slotCount,
    slotSize,
    headroom: layout.headroom,
    packetCapacity: slotSize - layout.headroom - layout.tailroom,
    lengths: new SharedArrayBuffer(slotCount * Int32Array.BYTES_PER_ELEMENT),
    slots: new SharedArrayBuffer((slotCount + spareSlots) * slotSize),
    spareSlots,
    meta: new SharedArrayBuffer(Math.max(1, slotCount * metaSize)),
    metaSize,
    trace: createHopTraceMemory(),
  };
}

/** Whether a ring's doorbell rang since the main thread last drained it (what a wake-up asks of each ring). */
export class RingDoorbell {
  private readonly control: Int32Array;

  constructor(memory: PacketRingMemory) {
    this.control = new Int32Array(memory.control);
  }

  get rung(): boolean {
    return Atomics.load(this.control, DOORBELL) !== 0;
  }

  /** Packets published into the ring so far (a wrapping Int32 counter): the difference of two readings is a count. */
  get published(): number {
    return Atomics.load(this.control, HEAD);
  }

  /** Packets published and not yet released by the main thread. */
  get waiting(): number {
    return (Atomics.load(this.control, HEAD) - Atomics.load(this.control, TAIL)) | 0;
  }
}

/** The I/O thread's side. */
export class PacketRingProducer {
  private readonly control: Int32Array;
  readonly lengths: Int32Array;
  private readonly slotCount: number;
  private head: number;
  /** Hop timing, only when tracing is on. */
  readonly trace: HopTraceWriter | null;

  constructor(
    memory: PacketRingMemory,
    private readonly notify: () => void,
  ) {
    this.trace = memory.trace === null ? null : new HopTraceWriter(memory.trace);
    this.slotCount = memory.slotCount;
    this.control = new Int32Array(memory.control);
    this.lengths = new Int32Array(memory.lengths);
    this.head = Atomics.load(this.control, HEAD);
  }

  /**
   * Take up publishing where another reader of the source left off (it has
   * stopped). A reader that died inside a read (its thread terminated) still
   * holds the read lock: with it gone, nobody else can, so it is let go here.
   */
  resume(): void {
    this.head = Atomics.load(this.control, HEAD);
    Atomics.compareExchange(this.control, READ_LOCK, READER_READING, 0);
  }

  get stopRequested(): boolean {
    return Atomics.load(this.control, STOP) !== 0;
  }

  /** Slots free now. */
  get free(): number {
    return this.slotCount - ((this.head - Atomics.load(this.control, TAIL)) | 0);
  }

  /** The slot the next publish() fills (valid while free > 0). */
  get nextSlot(): number {
    return this.head & (this.slotCount - 1);
  }

  /** The slot `ahead` places after nextSlot. */
  slotAhead(ahead: number): number {
    return (this.head + ahead) & (this.slotCount - 1);
  }

  /** Block until a slot is free; false when STOP was set meanwhile. */
  waitForRoom(): boolean {
    for (let tail = Atomics.load(this.control, TAIL); ((this.head - tail) | 0) >= this.slotCount; tail = Atomics.load(this.control, TAIL)) {
      if (this.stopRequested) return false;
      this.ringDoorbell();
      Atomics.wait(this.control, TAIL, tail, RING_FULL_WAIT_MS);
    }
    return !this.stopRequested;
  }

  /**
   * Take the source for a read. While the main thread holds it (its writes
   * and the read of what they caused: microseconds) wait for it; false if
   * that outlasts READ_LOCK_WAIT_MS (then poll again).
   */
  lockReads(): boolean {
    for (;;) {
      const holder = Atomics.compareExchange(this.control, READ_LOCK, 0, READER_READING);
      if (holder === 0) return true;
      if (Atomics.wait(this.control, READ_LOCK, holder, READ_LOCK_WAIT_MS) === 'timed-out') return false;
    }
  }

  /** lockReads without waiting: for a reader on the thread that holds the lock itself (then it reads later). */
  tryLockReads(): boolean {
    return Atomics.compareExchange(this.control, READ_LOCK, 0, READER_READING) === 0;
  }

  unlockReads(): void {
    Atomics.store(this.control, READ_LOCK, 0);
  }

  /** The packet in nextSlot is `length` bytes: hand it over. */
  publish(length: number): void {
    this.lengths[this.nextSlot] = length;
    this.head = (this.head + 1) | 0;
    Atomics.store(this.control, HEAD, this.head);
  }

  /** Wake the main thread unless a wake-up is already on its way. */
  ringDoorbell(): void {
    this.trace?.published();
    if (Atomics.compareExchange(this.control, DOORBELL, 0, 1) === 0) this.notify();
  }
}

/** Gets each packet: its slot, length and the slot's meta bytes; valid until flush() returns. */
export type SlotHandler<S extends RingSlot = RingSlot> = (slot: S, length: number, meta: Uint8Array) => void;

/** The main thread's side. */
export class PacketRingConsumer<S extends RingSlot = RingSlot> {
  private readonly control: Int32Array;
  private readonly lengths: Int32Array;
  readonly slots: S[];
  /** The main thread's own slots after the ring's (see PacketRingMemory.spareSlots); takeSpare() removes one. */
  readonly spares: S[];
  /** All slot memory as one view (offsets: slot i starts at i × slotSize). */
  readonly memory: Uint8Array;
  /** Where a packet starts in its slot. */
  readonly headroom: number;
  private readonly metas: Uint8Array[];
  private draining = false;
  private closed = false;
  private readonly trace: HopTraceReader | null;

  /**
   * `address` is the native address of memory.slots (see
   * platform/native-memory.ts), or -1; `wrap` makes each slot the type the
   * handlers get (plainSlot: just the memory).
   */
  constructor(memory: PacketRingMemory, address: number, wrap: SlotWrapper<S>) {
    this.control = new Int32Array(memory.control);
    this.lengths = new Int32Array(memory.lengths);
    this.trace = memory.trace === null ? null : new HopTraceReader(memory.trace);
    this.headroom = memory.headroom;
    const size = memory.slotSize;
    const slot = (i: number) => wrap(new Uint8Array(memory.slots, i * size, size), address < 0 ? -1 : address + i * size);
    const count = memory.slotCount;
    this.slots = Array.from({ length: count }, (_, i) => slot(i));
    this.spares = Array.from({ length: memory.spareSlots }, (_, i) => slot(count + i));
    this.memory = new Uint8Array(memory.slots);
    this.metas = Array.from({ length: count }, (_, i) => new Uint8Array(memory.meta, i * memory.metaSize, memory.metaSize));
  }

  /**
   * Hand every published packet to `handle`, calling `flush` and releasing
   * slots every RELEASE_BATCH packets. A long backlog is worked off in turns,
   * so other events (timers, the other ring) get the event loop between them.
   */
  drain(handle: SlotHandler<S>, flush: () => void): void {
    if (this.draining || this.closed) return;
    this.draining = true;
    this.trace?.begin();
    const control = this.control;
    Atomics.store(control, DOORBELL, 0);
    let tail = Atomics.load(control, TAIL);
    let handled = 0;
    try {
      const mask = this.slots.length - 1;
      for (let head = Atomics.load(control, HEAD); tail !== head && handled < this.slots.length; head = Atomics.load(control, HEAD)) {
        let batch = 0;
        try {
          while (tail !== head && batch < RELEASE_BATCH) {
            const slot = tail & mask;
            // Advance first: a handler that throws must not see its packet again.
            tail = (tail + 1) | 0;
            batch++;
            handle(this.slots[slot]!, this.lengths[slot]!, this.metas[slot]!);
          }
        } finally {
          this.trace?.endHandling();
          flush();
          this.trace?.endFlush();
          handled += batch;
          Atomics.store(control, TAIL, tail);
          Atomics.notify(control, TAIL);
        }
      }
    } finally {
      this.draining = false;
    }
    this.trace?.end(handled);
    if (tail !== Atomics.load(control, HEAD) && !this.closed) setImmediate(() => this.drain(handle, flush));
  }

  /** Keep the last spare slot for the owner's own use (readInline); the others stay in `spares`. */
  takeSpare(): S {
    const spare = this.spares.pop();
    if (spare === undefined) throw new RangeError('the packet ring has no spare slot left to take');
    return spare;
  }

  /**
   * Keep the reader off the source until releaseReads(), so that what this
   * thread's writes make readable (the reply to a packet it wrote) stays for
   * readHeld() instead of waking the reader. False when the reader is
   * reading now (then it takes whatever comes, as usual).
   */
  holdReads(): boolean {
    return Atomics.compareExchange(this.control, READ_LOCK, 0, MAIN_READING) === 0;
  }

  /**
   * While holding: read one packet on this thread with `read` (its length,
   * ≤ 0 for none), so it needs no hop through the reader and no wake-up.
   * Only when the ring is empty (nothing the reader read can be overtaken);
   * else 0, and the reader's path takes the packet, in its order.
   */
  readHeld(read: () => number): number {
    const control = this.control;
    if (this.draining || this.closed || Atomics.load(control, READ_LOCK) !== MAIN_READING) return 0;
    return Atomics.load(control, HEAD) === Atomics.load(control, TAIL) ? read() : 0;
  }

  releaseReads(): void {
    if (Atomics.compareExchange(this.control, READ_LOCK, MAIN_READING, 0) === MAIN_READING) Atomics.notify(this.control, READ_LOCK);
  }

  /** Ask the reader to stop (it also needs its wake-up pipe written to leave poll). */
  stop(): void {
    this.closed = true;
    Atomics.store(this.control, STOP, 1);
    Atomics.notify(this.control, TAIL);
  }
}
