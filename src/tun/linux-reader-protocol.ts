/** What the TUN reader thread (linux-reader.ts) gets from its parent (linux.ts). */
import type { PacketRingMemory } from '../platform/packet-ring.js';

export interface ReaderData {
  tunFd: number;
  /** Read end of the parent's wake-up pipe: a byte there means stop. */
  wakeFd: number;
  ring: PacketRingMemory;
  /** The fd was opened with IFF_VNET_HDR: each read starts with a virtio_net_hdr. */
  vnetHeader: boolean;
}
