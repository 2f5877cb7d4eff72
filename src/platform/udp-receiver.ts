/**
 * The I/O thread's reader of a UDP port: recvmmsg(2) straight into the
 * ring's slots, each message with room for control data (the UDP_GRO
 * segment size, the local address it arrived on). Joined datagrams are
 * split into one slot each (udp-gro.ts). Each slot's meta bytes get the
 * sender's sockaddr and the local address, laid out as below.
 */
import { EBADF, EINVAL, ENOTSOCK } from './errno.js';
import { MSG_DONTWAIT, MSG_TRUNC, lastErrno, loadLibc } from './libc.js';
import { MessageVector, NAME_ROOM } from './message-vector.js';
import { addressOf } from './native-memory.js';
import { RELEASE_BATCH, type PacketRingProducer } from './packet-ring.js';
import type { ReceiveSourceSpec } from './io-thread-protocol.js';
import { CONTROL_ROOM, MSG_CTRUNC, emptyReceivedControl, parseReceivedControl } from './udp-control-message.js';
import { SegmentSplitter, UdpReceiveCounters, slotsPerReceive } from './udp-gro.js';

// A received datagram's meta bytes.
/** The sender's sockaddr_in / sockaddr_in6 at offset 0. */
const META_SENDER = 0;
/** 0: the local address is not known; 4 or 6. */
export const META_LOCAL_FAMILY = NAME_ROOM;
/** The index of the interface it arrived on (u32, little endian). */
export const META_INTERFACE_INDEX = NAME_ROOM + 4;
/** The local address it was sent to: 16 bytes, an IPv4 address in the first 4. */
export const META_LOCAL_ADDRESS = NAME_ROOM + 8;
/** Meta bytes per received datagram. */
export const RECEIVE_META_SIZE = 64;

const FATAL_SOCKET_ERRORS = new Set([EBADF, EINVAL, ENOTSOCK]);

/** Returns the reader of one of the source's fds: null, or why the source is gone for good. */
export function udpReceiver(spec: ReceiveSourceSpec, producer: PacketRingProducer): (fd: number) => string | null {
  const libc = loadLibc();
  const slotsAddress = addressOf(new Uint8Array(spec.ring.slots, 0, 1));
  const meta = new Uint8Array(spec.ring.meta);
  const metaView = new DataView(spec.ring.meta);
  const metaSize = spec.ring.metaSize;
  const messages = new MessageVector(RELEASE_BATCH, CONTROL_ROOM);
  const { slotSize, headroom, packetCapacity } = spec.ring;
  const splitter = new SegmentSplitter({ slots: new Uint8Array(spec.ring.slots), slotSize, headroom, slotCount: spec.ring.slotCount, meta, metaSize }, RELEASE_BATCH);
  const counters = new UdpReceiveCounters(spec.counters);
  const control = emptyReceivedControl();
  const withLocal = metaSize >= RECEIVE_META_SIZE;
  const perDatagram = slotsPerReceive(spec.coalescing, spec.ring.slotCount);
  return (fd) => {
    const free = producer.free;
    // Only as many datagrams as the free slots hold however many segments each carries: the splitter never
    // runs out of room, so nothing the kernel queued is lost here (the I/O thread polls this source only
    // while at least perDatagram slots are free; a fuller ring leaves datagrams in the socket's buffer).
    const count = Math.min(RELEASE_BATCH, Math.floor(free / perDatagram));
    if (count === 0) return null;
    for (let i = 0; i < count; i++) {
      messages.resetForReceive(i);
      messages.setBuffer(i, slotsAddress + producer.slotAhead(i) * slotSize + headroom, packetCapacity);
    }
    const received = libc.recvmmsg(fd, messages.bytes, count, MSG_DONTWAIT, null);
    if (received < 0) {
      // Only a socket that is no socket any more ends the source; anything else (a queued ICMP error) is passing.
      const { errno, code } = lastErrno();
      return FATAL_SOCKET_ERRORS.has(errno) ? `recvmmsg failed: ${code}` : null;
    }
    for (let i = 0; i < received; i++) {
      const at = producer.slotAhead(i) * metaSize;
      meta.set(messages.name(i), at + META_SENDER);
      parseReceivedControl(messages.dataView, messages.controlOffset(i), messages.controlLength(i), control);
      if (withLocal) {
        meta[at + META_LOCAL_FAMILY] = control.localFamily;
        metaView.setUint32(at + META_INTERFACE_INDEX, control.interfaceIndex, true);
        meta.set(control.localAddress, at + META_LOCAL_ADDRESS);
      }
      splitter.lengths[i] = messages.transferred(i);
      splitter.segmentSizes[i] = control.segmentSize;
      splitter.truncated[i] = (messages.flags(i) & (MSG_TRUNC | MSG_CTRUNC)) !== 0 ? 1 : 0;
    }
    const filled = splitter.split(producer.nextSlot, received, free);
    counters.add(splitter);
    for (let k = 0; k < filled; k++) producer.publish(splitter.out[k]!);
    if (filled > 0) producer.ringDoorbell();
    return null;
  };
}
