/**
 * etcd over https with client certificates: a real etcd started with TLS and
 * --client-cert-auth, certificates made here with openssl. Members built from
 * the config (`membership.etcd.tls`: the PEM files are read as the node would)
 * join with the right client certificate; a missing certificate, one signed by
 * another CA, and a CA that did not sign etcd's certificate are clear errors
 * naming the endpoint, at once rather than after the start-up retries. Config
 * errors (tls with http://, half a key pair, an unreadable file) name the field.
 *
 * Needs etcd, etcdctl and openssl.
 */
import { randomBytes } from 'node:crypto';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { Logger } from '../../src/device/logger.js';
import { parseNodeConfig } from '../../src/overlay/config-file.js';
import type { EtcdMembershipConfig, EtcdTlsFiles } from '../../src/overlay/membership/config.js';
import { EtcdMembership } from '../../src/overlay/membership/etcd.js';
import type { PeerSpec } from '../../src/overlay/protocol.js';
import { startEtcdCluster, type EtcdCluster } from '../../scripts/lib/etcd.js';
import { cleanup, createTempDir, requireCommands, waitUntil } from '../../scripts/lib/netns.js';
import { createCa, issueCertificate, type CertificateAuthority, type IssuedCertificate } from '../../scripts/lib/tls-certs.js';

const CLUSTER = '10.200.0.0/16';
/** Long enough that a retried failure would show (a TLS refusal must fail at once). */
const START_TIMEOUT_MS = 8000;

let etcd: EtcdCluster;
let ca: CertificateAuthority;
let otherCa: CertificateAuthority;
let client: IssuedCertificate;
let strangerClient: IssuedCertificate;
let counter = 0;

beforeAll(async () => {
  requireCommands('etcd', 'etcdctl', 'openssl');
  ca = createCa('tswg-test-etcd-ca');
  otherCa = createCa('tswg-test-other-ca');
  const server = issueCertificate(ca, 'etcd-server', { ips: ['127.0.0.1'] });
  client = issueCertificate(ca, 'tswg-node');
  strangerClient = issueCertificate(otherCa, 'stranger');
  etcd = await startEtcdCluster({ tls: { certFile: server.certFile, keyFile: server.keyFile, caFile: ca.certFile, clientCertAuth: true, client } });
}, 60_000);

afterAll(() => cleanup());

function config(tls: EtcdTlsFiles): EtcdMembershipConfig {
  return { endpoints: etcd.endpoints, prefix: '/tswg-tls-test', leaseTtlSeconds: 3, sliceLength: 26, tls };
}

interface Member {
  membership: EtcdMembership;
  peers: Map<string, PeerSpec>;
  slice: string;
}

const quiet: Logger = { verbose: () => undefined, error: () => undefined };

async function join(deployment: string, nodeId: string, tls: EtcdTlsFiles): Promise<Member> {
  const membership = new EtcdMembership({ config: config(tls), dataDir: createTempDir('tswg-membership-tls-'), log: quiet, startTimeoutMs: START_TIMEOUT_MS });
  const slice = await membership.start({ deployment, nodeId, publicKey: randomBytes(32).toString('base64'), clusterCidr: CLUSTER, wgPort: 51820 });
  const peers = new Map<string, PeerSpec>();
  await membership.onPeers({ add: async (id, spec) => void peers.set(id, spec), remove: async (id) => void peers.delete(id) });
  await membership.publish({ endpoint: `192.0.2.${++counter}:51820`, candidates: [], serviceSubnets: [] });
  return { membership, peers, slice };
}

/** start() must reject quickly (no retries until the start-up timeout) with a message matching every pattern. */
async function expectRefused(tls: EtcdTlsFiles, patterns: RegExp[]): Promise<void> {
  const started = Date.now();
  const error = await join(`tls${process.pid}x${++counter}`, 'refused', tls).then(
    () => null,
    (e: unknown) => e as Error,
  );
  expect(error, 'start() to fail').not.toBeNull();
  for (const pattern of patterns) expect(error!.message).toMatch(pattern);
  expect(error!.message).toContain(etcd.endpoints[0]);
  expect(Date.now() - started).toBeLessThan(START_TIMEOUT_MS / 2);
}

describe('etcd over TLS with client certificates', () => {
  it('serves https only to clients with a certificate from its CA', () => {
    expect(etcd.endpoints[0]).toMatch(/^https:\/\/127\.0\.0\.1:\d+$/);
  });

  it('members with the right client certificate join and see each other', async () => {
    const deployment = `tls${process.pid}x${++counter}`;
    const tls = { ca: ca.certFile, cert: client.certFile, key: client.keyFile };
    const a = await join(deployment, 'a', tls);
    const b = await join(deployment, 'b', tls);
    expect(a.slice).not.toBe(b.slice);
    await waitUntil(() => a.peers.has('b') && b.peers.has('a'), 'a and b to see each other over TLS', 5000);
    expect(a.peers.get('b')!.allowedIps).toBe(b.slice);
    await waitUntil(() => a.membership.status().healthy && a.membership.status().member, 'a healthy and a member', 5000);
    await b.membership.stop(true);
    await waitUntil(() => !a.peers.has('b'), 'a to drop b once it leaves', 3000);
    await a.membership.stop(true);
  });

  it('without a client certificate: a clear error naming the endpoint', async () => {
    await expectRefused({ ca: ca.certFile }, [/TLS/, /the server wants a client certificate/]);
  });

  it('with a client certificate from another CA: a clear error naming the endpoint', async () => {
    await expectRefused({ ca: ca.certFile, cert: strangerClient.certFile, key: strangerClient.keyFile }, [/TLS/, /the server refused this node's client certificate/, /bad certificate/]);
  });

  it('trusting a CA that did not sign etcd\'s certificate: a clear error naming the endpoint', async () => {
    await expectRefused({ ca: otherCa.certFile, cert: client.certFile, key: client.keyFile }, [/TLS/, /server's certificate is not trusted/]);
  });

  it('a PEM file that cannot be read is an error naming the field and the file', () => {
    const missing = `${createTempDir('tswg-tls-missing-')}/absent.pem`;
    expect(() => new EtcdMembership({ config: config({ ca: ca.certFile, cert: missing, key: client.keyFile }), dataDir: createTempDir(), log: quiet })).toThrow(
      `membership.etcd.tls.cert: cannot read ${missing}`,
    );
  });
});

describe('membership.etcd.tls in the config file', () => {
  const file = (etcdSection: Record<string, unknown>): string => JSON.stringify({ deployment: 'demo', membership: { etcd: etcdSection } });

  it('reads ca, cert and key', () => {
    const parsed = parseNodeConfig(file({ endpoints: ['https://10.0.0.5:2379'], tls: { ca: '/etc/tswg/ca.pem', cert: '/etc/tswg/node.pem', key: '/etc/tswg/node-key.pem' } }), 'node.yaml');
    expect(parsed.membership?.etcd.tls).toEqual({ ca: '/etc/tswg/ca.pem', cert: '/etc/tswg/node.pem', key: '/etc/tswg/node-key.pem' });
  });

  it.each([
    [{ endpoints: ['http://10.0.0.5:2379'], tls: { ca: '/ca.pem' } }, 'node.yaml: membership.etcd.tls: given, but membership.etcd.endpoints[0] is http://10.0.0.5:2379'],
    [{ endpoints: ['https://10.0.0.5:2379'], tls: { cert: '/node.pem' } }, 'membership.etcd.tls: cert given without key'],
    [{ endpoints: ['https://10.0.0.5:2379'], tls: { key: '/node-key.pem' } }, 'membership.etcd.tls: key given without cert'],
    [{ endpoints: ['https://10.0.0.5:2379'], tls: {} }, 'membership.etcd.tls: expected ca, or cert and key'],
    [{ endpoints: ['https://10.0.0.5:2379'], tls: { ca: '' } }, 'membership.etcd.tls.ca'],
    [{ endpoints: ['https://10.0.0.5:2379'], tls: { ca: '/ca.pem', crt: '/x.pem' } }, 'membership.etcd.tls: unknown field "crt"'],
  ])('refuses %j', (section, message) => {
    expect(() => parseNodeConfig(file(section), 'node.yaml')).toThrow(message);
  });
});
