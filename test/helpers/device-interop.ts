/**
 * Helpers for the namespace interop tests of the device (test/device/interop.test.ts):
 * reading `wg show IF dump`, running iperf3 through a tunnel, and tearing a
 * pair down early. Everything still goes through the cleanup registry of
 * scripts/lib/netns.ts, so an early teardown and cleanup() never conflict.
 */
import { execFile } from 'node:child_process';
import { existsSync, readFileSync } from 'node:fs';
import { promisify } from 'node:util';
import { execIn, listNamespaces, namespaceArgv, processGone, run, startIn, waitUntil } from '../../scripts/lib/netns.js';
import { UAPI_DIRECTORY, type Pair, type WgNode } from '../../scripts/lib/topology.js';

const execFileAsync = promisify(execFile);

// ---- wg show IF dump ---------------------------------------------------------

export interface DumpPeer {
  publicKey: string;
  /** null for "(none)". */
  presharedKey: string | null;
  /** null for "(none)"; otherwise "a.b.c.d:port" or "[v6]:port". */
  endpoint: string | null;
  allowedIps: string[];
  /** Unix seconds of the latest handshake; 0 when none. */
  latestHandshake: number;
  rxBytes: number;
  txBytes: number;
  /** null for "off". */
  persistentKeepalive: number | null;
}

export interface Dump {
  privateKey: string;
  publicKey: string;
  listenPort: number;
  fwmark: string;
  peers: DumpPeer[];
}

function integer(field: string | undefined, what: string, line: string): number {
  if (field === undefined || !/^\d+$/.test(field)) throw new Error(`wg show dump: ${what} is not an integer in line: ${line}`);
  return Number(field);
}

/** Parse the output of `wg show IF dump` (one interface). */
export function parseWgDump(text: string): Dump {
  const lines = text.split('\n').filter((line) => line !== '');
  const [head, ...rest] = lines;
  if (head === undefined) throw new Error('wg show dump: empty output');
  const iface = head.split('\t');
  if (iface.length !== 4) throw new Error(`wg show dump: interface line has ${iface.length} fields: ${head}`);
  const peers = rest.map((line): DumpPeer => {
    const f = line.split('\t');
    if (f.length !== 8) throw new Error(`wg show dump: peer line has ${f.length} fields: ${line}`);
    const none = (value: string): string | null => (value === '(none)' ? null : value);
    return {
      publicKey: f[0]!,
      presharedKey: none(f[1]!),
      endpoint: none(f[2]!),
      allowedIps: f[3] === '(none)' ? [] : f[3]!.split(','),
      latestHandshake: integer(f[4], 'latest-handshake', line),
      rxBytes: integer(f[5], 'transfer-rx', line),
      txBytes: integer(f[6], 'transfer-tx', line),
      persistentKeepalive: f[7] === 'off' ? null : integer(f[7], 'persistent-keepalive', line),
    };
  });
  return { privateKey: iface[0]!, publicKey: iface[1]!, listenPort: integer(iface[2], 'listen-port', head), fwmark: iface[3]!, peers };
}

export function wgDump(node: WgNode): Dump {
  return parseWgDump(node.wg('show', node.interfaceName, 'dump'));
}

/** `node`'s view of the peer whose public key is `peerPublicKey`. */
export function peerEntry(node: WgNode, peerPublicKey: string): DumpPeer {
  const dump = wgDump(node);
  const peer = dump.peers.find((p) => p.publicKey === peerPublicKey);
  if (peer === undefined) throw new Error(`${node.implementation} ${node.interfaceName} has no peer ${peerPublicKey}; dump: ${JSON.stringify(dump.peers)}`);
  return peer;
}

/** `node`'s view of the other node of its pair. */
export function viewOf(node: WgNode, other: WgNode): DumpPeer {
  return peerEntry(node, other.keys.publicKey);
}

/** The endpoint string wg(8) prints for `node`'s outer address of `family` (everything listens on its port). */
export function endpointOf(node: WgNode, family: 4 | 6): string {
  return family === 4 ? `${node.outer4}:${node.port}` : `[${node.outer6}]:${node.port}`;
}

export interface Transfer {
  /** What a has received from b, and sent to b. */
  aRx: number;
  aTx: number;
  bRx: number;
  bTx: number;
}

/**
 * Both sides' counters, read so that every rx is read before the tx that
 * feeds it (b, a, b): with monotonic counters, aTx ≥ bRx and bTx ≥ aRx then
 * hold at any moment as long as nobody counts a datagram as received that
 * was not counted as sent.
 */
export function transfer(pair: Pair): Transfer {
  const b1 = viewOf(pair.b, pair.a);
  const a = viewOf(pair.a, pair.b);
  const b2 = viewOf(pair.b, pair.a);
  return { aRx: a.rxBytes, aTx: a.txBytes, bRx: b1.rxBytes, bTx: b2.txBytes };
}

/**
 * Wait until each side has received exactly what the other sent: true once
 * nothing is in flight, when no datagram was lost on the way and both sides
 * count the same bytes (whole UDP payloads). Returns the settled counters.
 */
export async function waitForMatchingCounters(pair: Pair, timeoutMs = 15_000): Promise<Transfer> {
  let last: Transfer | null = null;
  try {
    await waitUntil(
      () => {
        last = transfer(pair);
        return last.aTx === last.bRx && last.bTx === last.aRx;
      },
      'both sides to count the same bytes',
      timeoutMs,
      100,
    );
  } catch (error) {
    throw new Error(`${(error as Error).message}; last counters ${JSON.stringify(last)} (${pair.a.implementation} = a, ${pair.b.implementation} = b)`);
  }
  return last!;
}

// ---- iperf3 ------------------------------------------------------------------

export const IPERF_PORT = 5201;

/** The parts of `iperf3 -J` output these tests read (iperf 3.12 field names). */
export interface IperfSum {
  seconds: number;
  bytes: number;
  bits_per_second: number;
  packets?: number;
  lost_packets?: number;
  lost_percent?: number;
}

export interface IperfReport {
  error?: string;
  start: { test_start: { protocol: string; blksize: number; reverse: number } };
  end: { sum_sent?: IperfSum; sum_received?: IperfSum; sum?: IperfSum };
}

export interface IperfRun {
  report: IperfReport;
  /** Exit status of the one-off server. */
  serverExit: { code: number | null; signal: NodeJS.Signals | null };
  serverOutput: string;
}

/**
 * Run one iperf3 test: a one-off server (`-s -1`) in `server`'s namespace
 * bound to `address`, the client (`-c address -J` plus `clientArgs`) in
 * `client`'s namespace. Rejects when either side fails.
 */
export async function runIperf(server: Pick<WgNode, 'namespace' | 'interfaceName'>, client: Pick<WgNode, 'namespace'>, address: string, clientArgs: string[], timeoutMs = 60_000): Promise<IperfRun> {
  const serverProcess = startIn(server.namespace, 'iperf3', ['-s', '-1', '-B', address, '-p', String(IPERF_PORT)], { name: `iperf3 server ${server.interfaceName}` });
  await waitUntil(
    () => !serverProcess.running() || execIn(server.namespace, 'ss', ['-Hltn', `sport = :${IPERF_PORT}`]).trim() !== '',
    `the iperf3 server in ${server.namespace} to listen`,
    10_000,
    50,
  );
  if (!serverProcess.running()) throw new Error(`iperf3 server exited early:\n${serverProcess.output()}`);
  const [command, argv] = namespaceArgv(client.namespace, 'iperf3', ['-c', address, '-p', String(IPERF_PORT), '-J', '--connect-timeout', '10000', ...clientArgs]);
  let stdout: string;
  try {
    ({ stdout } = await execFileAsync(command, argv, { encoding: 'utf8', timeout: timeoutMs, maxBuffer: 16 * 1024 * 1024 }));
  } catch (error) {
    const e = error as { stdout?: string; stderr?: string; message: string };
    await serverProcess.stop();
    throw new Error(`iperf3 client failed: ${e.message}\nstdout: ${e.stdout ?? ''}\nstderr: ${e.stderr ?? ''}\nserver: ${serverProcess.output()}`);
  }
  const report = JSON.parse(stdout) as IperfReport;
  const serverExit = await serverProcess.waitForExit(15_000);
  return { report, serverExit, serverOutput: serverProcess.output() };
}

// ---- teardown ----------------------------------------------------------------

/**
 * Stop both daemons and delete both namespaces now, so that finished cases do
 * not keep processes around. The cleanup registry entries stay and find
 * nothing left to do.
 */
export async function destroyPair(pair: Pair): Promise<void> {
  await Promise.all([pair.a.process.stop(), pair.b.process.stop()]);
  const present = new Set(listNamespaces());
  for (const namespace of [pair.a.namespace, pair.b.namespace]) {
    if (present.has(namespace)) run('ip', ['netns', 'delete', namespace]);
  }
}

/** True while `pid` exists and is not a zombie. */
export function processAlive(pid: number): boolean {
  return !processGone(pid);
}

export function uapiSocketPath(interfaceName: string): string {
  return `${UAPI_DIRECTORY}/${interfaceName}.sock`;
}

/** What `nodes` left behind: live daemons and UAPI sockets. */
export function nodeLeftovers(nodes: readonly WgNode[]): string[] {
  const left: string[] = [];
  for (const node of nodes) {
    if (processAlive(node.process.pid)) left.push(`${node.implementation} ${node.interfaceName} (pid ${node.process.pid}) still runs`);
    if (existsSync(uapiSocketPath(node.interfaceName))) left.push(`socket ${uapiSocketPath(node.interfaceName)}`);
  }
  return left;
}
