/**
 * The platform room's second index: configuring the kernel's network
 * (RTNETLINK links, addresses and routes, network namespaces, sysctl,
 * physical-egress detection, SO_BINDTODEVICE). Only the processes that
 * configure load it (the overlay node, NAT candidates); the WireGuard daemon's
 * data path needs none of it, and index.ts does not re-export it.
 */
export * from './netlink/index.js';
export { IFF_UP, RT_SCOPE_UNIVERSE } from './netlink/constants.js';
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
export { NetnsContext, withNetns, withNetnsFd, type NetnsTarget, type WithNetnsOptions } from './netns.js';
export { ipv6ForwardingPath, readSysctl, readSysctlSync, setIpv6Forwarding, setSysctl, setSysctlSync, sysctlPath } from './sysctl.js';
