/**
 * A real STUN/TURN server for tests: coturn's `turnserver`, started inside a
 * network namespace with a temporary config file (no TLS/DTLS, no CLI, no
 * shared database: users come from `user=` lines, the SQLite file lives in a
 * temp dir). Everything goes through scripts/lib/netns.ts, so cleanup()
 * stops the server and removes its files on every exit path.
 *
 * startCoturn() resolves only once every listening address answers a STUN
 * Binding request sent from inside the namespace, so a test can use the
 * server at once. log() returns coturn's output for failure messages.
 */
import { execFile } from 'node:child_process';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { createTempDir, namespaceArgv, startIn, type NamespaceProcess } from './netns.js';

export interface CoturnUser {
  name: string;
  password: string;
}

export interface CoturnOptions {
  /** One `listening-ip` each (IPv4 or IPv6, without brackets). At least one. */
  listenAddresses: string[];
  /** UDP port on every address; default 3478. */
  port?: number;
  /** Realm for the long-term credential mechanism; default "tswg.test". */
  realm?: string;
  /** With users: long-term credentials (lt-cred-mech); without: anonymous access (no-auth). */
  users?: CoturnUser[];
  /** `relay-ip`: the address relayed allocations use; default: coturn picks among the listening addresses. */
  relayAddress?: string;
  /** Relay port range (`min-port`/`max-port`). */
  minPort?: number;
  maxPort?: number;
  /**
   * Peer ranges explicitly allowed (`allowed-peer-ip`), so that relaying between
   * test namespaces works whatever deny list coturn applies. Default: the
   * documentation and benchmarking ranges tests use (TEST-NET-1/2/3, 198.18.0.0/15,
   * 2001:db8::/32). coturn 4.6 denies loopback peers by default; these are not loopback.
   */
  allowedPeerRanges?: string[];
  /** Also open TCP listeners (default false: this kernel has no SCTP and tests use UDP). */
  tcp?: boolean;
  /** Extra raw config lines, appended last. */
  extraConfig?: string[];
}

export interface Coturn {
  /** Stop the server now (also done by cleanup()). */
  stop(): void;
  /** The UDP port it listens on. */
  port: number;
  /** Everything coturn logged so far. */
  log(): string;
}

export const DEFAULT_COTURN_PORT = 3478;
export const DEFAULT_COTURN_REALM = 'tswg.test';
export const DEFAULT_ALLOWED_PEER_RANGES = [
  '192.0.2.0-192.0.2.255',
  '198.51.100.0-198.51.100.255',
  '203.0.113.0-203.0.113.255',
  '198.18.0.0-198.19.255.255',
  '2001:db8::-2001:db8:ffff:ffff:ffff:ffff:ffff:ffff',
];
const READY_TIMEOUT_MS = 10_000;
const PROBE_WAIT_MS = 300;

/**
 * A STUN Binding request sent from a short-lived node process inside the
 * namespace (the test process itself lives in another namespace). Exit 0 when
 * a response with the same transaction id came back. Kept self-contained on
 * purpose: readiness must not depend on the codec under test.
 */
const PROBE_SCRIPT = `
const dgram = require('node:dgram');
const crypto = require('node:crypto');
const [address, port, waitMs] = process.argv.slice(1);
const socket = dgram.createSocket(address.includes(':') ? 'udp6' : 'udp4');
const request = Buffer.alloc(20);
request.writeUInt16BE(0x0001, 0);
request.writeUInt32BE(0x2112a442, 4);
const id = crypto.randomBytes(12);
id.copy(request, 8);
socket.on('message', (m) => { if (m.length >= 20 && m.subarray(8, 20).equals(id)) { socket.close(); process.exit(0); } });
socket.on('error', () => process.exit(1));
socket.send(request, Number(port), address);
setTimeout(() => process.exit(1), Number(waitMs));
`;

function probe(namespace: string | null, address: string, port: number): Promise<boolean> {
  const [command, args] = namespaceArgv(namespace, process.execPath, ['-e', PROBE_SCRIPT, address, String(port), String(PROBE_WAIT_MS)]);
  return new Promise((resolve) => execFile(command, args, { timeout: 5000 }, (error) => resolve(error === null)));
}

function configText(options: CoturnOptions, dir: string, port: number): string {
  const lines = [
    `listening-port=${port}`,
    ...options.listenAddresses.map((address) => `listening-ip=${address}`),
    ...(options.relayAddress !== undefined ? [`relay-ip=${options.relayAddress}`] : []),
    ...(options.minPort !== undefined ? [`min-port=${options.minPort}`] : []),
    ...(options.maxPort !== undefined ? [`max-port=${options.maxPort}`] : []),
    'no-tls',
    'no-dtls',
    ...(options.tcp === true ? [] : ['no-tcp']),
    'no-cli',
    'fingerprint',
    `realm=${options.realm ?? DEFAULT_COTURN_REALM}`,
    ...(options.users !== undefined && options.users.length > 0
      ? ['lt-cred-mech', ...options.users.map((user) => `user=${user.name}:${user.password}`)]
      : ['no-auth']),
    ...(options.allowedPeerRanges ?? DEFAULT_ALLOWED_PEER_RANGES).map((range) => `allowed-peer-ip=${range}`),
    // Private files, never the system's /var/lib/turn/turndb or /var/run/turnserver.pid.
    `userdb=${join(dir, 'turndb')}`,
    `pidfile=${join(dir, 'turnserver.pid')}`,
    'log-file=stdout',
    'simple-log',
    'verbose',
    ...(options.extraConfig ?? []),
  ];
  return `${lines.join('\n')}\n`;
}

/** Start coturn in `namespace` (null: here) and wait until every listening address answers STUN. */
export async function startCoturn(namespace: string | null, options: CoturnOptions): Promise<Coturn> {
  if (options.listenAddresses.length === 0) throw new Error('startCoturn needs at least one listen address');
  const port = options.port ?? DEFAULT_COTURN_PORT;
  const dir = createTempDir('tswg-coturn-');
  const configPath = join(dir, 'turnserver.conf');
  writeFileSync(configPath, configText(options, dir, port), { mode: 0o600 });
  const server: NamespaceProcess = startIn(namespace, 'turnserver', ['-c', configPath], {
    name: `turnserver in ${namespace ?? 'the root namespace'} on ${options.listenAddresses.join(', ')}:${port}`,
  });
  const log = (): string => server.output();
  const deadline = Date.now() + READY_TIMEOUT_MS;
  for (const address of options.listenAddresses) {
    for (;;) {
      if (!server.running()) {
        throw new Error(`${server.name} exited before answering STUN; its log:\n${log()}`);
      }
      if (await probe(namespace, address, port)) break;
      if (Date.now() >= deadline) {
        server.stopSync();
        throw new Error(`${server.name} did not answer a STUN Binding request on ${address}:${port} within ${READY_TIMEOUT_MS} ms; its log:\n${log()}`);
      }
    }
  }
  return { stop: () => server.stopSync(), port, log };
}
