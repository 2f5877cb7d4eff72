/**
 * The rule set, built from the node's state, independent of any tool: what
 * nftables.ts and iptables.ts render. Sorted everywhere, so the same state
 * always renders the same bytes (applying twice changes nothing).
 *
 * What the rules say:
 *  - forward: members of an isolation network never reach a member of
 *    another one (in either direction: each side is the other's "other");
 *    TCP SYNs into or out of the overlay get their MSS clamped to the
 *    route's MTU; container traffic leaving the cluster CIDR through a
 *    non-overlay interface is marked, and the mark is masqueraded in
 *    postrouting (overlay-to-overlay traffic is never marked, so never
 *    NAT'd); overlay traffic is accepted (needed where the backend's chain
 *    is reached from a chain that would drop it).
 *  - input: the WireGuard ports and DNS on the node IP are accepted.
 *
 * Isolation on a shared bridge: frames between two containers on one bridge
 * are switched, never routed, so FORWARD (iptables, nft ip/inet) never sees
 * them unless br_netfilter is loaded, which would push every bridge on the
 * host through iptables. The node therefore filters bridged frames in an nft
 * `bridge` family table (forward hook, per-network address sets), and routed
 * traffic (across bridges, to and from other nodes) with the same address
 * rules in the forward chains.
 */
import { parseCidr, formatCidr } from '../../device/index.js';
import { FIREWALL_COMMENT_PREFIX, MASQUERADE_MARK } from '../constants.js';
import { FirewallError, type FirewallInput } from './firewall.js';

export interface IsolationNetwork {
  /** Position in name order: names the nft set (iso_N) and the iptables chain (TSWG-ISO-N). */
  index: number;
  name: string;
  /** Member addresses, sorted. */
  members: string[];
}

export interface RulePlan {
  family: 4 | 6;
  clusterCidr: string;
  nodeIp: string;
  wgPorts: { first: number; last: number };
  networks: IsolationNetwork[];
  /** Every isolated address, sorted. */
  isolated: string[];
  mark: number;
  /** Masquerade rules wanted (see FirewallInput.masquerade). */
  masquerade: boolean;
}

/** Every rule's comment: "tswg: …" (leftovers and bypass rules are found by the prefix). */
export const COMMENTS = {
  isolation: (network: string): string => `${FIREWALL_COMMENT_PREFIX}: isolation network ${network} reaches no other isolation network`,
  mss: `${FIREWALL_COMMENT_PREFIX}: clamp TCP MSS to the overlay MTU`,
  mark: `${FIREWALL_COMMENT_PREFIX}: mark container traffic leaving the cluster for masquerade`,
  masquerade: `${FIREWALL_COMMENT_PREFIX}: masquerade marked container traffic`,
  acceptFrom: `${FIREWALL_COMMENT_PREFIX}: accept traffic from the overlay`,
  acceptReplies: `${FIREWALL_COMMENT_PREFIX}: accept replies into the overlay`,
  wireguard: `${FIREWALL_COMMENT_PREFIX}: accept WireGuard`,
  dns: `${FIREWALL_COMMENT_PREFIX}: accept DNS on the node IP`,
  jump: `${FIREWALL_COMMENT_PREFIX}: overlay rules`,
} as const;

/** A mark as nft and iptables print it back (8 hex digits). */
export function hexMark(mark: number): string {
  return `0x${mark.toString(16).padStart(8, '0')}`;
}


function sortAddresses(addresses: Iterable<string>): string[] {
  return [...new Set(addresses)].sort((x, y) => (x.length - y.length) || (x < y ? -1 : x > y ? 1 : 0));
}

/** The plan for `input`; throws naming the bad field. */
export function buildPlan(input: FirewallInput): RulePlan {
  let cluster;
  try {
    cluster = parseCidr(input.clusterCidr);
  } catch (error) {
    throw new FirewallError(`firewall: invalid cluster CIDR ${input.clusterCidr}: ${(error as Error).message}`);
  }
  const family: 4 | 6 = cluster.family === 6 ? 6 : 4;
  const { first, last } = input.wgPorts;
  if (!Number.isInteger(first) || !Number.isInteger(last) || first < 1 || last > 65535 || first > last) {
    throw new FirewallError(`firewall: invalid WireGuard port range ${first}-${last}`);
  }
  const byNetwork = new Map<string, Set<string>>();
  for (const member of input.members) {
    const isV6 = member.ip.includes(':');
    if (isV6 !== (family === 6)) continue;
    let set = byNetwork.get(member.network);
    if (set === undefined) byNetwork.set(member.network, (set = new Set()));
    set.add(member.ip);
  }
  const networks = [...byNetwork.keys()].sort().map((name, index) => ({ index, name, members: sortAddresses(byNetwork.get(name)!) }));
  return {
    family,
    clusterCidr: formatCidr(cluster),
    nodeIp: input.nodeIp,
    wgPorts: { first, last },
    networks,
    isolated: sortAddresses(networks.flatMap((n) => n.members)),
    mark: MASQUERADE_MARK,
    masquerade: input.masquerade === true,
  };
}

/** Whether two plans render the same rules. */
export function samePlan(a: RulePlan | null, b: RulePlan | null): boolean {
  return JSON.stringify(a) === JSON.stringify(b);
}
