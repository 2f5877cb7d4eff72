/**
 * Overlay-node tests' topology: N namespaces on one LAN segment (a bridge in
 * a namespace of its own, each node attached by a veth called eth0 with
 * 192.168.77.(10+i)/24), and `tswg node` daemons running in them with their
 * own data directory and control socket (a temp directory: the default
 * /run/tswg/node.sock is shared by every namespace).
 *
 * Every node gets slice 10.200.(i+1).0/26 of cluster 10.200.0.0/16, so its
 * node IP is 10.200.(i+1).1. Deployments are unique per run, so interface
 * names (zl-<deployment>-n<i>-g) and their UAPI sockets never collide with
 * another run's. Everything is registered with the netns cleanup registry.
 */
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import {
  addressAndUp,
  createNamespace,
  createTempDir,
  createVethPair,
  execIn,
  ip,
  startIn,
  waitUntil,
  type NamespaceProcess,
} from './netns.js';
import { TSWG_BIN } from './topology.js';
import { ControlClient } from '../../src/overlay/control-client.js';
import type { PeerSpec, Request, Response } from '../../src/overlay/protocol.js';
import { StateStore } from '../../src/overlay/state-store.js';

export const CLUSTER_CIDR = '10.200.0.0/16';
export const WG_PORT = 51820;
const LAN_PREFIX = '192.168.77';
/** Node start-up on a loaded 2-core machine (a Node process, TUN, netlink). */
const READY_TIMEOUT_MS = 20_000;
const READY_LINE = 'tswg node: ready';

let deploymentCounter = 0;

/** A deployment name unique to this run: short, so interface names stay readable ("zl-d3k9a1-n1-g"). */
export function uniqueDeployment(): string {
  deploymentCounter++;
  return `d${(process.pid % 46656).toString(36)}${deploymentCounter.toString(36)}`;
}

export interface MeshNode {
  index: number;
  namespace: string;
  lanAddress: string;
  dataDir: string;
  controlPath: string;
  /** Config file path (written by writeConfig). */
  configPath: string;
  instanceId: string;
  sliceCidr: string;
  nodeIp: string;
  /** The node's public key, from its state file (created before the daemon first runs). */
  publicKey: string;
  process: NamespaceProcess | null;
}

export interface Mesh {
  deployment: string;
  lan: string;
  nodes: MeshNode[];
}

/** N namespaces on one bridged segment, each with a data dir whose identity already exists. */
export function createMesh(count: number): Mesh {
  const deployment = uniqueDeployment();
  const lan = createNamespace();
  ip(lan, 'link', 'add', 'br0', 'type', 'bridge');
  ip(lan, 'link', 'set', 'br0', 'up');
  const nodes: MeshNode[] = [];
  for (let i = 0; i < count; i++) {
    const namespace = createNamespace();
    const veth = createVethPair(namespace, { hostNamespace: lan });
    ip(lan, 'link', 'set', 'dev', veth.host.name, 'master', 'br0');
    ip(lan, 'link', 'set', 'dev', veth.host.name, 'up');
    ip(namespace, 'link', 'set', 'dev', veth.peer.name, 'name', 'eth0');
    const lanAddress = `${LAN_PREFIX}.${10 + i}`;
    addressAndUp(namespace, 'eth0', `${lanAddress}/24`);
    nodes.push(prepareNode(namespace, i, lanAddress));
  }
  return { deployment, lan, nodes };
}

/**
 * A node slot in an existing namespace: data dir (its identity created now,
 * so peers can be configured before the daemon first runs), control socket
 * path, instance id n<index+1>, slice 10.200.<index+1>.0/26.
 */
export function prepareNode(namespace: string, index: number, lanAddress: string): MeshNode {
  const dataDir = createTempDir('tswg-node-data-');
  const dir = createTempDir('tswg-node-ctl-');
  const state = new StateStore(dataDir).load();
  return {
    index,
    namespace,
    lanAddress,
    dataDir,
    controlPath: join(dir, 'node.sock'),
    configPath: join(dir, 'node.json'),
    instanceId: `n${index + 1}`,
    sliceCidr: `10.200.${index + 1}.0/26`,
    nodeIp: `10.200.${index + 1}.1`,
    publicKey: state.publicKey,
    process: null,
  };
}

/** The PeerSpec other nodes use for `node`. */
export function peerSpecOf(node: MeshNode): PeerSpec {
  return { publicKey: node.publicKey, endpoint: `${node.lanAddress}:${WG_PORT}`, allowedIps: node.sliceCidr, persistentKeepaliveSecs: 0, candidates: [] };
}

/** The SetupGlobalOverlay request for `node`. */
export function setupRequest(mesh: Mesh, node: MeshNode): Request {
  return {
    type: 'SetupGlobalOverlay',
    deployment: mesh.deployment,
    instanceId: node.instanceId,
    clusterCidr: CLUSTER_CIDR,
    sliceCidr: node.sliceCidr,
    wgPort: WG_PORT,
    hostAdapterMandatory: false,
  };
}

/** Write `node`'s config file: its settings and every other node as a peer. */
export function writeConfig(mesh: Mesh, node: MeshNode, extra: Record<string, unknown> = {}): void {
  const config = {
    deployment: mesh.deployment,
    instanceId: node.instanceId,
    clusterCidr: CLUSTER_CIDR,
    sliceCidr: node.sliceCidr,
    wgPort: WG_PORT,
    peers: mesh.nodes.filter((other) => other !== node).map(peerSpecOf),
    ...extra,
  };
  writeFileSync(node.configPath, `${JSON.stringify(config, null, 2)}\n`);
}

export interface StartNodeOptions {
  config?: boolean;
  metrics?: string;
  env?: NodeJS.ProcessEnv;
}

/** Start `tswg node` in the node's namespace and wait for its ready line (fails with its output if it exits first). */
export async function startNode(node: MeshNode, options: StartNodeOptions = {}): Promise<NamespaceProcess> {
  const args = ['node', '--data-dir', node.dataDir, '--control', node.controlPath];
  if (options.config === true) args.push('--config', node.configPath);
  if (options.metrics !== undefined) args.push('--metrics', options.metrics);
  const proc = startIn(node.namespace, TSWG_BIN, args, {
    name: `tswg node ${node.instanceId}`,
    env: { ...process.env, LOG_LEVEL: 'verbose', ...options.env },
  });
  node.process = proc;
  await waitUntil(() => proc.output().includes(READY_LINE) || !proc.running(), `tswg node ${node.instanceId} to be ready`, READY_TIMEOUT_MS, 50);
  if (!proc.running()) throw new Error(`tswg node ${node.instanceId} exited before it was ready:\n${proc.output()}`);
  return proc;
}

/** Send one request over a fresh connection. */
export async function request(node: MeshNode, req: Request): Promise<Response> {
  const client = await ControlClient.connect(node.controlPath);
  try {
    return await client.request(req);
  } finally {
    client.close();
  }
}

/** ping from `node` to `target` (an overlay IP), retried while the first handshake happens. */
export async function pingOverlay(node: MeshNode, target: string, timeoutMs = 15_000): Promise<void> {
  let last = '';
  await waitUntil(
    () => {
      try {
        execIn(node.namespace, 'ping', ['-c', '1', '-W', '1', '-n', target], { timeoutMs: 3000 });
        return true;
      } catch (error) {
        last = (error as Error).message;
        return false;
      }
    },
    `ping ${node.instanceId} → ${target} (last: ${last})`,
    timeoutMs,
    200,
  );
}

/** Wait until eth0 of a node namespace has its IPv6 link-local address and nothing is tentative, so two snapshots compare what the node did. */
export async function settledLan(namespace: string): Promise<void> {
  await waitUntil(
    () => {
      const text = ip(namespace, 'addr', 'show', 'dev', 'eth0');
      return text.includes('inet6 fe80') && !text.includes('tentative');
    },
    'the IPv6 link-local address of eth0 to settle',
    10_000,
    100,
  );
}

/** Interfaces, addresses, routes and the forwarding sysctls of a namespace, for before/after comparisons. */
export interface NetworkSnapshot {
  links: unknown[];
  addresses: unknown[];
  routes4: unknown;
  routes6: unknown;
  sysctls: Record<string, string>;
}

const SNAPSHOT_SYSCTLS = ['net.ipv4.ip_forward', 'net.ipv6.conf.default.forwarding', 'net.ipv6.conf.eth0.forwarding', 'net.ipv6.conf.all.forwarding'];

export function networkSnapshot(namespace: string): NetworkSnapshot {
  const json = (...args: string[]): unknown => JSON.parse(ip(namespace, '-j', ...args) || '[]');
  const links = (json('link', 'show') as Array<Record<string, unknown>>).map((l) => ({
    ifname: l.ifname,
    flags: l.flags,
    mtu: l.mtu,
    operstate: l.operstate,
    address: l.address,
  }));
  const addresses = (json('addr', 'show') as Array<Record<string, unknown>>).map((a) => ({
    ifname: a.ifname,
    addr: ((a.addr_info as Array<Record<string, unknown>>) ?? []).map((info) => `${String(info.local)}/${String(info.prefixlen)}`).sort(),
  }));
  const sysctls: Record<string, string> = {};
  for (const key of SNAPSHOT_SYSCTLS) sysctls[key] = execIn(namespace, 'sysctl', ['-n', key]).trim();
  return { links, addresses, routes4: json('-4', 'route', 'show', 'table', 'all'), routes6: json('-6', 'route', 'show', 'table', 'all'), sysctls };
}
