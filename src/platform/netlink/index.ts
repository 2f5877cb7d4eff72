/**
 * RTNETLINK for tswg: an AF_NETLINK socket through koffi (socket.ts), a pure
 * codec (codec.ts), and the link / address / route / bridge helpers an
 * overlay node needs (rtnetlink.ts), here as module-level async functions that
 * act on the process's own network namespace. To act inside another
 * namespace use withNetns() from ../netns.ts, whose callback receives the same
 * helpers as methods.
 *
 * Addresses are strings ('10.0.0.1', 'fd00::1'); errors are NotFoundError
 * (a missing link, named), NetlinkError (errno + operation) and, for files,
 * IoError — see rtnetlink.ts for which helper is idempotent about what.
 */
import { Rtnetlink } from './rtnetlink.js';
import type { AddressEntry, IpVersion, LinkEntry, LinkNameIndex, RouteEntry } from './types.js';

export * from './types.js';
export { Rtnetlink, type RtnetlinkOptions } from './rtnetlink.js';
export { NetlinkSocket, type NetlinkSocketOptions } from './socket.js';
export {
  NetlinkDecodeError,
  ReplyCollector,
  decodeAddress,
  decodeError,
  decodeLink,
  decodeMessages,
  decodeRoute,
  encodeMessage,
  parseAttributes,
  type NetlinkMessage,
} from './codec.js';
export { formatIp, parseIp } from './ip-address.js';

let defaultInstance: Rtnetlink | null = null;

/** The shared instance for the process's own namespace (socket opened on first use, kept open). */
export function defaultRtnetlink(): Rtnetlink {
  if (defaultInstance === null) defaultInstance = new Rtnetlink();
  return defaultInstance;
}

/** Close the default instance's socket (a later call reopens it). */
export function closeDefaultRtnetlink(): void {
  defaultInstance?.close();
}

const rt = defaultRtnetlink;

export const dumpRoutes = (family: IpVersion): Promise<RouteEntry[]> => rt().dumpRoutes(family);
export const dumpLinks = (): Promise<LinkEntry[]> => rt().dumpLinks();
export const dumpAddresses = (index?: number): Promise<AddressEntry[]> => rt().dumpAddresses(index);

export const linkExists = (name: string): Promise<boolean> => rt().linkExists(name);
export const listAllLinks = (): Promise<LinkNameIndex[]> => rt().listAllLinks();
export const deleteLinkByName = (name: string): Promise<void> => rt().deleteLinkByName(name);
export const setLinkUpByName = (name: string): Promise<void> => rt().setLinkUpByName(name);
export const setLinkMtuByName = (name: string, mtu: number): Promise<void> => rt().setLinkMtuByName(name, mtu);
export const createVethPair = (hostName: string, peerName: string): Promise<void> => rt().createVethPair(hostName, peerName);
export const moveLinkIntoNetnsFdAndRename = (link: string, nsFd: number, newName: string): Promise<void> =>
  rt().moveLinkIntoNetnsFdAndRename(link, nsFd, newName);
export const moveLinkIntoNetnsAndRename = (link: string, pid: number, newName: string): Promise<void> =>
  rt().moveLinkIntoNetnsAndRename(link, pid, newName);

export const createBridge = (name: string): Promise<void> => rt().createBridge(name);
export const deleteBridge = (name: string): Promise<void> => rt().deleteBridge(name);
export const addLinkToBridge = (link: string, bridge: string): Promise<void> => rt().addLinkToBridge(link, bridge);
export const bridgeMemberCount = (name: string): Promise<number> => rt().bridgeMemberCount(name);
export const setBridgeStp = (name: string, on: boolean): Promise<void> => rt().setBridgeStp(name, on);

export const addAddressToLinkByName = (name: string, ip: string, prefixLen: number): Promise<void> =>
  rt().addAddressToLinkByName(name, ip, prefixLen);
export const deleteAddressFromLinkByName = (name: string, ip: string, prefixLen: number): Promise<void> =>
  rt().deleteAddressFromLinkByName(name, ip, prefixLen);
export const flushAddressesOnLinkByName = (name: string): Promise<void> => rt().flushAddressesOnLinkByName(name);

export const addRouteViaDev = (dest: string, prefixLen: number, dev: string): Promise<void> => rt().addRouteViaDev(dest, prefixLen, dev);
export const addDefaultRouteViaDev = (dev: string, isV6: boolean): Promise<void> => rt().addDefaultRouteViaDev(dev, isV6);
export const addDefaultRouteViaGateway = (gateway: string): Promise<void> => rt().addDefaultRouteViaGateway(gateway);
export const replaceRouteViaDev = (dest: string, prefixLen: number, dev: string, src?: string): Promise<void> =>
  rt().replaceRouteViaDev(dest, prefixLen, dev, src);
export const deleteRouteViaDev = (dest: string, prefixLen: number, dev: string): Promise<void> => rt().deleteRouteViaDev(dest, prefixLen, dev);
