/**
 * RTNETLINK protocol constants, named as in the Linux UAPI headers
 * (linux/netlink.h, linux/rtnetlink.h, linux/if_link.h, linux/if_addr.h,
 * linux/veth.h). Only what this layer uses; the socket-level ones shared
 * with other system calls live in ../libc.ts.
 */
import { IFNAMSIZ } from '../libc.js';

export { AF_INET, AF_INET6 } from '../libc.js';

// ---- struct sizes ----------------------------------------------------------
export const NLA_ALIGNTO = 4;
/** struct nlmsghdr: len u32, type u16, flags u16, seq u32, pid u32. */
export const NLMSG_HDRLEN = 16;
/** struct nlattr: len u16, type u16. */
export const NLA_HDRLEN = 4;
/** struct ifinfomsg: family u8, pad u8, type u16, index i32, flags u32, change u32. */
export const IFINFOMSG_LEN = 16;
/** struct ifaddrmsg: family u8, prefixlen u8, flags u8, scope u8, index u32. */
export const IFADDRMSG_LEN = 8;
/** struct rtmsg: family, dst_len, src_len, tos, table, protocol, scope, type (u8 each), flags u32. */
export const RTMSG_LEN = 12;
/** struct sockaddr_nl: family u16, pad u16, pid u32, groups u32. */
export const SOCKADDR_NL_LEN = 12;

// ---- nlmsghdr types and flags ----------------------------------------------
export const NLMSG_NOOP = 1;
export const NLMSG_ERROR = 2;
export const NLMSG_DONE = 3;
export const NLMSG_OVERRUN = 4;

export const NLM_F_REQUEST = 0x01;
export const NLM_F_MULTI = 0x02;
export const NLM_F_ACK = 0x04;
export const NLM_F_DUMP_INTR = 0x10;
// Modifiers to GET requests
const NLM_F_ROOT = 0x100;
const NLM_F_MATCH = 0x200;
export const NLM_F_DUMP = NLM_F_ROOT | NLM_F_MATCH;
// Modifiers to NEW requests
export const NLM_F_REPLACE = 0x100;
export const NLM_F_EXCL = 0x200;
export const NLM_F_CREATE = 0x400;
// Flags of an NLMSG_ERROR message
export const NLM_F_CAPPED = 0x100;
export const NLM_F_ACK_TLVS = 0x200;

/** Extended-ack attributes after a struct nlmsgerr (NLM_F_ACK_TLVS). */
export const NLMSGERR_ATTR_MSG = 1;

/** setsockopt(SOL_NETLINK, ...) */
export const NETLINK_CAP_ACK = 10;
export const NETLINK_EXT_ACK = 11;

// ---- rtnetlink message types -----------------------------------------------
export const RTM_NEWLINK = 16;
export const RTM_DELLINK = 17;
export const RTM_GETLINK = 18;
export const RTM_SETLINK = 19;
export const RTM_NEWADDR = 20;
export const RTM_DELADDR = 21;
export const RTM_GETADDR = 22;
export const RTM_NEWROUTE = 24;
export const RTM_DELROUTE = 25;
export const RTM_GETROUTE = 26;

// ---- address families -------------------------------------------------------
export const AF_UNSPEC = 0;

// ---- link attributes (IFLA_*) -----------------------------------------------
export const IFLA_IFNAME = 3;
export const IFLA_MTU = 4;
export const IFLA_MASTER = 10;
export const IFLA_LINKINFO = 18;
export const IFLA_EXT_MASK = 29;
export const IFLA_NET_NS_FD = 28;

export const IFLA_INFO_KIND = 1;
export const IFLA_INFO_DATA = 2;

/** IFLA_INFO_DATA of kind "veth": the peer, as a struct ifinfomsg followed by IFLA_* attributes. */
export const VETH_INFO_PEER = 1;
/** IFLA_INFO_DATA of kind "bridge". */
export const IFLA_BR_STP_STATE = 5;

/** IFLA_EXT_MASK bits. */
export const RTEXT_FILTER_SKIP_STATS = 1 << 3;

// ---- interface flags (ifi_flags) --------------------------------------------
export const IFF_UP = 0x1;
export const IFF_LOWER_UP = 0x10000;

// ---- address attributes (IFA_*) ---------------------------------------------
export const IFA_ADDRESS = 1;
export const IFA_LOCAL = 2;
export const IFA_LABEL = 3;
export const IFA_BROADCAST = 4;
export const IFA_FLAGS = 8;

// ---- route attributes (RTA_*) and rtmsg fields --------------------------------
export const RTA_DST = 1;
export const RTA_OIF = 4;
export const RTA_GATEWAY = 5;
export const RTA_PRIORITY = 6;
export const RTA_PREFSRC = 7;
export const RTA_TABLE = 15;

export const RT_TABLE_MAIN = 254;

export const RTPROT_UNSPEC = 0;
export const RTPROT_STATIC = 4;

export const RT_SCOPE_UNIVERSE = 0;
export const RT_SCOPE_LINK = 253;
export const RT_SCOPE_HOST = 254;

export const RTN_UNICAST = 1;

/** IFNAMSIZ - 1: the longest interface name the kernel accepts. */
export const MAX_IFNAME_LEN = IFNAMSIZ - 1;
