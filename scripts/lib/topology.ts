/**
 * Two WireGuard nodes in two network namespaces joined by a veth pair, each
 * run by tswg or wireguard-go and configured with wg(8): the topology of the
 * device tests, the demo and the end-to-end benchmark.
 *
 *   ns A: outer 198.18.x.1/30, 2001:2:0:x::1/64 ── veth ── ns B: .2 / ::2
 *         inner 198.19.y.1/24, fd19:0:0:y::1/64   (tunnel)    inner .2 / ::2
 *
 * Outer addresses come from the benchmarking ranges (RFC 2544 / RFC 5180),
 * so no test traffic can leave the machine. Everything is registered with
 * the netns cleanup registry.
 */
import { execFileSync } from 'node:child_process';
import { existsSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import {
  addressAndUp,
  createNamespace,
  createTempDir,
  createVethPair,
  execIn,
  ip,
  randomBenchmarkSubnet30,
  registerPathForRemoval,
  startIn,
  uniqueName,
  waitUntil,
  writeSecretFile,
  type NamespaceProcess,
} from './netns.js';

export type Implementation = 'tswg' | 'wireguard-go';

/** bin/tswg of this checkout (works from scripts/lib and from dist/scripts/lib). */
export const TSWG_BIN = fileURLToPath(new URL(import.meta.url.includes('/dist/') ? '../../../bin/tswg' : '../../bin/tswg', import.meta.url));
export const UAPI_DIRECTORY = '/var/run/wireguard';
export const DEFAULT_PORT = 51820;

export interface KeyPair {
  privateKey: string;
  publicKey: string;
}

export function wgKeyPair(): KeyPair {
  const privateKey = execFileSync('wg', ['genkey'], { encoding: 'utf8' }).trim();
  const publicKey = execFileSync('wg', ['pubkey'], { input: privateKey, encoding: 'utf8' }).trim();
  return { privateKey, publicKey };
}

export interface WgNode {
  implementation: Implementation;
  namespace: string;
  interfaceName: string;
  keys: KeyPair;
  port: number;
  outer4: string;
  outer6: string;
  inner4: string;
  inner6: string;
  process: NamespaceProcess;
  /** Run a command in the node's namespace. */
  exec(command: string, args?: string[]): string;
  /** `wg <args>` in the node's namespace. */
  wg(...args: string[]): string;
}

export interface NodeStartOptions {
  env?: NodeJS.ProcessEnv;
}

/** Start `implementation` in the foreground for `interfaceName` inside `namespace` and wait for its UAPI socket. */
export async function startImplementation(
  implementation: Implementation,
  namespace: string,
  interfaceName: string,
  options: NodeStartOptions = {},
): Promise<NamespaceProcess> {
  const socket = `${UAPI_DIRECTORY}/${interfaceName}.sock`;
  registerPathForRemoval(socket);
  const [command, args] = implementation === 'tswg' ? [TSWG_BIN, ['--foreground', interfaceName]] : ['wireguard-go', ['-f', interfaceName]];
  const process_ = startIn(namespace, command, args, { name: `${implementation} ${interfaceName}`, env: { ...process.env, ...options.env } });
  await waitUntil(() => existsSync(socket) || !process_.running(), `the UAPI socket of ${implementation} ${interfaceName}`, 10_000);
  if (!process_.running()) throw new Error(`${implementation} ${interfaceName} exited early:\n${process_.output()}`);
  return process_;
}

export interface PairOptions {
  left?: Implementation;
  right?: Implementation;
  /** Outer (UDP) family the endpoints use. */
  outerFamily?: 4 | 6;
  /** Configure a pre-shared key on both sides. */
  presharedKey?: boolean;
  /** Give each side the other's endpoint (default true); false: only A knows B's. */
  bothEndpoints?: boolean;
  persistentKeepalive?: number;
  env?: NodeJS.ProcessEnv;
}

export interface Pair {
  a: WgNode;
  b: WgNode;
  presharedKeyFile: string | null;
  dir: string;
  veth: { a: string; b: string };
  outerFamily: 4 | 6;
}

function randomByte(min: number, max: number): number {
  return min + Math.floor(Math.random() * (max - min + 1));
}

/** Build the two-namespace topology and bring both WireGuard interfaces up, configured as peers. */
export async function createPair(options: PairOptions = {}): Promise<Pair> {
  const outerFamily = options.outerFamily ?? 4;
  const nsA = createNamespace();
  const nsB = createNamespace();
  const veth = createVethPair(nsB, { hostNamespace: nsA });
  const outer = randomBenchmarkSubnet30();
  const v6Net = `2001:2:0:${randomByte(1, 0xfffe).toString(16)}`;
  const innerNet = randomByte(1, 254);
  addressAndUp(nsA, veth.host.name, `${outer.first}/30`);
  addressAndUp(nsB, veth.peer.name, `${outer.second}/30`);
  ip(nsA, 'addr', 'add', `${v6Net}::1/64`, 'dev', veth.host.name, 'nodad');
  ip(nsB, 'addr', 'add', `${v6Net}::2/64`, 'dev', veth.peer.name, 'nodad');

  const dir = createTempDir('tswg-pair-');
  const presharedKeyFile = options.presharedKey ? writeSecretFile(dir, 'psk', execFileSync('wg', ['genpsk'], { encoding: 'utf8' })) : null;
  const make = async (implementation: Implementation, namespace: string, host: number, outer4: string): Promise<WgNode> => {
    const interfaceName = uniqueName();
    const process_ = await startImplementation(implementation, namespace, interfaceName, { env: options.env });
    return {
      implementation,
      namespace,
      interfaceName,
      keys: wgKeyPair(),
      port: DEFAULT_PORT,
      outer4,
      outer6: `${v6Net}::${host}`,
      inner4: `198.19.${innerNet}.${host}`,
      inner6: `fd19:0:0:${innerNet.toString(16)}::${host}`,
      process: process_,
      exec: (command, args = []) => execIn(namespace, command, args),
      wg: (...args) => execIn(namespace, 'wg', args),
    };
  };
  const a = await make(options.left ?? 'tswg', nsA, 1, outer.first);
  const b = await make(options.right ?? 'wireguard-go', nsB, 2, outer.second);
  for (const [self, other] of [[a, b], [b, a]] as const) {
    const withEndpoint = self === a || options.bothEndpoints !== false;
    configurePeer(self, other, { dir, presharedKeyFile, outerFamily, withEndpoint, persistentKeepalive: options.persistentKeepalive });
    ip(self.namespace, 'addr', 'add', `${self.inner4}/24`, 'dev', self.interfaceName);
    ip(self.namespace, 'addr', 'add', `${self.inner6}/64`, 'dev', self.interfaceName, 'nodad');
    ip(self.namespace, 'link', 'set', 'dev', self.interfaceName, 'up');
  }
  return { a, b, presharedKeyFile, dir, veth: { a: veth.host.name, b: veth.peer.name }, outerFamily };
}

export interface PeerConfig {
  dir: string;
  presharedKeyFile: string | null;
  outerFamily: 4 | 6;
  withEndpoint: boolean;
  persistentKeepalive?: number | undefined;
}

/** `wg set` on `self`: its private key and port, and `other` as its peer. */
export function configurePeer(self: WgNode, other: WgNode, config: PeerConfig): void {
  const endpoint = config.outerFamily === 4 ? `${other.outer4}:${other.port}` : `[${other.outer6}]:${other.port}`;
  const args = ['set', self.interfaceName, 'private-key', writeSecretFile(config.dir, `${self.interfaceName}.key`, self.keys.privateKey), 'listen-port', String(self.port)];
  args.push('peer', other.keys.publicKey, 'allowed-ips', `${other.inner4}/32,${other.inner6}/128`);
  if (config.presharedKeyFile !== null) args.push('preshared-key', config.presharedKeyFile);
  if (config.withEndpoint) args.push('endpoint', endpoint);
  if (config.persistentKeepalive !== undefined) args.push('persistent-keepalive', String(config.persistentKeepalive));
  self.wg(...args);
}

/** ping's own deadline, under the 10 s the command is given. */
const PING_DEADLINE_S = 8;

/**
 * Ping `target` from `node`; returns ping's output (throws unless `count` replies arrive).
 * With -c alone ping lingers only twice the slowest round trip after its last echo, so on a
 * loaded machine a late reply is counted lost; -w makes it wait for all `count` replies.
 */
export function ping(node: WgNode, target: string, count = 3): string {
  return node.exec('ping', ['-c', String(count), '-i', '0.2', '-w', String(PING_DEADLINE_S), target]);
}
