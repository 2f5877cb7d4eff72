/**
 * Physical-egress detection: the real NIC this host uses to reach the
 * outside world, and its source address, ignoring VPN-mesh and other
 * virtual interfaces.
 *
 * Why: the usual "UDP-connect to 8.8.8.8 and read the local address" trick
 * reports the source address of the default route, which on a mesh-joined
 * node (netbird `wt0`, `wg0`, Tailscale, ...) is the mesh's tunnel address.
 * Advertising or binding that address builds a tunnel inside a tunnel that
 * peers on other physical networks cannot reach.
 *
 * Linux algorithm (reads the routing table over RTNETLINK, no `ip` processes):
 *  1. Default routes of the main table (table 254, RTA_TABLE overriding the
 *     header byte; destination prefix length 0; with an output interface),
 *     IPv4 then IPv6, stable-sorted by ascending metric (RTA_PRIORITY,
 *     default 0), so IPv4 wins ties.
 *  2. Per route: the output interface by index (vanished or unnamed links are
 *     skipped), virtual names skipped (isVirtualInterface), then the link's
 *     primary global address: scope universe only, the first IPv4 address,
 *     else the first IPv6 one. The first route that yields one wins.
 *  3. Else the first UP link with a non-virtual name and a global address
 *     (logged as a warning with the route counts).
 *  4. Else the UDP-connect trick (IPv4, then IPv6; no packet is sent) with an
 *     empty interface name and a warning: the address may be a mesh address.
 *
 * Steps 1-3 are the pure selectPhysicalEgress() over dump snapshots; the I/O
 * (the dumps, the UDP socket, the logger) is injectable for tests.
 */
import dgram from 'node:dgram';
import { NetworkConfigError, PlatformError } from './errors.js';
import { IFF_UP, RT_SCOPE_UNIVERSE, RT_TABLE_MAIN } from './netlink/constants.js';
import { dumpAddresses, dumpLinks, dumpRoutes } from './netlink/index.js';
import type { AddressEntry, IpVersion, LinkEntry, RouteEntry } from './netlink/types.js';
import { errorMessage } from './error-message.js';

/**
 * Interface-name prefixes that are virtual for egress detection: loopback
 * (`lo`, `lo0`), netbird (`wt`, `nb`), WireGuard (`wg`), our own devices
 * (`zl-`), Apple/Tailscale (`utun`), generic tunnels (`tun`, `tap`), Docker
 * bridges (`docker`, `br-`) and container veths (`veth`). Plain prefix
 * matching: `br0`, `virbr0`, `cni0`, `cali*` and `flannel.*` count as
 * physical, while `lowpan0`, `tunl0` and anything starting with `nb` count
 * as virtual.
 */
export const VIRTUAL_INTERFACE_PREFIXES: readonly string[] = Object.freeze([
  'lo',
  'wt',
  'wg',
  'zl-',
  'utun',
  'tun',
  'tap',
  'docker',
  'br-',
  'veth',
  'nb',
]);

/** True when `name` starts with one of VIRTUAL_INTERFACE_PREFIXES. `''` is not virtual. */
export function isVirtualInterface(name: string): boolean {
  return VIRTUAL_INTERFACE_PREFIXES.some((prefix) => name.startsWith(prefix));
}

/** The physical interface used to reach the outside world and its source address. */
export interface PhysicalEgress {
  /** Interface name (`eth0`, `enp3s0`, ...); `''` when unknown (the UDP-connect fallback). */
  interface: string;
  /** Source address on that interface, e.g. '192.0.2.10' or '2001:db8::10'. */
  ip: string;
}

// ---- pure selection ----------------------------------------------------------

/** The parts of a route dump entry the selection reads. */
export type EgressRoute = Pick<RouteEntry, 'family' | 'dstPrefixLength' | 'table' | 'oif' | 'priority'>;
/** The parts of a link dump entry the selection reads. */
export type EgressLink = Pick<LinkEntry, 'index' | 'name' | 'flags'>;
/** The parts of an address dump entry the selection reads. */
export type EgressAddress = Pick<AddressEntry, 'index' | 'family' | 'address' | 'scope'>;

/** A default route of the main table: its output interface and metric. */
export interface DefaultRoute {
  family: IpVersion;
  oif: number;
  metric: number;
}

/**
 * The default routes of the main table with an output interface, cheapest
 * first. The sort is stable, with IPv4 before IPv6 on equal metrics (the
 * reference collects IPv4 first, then stable-sorts by metric).
 */
export function defaultRoutes(routes: readonly EgressRoute[]): DefaultRoute[] {
  const out: DefaultRoute[] = [];
  for (const route of routes) {
    if (route.dstPrefixLength !== 0) continue;
    if (route.table !== RT_TABLE_MAIN) continue;
    if (route.oif === undefined) continue;
    out.push({ family: route.family, oif: route.oif, metric: route.priority });
  }
  return out.sort((a, b) => a.metric - b.metric || a.family - b.family);
}

/**
 * The primary global address of link `index`: among its scope-universe
 * addresses (in dump order), the first IPv4 one, else the first IPv6 one.
 */
export function primaryGlobalAddress(addresses: readonly EgressAddress[], index: number): string | undefined {
  let v6: string | undefined;
  for (const entry of addresses) {
    if (entry.index !== index || entry.scope !== RT_SCOPE_UNIVERSE) continue;
    if (entry.family === 4) return entry.address;
    v6 ??= entry.address;
  }
  return v6;
}

/** What selectPhysicalEgress found, and how. */
export interface EgressSelection {
  egress: PhysicalEgress;
  /** 'default-route': the output interface of a default route (step 2); 'up-link': the link scan (step 3). */
  via: 'default-route' | 'up-link';
  /** Default routes of the main table considered: IPv4 ones, and all. */
  v4DefaultRoutes: number;
  totalDefaultRoutes: number;
}

/**
 * Steps 1-3 of the detection over snapshots of the route dumps (IPv4 and
 * IPv6, in any order), the link dump and the address dump. Null when
 * neither a default route nor an UP link leads to a physical interface with
 * a global address; the caller then falls back to UDP-connect.
 */
export function selectPhysicalEgress(
  routes: readonly EgressRoute[],
  links: readonly EgressLink[],
  addresses: readonly EgressAddress[],
): EgressSelection | null {
  const defaults = defaultRoutes(routes);
  const counts = { v4DefaultRoutes: defaults.filter((route) => route.family === 4).length, totalDefaultRoutes: defaults.length };
  const linkName = (index: number): string | undefined => {
    const name = links.find((link) => link.index === index)?.name;
    return name === '' ? undefined : name; // '' = the kernel sent no IFLA_IFNAME
  };

  for (const route of defaults) {
    const name = linkName(route.oif);
    if (name === undefined || isVirtualInterface(name)) continue; // vanished, or a mesh/virtual link
    const ip = primaryGlobalAddress(addresses, route.oif);
    if (ip !== undefined) return { egress: { interface: name, ip }, via: 'default-route', ...counts };
  }

  for (const link of links) {
    if ((link.flags & IFF_UP) === 0 || link.name === '' || isVirtualInterface(link.name)) continue;
    const ip = primaryGlobalAddress(addresses, link.index);
    if (ip !== undefined) return { egress: { interface: link.name, ip }, via: 'up-link', ...counts };
  }
  return null;
}

// ---- I/O -----------------------------------------------------------------------

/**
 * Where the dumps come from: by default the RTNETLINK dumps of the process's
 * own namespace. The method names are those of ./netlink's `Rtnetlink`, so an
 * Rtnetlink instance — or the `ns` of withNetns(), for another namespace —
 * is a source as it is.
 */
export interface EgressSource {
  dumpRoutes(family: IpVersion): Promise<readonly EgressRoute[]>;
  dumpLinks(): Promise<readonly EgressLink[]>;
  /** Addresses of link `index`, or of every link when it is omitted. */
  dumpAddresses(index?: number): Promise<readonly EgressAddress[]>;
}

/** The RTNETLINK dumps of src/platform/netlink, in the process's own network namespace. */
export const netlinkEgressSource: EgressSource = {
  dumpRoutes: (family) => dumpRoutes(family),
  dumpLinks: () => dumpLinks(),
  dumpAddresses: (index) => dumpAddresses(index),
};

export interface EgressLogger {
  warn(message: string): void;
}

/** Default logger: one `WARN: egress: ...` line on stderr. */
export const stderrEgressLogger: EgressLogger = {
  warn: (message) => {
    process.stderr.write(`WARN: egress: ${message}\n`);
  },
};

const UDP_CONNECT_TARGETS = { 4: { type: 'udp4', address: '8.8.8.8' }, 6: { type: 'udp6', address: '2001:4860:4860::8888' } } as const;

/**
 * The UDP-connect trick: the source address the kernel picks for a UDP
 * socket connected to 8.8.8.8:80 (IPv4) or [2001:4860:4860::8888]:80
 * (IPv6). connect() on UDP only sets the default destination, so nothing is
 * sent. Rejects when there is no route (ENETUNREACH and the like).
 */
export function udpConnectLocalAddress(family: IpVersion): Promise<string> {
  const target = UDP_CONNECT_TARGETS[family];
  return new Promise((resolve, reject) => {
    const socket = dgram.createSocket(target.type);
    let settled = false;
    const finish = (error: Error | null, address?: string): void => {
      if (settled) return;
      settled = true;
      try {
        socket.close();
      } catch {
        // already closed
      }
      if (error !== null) reject(error);
      else resolve(address ?? '');
    };
    socket.once('error', (error) => finish(error));
    socket.connect(80, target.address, (error?: Error) => {
      if (error) return finish(error);
      try {
        finish(null, socket.address().address);
      } catch (cause) {
        finish(cause instanceof Error ? cause : new Error(String(cause)));
      }
    });
  });
}

export interface DetectPhysicalEgressOptions {
  /** The dumps; default netlinkEgressSource (the process's own network namespace). */
  source?: EgressSource;
  /** Where the fallback warnings go; default stderrEgressLogger. */
  logger?: EgressLogger;
  /**
   * The last-resort fallback; default udpConnectLocalAddress, which runs in
   * the process's own namespace — give one that fits when `source` reads
   * another namespace.
   */
  udpConnect?: (family: IpVersion) => Promise<string>;
}

function errnoCode(error: unknown): string | undefined {
  if (error instanceof PlatformError) return error.code;
  const code = (error as { code?: unknown } | null)?.code;
  return typeof code === 'string' ? code : undefined;
}

/** An IPv6 route dump refused with EAFNOSUPPORT (IPv6 disabled in the kernel) is an empty one. */
function noIpv6(error: unknown): readonly EgressRoute[] {
  if (errnoCode(error) === 'EAFNOSUPPORT') return [];
  throw error;
}

async function dump<T>(what: string, run: () => Promise<T>): Promise<T> {
  try {
    return await run();
  } catch (error) {
    throw new NetworkConfigError(`${what} failed: ${errorMessage(error)}`, errnoCode(error), { cause: error });
  }
}

/**
 * Resolve the physical egress interface and its source address (see the
 * module comment for the algorithm).
 *
 * Errors: NetworkConfigError — 'route dump failed: …', 'link dump failed: …',
 * 'address dump failed: …', or, when nothing works (an offline host),
 * 'no physical egress interface found and UDP-connect fallback failed: …'.
 */
export async function detectPhysicalEgress(options: DetectPhysicalEgressOptions = {}): Promise<PhysicalEgress> {
  const source = options.source ?? netlinkEgressSource;
  const logger = options.logger ?? stderrEgressLogger;
  const udpConnect = options.udpConnect ?? udpConnectLocalAddress;

  // A kernel without IPv6 may answer an AF_INET6 dump with every family (keep
  // the asked one) or refuse it (no IPv6 routes then).
  const v4 = (await dump('route dump', () => source.dumpRoutes(4))).filter((route) => route.family === 4);
  const v6 = (await dump('route dump', () => source.dumpRoutes(6).catch(noIpv6))).filter((route) => route.family === 6);
  const links = await dump('link dump', () => source.dumpLinks());
  const addresses = await dump('address dump', () => source.dumpAddresses());

  const selection = selectPhysicalEgress([...v4, ...v6], links, addresses);
  if (selection !== null) {
    if (selection.via === 'up-link') {
      logger.warn(
        `all default routes egress through virtual/mesh interfaces (v4 default routes: ${selection.v4DefaultRoutes}, ` +
          `total default routes: ${selection.totalDefaultRoutes}); selected first non-virtual UP interface ` +
          `'${selection.egress.interface}' as physical egress`,
      );
    }
    return selection.egress;
  }

  let ip: string;
  try {
    ip = await udpConnect(4);
  } catch (v4Error) {
    try {
      ip = await udpConnect(6);
    } catch (v6Error) {
      throw new NetworkConfigError(
        `no physical egress interface found and UDP-connect fallback failed: IPv4: ${errorMessage(v4Error)}; IPv6: ${errorMessage(v6Error)}`,
        errnoCode(v6Error),
        { cause: v6Error },
      );
    }
  }
  logger.warn(
    `could not distinguish a physical NIC from virtual/mesh interfaces; falling back to UDP-connect source IP ${ip} ` +
      '(may be a VPN-mesh address)',
  );
  return { interface: '', ip };
}
