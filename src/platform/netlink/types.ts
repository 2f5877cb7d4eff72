/**
 * Public types of the RTNETLINK layer (src/platform/netlink/).
 *
 * These are the shapes returned by the dump functions:
 *   dumpRoutes(family: 4 | 6): Promise<RouteEntry[]>
 *   dumpLinks(): Promise<LinkEntry[]>
 *   dumpAddresses(index?: number): Promise<AddressEntry[]>
 * exported from src/platform/netlink/index.ts (and as methods of `Rtnetlink` / `NetnsContext`).
 */

/** Address family selector used by the public helpers. */
export type IpVersion = 4 | 6;

/** One route from an RTM_GETROUTE dump (all tables). */
export interface RouteEntry {
  /** 4 or 6 (from rtm_family). */
  family: IpVersion;
  /** rtm_dst_len: 0 for a default route. */
  dstPrefixLength: number;
  /** Routing table: RTA_TABLE when present, else rtm_table (main = 254, local = 255). */
  table: number;
  /** RTA_OIF: output interface index, when present. */
  oif?: number;
  /** RTA_PRIORITY (metric); 0 when absent. */
  priority: number;
  /** RTA_GATEWAY as a string (e.g. "192.0.2.1", "fe80::1"), when present. */
  gateway?: string;
  /** RTA_DST as a string, when present (absent for default routes). */
  dst?: string;
  /** RTA_PREFSRC as a string, when present. */
  prefsrc?: string;
  /** rtm_type (RTN_UNICAST = 1, RTN_LOCAL = 2, ...). */
  type: number;
  /** rtm_scope (RT_SCOPE_UNIVERSE = 0, RT_SCOPE_LINK = 253, RT_SCOPE_HOST = 254). */
  scope: number;
  /** rtm_protocol (RTPROT_KERNEL = 2, RTPROT_BOOT = 3, RTPROT_STATIC = 4, ...). */
  protocol: number;
}

/** One link from an RTM_GETLINK dump. */
export interface LinkEntry {
  /** ifi_index. */
  index: number;
  /** IFLA_IFNAME ("" if the kernel sent none). */
  name: string;
  /** ifi_flags (IFF_UP = 0x1, IFF_LOOPBACK = 0x8, IFF_RUNNING = 0x40, IFF_LOWER_UP = 0x10000, ...). */
  flags: number;
  /** IFLA_MTU, when present. */
  mtu?: number;
  /** IFLA_MASTER (bridge / bond the link is enslaved to), when present. */
  master?: number;
  /** IFLA_INFO_KIND inside IFLA_LINKINFO (e.g. "veth", "bridge", "tun"), when present. */
  kind?: string;
  /** ifi_type (ARPHRD_ETHER = 1, ARPHRD_LOOPBACK = 772, ARPHRD_NONE = 65534, ...). */
  type: number;
}

/** One address from an RTM_GETADDR dump. */
export interface AddressEntry {
  /** ifa_index: the link the address is on. */
  index: number;
  /** 4 or 6 (from ifa_family). */
  family: IpVersion;
  /** IFA_LOCAL if present (the local address on point-to-point links), else IFA_ADDRESS. */
  address: string;
  /** ifa_prefixlen. */
  prefixLength: number;
  /** ifa_scope (RT_SCOPE_UNIVERSE = 0, RT_SCOPE_LINK = 253, RT_SCOPE_HOST = 254). */
  scope: number;
  /** IFA_FLAGS if present else ifa_flags (IFA_F_SECONDARY, IFA_F_PERMANENT, ...). */
  flags: number;
  /** IFA_LABEL (IPv4 only), when present. */
  label?: string;
}

/** `listAllLinks()` result element: a link's name and index. */
export interface LinkNameIndex {
  index: number;
  name: string;
}
