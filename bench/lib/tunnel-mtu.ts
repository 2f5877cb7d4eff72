/**
 * Give a two-namespace pair (scripts/lib/topology.ts) a tunnel MTU other
 * than the default: the veth underneath gets room for the outer headers, both
 * WireGuard interfaces get the MTU, and a full-size ping with "don't
 * fragment" proves the tunnel carries it. An implementation that does not
 * carry such packets fails here, naming itself, instead of producing a
 * table of figures for a smaller MTU.
 */
import { execIn, ip } from '../../scripts/lib/netns.js';
import type { Pair } from '../../scripts/lib/topology.js';
import { E2E_OUTER_OVERHEAD } from '../constants.js';

/** IPv4 + ICMP headers: a ping of MTU - 28 payload bytes fills the MTU. */
const PING_OVERHEAD = 28;

export function setTunnelMtu(pair: Pair, mtu: number): void {
  const outer = mtu + E2E_OUTER_OVERHEAD;
  for (const [node, veth] of [[pair.a, pair.veth.a], [pair.b, pair.veth.b]] as const) {
    try {
      ip(node.namespace, 'link', 'set', 'dev', veth, 'mtu', String(outer));
    } catch (error) {
      throw new Error(`the veth under ${node.implementation} refuses MTU ${outer}: ${oneLine(error)}`);
    }
  }
  for (const node of [pair.a, pair.b]) {
    try {
      ip(node.namespace, 'link', 'set', 'dev', node.interfaceName, 'mtu', String(mtu));
    } catch (error) {
      throw new Error(`${node.implementation} (${node.interfaceName}) refuses MTU ${mtu}: ${oneLine(error)}`);
    }
  }
  for (const [from, to] of [[pair.a, pair.b], [pair.b, pair.a]] as const) {
    try {
      execIn(from.namespace, 'ping', ['-n', '-c', '3', '-i', '0.2', '-W', '3', '-M', 'do', '-s', String(mtu - PING_OVERHEAD), to.inner4]);
    } catch (error) {
      throw new Error(`${from.implementation} → ${to.implementation} does not carry ${mtu}-byte packets (MTU ${mtu}): ${oneLine(error)}`);
    }
  }
}

/** The command's error with its stderr, on one line. */
function oneLine(error: unknown): string {
  return (error instanceof Error ? error.message : String(error)).replace(/\n\s*/g, '; ');
}
