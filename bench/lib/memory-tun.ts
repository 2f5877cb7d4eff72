/**
 * A TUN device in memory, for driving a Device without root: packets are
 * injected as the kernel would hand them over (plain, or in a ring-like slot
 * whose bytes past the packet are left from the previous one), and what the
 * device writes is kept. With `shared`, slots live in a SharedArrayBuffer, as
 * the I/O thread's ring slots do (crypto workers can reach them).
 */
import { TransportSlot } from '../../src/noise/transport-slot.js';
import type { TunDevice, TunHandlers } from '../../src/tun/tun.js';

const SLOT_BYTES = 65_536 + TransportSlot.OVERHEAD;

export class MemoryTun implements TunDevice {
  readonly name = 'mem0';
  readonly written: Uint8Array[] = [];
  private handlers: TunHandlers | null = null;
  private waiters: Array<() => void> = [];
  /** Slots reused for every slotted packet, as ring slots are reused; injectSlot uses the first. */
  private readonly slots: TransportSlot[];

  constructor(
    readonly mtu = 1420,
    options: { shared?: boolean; slots?: number } = {},
  ) {
    const count = options.slots ?? 1;
    const memory = options.shared ? new SharedArrayBuffer(count * SLOT_BYTES) : new ArrayBuffer(count * SLOT_BYTES);
    this.slots = Array.from({ length: count }, (_, i) => new TransportSlot(new Uint8Array(memory, i * SLOT_BYTES, SLOT_BYTES)));
  }

  private get slot(): TransportSlot {
    return this.slots[0]!;
  }

  start(handlers: TunHandlers): void {
    this.handlers = handlers;
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
    if (packet !== null) this.slot.packetArea.set(packet);
    this.handlers!.slotPacket!(this.slot, length);
    this.handlers!.flush?.();
  }

  /** Packets through the slot fast path as one batch (one flush), as a ring drain hands them over; at most `slots` of them. */
  injectSlots(packets: Uint8Array[]): void {
    if (packets.length > this.slots.length) throw new RangeError(`${packets.length} packets for ${this.slots.length} slots`);
    packets.forEach((packet, i) => {
      this.slots[i]!.packetArea.set(packet);
      this.handlers!.slotPacket!(this.slots[i]!, packet.length);
    });
    this.handlers!.flush?.();
  }

  write(packet: Uint8Array): boolean {
    this.written.push(new Uint8Array(packet));
    for (const wake of this.waiters.splice(0)) wake();
    return true;
  }

  async close(): Promise<void> {}

  async waitForPackets(count: number, timeoutMs = 3000): Promise<Uint8Array[]> {
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
