/**
 * Candidates: the addresses a peer might reach this node at (ICE's
 * vocabulary, RFC 8445), their wire form, their priorities, and the host
 * candidates of this machine.
 *
 *  - host: an address of one of our own (non-virtual) interfaces with the
 *    WireGuard port; works when nothing translates between us and the peer.
 *  - server-reflexive: our address as a STUN server saw it (the NAT's
 *    mapping); works through endpoint-independent NATs once both sides punch.
 *  - relay: an address that forwards to us (a TURN allocation, or a built-in
 *    relay server that knows our public key); works through any NAT.
 *
 * Priority (RFC 8445 §5.1.2.1):
 *   priority = 2^24 · typePreference + 2^8 · localPreference + (256 − componentId)
 * with type preferences host 126, server-reflexive 100, relay 0, local
 * preference 65535 for IPv4 and 65534 for IPv6, and component 1 (WireGuard
 * is one flow). Higher is better. A peer's advertised priority is copied
 * verbatim from the wire: it is the advertiser's own ordering.
 */
import { isVirtualInterface, IFF_UP, RT_SCOPE_UNIVERSE, dumpAddresses, dumpLinks, type AddressEntry, type LinkEntry } from '../platform/network-config.js';
import { AddressError, formatEndpoint, parseEndpoint, type Endpoint } from '../device/index.js';
import { COMPONENT_ID, LOCAL_PREFERENCE_IPV4, LOCAL_PREFERENCE_IPV6, TYPE_PREFERENCE } from './constants.js';

export type CandidateType = 'host' | 'server-reflexive' | 'relay';
export const CANDIDATE_TYPES: readonly CandidateType[] = Object.freeze(['host', 'server-reflexive', 'relay']);

export interface Candidate {
  type: CandidateType;
  address: Endpoint;
  priority: number;
}

/** NatCandidateWire in camelCase: `{candidateType, address: "ip:port", priority}`. */
export interface CandidateWire {
  candidateType: string;
  address: string;
  priority: number;
}

/** The RFC 8445 priority of a candidate of `type` for an address of `family`. */
export function candidatePriority(type: CandidateType, family: 4 | 6 = 4): number {
  const localPreference = family === 4 ? LOCAL_PREFERENCE_IPV4 : LOCAL_PREFERENCE_IPV6;
  return TYPE_PREFERENCE[type] * 2 ** 24 + localPreference * 2 ** 8 + (256 - COMPONENT_ID);
}

/** A candidate with its RFC 8445 priority computed from its type and family. */
export function makeCandidate(type: CandidateType, address: Endpoint): Candidate {
  return { type, address: { ...address }, priority: candidatePriority(type, address.family) };
}

export function isCandidateType(text: unknown): text is CandidateType {
  return typeof text === 'string' && (CANDIDATE_TYPES as readonly string[]).includes(text);
}

export function candidateToWire(candidate: Candidate): CandidateWire {
  return { candidateType: candidate.type, address: formatEndpoint(candidate.address), priority: candidate.priority };
}

/**
 * The candidate a wire record describes, or null when its type is unknown,
 * its address is not "ip:port" / "[ipv6]:port" with a non-zero port, or its
 * priority is not a non-negative integer (input from the network: never throws).
 */
export function candidateFromWire(wire: unknown): Candidate | null {
  if (typeof wire !== 'object' || wire === null) return null;
  const { candidateType, address, priority } = wire as Record<string, unknown>;
  if (!isCandidateType(candidateType) || typeof address !== 'string') return null;
  if (typeof priority !== 'number' || !Number.isSafeInteger(priority) || priority < 0 || priority > 0xffffffff) return null;
  let endpoint: Endpoint;
  try {
    endpoint = parseEndpoint(address);
  } catch (error) {
    if (error instanceof AddressError) return null;
    throw error;
  }
  if (endpoint.port === 0) return null;
  return { type: candidateType, address: endpoint, priority };
}

/** The valid candidates of a wire list (invalid entries dropped); [] for anything that is not an array. */
export function candidatesFromWire(list: unknown): Candidate[] {
  if (!Array.isArray(list)) return [];
  return list.map(candidateFromWire).filter((candidate): candidate is Candidate => candidate !== null);
}

export function candidateKey(candidate: Candidate): string {
  return `${candidate.type} ${formatEndpoint(candidate.address)}`;
}

/**
 * The candidates to try, best first: sorted by descending priority (stable,
 * so equal priorities keep the advertiser's order), duplicates of the same
 * address dropped (the better one stays), at most `maxPairs`.
 */
export function orderCandidates(candidates: readonly Candidate[], maxPairs: number): Candidate[] {
  const seen = new Set<string>();
  const out: Candidate[] = [];
  const sorted = candidates.map((candidate, index) => ({ candidate, index })).sort((a, b) => b.candidate.priority - a.candidate.priority || a.index - b.index);
  for (const { candidate } of sorted) {
    const address = formatEndpoint(candidate.address);
    if (seen.has(address)) continue;
    seen.add(address);
    out.push(candidate);
    if (out.length >= maxPairs) break;
  }
  return out;
}

/**
 * Pair our candidates with a peer's (ICE, RFC 8445 §6.1.2): a pair is usable when both
 * sides have the same address family. Sorted by the RFC 8445 pair priority
 * 2^32·min(G,D) + 2·max(G,D) + (G>D ? 1 : 0), with us as the controlling side
 * (G = ours); at most `maxPairs`. A WireGuard device has one socket, so the
 * local half only says which family; the list is what a connect attempt walks.
 */
export interface CandidatePair {
  local: Candidate;
  remote: Candidate;
  priority: bigint;
}

export function pairCandidates(local: readonly Candidate[], remote: readonly Candidate[], maxPairs: number): CandidatePair[] {
  const pairs: CandidatePair[] = [];
  for (const l of local) {
    for (const r of remote) {
      if (l.address.family !== r.address.family) continue;
      const g = BigInt(l.priority);
      const d = BigInt(r.priority);
      const min = g < d ? g : d;
      const max = g < d ? d : g;
      pairs.push({ local: l, remote: r, priority: (min << 32n) + 2n * max + (g > d ? 1n : 0n) });
    }
  }
  pairs.sort((a, b) => (a.priority === b.priority ? 0 : a.priority > b.priority ? -1 : 1));
  return pairs.slice(0, maxPairs);
}

// ---- host candidates ---------------------------------------------------------

/** Link kinds that are tunnels of ours or others', whatever their name. */
const VIRTUAL_LINK_KINDS = new Set(['tun', 'wireguard', 'vxlan', 'gre', 'ipip', 'sit']);

export interface HostCandidateOptions {
  /** Interfaces to leave out besides the virtual ones (e.g. the device's own TUN). */
  excludeInterfaces?: readonly string[];
}

/**
 * Pure part of host gathering: one host candidate per global address of an
 * up, non-virtual link (isVirtualInterface by name, or a tunnel kind), with
 * `port`. IPv4 before IPv6, each in dump order.
 */
export function selectHostCandidates(links: readonly LinkEntry[], addresses: readonly AddressEntry[], port: number, options: HostCandidateOptions = {}): Candidate[] {
  const usable = new Map<number, LinkEntry>();
  for (const link of links) {
    if ((link.flags & IFF_UP) === 0 || link.name === '') continue;
    if (isVirtualInterface(link.name) || (link.kind !== undefined && VIRTUAL_LINK_KINDS.has(link.kind))) continue;
    if (options.excludeInterfaces?.includes(link.name)) continue;
    usable.set(link.index, link);
  }
  const out: Candidate[] = [];
  for (const family of [4, 6] as const) {
    for (const entry of addresses) {
      if (entry.family !== family || entry.scope !== RT_SCOPE_UNIVERSE || !usable.has(entry.index)) continue;
      out.push(makeCandidate('host', { family, address: entry.address, port }));
    }
  }
  return out;
}

/** Host candidates of the current network namespace (RTNETLINK dumps). */
export async function gatherHostCandidates(port: number, options: HostCandidateOptions = {}): Promise<Candidate[]> {
  const [links, addresses] = await Promise.all([dumpLinks(), dumpAddresses()]);
  return selectHostCandidates(links, addresses, port, options);
}
