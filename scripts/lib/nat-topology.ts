/**
 * A small internet in network namespaces, for NAT traversal tests:
 *
 *                       ns "internet" (a router, ip_forward on)
 *           bridge brh 203.0.113.1/24          bridge brs 198.51.100.1/24
 *              │            │                      │         │
 *   ns router1 wan .11   ns router2 wan .12     public hosts 198.51.100.N
 *   (MASQUERADE)         (MASQUERADE --random-fully)   (coturn, a relay,
 *      lan 10.10.1.1        lan 10.10.2.1               wireguard-go, ...)
 *        │                    │
 *   ns node1 eth0 10.10.1.2   ns node2 eth0 10.10.2.2
 *
 * Home routers translate with iptables MASQUERADE, which on Linux keeps the
 * source port when it can: an endpoint-independent mapping, the kind hole
 * punching gets through. With --random-fully every new destination gets a
 * new random port: an endpoint-dependent ("symmetric") mapping, where only a
 * relay helps. Conntrack filters inbound traffic by address and port either
 * way. Each router drops what arrives on its WAN for the router itself, as a
 * home router does; that also keeps an early unsolicited packet from leaving
 * a conntrack entry that would steal the port a later outbound flow needs.
 *
 * Addresses are the documentation ranges (TEST-NET-2/3, RFC 5737) and
 * 10.10.0.0/16 behind the routers; nothing is routed off the machine. Node
 * and public-host interfaces are called eth0 (a name NAT traversal counts as
 * physical). Everything is registered with the netns cleanup registry.
 */
import { addressAndUp, createNamespace, createVethPair, execIn, ip } from './netns.js';

export type NatBehaviour = 'endpoint-independent' | 'endpoint-dependent';

export const HOMES_SUBNET_PREFIX = '203.0.113';
export const SERVERS_SUBNET_PREFIX = '198.51.100';

export interface PublicHost {
  namespace: string;
  /** Its address on the servers' segment (198.51.100.N). */
  address: string;
  interfaceName: string;
}

export interface Home {
  behaviour: NatBehaviour;
  router: string;
  /** The router's public address (what peers see a home node as). */
  publicAddress: string;
  /** The namespace of the node behind the router. */
  node: string;
  /** The node's private address. */
  nodeAddress: string;
  interfaceName: string;
}

export interface NatTopology {
  internet: string;
  /** A namespace on the public servers' segment; `host` picks the last octet (default: the next free one from 10). */
  addPublicHost(host?: number): PublicHost;
  /** A router namespace on the public segment with a node namespace behind it. */
  addHome(behaviour: NatBehaviour): Home;
}

function sysctlIn(namespace: string, key: string, value: string): void {
  execIn(namespace, 'sysctl', ['-qw', `${key}=${value}`]);
}

/** Move the namespace end of a fresh veth pair to `namespace` and call it `name` there. */
function linkInto(namespace: string, name: string, hostNamespace: string): { outer: string } {
  const veth = createVethPair(namespace, { hostNamespace });
  ip(namespace, 'link', 'set', 'dev', veth.peer.name, 'name', name);
  return { outer: veth.host.name };
}

export function createNatTopology(): NatTopology {
  const internet = createNamespace();
  sysctlIn(internet, 'net.ipv4.ip_forward', '1');
  for (const [bridge, address] of [
    ['brh', `${HOMES_SUBNET_PREFIX}.1/24`],
    ['brs', `${SERVERS_SUBNET_PREFIX}.1/24`],
  ] as const) {
    ip(internet, 'link', 'add', bridge, 'type', 'bridge');
    addressAndUp(internet, bridge, address);
  }
  const attach = (outer: string, bridge: string): void => {
    ip(internet, 'link', 'set', 'dev', outer, 'master', bridge);
    ip(internet, 'link', 'set', 'dev', outer, 'up');
  };

  let nextServer = 10;
  let nextHome = 1;
  return {
    internet,
    addPublicHost(host) {
      const octet = host ?? nextServer++;
      const namespace = createNamespace();
      const { outer } = linkInto(namespace, 'eth0', internet);
      attach(outer, 'brs');
      const address = `${SERVERS_SUBNET_PREFIX}.${octet}`;
      addressAndUp(namespace, 'eth0', `${address}/24`);
      ip(namespace, 'route', 'add', 'default', 'via', `${SERVERS_SUBNET_PREFIX}.1`);
      return { namespace, address, interfaceName: 'eth0' };
    },
    addHome(behaviour) {
      const index = nextHome++;
      const router = createNamespace();
      const node = createNamespace();
      const publicAddress = `${HOMES_SUBNET_PREFIX}.${10 + index}`;
      const lan = `10.10.${index}`;
      const wan = linkInto(router, 'wan', internet);
      attach(wan.outer, 'brh');
      addressAndUp(router, 'wan', `${publicAddress}/24`);
      ip(router, 'route', 'add', 'default', 'via', `${HOMES_SUBNET_PREFIX}.1`);
      const inside = createVethPair(node, { hostNamespace: router, hostName: 'lan' });
      ip(node, 'link', 'set', 'dev', inside.peer.name, 'name', 'eth0');
      addressAndUp(router, 'lan', `${lan}.1/24`);
      addressAndUp(node, 'eth0', `${lan}.2/24`);
      ip(node, 'route', 'add', 'default', 'via', `${lan}.1`);
      sysctlIn(router, 'net.ipv4.ip_forward', '1');
      const masquerade = ['-t', 'nat', '-A', 'POSTROUTING', '-o', 'wan', '-j', 'MASQUERADE'];
      if (behaviour === 'endpoint-dependent') masquerade.push('--random-fully');
      execIn(router, 'iptables', masquerade);
      execIn(router, 'iptables', ['-A', 'INPUT', '-i', 'wan', '-j', 'DROP']);
      return { behaviour, router, publicAddress, node, nodeAddress: `${lan}.2`, interfaceName: 'eth0' };
    },
  };
}
