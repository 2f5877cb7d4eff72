import type { RingSlot, SlotLayout, SlotWrapper } from '../platform/index.js';

/**
 * What the device needs of a TUN driver. Linux's /dev/net/tun implements it
 * today; macOS utun and Windows Wintun can implement the same interface.
 */
export interface TunHandlers<S extends RingSlot = RingSlot> {
  /** An IP packet read from the interface. The bytes are only valid during the call. */
  packet(packet: Uint8Array): void;
  /** The fast path a driver may offer instead of packet(): packets read into slots with room around them. */
  slots?: TunSlotHandlers<S>;
  /** The end of a run of slots.packet() calls: send what was built in the slots. */
  flush?(): void;
  /** The interface went away (deleted) or reading failed for good. */
  closed(error: Error | null): void;
  /** A handler threw while the driver was handing packets on (those are dropped; reading goes on). */
  failed?(error: unknown): void;
}

/** How the device wants packets in slots: the room it needs around each one, its slot type, its handler. */
export interface TunSlotHandlers<S extends RingSlot> {
  /** Room before each packet (the driver's own header, e.g. a virtio_net_hdr, must fit in it too) and after it. */
  layout: SlotLayout;
  /** Wraps each slot's memory, once, when reading starts. */
  wrap: SlotWrapper<S>;
  /** A packet at slot.bytes[layout.headroom, layout.headroom + length); the slot stays valid until flush() returns. */
  packet(slot: S, length: number): void;
}

export interface TunDevice {
  /** The interface name (on macOS the kernel picks it). */
  readonly name: string;
  readonly mtu: number;
  /** Start reading packets. */
  start<S extends RingSlot>(handlers: TunHandlers<S>): void;
  /** Write one IP packet to the interface; returns false when the kernel refused it. */
  write(packet: Uint8Array): boolean;
  /** Stop reading and release the interface; resolves when nothing is left running. */
  close(): Promise<void>;
}

/** Default MTU of a WireGuard interface: 1500 minus the largest (IPv6) WireGuard overhead. */
export const DEFAULT_MTU = 1420;
/** Linux interface names are at most IFNAMSIZ - 1 = 15 bytes. */
export const MAX_INTERFACE_NAME_BYTES = 15;
