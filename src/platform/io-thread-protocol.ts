/** What the I/O thread (io-worker.ts) and its owner (io-thread.ts) exchange. */
import type { PacketRingMemory } from './packet-ring.js';

/** Packets read with read(2), one per call (a TUN fd). */
export interface ReadSourceSpec {
  kind: 'read';
  id: number;
  fd: number;
  ring: PacketRingMemory;
  /** Bytes the read puts before the packet (a virtio_net_hdr), in the slot's header room. */
  headerSize: number;
}

/**
 * Datagrams received with recvmmsg(2) from one or more UDP sockets; the
 * sender's sockaddr and the local address go to the slot's meta bytes
 * (udp-receiver.ts), joined (GRO) datagrams are split.
 */
export interface ReceiveSourceSpec {
  kind: 'recvmmsg';
  id: number;
  fds: number[];
  ring: PacketRingMemory;
  /** The UdpReceiveCounters' memory (udp-gro.ts). */
  counters: SharedArrayBuffer;
  /** Whether any of the sockets has UDP_GRO on: one received datagram may then fill up to UDP_GRO_MAX_SEGMENTS slots. */
  coalescing: boolean;
}

export type SourceSpec = ReadSourceSpec | ReceiveSourceSpec;

export interface IoWorkerData {
  /** Read end of the owner's wake-up pipe: a byte there means "commands are waiting". */
  wakeFd: number;
  /** Int32 words: COMMANDS_SENT. */
  control: SharedArrayBuffer;
  /** The wake word (wake-word.ts): bumped when a source's ring rang its doorbell. */
  wake: SharedArrayBuffer;
  sources: SourceSpec[];
}

/** control[COMMANDS_SENT]: commands the owner has posted; the worker handles them all before polling again. */
export const COMMANDS_SENT = 0;

export type Command = { add: SourceSpec } | { remove: number } | { stop: true };

/** Worker → owner, besides the wake word: the thread polls now, a source is gone, or its removal is done. */
export type Report = { ready: true } | { closed: number; reason: string } | { removed: number };
