/**
 * The device's UDP receive loop, in a worker thread of its own: poll(2) on
 * the IPv4 and IPv6 sockets and a wake-up pipe, then recvmmsg(2) straight
 * into free slots of the shared packet ring (platform/packet-ring.ts), the
 * sender's sockaddr beside each, and one doorbell per batch. Compared with
 * node:dgram this is one syscall per batch instead of per datagram, and no
 * Buffer, address string or event per datagram on the main thread.
 *
 * Messages to the parent: the doorbell and, once, { closed: reason }.
 */
import { parentPort, workerData } from 'node:worker_threads';
import { EAGAIN, EINTR, MSG_DONTWAIT, POLLIN, lastErrno, loadLibc } from '../platform/libc.js';
import { MessageVector } from '../platform/message-vector.js';
import { addressOf } from '../platform/native-memory.js';
import { DOORBELL_MESSAGE, MAX_PACKET_SIZE, PacketRingProducer, RELEASE_BATCH, SLOT_SIZE, type PacketRingMemory } from '../platform/packet-ring.js';

export interface UdpReaderData {
  /** The bound sockets' fds; -1 for a family that is not open. */
  fds: [number, number];
  /** Read end of the parent's wake-up pipe: a byte there means stop. */
  wakeFd: number;
  ring: PacketRingMemory;
}

/** Datagrams per recvmmsg call. */
const RECEIVE_BATCH = RELEASE_BATCH;
const POLLFD_SIZE = 8;

function run({ fds, wakeFd, ring }: UdpReaderData): string {
  const libc = loadLibc();
  const producer = new PacketRingProducer(ring, () => parentPort!.postMessage(DOORBELL_MESSAGE));
  const slotsAddress = addressOf(new Uint8Array(ring.slots, 0, 1));
  const meta = new Uint8Array(ring.meta);
  const messages = new MessageVector(RECEIVE_BATCH);
  const sockets = fds.filter((fd) => fd >= 0);
  const pollfds = new Uint8Array((sockets.length + 1) * POLLFD_SIZE);
  const view = new DataView(pollfds.buffer);
  [...sockets, wakeFd].forEach((fd, i) => {
    view.setInt32(i * POLLFD_SIZE, fd, true);
    view.setInt16(i * POLLFD_SIZE + 4, POLLIN, true);
  });
  const wakeEntry = sockets.length;

  /** recvmmsg from one socket into free slots; false when the socket failed for good. */
  const receive = (fd: number): string | null => {
    for (;;) {
      const count = Math.min(RECEIVE_BATCH, producer.free);
      if (count === 0) return null;
      for (let i = 0; i < count; i++) {
        messages.resetForReceive(i);
        messages.setBuffer(i, slotsAddress + producer.slotAhead(i) * SLOT_SIZE, MAX_PACKET_SIZE);
      }
      const received = libc.recvmmsg(fd, messages.bytes, count, MSG_DONTWAIT, null);
      if (received < 0) {
        const { errno, code } = lastErrno();
        if (errno === EAGAIN || errno === EINTR) return null;
        return `recvmmsg failed: ${code}`;
      }
      for (let i = 0; i < received; i++) {
        meta.set(messages.name(i), producer.nextSlot * ring.metaSize);
        producer.publish(messages.transferred(i));
      }
      if (received > 0) producer.ringDoorbell();
      if (received < count) return null;
    }
  };

  for (;;) {
    if (!producer.waitForRoom()) return 'stopped';
    for (let i = 0; i <= wakeEntry; i++) view.setInt16(i * POLLFD_SIZE + 6, 0, true);
    if (libc.poll(pollfds, sockets.length + 1, -1) < 0) {
      if (lastErrno().errno === EINTR) continue;
      return `poll failed: ${lastErrno().code}`;
    }
    if (view.getInt16(wakeEntry * POLLFD_SIZE + 6, true) !== 0) return 'stopped';
    for (let i = 0; i < sockets.length; i++) {
      if (view.getInt16(i * POLLFD_SIZE + 6, true) === 0) continue;
      const failure = receive(sockets[i]!);
      if (failure !== null) return failure;
    }
  }
}

parentPort!.postMessage({ closed: run(workerData as UdpReaderData) });
