/**
 * A TUN device in memory, for driving a Device without root: packets are
 * injected as the kernel would hand them over (plain, or in a ring-like slot
 * whose bytes past the packet are left from the previous one), and what the
 * device writes is kept. With `shared`, slots live in a SharedArrayBuffer, as
 * the I/O thread's ring slots do (crypto workers can reach them).
 */
import { slotSizeFor, type RingSlot } from '../../src/platform/packet-ring.js';
import type { TunDevice, TunHandlers } from '../../src/tun/tun.js';

export class MemoryTun implements TunDevice {
  readonly name = 'mem0';
  readonly written: Uint8Array[] = [];
  private handlers: TunHandlers<RingSlot> | null = null;
  private waiters: Array<() => void> = [];
  /** Slots laid out as the device asked, reused for every slotted packet as ring slots are reused; injectSlot uses the first. */
  private slotBytes: Uint8Array[] = [];
  private packetAt = 0;
  /** Hands slot i's packet to the device's slot handler. */
  private deliverSlot: ((index: number, length: number) => void) | null = null;
  private readonly slotCount: number;
  private readonly shared: boolean;

  constructor(
    readonly mtu = 1420,
    options: { shared?: boolean; slots?: number } = {},
  ) {
    this.slotCount = options.slots ?? 1;
    this.shared = options.shared ?? false;
  }

  start<S extends RingSlot>(handlers: TunHandlers<S>): void {
    this.handlers = { packet: handlers.packet, flush: handlers.flush, closed: handlers.closed };
    const slots = handlers.slots;
    if (slots === undefined) return;
    const size = slotSizeFor(slots.layout);
    const memory = this.shared ? new SharedArrayBuffer(this.slotCount * size) : new ArrayBuffer(this.slotCount * size);
    this.slotBytes = Array.from({ length: this.slotCount }, (_, i) => new Uint8Array(memory, i * size, size));
    const wrapped = this.slotBytes.map((bytes) => slots.wrap(bytes, -1));
    this.packetAt = slots.layout.headroom;
    this.deliverSlot = (index, length) => slots.packet(wrapped[index]!, length);
  }

  /** A packet through the plain path (handlers.packet). */
  inject(packet: Uint8Array): void {
    this.handlers!.packet(packet);
  }

  /**
   * A packet through the slot fast path: `packet` (when given) is copied in,
   * then the device is told the packet is `length` bytes long.
   */
  injectSlot(packet: Uint8Array | null, length = packet?.length ?? 0): void {
    if (packet !== null) this.slotBytes[0]!.set(packet, this.packetAt);
    this.deliverSlot!(0, length);
    this.handlers!.flush?.();
  }

  /** Packets through the slot fast path as one batch (one flush), as a ring drain hands them over; at most `slots` of them. */
  injectSlots(packets: Uint8Array[]): void {
    if (packets.length > this.slotBytes.length) throw new RangeError(`${packets.length} packets for ${this.slotBytes.length} slots`);
    packets.forEach((packet, i) => {
      this.slotBytes[i]!.set(packet, this.packetAt);
      this.deliverSlot!(i, packet.length);
    });
    this.handlers!.flush?.();
  }

  write(packet: Uint8Array): boolean {
    this.written.push(new Uint8Array(packet));
    for (const wake of this.waiters.splice(0)) wake();
    return true;
  }

  async close(): Promise<void> {}

  /** The deadline only matters on failure: generous, for a loaded machine. */
  async waitForPackets(count: number, timeoutMs = 15_000): Promise<Uint8Array[]> {
    const deadline = Date.now() + timeoutMs;
    while (this.written.length < count) {
      if (Date.now() > deadline) throw new Error(`expected ${count} packet(s) on ${this.name}, got ${this.written.length}`);
      await new Promise<void>((resolve) => {
        this.waiters.push(resolve);
        setTimeout(resolve, 50);
      });
    }
    return this.written;
  }
}
