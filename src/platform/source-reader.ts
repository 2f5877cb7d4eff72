/**
 * How a packet source's ready packets get into its ring: read(2) for a TUN
 * fd, recvmmsg(2) for UDP sockets (udp-receiver.ts), one batch per call,
 * ringing the ring's doorbell when anything was published. The same code
 * serves the I/O thread (io-worker.ts) and the main thread polling the fds
 * itself (main-poll-source.ts): only one of them reads a given fd.
 */
import { EAGAIN, EINTR } from './errno.js';
import { lastErrno, loadLibc } from './libc.js';
import { PacketRingProducer } from './packet-ring.js';
import type { SourceSpec } from './io-thread-protocol.js';
import { udpReceiver } from './udp-receiver.js';
import { slotsPerReceive } from './udp-gro.js';

/** Packets taken from one source per call before others get a turn (bounds latency). */
export const READ_BATCH = 64;
/** How soon a source whose ring was full is looked at again. */
export const RING_FULL_POLL_MS = 2;

export interface SourceReader {
  /** The fds to poll for it. */
  fds: readonly number[];
  producer: PacketRingProducer;
  /** Free slots a read needs (a UDP datagram the kernel joined fills up to UDP_GRO_MAX_SEGMENTS); with fewer the ring counts as full. */
  room: number;
  /** Reads one fd's ready packets; returns a reason when the source is gone for good. */
  read(fd: number): string | null;
}

/**
 * `notify` wakes the ring's consumer; `onMainThread`: the reader runs on the
 * thread that also holds the ring's read lock for its own inline reads, so it
 * must never wait for that lock (it leaves the packets for the next poll).
 */
export function openSourceReader(spec: SourceSpec, notify: () => void, onMainThread: boolean): SourceReader {
  const producer = new PacketRingProducer(spec.ring, notify);
  const read = spec.kind === 'read' ? tunReader(spec, producer, onMainThread) : udpReceiver(spec, producer);
  const room = spec.kind === 'read' ? 1 : slotsPerReceive(spec.coalescing, spec.ring.slotCount);
  return { fds: spec.kind === 'read' ? [spec.fd] : spec.fds, producer, room, read };
}

function tunReader(spec: SourceSpec & { kind: 'read' }, producer: PacketRingProducer, onMainThread: boolean): SourceReader['read'] {
  const libc = loadLibc();
  // With a header it lands just before the packet, in the slot's header room, so the packet is where it always is.
  const readStart = spec.ring.headroom - spec.headerSize;
  const readSize = spec.ring.packetCapacity + spec.headerSize;
  const areas = Array.from({ length: spec.ring.slotCount }, (_, slot) => new Uint8Array(spec.ring.slots, slot * spec.ring.slotSize + readStart, readSize));
  return (fd) => {
    // The main thread is reading this fd itself for a moment: poll again.
    if (!(onMainThread ? producer.tryLockReads() : producer.lockReads())) return null;
    try {
      return readBatch(fd);
    } finally {
      producer.unlockReads();
    }
  };
  function readBatch(fd: number): string | null {
    let read = 0;
    while (read < READ_BATCH && producer.free > 0) {
      const length = libc.read(fd, areas[producer.nextSlot]!, readSize);
      if (length > spec.headerSize) {
        producer.publish(length - spec.headerSize);
        read++;
        continue;
      }
      if (length < 0) {
        const { errno, code } = lastErrno();
        if (errno === EAGAIN || errno === EINTR) break;
        if (read > 0) producer.ringDoorbell();
        return `the interface is gone (read: ${code})`;
      }
      break;
    }
    if (read > 0) producer.ringDoorbell();
    return null;
  }
}
