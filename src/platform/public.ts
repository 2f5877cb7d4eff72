/**
 * The platform layer's public API (`tswg/platform`): what a program that
 * embeds tswg may rely on. The room's index.ts also carries what the other
 * rooms of this package use (the I/O thread, the ring, libc bindings), which
 * is not part of the promise.
 *
 * What it offers: RTNETLINK helpers, withNetns, sysctl,
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
