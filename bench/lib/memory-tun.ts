/**
 * A TUN device in memory, for driving a Device without root: packets are
 * injected as the kernel would hand them over (plain, or in a ring-like slot
 * whose bytes past the packet are left from the previous one), and what the
 * device writes is kept.
 */
import { slotSizeFor, type RingSlot } from '../../src/platform/packet-ring.js';
import type { TunDevice, TunHandlers } from '../../src/tun/tun.js';

export class MemoryTun implements TunDevice {
  readonly name = 'mem0';
  readonly written: Uint8Array[] = [];
  private handlers: TunHandlers<RingSlot> | null = null;
  private waiters: Array<() => void> = [];
  /** One slot, laid out as the device asked, reused for every slotted packet as a ring slot is reused: its bytes and where the packet goes. */
  private slotBytes: Uint8Array | null = null;
  private packetAt = 0;
  /** Hands the slot's packet to the device's slot handler. */
  private deliverSlot: ((length: number) => void) | null = null;

  constructor(readonly mtu = 1420) {}

  start<S extends RingSlot>(handlers: TunHandlers<S>): void {
    this.handlers = { packet: handlers.packet, flush: handlers.flush, closed: handlers.closed };
    const slots = handlers.slots;
    if (slots === undefined) return;
    const bytes = new Uint8Array(slotSizeFor(slots.layout));
    const slot = slots.wrap(bytes, -1);
    this.slotBytes = bytes;
    this.packetAt = slots.layout.headroom;
    this.deliverSlot = (length) => slots.packet(slot, length);
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
    if (packet !== null) this.slotBytes!.set(packet, this.packetAt);
    this.deliverSlot!(length);
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
