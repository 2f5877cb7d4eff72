/**
 * Real etcd servers for the membership tests: one member or a small cluster,
 * in a namespace (the mesh's LAN) or here on 127.0.0.1 with free ports, over
 * http or (with `tls`) https, optionally demanding client certificates. Each
 * member has its own temporary data dir and is registered for cleanup; stop()
 * and start() keep the data dir, so a restarted member has its keys again.
 */
import { createServer } from 'node:net';
import { join } from 'node:path';
import { createTempDir, execIn, startIn, waitUntil, type NamespaceProcess } from './netns.js';

const HEALTH_TIMEOUT_MS = 20_000;

export interface EtcdMember {
  name: string;
  namespace: string | null;
  clientUrl: string;
  peerUrl: string;
  dataDir: string;
  process: NamespaceProcess | null;
}

/** https for clients: the server's certificate, and (clientCertAuth) the CA client certificates must chain to. */
export interface EtcdServerTls {
  certFile: string;
  keyFile: string;
  /** The CA etcd trusts for client certificates (and etcdctl trusts for the server's). */
  caFile: string;
  clientCertAuth: boolean;
  /** A client certificate etcdctl presents for the health checks. */
  client: { certFile: string; keyFile: string };
}

export interface EtcdCluster {
  members: EtcdMember[];
  /** Every member's client URL (what a node's config lists). */
  endpoints: string[];
  /** (Re)start one member with its data dir; resolves once it serves. */
  start(member: EtcdMember): Promise<void>;
  /** SIGTERM (SIGKILL after 2 s). */
  stop(member: EtcdMember): Promise<void>;
}

/** A TCP port nobody listens on right now (here, not in a namespace). */
export async function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const server = createServer();
    server.once('error', reject);
    server.listen(0, '127.0.0.1', () => {
      const address = server.address();
      server.close(() => resolve(typeof address === 'object' && address !== null ? address.port : 0));
    });
  });
}

/**
 * `size` members. `hosts[i]` is member i's address (and `namespace` where
 * they run); without hosts, 127.0.0.1 here with free ports.
 */
export async function startEtcdCluster(options: { size?: number; namespace?: string | null; hosts?: string[]; tls?: EtcdServerTls } = {}): Promise<EtcdCluster> {
  const size = options.size ?? 1;
  const tls = options.tls;
  const clientScheme = tls === undefined ? 'http' : 'https';
  const tlsFlags =
    tls === undefined
      ? []
      : ['--cert-file', tls.certFile, '--key-file', tls.keyFile, '--trusted-ca-file', tls.caFile, ...(tls.clientCertAuth ? ['--client-cert-auth'] : [])];
  const etcdctlTls = tls === undefined ? [] : ['--cacert', tls.caFile, '--cert', tls.client.certFile, '--key', tls.client.keyFile];
  const namespace = options.namespace ?? null;
  const members: EtcdMember[] = [];
  for (let i = 0; i < size; i++) {
    const host = options.hosts?.[i] ?? '127.0.0.1';
    const local = options.hosts === undefined;
    const clientPort = local ? await freePort() : 2379;
    const peerPort = local ? await freePort() : 2380;
    members.push({
      name: `m${i + 1}`,
      namespace,
      clientUrl: `${clientScheme}://${host}:${clientPort}`,
      peerUrl: `http://${host}:${peerPort}`,
      dataDir: join(createTempDir('tswg-etcd-'), 'data'),
      process: null,
    });
  }
  const initialCluster = members.map((m) => `${m.name}=${m.peerUrl}`).join(',');
  const launch = (member: EtcdMember): void => {
    member.process = startIn(
      member.namespace,
      'etcd',
      [
        '--name', member.name,
        '--data-dir', member.dataDir,
        '--listen-client-urls', member.clientUrl,
        '--advertise-client-urls', member.clientUrl,
        '--listen-peer-urls', member.peerUrl,
        '--initial-advertise-peer-urls', member.peerUrl,
        '--initial-cluster', initialCluster,
        '--initial-cluster-token', `tswg-test-${process.pid}`,
        '--logger', 'zap',
        '--log-level', 'warn',
        ...tlsFlags,
      ],
      { name: `etcd ${member.name}` },
    );
  };
  const healthy = async (member: EtcdMember): Promise<void> => {
    await waitUntil(
      () => {
        if (member.process !== null && !member.process.running()) throw new Error(`etcd ${member.name} exited:\n${member.process.output()}`);
        try {
          execIn(member.namespace, 'etcdctl', ['--endpoints', member.clientUrl, ...etcdctlTls, '--command-timeout=1s', 'endpoint', 'health'], { timeoutMs: 3000 });
          return true;
        } catch {
          return false;
        }
      },
      `etcd ${member.name} at ${member.clientUrl} to be healthy`,
      HEALTH_TIMEOUT_MS,
      200,
    );
  };
  for (const member of members) launch(member);
  await Promise.all(members.map(healthy));
  return {
    members,
    endpoints: members.map((m) => m.clientUrl),
    async start(member) {
      if (member.process?.running() === true) return;
      launch(member);
      await healthy(member);
    },
    async stop(member) {
      await member.process?.stop(2000);
    },
  };
}

/** etcdctl against the cluster (e.g. ['put', key, value]); its stdout. */
export function etcdctl(cluster: EtcdCluster, args: string[], namespace: string | null = cluster.members[0]!.namespace): string {
  return execIn(namespace, 'etcdctl', ['--endpoints', cluster.endpoints.join(','), ...args], { timeoutMs: 10_000 });
}
