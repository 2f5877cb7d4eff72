import type { TransportSlot } from '../noise/transport-slot.js';

/**
 * What the device needs of a TUN driver. Linux's /dev/net/tun implements it
 * today; macOS utun and Windows Wintun can implement the same interface.
 */
export interface TunHandlers {
  /** An IP packet read from the interface. The bytes are only valid during the call. */
  packet(packet: Uint8Array): void;
  /**
   * The fast path a driver may offer instead of packet(): the packet is
   * slot.bytes[16, 16 + length), with room around it to build the transport
   * message in place (TransportSlot). The slot stays valid until flush() returns.
   */
  slotPacket?(slot: TransportSlot, length: number): void;
  /** The end of a run of slotPacket() calls: send what was built in the slots. */
  flush?(): void;
  /** The interface went away (deleted) or reading failed for good. */
  closed(error: Error | null): void;
}

export interface TunDevice {
  /** The interface name (on macOS the kernel picks it). */
  readonly name: string;
  readonly mtu: number;
  /** Start reading packets. */
  start(handlers: TunHandlers): void;
  /** Write one IP packet to the interface; returns false when the kernel refused it. */
  write(packet: Uint8Array): boolean;
  /** Stop reading and release the interface; resolves when nothing is left running. */
  close(): Promise<void>;
}

/** Default MTU of a WireGuard interface: 1500 minus the largest (IPv6) WireGuard overhead. */
export const DEFAULT_MTU = 1420;
/** Linux interface names are at most IFNAMSIZ - 1 = 15 bytes. */
export const MAX_INTERFACE_NAME_BYTES = 15;
