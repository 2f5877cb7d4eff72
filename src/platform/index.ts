/**
 * The platform layer (`tswg/platform`): RTNETLINK helpers, withNetns, sysctl,
 * physical-egress detection, bindToDevice, UDP sockets with SO_MARK, and the
 * typed errors they throw. Nothing here runs `ip`, `nsenter` or `sysctl`.
 */
export * from './errors.js';
export { bindUdpSocket, openRawUdpSocket, setSocketMark, type BoundUdpSocket, type RawUdpSocket } from './udp-socket.js';
export {
  VIRTUAL_INTERFACE_PREFIXES,
  defaultRoutes,
  detectPhysicalEgress,
  isVirtualInterface,
  netlinkEgressSource,
  primaryGlobalAddress,
  selectPhysicalEgress,
  stderrEgressLogger,
  udpConnectLocalAddress,
  type DefaultRoute,
  type DetectPhysicalEgressOptions,
  type EgressAddress,
  type EgressLink,
  type EgressLogger,
  type EgressRoute,
  type EgressSelection,
  type EgressSource,
  type PhysicalEgress,
} from './egress.js';
export { MAX_INTERFACE_NAME_BYTES, bindToDevice, boundDevice, socketDescriptor, type DeviceBindableSocket } from './bind-to-device.js';
export * from './netlink/index.js';
export {
  NetnsContext,
  withNetns,
  withNetnsFd,
  type NetnsTarget,
  type WithNetnsOptions,
} from './netns.js';
export {
  ipv6ForwardingPath,
  readSysctl,
  readSysctlSync,
  setIpv6Forwarding,
  setSysctl,
  setSysctlSync,
  sysctlPath,
} from './sysctl.js';
export { LibcSelfTestError, selfTestLibc } from './libc-self-test.js';
export { exitNow } from './exit.js';
export { IoThread } from './io-thread.js';
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
