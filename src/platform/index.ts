/**
 * The platform room's index: what every process of this package needs from
 * here (the data path: the I/O thread, the ring, libc bindings, UDP sockets,
 * the line server, typed errors). Configuring the kernel's network (RTNETLINK,
 * namespaces, sysctl, egress detection) is the room's second index,
 * network-config.ts, so that the WireGuard daemon does not load it. The
 * package's `tswg/platform` is public.ts.
 */
export * from './errors.js';
export { errorMessage } from './error-message.js';
export { bindUdpSocket, openRawUdpSocket, setSocketMark, type BoundUdpSocket, type RawUdpSocket } from './udp-socket.js';
export { LibcSelfTestError, selfTestLibc } from './libc-self-test.js';
export { exitNow } from './exit.js';
export { IoThread } from './io-thread.js';
export { addPacketSource, type PacketSource } from './packet-source.js';
export { choosePacketReading, packetReading, MAIN_POLL_ENV, type PacketReading } from './packet-reading.js';
export { adaptiveReaders, onReaderMoved, type ReaderPlace } from './adaptive-source.js';
export { selfTestUvPoll } from './uv-poll-self-test.js';
export { AF_INET, AF_INET6, IFNAMSIZ, IFREQ_SIZE, lastErrno, loadLibc, loadNetlinkLibc, O_CLOEXEC, O_NONBLOCK, SOCK_CLOEXEC, SOCK_DGRAM } from './libc.js';
export { MessageVector } from './message-vector.js';
export { addressOf } from './native-memory.js';
export { createPacketRingMemory, MAX_PACKET_SIZE, PacketRingConsumer, plainSlot, RELEASE_BATCH, type RingSlot, type SlotHandler, type SlotLayout, type SlotWrapper } from './packet-ring.js';
export { CONTROL_ROOM, type LocalSource, writePacketInfo, writeSegmentSize } from './udp-control-message.js';
export { UdpReceiveCounters } from './udp-gro.js';
export { gsoMaxBytes, gsoRunLength } from './udp-gso.js';
export { enablePacketInfo, enableUdpOffloads, type UdpOffloads } from './udp-offload.js';
export { META_INTERFACE_INDEX, META_LOCAL_ADDRESS, META_LOCAL_FAMILY, RECEIVE_META_SIZE } from './udp-receiver.js';
export { workerScriptUrl } from './worker-script.js';
export { makeDirectory } from './directories.js';
export { EADDRINUSE, EADDRNOTAVAIL, EINVAL, EIO, EMSGSIZE, ENETUNREACH, ENODEV, EPROTO } from './errno.js';
export { LineConnection, LineServer, type LineSession, NotASocketError, SocketInUseError } from './line-server.js';
