/**
 * The TUN read loop, in a worker thread of its own: it blocks in poll(2) on
 * the TUN fd and a wake-up pipe and reads every ready packet with read(2)
 * straight into the next free slot of the shared packet ring
 * (platform/packet-ring.ts), then rings the doorbell once per batch.
 * Reading in the libuv pool instead would leave a thread blocked in read(2)
 * that nothing can interrupt, and Node cannot exit while a pool thread is busy.
 *
 * Messages to the parent: the doorbell and, once, { closed: reason }.
 */
import { parentPort, workerData } from 'node:worker_threads';
import type { ReaderData } from './linux-reader-protocol.js';
import { TransportSlot } from '../noise/transport-slot.js';
import { EAGAIN, EINTR, POLLERR, POLLHUP, POLLIN, POLLNVAL, lastErrno, loadLibc } from '../platform/libc.js';
import { DOORBELL_MESSAGE, PACKET_CAPACITY, PacketRingProducer, SLOT_SIZE } from '../platform/packet-ring.js';
import { VIRTIO_NET_HDR_SIZE } from './virtio-net.js';

/** Packets read per wake-up before ringing the doorbell (bounds latency). */
const READ_BATCH = 64;
const POLLFD_SIZE = 8;

function run({ tunFd, wakeFd, ring, vnetHeader }: ReaderData): string {
  const libc = loadLibc();
  const producer = new PacketRingProducer(ring, () => parentPort!.postMessage(DOORBELL_MESSAGE));
  // With a virtio header it lands just before the packet, in the slot's header room, so the packet is where it always is.
  const headerSize = vnetHeader ? VIRTIO_NET_HDR_SIZE : 0;
  const readStart = TransportSlot.PACKET_OFFSET - headerSize;
  const readSize = PACKET_CAPACITY + headerSize;
  const readAreas = Array.from({ length: ring.slotCount }, (_, slot) => new Uint8Array(ring.slots, slot * SLOT_SIZE + readStart, readSize));
  const pollfds = new Uint8Array(2 * POLLFD_SIZE);
  const view = new DataView(pollfds.buffer);
  view.setInt32(0, tunFd, true);
  view.setInt16(4, POLLIN, true);
  view.setInt32(POLLFD_SIZE, wakeFd, true);
  view.setInt16(POLLFD_SIZE + 4, POLLIN, true);
  for (;;) {
    if (!producer.waitForRoom()) return 'stopped';
    view.setInt16(6, 0, true);
    view.setInt16(POLLFD_SIZE + 6, 0, true);
    if (libc.poll(pollfds, 2, -1) < 0) {
      if (lastErrno().errno === EINTR) continue;
      return `poll failed: ${lastErrno().code}`;
    }
    if (view.getInt16(POLLFD_SIZE + 6, true) !== 0) return 'stopped';
    const events = view.getInt16(6, true);
    if ((events & (POLLERR | POLLHUP | POLLNVAL)) !== 0 && (events & POLLIN) === 0) return 'the interface is gone';
    let read = 0;
    while (read < READ_BATCH && producer.free > 0) {
      const length = libc.read(tunFd, readAreas[producer.nextSlot]!, readSize);
      if (length > headerSize) {
        producer.publish(length - headerSize);
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
  }
}

parentPort!.postMessage({ closed: run(workerData as ReaderData) });
