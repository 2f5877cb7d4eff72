/**
 * Rtnetlink: the link / address / route / bridge helpers an overlay node
 * needs, as methods over one NETLINK_ROUTE socket. The module-level functions in index.ts call
 * the same methods on a default instance in the process's own namespace;
 * withNetns() (../netns.ts) hands its callback an instance whose socket was
 * created inside another namespace.
 *
 * Semantics, by errno rather than by message text:
 *  - a link is looked up by name with RTM_GETLINK + IFLA_IFNAME; ENODEV (or a
 *    name no link can have: empty or longer than 15 bytes) means absent;
 *  - absent link: NotFoundError naming it, except where the helper is
 *    idempotent: deleteLinkByName / deleteBridge, flushAddressesOnLinkByName,
 *    deleteRouteViaDev succeed, linkExists answers false and
 *    bridgeMemberCount answers 0;
 *  - createBridge treats EEXIST as success (without checking the existing
 *    link is a bridge); createVethPair and addAddressToLinkByName surface it;
 *  - deleteRouteViaDev treats ESRCH / ENOENT (route already gone) as success;
 *  - every other failure is a NetlinkError carrying the errno, the operation
 *    and the kernel's extended-ack text when it sent one.
 *
 * Choices made on purpose:
 *  - bridgeMemberCount counts the links whose IFLA_MASTER is the bridge (one
 *    RTM_GETLINK dump) instead of listing /sys/class/net/<br>/brif, and
 *    setBridgeStp sets IFLA_BR_STP_STATE through RTM_NEWLINK instead of writing
 *    /sys/class/net/<br>/bridge/stp_state. Same kernel effect, but sysfs shows
 *    the namespace sysfs was mounted in, not the caller's, so the sysfs way
 *    would be wrong inside withNetns.
 *    A link that is absent or not a bridge is NotFound for setBridgeStp (as a
 *    missing bridge/ directory would be) and 0 members for bridgeMemberCount.
 *  - deleteRouteViaDev sends rtm_protocol 0 (match any) so it also removes a
 *    route that `ip route add` installed (proto boot); the rest of the match
 *    is the install's: destination, output interface, link scope, no source.
 *  - Argument errors (a bad address string, a v4/v6 mismatch, a prefix length
 *    out of range, an invalid interface name for a create) are NetlinkError
 *    with errno EINVAL, raised before anything is sent.
 *
 * Routes are installed in the main table with rtm_protocol RTPROT_STATIC
 * (a route someone configured, not one the kernel or a daemon derived) and
 * type unicast.
 */
import { closeSync, openSync } from 'node:fs';
import { IoError, NetlinkError, NotFoundError } from '../errors.js';
import {
  addressAttributes,
  bytesAttr,
  decodeAddress,
  decodeLink,
  decodeRoute,
  encodeIfAddrMsg,
  encodeIfInfoMsg,
  encodeRtMsg,
  nestedAttr,
  stringAttr,
  u32Attr,
  type AttributeSpec,
} from './codec.js';
import {
  AF_INET,
  AF_INET6,
  AF_UNSPEC,
  IFA_ADDRESS,
  IFA_BROADCAST,
  IFA_LOCAL,
  IFF_UP,
  IFLA_BR_STP_STATE,
  IFLA_EXT_MASK,
  IFLA_IFNAME,
  IFLA_INFO_DATA,
  IFLA_INFO_KIND,
  IFLA_LINKINFO,
  IFLA_MASTER,
  IFLA_MTU,
  IFLA_NET_NS_FD,
  MAX_IFNAME_LEN,
  NLM_F_CREATE,
  NLM_F_EXCL,
  NLM_F_REPLACE,
  RTA_DST,
  RTA_GATEWAY,
  RTA_OIF,
  RTA_PREFSRC,
  RTEXT_FILTER_SKIP_STATS,
  RTM_DELADDR,
  RTM_DELLINK,
  RTM_DELROUTE,
  RTM_GETADDR,
  RTM_GETLINK,
  RTM_GETROUTE,
  RTM_NEWADDR,
  RTM_NEWLINK,
  RTM_NEWROUTE,
  RTM_SETLINK,
  RTN_UNICAST,
  RTPROT_STATIC,
  RTPROT_UNSPEC,
  RT_SCOPE_HOST,
  RT_SCOPE_LINK,
  RT_SCOPE_UNIVERSE,
  RT_TABLE_MAIN,
  VETH_INFO_PEER,
} from './constants.js';
import { EADDRNOTAVAIL, EEXIST, EINVAL, ENODEV, ENOENT, ESRCH } from '../errno.js';
import { errnoName } from './errno.js';
import { parseIp, type ParsedIp } from './ip-address.js';
import { NetlinkSocket, type NetlinkSocketOptions } from './socket.js';
import type { AddressEntry, IpVersion, LinkEntry, LinkNameIndex, RouteEntry } from './types.js';

function invalid(operation: string, message: string): NetlinkError {
  return new NetlinkError(`${operation}: ${message}`, EINVAL, operation, errnoName(EINVAL));
}

function isNetlinkErrno(error: unknown, ...errnos: number[]): boolean {
  return error instanceof NetlinkError && errnos.includes(error.errno);
}

const encoder = new TextEncoder();

/** True when the kernel could hold a link of this name (1-15 bytes). */
function plausibleIfName(name: string): boolean {
  const length = encoder.encode(name).length;
  return length >= 1 && length <= MAX_IFNAME_LEN && !name.includes('\0');
}

/** A name acceptable for a new link (the kernel's dev_valid_name). */
function checkNewIfName(name: string, operation: string): void {
  if (!plausibleIfName(name) || name === '.' || name === '..' || /[/:\s]/.test(name)) {
    throw invalid(operation, `invalid interface name '${name}' (1-${MAX_IFNAME_LEN} bytes, no '/', ':' or whitespace)`);
  }
}

function parseAddress(text: string, what: string, operation: string): ParsedIp {
  const parsed = typeof text === 'string' ? parseIp(text) : null;
  if (parsed === null) throw invalid(operation, `${what} '${String(text)}' is not an IPv4 or IPv6 address`);
  return parsed;
}

function checkPrefix(prefixLength: number, family: IpVersion, operation: string): void {
  const max = family === 4 ? 32 : 128;
  if (!Number.isInteger(prefixLength) || prefixLength < 0 || prefixLength > max) {
    throw invalid(operation, `prefix length ${String(prefixLength)} is out of range for IPv${family} (0-${max})`);
  }
}

const afOf = (family: IpVersion): number => (family === 4 ? AF_INET : AF_INET6);

/** IFLA_EXT_MASK asking the kernel to leave the statistics out of link messages. */
const SKIP_STATS = u32Attr(IFLA_EXT_MASK, RTEXT_FILTER_SKIP_STATS);

export interface RtnetlinkOptions extends NetlinkSocketOptions {
  /** Words for error messages: where the links live (default 'current netns'). */
  namespaceLabel?: string;
}

export class Rtnetlink {
  private socket: NetlinkSocket | null;
  private readonly adopted: boolean;
  /** Words naming the namespace in messages ('current netns', 'network namespace /run/netns/x', ...). */
  readonly namespaceLabel: string;

  /**
   * `socket`: an adopted socket (e.g. one created inside another namespace);
   * without it a socket is opened lazily in the calling thread's namespace.
   */
  constructor(
    socket: NetlinkSocket | null = null,
    private readonly options: RtnetlinkOptions = {},
  ) {
    this.socket = socket;
    this.adopted = socket !== null;
    this.namespaceLabel = options.namespaceLabel ?? 'current netns';
  }

  /** The underlying socket, opened on first use. */
  protected get sock(): NetlinkSocket {
    if (this.socket === null) this.socket = NetlinkSocket.open(this.options);
    return this.socket;
  }

  /** Close the socket. A lazily opening instance reopens on next use; an adopted one cannot. */
  close(): void {
    if (this.socket === null) return;
    this.socket.close();
    if (!this.adopted) this.socket = null;
  }

  private notFound(name: string): NotFoundError {
    return new NotFoundError(`link '${name}' not found in ${this.namespaceLabel}`, 'ENODEV');
  }

  // ---- lookups ----------------------------------------------------------------

  /** The link called `name`, or null when there is none. */
  linkByName(name: string): LinkEntry | null {
    if (typeof name !== 'string' || !plausibleIfName(name)) return null;
    let messages;
    try {
      messages = this.sock.request(RTM_GETLINK, 0, encodeIfInfoMsg(), [stringAttr(IFLA_IFNAME, name), SKIP_STATS], `link lookup for ${name}`);
    } catch (error) {
      if (isNetlinkErrno(error, ENODEV)) return null;
      throw error;
    }
    for (const message of messages) if (message.type === RTM_NEWLINK) return decodeLink(message);
    return null;
  }

  private requireLink(name: string): LinkEntry {
    const link = this.linkByName(name);
    if (link === null) throw this.notFound(name);
    return link;
  }

  /** Run a request on an existing link; ENODEV (it vanished meanwhile) becomes NotFound. */
  private onLink(name: string, run: () => void): void {
    try {
      run();
    } catch (error) {
      if (isNetlinkErrno(error, ENODEV)) throw this.notFound(name);
      throw error;
    }
  }

  // ---- dumps ------------------------------------------------------------------

  /** Every link (RTM_GETLINK dump). */
  dumpLinksSync(): LinkEntry[] {
    const messages = this.sock.dump(RTM_GETLINK, encodeIfInfoMsg(), [SKIP_STATS], 'link dump');
    return messages.filter((m) => m.type === RTM_NEWLINK).map(decodeLink);
  }

  /** Every IPv4 and IPv6 address, or only those of link `index`. */
  dumpAddressesSync(index?: number): AddressEntry[] {
    const header = encodeIfAddrMsg({ family: AF_UNSPEC, prefixLength: 0, index: 0 });
    const out: AddressEntry[] = [];
    for (const message of this.sock.dump(RTM_GETADDR, header, [], 'address dump')) {
      if (message.type !== RTM_NEWADDR) continue;
      const entry = decodeAddress(message);
      if (entry !== null && (index === undefined || entry.index === index)) out.push(entry);
    }
    return out;
  }

  /** Every route of `family`, all tables (RTM_GETROUTE dump). */
  dumpRoutesSync(family: IpVersion): RouteEntry[] {
    if (family !== 4 && family !== 6) throw invalid('route dump', `family must be 4 or 6, got ${String(family)}`);
    const out: RouteEntry[] = [];
    for (const message of this.sock.dump(RTM_GETROUTE, encodeRtMsg({ family: afOf(family) }), [], `route dump (IPv${family})`)) {
      if (message.type !== RTM_NEWROUTE) continue;
      const entry = decodeRoute(message);
      if (entry !== null) out.push(entry);
    }
    return out;
  }

  async dumpLinks(): Promise<LinkEntry[]> {
    return this.dumpLinksSync();
  }

  async dumpAddresses(index?: number): Promise<AddressEntry[]> {
    return this.dumpAddressesSync(index);
  }

  async dumpRoutes(family: IpVersion): Promise<RouteEntry[]> {
    return this.dumpRoutesSync(family);
  }

  // ---- links ------------------------------------------------------------------

  /** True when a link called `name` exists (ENODEV is false, other failures throw). */
  async linkExists(name: string): Promise<boolean> {
    return this.linkByName(name) !== null;
  }

  /** Every link as { index, name }; links without a name are skipped. */
  async listAllLinks(): Promise<LinkNameIndex[]> {
    return this.dumpLinksSync()
      .filter((link) => link.name !== '')
      .map((link) => ({ index: link.index, name: link.name }));
  }

  /** Delete a link; idempotent (an absent link is success). */
  async deleteLinkByName(name: string): Promise<void> {
    const link = this.linkByName(name);
    if (link === null) return;
    try {
      this.sock.request(RTM_DELLINK, 0, encodeIfInfoMsg({ index: link.index }), [], `link delete for ${name}`);
    } catch (error) {
      if (isNetlinkErrno(error, ENODEV)) return;
      throw error;
    }
  }

  /** Set a link administratively up; NotFound when it is absent. */
  async setLinkUpByName(name: string): Promise<void> {
    const link = this.requireLink(name);
    this.onLink(name, () =>
      this.sock.request(RTM_SETLINK, 0, encodeIfInfoMsg({ index: link.index, flags: IFF_UP, change: IFF_UP }), [], `link set up for ${name}`),
    );
  }

  /** Set a link's MTU; NotFound when it is absent. */
  async setLinkMtuByName(name: string, mtu: number): Promise<void> {
    const operation = `link set mtu ${String(mtu)} for ${name}`;
    if (!Number.isInteger(mtu) || mtu < 0 || mtu > 0xffffffff) throw invalid(operation, `MTU ${String(mtu)} is not a 32-bit unsigned integer`);
    const link = this.requireLink(name);
    this.onLink(name, () => this.sock.request(RTM_SETLINK, 0, encodeIfInfoMsg({ index: link.index }), [u32Attr(IFLA_MTU, mtu)], operation));
  }

  /**
   * Create a veth pair; both ends stay in this namespace, down. EEXIST is an
   * error ("veth pair already exists"): a leaked end the sweep missed.
   */
  async createVethPair(hostName: string, peerName: string): Promise<void> {
    const operation = `veth create (host=${hostName}, peer=${peerName})`;
    checkNewIfName(hostName, operation);
    checkNewIfName(peerName, operation);
    const peer = nestedAttr(VETH_INFO_PEER, [stringAttr(IFLA_IFNAME, peerName)], encodeIfInfoMsg());
    const linkInfo = nestedAttr(IFLA_LINKINFO, [stringAttr(IFLA_INFO_KIND, 'veth'), nestedAttr(IFLA_INFO_DATA, [peer])]);
    try {
      this.sock.request(RTM_NEWLINK, NLM_F_CREATE | NLM_F_EXCL, encodeIfInfoMsg(), [stringAttr(IFLA_IFNAME, hostName), linkInfo], operation);
    } catch (error) {
      if (isNetlinkErrno(error, EEXIST) && error instanceof NetlinkError) {
        throw new NetlinkError(`veth pair already exists: host=${hostName} peer=${peerName}: ${error.message}`, error.errno, operation, error.code);
      }
      throw error;
    }
  }

  /**
   * Move `link` into the namespace `nsFd` refers to and rename it there, in
   * one RTM_SETLINK carrying IFLA_NET_NS_FD and IFLA_IFNAME, so the link
   * arrives under its new name (no window where `ip link set netns` has moved
   * it and a second request must find it again). NotFound when `link` is
   * absent here. When `newName` is taken in the target the kernel (6.x, and
   * `ip link set DEV netns NS name X` alike) completes the move and then fails
   * the rename: the NetlinkError is EEXIST and the link is left in the target
   * under its old name.
   */
  async moveLinkIntoNetnsFdAndRename(link: string, nsFd: number, newName: string): Promise<void> {
    const found = this.requireLink(link);
    const operation = `setns_by_fd(index=${found.index}, new_name=${newName})`;
    checkNewIfName(newName, operation);
    if (!Number.isInteger(nsFd) || nsFd < 0) throw invalid(operation, `namespace fd ${String(nsFd)} is not a file descriptor`);
    this.onLink(link, () =>
      this.sock.request(RTM_SETLINK, 0, encodeIfInfoMsg({ index: found.index }), [u32Attr(IFLA_NET_NS_FD, nsFd), stringAttr(IFLA_IFNAME, newName)], operation),
    );
  }

  /**
   * moveLinkIntoNetnsFdAndRename with the namespace of process `pid`
   * (/proc/<pid>/ns/net, opened once and closed after; failure to open it is
   * an IoError). To do more than one thing in that namespace, open the fd
   * yourself (or use withNetns) so that the namespace stays pinned.
   */
  async moveLinkIntoNetnsAndRename(link: string, pid: number, newName: string): Promise<void> {
    const path = `/proc/${String(pid)}/ns/net`;
    if (!Number.isInteger(pid) || pid <= 0) throw new IoError(`cannot open ${path}: not a process id`, 'EINVAL');
    let fd: number;
    try {
      fd = openSync(path, 'r');
    } catch (error) {
      const code = (error as NodeJS.ErrnoException).code ?? 'EIO';
      throw new IoError(`cannot open ${path} (network namespace of pid ${pid}): ${(error as Error).message}`, code);
    }
    try {
      await this.moveLinkIntoNetnsFdAndRename(link, fd, newName);
    } finally {
      closeSync(fd);
    }
  }

  // ---- bridges ------------------------------------------------------------------

  /** Create a bridge (admin-down); idempotent: EEXIST is success, whatever the existing link is. */
  async createBridge(name: string): Promise<void> {
    const operation = `bridge create for ${name}`;
    checkNewIfName(name, operation);
    try {
      this.sock.request(
        RTM_NEWLINK,
        NLM_F_CREATE | NLM_F_EXCL,
        encodeIfInfoMsg(),
        [stringAttr(IFLA_IFNAME, name), nestedAttr(IFLA_LINKINFO, [stringAttr(IFLA_INFO_KIND, 'bridge')])],
        operation,
      );
    } catch (error) {
      if (isNetlinkErrno(error, EEXIST)) return;
      throw error;
    }
  }

  /** Same as deleteLinkByName (idempotent). */
  async deleteBridge(name: string): Promise<void> {
    return this.deleteLinkByName(name);
  }

  /** Enslave `link` to `bridge` (IFLA_MASTER); NotFound when either is absent. */
  async addLinkToBridge(link: string, bridge: string): Promise<void> {
    const bridgeLink = this.requireLink(bridge);
    const member = this.requireLink(link);
    this.onLink(link, () =>
      this.sock.request(
        RTM_SETLINK,
        0,
        encodeIfInfoMsg({ index: member.index }),
        [u32Attr(IFLA_MASTER, bridgeLink.index)],
        `set master (link=${link} bridge=${bridge})`,
      ),
    );
  }

  /** How many links are enslaved to bridge `name`; 0 when it is absent or not a bridge. */
  async bridgeMemberCount(name: string): Promise<number> {
    const bridge = this.linkByName(name);
    if (bridge === null || bridge.kind !== 'bridge') return 0;
    return this.dumpLinksSync().filter((link) => link.master === bridge.index).length;
  }

  /** Turn STP on or off on bridge `name`; NotFound when it is absent or not a bridge. */
  async setBridgeStp(name: string, on: boolean): Promise<void> {
    const bridge = this.linkByName(name);
    if (bridge === null || bridge.kind !== 'bridge') throw new NotFoundError(`bridge '${name}' not found in ${this.namespaceLabel}`, 'ENODEV');
    const linkInfo = nestedAttr(IFLA_LINKINFO, [
      stringAttr(IFLA_INFO_KIND, 'bridge'),
      nestedAttr(IFLA_INFO_DATA, [u32Attr(IFLA_BR_STP_STATE, on ? 1 : 0)]),
    ]);
    this.onLink(name, () => this.sock.request(RTM_NEWLINK, 0, encodeIfInfoMsg({ index: bridge.index }), [linkInfo], `bridge stp ${on ? 'on' : 'off'} for ${name}`));
  }

  // ---- addresses ------------------------------------------------------------------

  /** Add `ip/prefixLen` to a link; NotFound when it is absent; EEXIST is an error. */
  async addAddressToLinkByName(name: string, ip: string, prefixLen: number): Promise<void> {
    const operation = `address add for ${name} (${ip}/${prefixLen})`;
    const address = parseAddress(ip, 'address', operation);
    checkPrefix(prefixLen, address.family, operation);
    const link = this.requireLink(name);
    const attributes: AttributeSpec[] = [bytesAttr(IFA_LOCAL, address.bytes), bytesAttr(IFA_ADDRESS, address.bytes)];
    let scope = RT_SCOPE_UNIVERSE;
    if (address.family === 4) {
      if (prefixLen <= 30) {
        const broadcast = Uint8Array.from(address.bytes);
        for (let bit = prefixLen; bit < 32; bit++) broadcast[bit >> 3]! |= 0x80 >> (bit & 7);
        attributes.push(bytesAttr(IFA_BROADCAST, broadcast));
      }
      if (address.bytes[0] === 127) scope = RT_SCOPE_HOST; // as `ip addr add` does
    }
    const header = encodeIfAddrMsg({ family: afOf(address.family), prefixLength: prefixLen, scope, index: link.index });
    this.onLink(name, () => this.sock.request(RTM_NEWADDR, NLM_F_CREATE | NLM_F_EXCL, header, attributes, operation));
  }

  /** Remove one address of a link; success when the link or the address is absent. */
  async deleteAddressFromLinkByName(name: string, ip: string, prefixLen: number): Promise<void> {
    const operation = `address del for ${name} (${ip}/${prefixLen})`;
    const address = parseAddress(ip, 'address', operation);
    checkPrefix(prefixLen, address.family, operation);
    const link = this.linkByName(name);
    if (link === null) return;
    const header = encodeIfAddrMsg({ family: afOf(address.family), prefixLength: prefixLen, index: link.index });
    try {
      this.sock.request(RTM_DELADDR, 0, header, [bytesAttr(IFA_LOCAL, address.bytes), bytesAttr(IFA_ADDRESS, address.bytes)], operation);
    } catch (error) {
      if (isNetlinkErrno(error, EADDRNOTAVAIL, ENODEV)) return;
      throw error;
    }
  }

  /** Remove every IPv4 and IPv6 address of a link; success when the link is absent. */
  async flushAddressesOnLinkByName(name: string): Promise<void> {
    const link = this.linkByName(name);
    if (link === null) return;
    const header = encodeIfAddrMsg({ family: AF_UNSPEC, prefixLength: 0, index: 0 });
    const messages = this.sock.dump(RTM_GETADDR, header, [], `address list for ${name}`);
    for (const message of messages) {
      if (message.type !== RTM_NEWADDR) continue;
      const entry = decodeAddress(message);
      if (entry === null || entry.index !== link.index) continue;
      const raw = addressAttributes(message);
      const attributes: AttributeSpec[] = [];
      if (raw.local !== undefined) attributes.push(bytesAttr(IFA_LOCAL, raw.local));
      if (raw.address !== undefined) attributes.push(bytesAttr(IFA_ADDRESS, raw.address));
      const del = encodeIfAddrMsg({ family: afOf(entry.family), prefixLength: entry.prefixLength, index: link.index });
      try {
        this.sock.request(RTM_DELADDR, 0, del, attributes, `address del for ${name} (${entry.address}/${entry.prefixLength})`);
      } catch (error) {
        // Gone already: removing a primary IPv4 address takes its secondaries with it; or the link went away.
        if (isNetlinkErrno(error, EADDRNOTAVAIL, ENODEV)) continue;
        throw error;
      }
    }
  }

  // ---- routes -----------------------------------------------------------------------

  private routeAttributes(destination: ParsedIp, prefixLen: number, oif: number | null, extra: AttributeSpec[] = []): AttributeSpec[] {
    const attributes: AttributeSpec[] = [];
    if (prefixLen > 0) attributes.push(bytesAttr(RTA_DST, destination.bytes));
    if (oif !== null) attributes.push(u32Attr(RTA_OIF, oif));
    return [...attributes, ...extra];
  }

  private linkRouteHeader(family: IpVersion, prefixLen: number, protocol: number): Uint8Array {
    return encodeRtMsg({ family: afOf(family), dstLength: prefixLen, table: RT_TABLE_MAIN, protocol, scope: RT_SCOPE_LINK, type: RTN_UNICAST });
  }

  /** Add a link-scope route `dest/prefixLen dev <dev>` (no gateway); NotFound when dev is absent; EEXIST is an error. */
  async addRouteViaDev(dest: string, prefixLen: number, dev: string): Promise<void> {
    const operation = `route add ${dest}/${prefixLen} dev ${dev}`;
    const destination = parseAddress(dest, 'destination', operation);
    checkPrefix(prefixLen, destination.family, operation);
    const link = this.requireLink(dev);
    this.onLink(dev, () =>
      this.sock.request(
        RTM_NEWROUTE,
        NLM_F_CREATE | NLM_F_EXCL,
        this.linkRouteHeader(destination.family, prefixLen, RTPROT_STATIC),
        this.routeAttributes(destination, prefixLen, link.index),
        operation,
      ),
    );
  }

  /** Add a link-scope default route (0.0.0.0/0 or ::/0) out of `dev`; NotFound when dev is absent. */
  async addDefaultRouteViaDev(dev: string, isV6: boolean): Promise<void> {
    const family: IpVersion = isV6 ? 6 : 4;
    const operation = `default route add v${family} via ${dev}`;
    const link = this.requireLink(dev);
    this.onLink(dev, () =>
      this.sock.request(RTM_NEWROUTE, NLM_F_CREATE | NLM_F_EXCL, this.linkRouteHeader(family, 0, RTPROT_STATIC), [u32Attr(RTA_OIF, link.index)], operation),
    );
  }

  /** Add a default route via `gateway` (family from the gateway; no output interface). */
  async addDefaultRouteViaGateway(gateway: string): Promise<void> {
    let operation = `default route add via gateway ${gateway}`;
    const gw = parseAddress(gateway, 'gateway', operation);
    operation = `default route add v${gw.family} via gateway ${gateway}`;
    const header = encodeRtMsg({ family: afOf(gw.family), dstLength: 0, table: RT_TABLE_MAIN, protocol: RTPROT_STATIC, scope: RT_SCOPE_UNIVERSE, type: RTN_UNICAST });
    this.sock.request(RTM_NEWROUTE, NLM_F_CREATE | NLM_F_EXCL, header, [bytesAttr(RTA_GATEWAY, gw.bytes)], operation);
  }

  /**
   * Add or replace (NLM_F_CREATE | NLM_F_REPLACE) the link-scope route
   * `dest/prefixLen dev <dev> [src <src>]`. A v4/v6 mismatch between dest and
   * src is an error before anything is sent; NotFound when dev is absent.
   */
  async replaceRouteViaDev(dest: string, prefixLen: number, dev: string, src?: string): Promise<void> {
    const operation = `route replace ${dest}/${prefixLen} dev ${dev}${src !== undefined ? ` src ${src}` : ''}`;
    const destination = parseAddress(dest, 'destination', operation);
    const source = src !== undefined ? parseAddress(src, 'source', operation) : undefined;
    if (source !== undefined && source.family !== destination.family) {
      throw invalid(operation, `address family mismatch: dest=${dest} src=${src}`);
    }
    checkPrefix(prefixLen, destination.family, operation);
    const link = this.requireLink(dev);
    const extra = source !== undefined ? [bytesAttr(RTA_PREFSRC, source.bytes)] : [];
    this.onLink(dev, () =>
      this.sock.request(
        RTM_NEWROUTE,
        NLM_F_CREATE | NLM_F_REPLACE,
        this.linkRouteHeader(destination.family, prefixLen, RTPROT_STATIC),
        this.routeAttributes(destination, prefixLen, link.index, extra),
        operation,
      ),
    );
  }

  /**
   * Delete the link-scope route `dest/prefixLen dev <dev>`; idempotent: an
   * absent dev (its routes went with it) or an absent route is success.
   */
  async deleteRouteViaDev(dest: string, prefixLen: number, dev: string): Promise<void> {
    const operation = `route delete ${dest}/${prefixLen} dev ${dev}`;
    const destination = parseAddress(dest, 'destination', operation);
    checkPrefix(prefixLen, destination.family, operation);
    const link = this.linkByName(dev);
    if (link === null) return;
    try {
      this.sock.request(
        RTM_DELROUTE,
        0,
        this.linkRouteHeader(destination.family, prefixLen, RTPROT_UNSPEC),
        this.routeAttributes(destination, prefixLen, link.index),
        operation,
      );
    } catch (error) {
      if (isNetlinkErrno(error, ESRCH, ENOENT, ENODEV)) return;
      throw error;
    }
  }
}
