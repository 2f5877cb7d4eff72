/**
 * Small read-outs and actions for the device behaviour tests
 * (test/device/behaviour.test.ts): wg(8) show parsing, interface counters,
 * background pings and restarting one node of a scripts/lib/topology pair.
 * Everything started here goes through scripts/lib/netns.ts, so it is in
 * the cleanup registry.
 */
import { existsSync, readFileSync } from 'node:fs';
import { execIn, ip, startIn, waitUntil, type NamespaceProcess } from '../../scripts/lib/netns.js';
import { UAPI_DIRECTORY, configurePeer, startImplementation, type Pair, type WgNode } from '../../scripts/lib/topology.js';

export const sleep = (ms: number): Promise<void> => new Promise((resolve) => setTimeout(resolve, ms));

/** `wg show IF <field>` as a map from peer public key to the rest of the line. */
function wgShowPerPeer(node: WgNode, field: string): Map<string, string[]> {
  const map = new Map<string, string[]>();
  for (const line of node.wg('show', node.interfaceName, field).split('\n')) {
    if (line.trim() === '') continue;
    const [key, ...rest] = line.split('\t');
    map.set(key!, rest);
  }
  return map;
}

/** The endpoint `node` has for `peer` ("(none)" when it has none), or undefined when `peer` is not configured. */
export function endpointOf(node: WgNode, peer: WgNode | string): string | undefined {
  return wgShowPerPeer(node, 'endpoints').get(typeof peer === 'string' ? peer : peer.keys.publicKey)?.[0];
}

export interface Transfer {
  rx: number;
  tx: number;
}

/** Bytes `node` received from and sent to `peer` (its wg show transfer line). */
export function transferOf(node: WgNode, peer: WgNode | string): Transfer {
  const fields = wgShowPerPeer(node, 'transfer').get(typeof peer === 'string' ? peer : peer.keys.publicKey);
  if (fields === undefined) throw new Error(`${node.interfaceName} has no peer ${typeof peer === 'string' ? peer : peer.keys.publicKey}`);
  return { rx: Number(fields[0]), tx: Number(fields[1]) };
}

/** Unix seconds of the latest handshake `node` had with `peer` (0: none). */
export function latestHandshakeOf(node: WgNode, peer: WgNode): number {
  return Number(wgShowPerPeer(node, 'latest-handshakes').get(peer.keys.publicKey)?.[0] ?? 0);
}

/** The public keys of `node`'s peers. */
export function peersOf(node: WgNode): string[] {
  return node
    .wg('show', node.interfaceName, 'peers')
    .split('\n')
    .map((line) => line.trim())
    .filter((line) => line !== '');
}

export function listenPortOf(node: WgNode): number {
  return Number(node.wg('show', node.interfaceName, 'listen-port').trim());
}

export interface LinkCounters {
  rxPackets: number;
  txPackets: number;
}

/**
 * Packet counters of a link as the kernel sees it. For a TUN interface, RX
 * counts packets the daemon wrote (delivered into the kernel), TX the packets
 * the kernel handed to the daemon.
 */
export function linkCounters(namespace: string, link: string): LinkCounters {
  const parsed = JSON.parse(ip(namespace, '-s', '-j', 'link', 'show', 'dev', link)) as Array<{
    stats64: { rx: { packets: number }; tx: { packets: number } };
  }>;
  const stats = parsed[0]!.stats64;
  return { rxPackets: stats.rx.packets, txPackets: stats.tx.packets };
}

export function linkExists(namespace: string, link: string): boolean {
  try {
    ip(namespace, 'link', 'show', 'dev', link);
    return true;
  } catch {
    return false;
  }
}

/** Ping that is expected to get no reply: short, and returns true when a reply came after all. */
export function pingGotReply(namespace: string, target: string, extra: string[] = [], count = 3): boolean {
  try {
    execIn(namespace, 'ping', ['-c', String(count), '-i', '0.2', '-W', '1', ...extra, target], { timeoutMs: 15_000 });
    return true;
  } catch {
    return false;
  }
}

/** A ping running in the background: `count` echoes every `intervalS` seconds. */
export function startPing(namespace: string, target: string, count: number, intervalS = 0.1, extra: string[] = []): NamespaceProcess {
  return startIn(namespace, 'ping', ['-n', '-c', String(count), '-i', String(intervalS), '-W', '1', ...extra, target], { name: `ping ${target}` });
}

/** The icmp_seq numbers ping reported replies for. */
export function replySequences(pingOutput: string): number[] {
  return [...pingOutput.matchAll(/bytes from .*icmp_seq=(\d+)/g)].map((match) => Number(match[1]));
}

/** UDP ports something listens on in `namespace`. */
export function udpListenPorts(namespace: string): number[] {
  return execIn(namespace, 'ss', ['-H', '-u', '-l', '-n'])
    .split('\n')
    .map((line) => /:(\d+)$/.exec(line.trim().split(/\s+/)[3] ?? '')?.[1])
    .filter((port): port is string => port !== undefined)
    .map(Number);
}

/** Give `node` its inner addresses and bring its interface up (what createPair does after configuring). */
export function addressAndUpInner(node: WgNode, namespace = node.namespace): void {
  ip(namespace, 'addr', 'add', `${node.inner4}/24`, 'dev', node.interfaceName);
  ip(namespace, 'addr', 'add', `${node.inner6}/64`, 'dev', node.interfaceName, 'nodad');
  ip(namespace, 'link', 'set', 'dev', node.interfaceName, 'up');
}

export { processGone } from '../../scripts/lib/netns.js';

export function socketPath(interfaceName: string): string {
  return `${UAPI_DIRECTORY}/${interfaceName}.sock`;
}

/**
 * Stop `node`'s daemon with SIGTERM and wait until it exited cleanly and its
 * interface and UAPI socket are gone.
 */
export async function stopNode(node: WgNode): Promise<void> {
  const status = await node.process.stop(5000);
  if (status.signal === 'SIGKILL') throw new Error(`${node.implementation} ${node.interfaceName} needed SIGKILL:\n${node.process.output()}`);
  await waitUntil(() => !linkExists(node.namespace, node.interfaceName), `${node.interfaceName} to disappear`, 5000);
  await waitUntil(() => !existsSync(socketPath(node.interfaceName)), `the UAPI socket of ${node.interfaceName} to disappear`, 5000);
}

/** Start `node`'s daemon again under the same name and configure it as createPair did. */
export async function restartNode(pair: Pair, node: WgNode, other: WgNode): Promise<void> {
  node.process = await startImplementation(node.implementation, node.namespace, node.interfaceName);
  configurePeer(node, other, { dir: pair.dir, presharedKeyFile: pair.presharedKeyFile, outerFamily: pair.outerFamily, withEndpoint: true });
  addressAndUpInner(node);
}

/** Wait until the wall clock is at least one whole second past `unixSeconds` (latest-handshakes has 1 s resolution). */
export async function waitPastSecond(unixSeconds: number): Promise<void> {
  const target = (unixSeconds + 1) * 1000 + 50;
  const wait = target - Date.now();
  if (wait > 0) await sleep(wait);
}
