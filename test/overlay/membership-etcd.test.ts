/**
 * The etcd backend against real etcd servers (on 127.0.0.1, free ports), with
 * in-process members whose peer changes go to a recording sink instead of a
 * device: distinct slices, peers seen and removed (revoke, lease expiry),
 * restarts keeping their slice without flapping, bad records ignored without
 * ending the watch, an etcd outage keeping every peer, steady state writing
 * nothing, a changed record (candidates, endpoint) reaching the other member,
 * a 300-node join storm, 20 joiners for 16 slices, a fixed slice honoured and checked, and a
 * 3-member cluster with one member down.
 *
 * Needs the etcd and etcdctl binaries (Debian's etcd-server, etcd-client).
 */
import { randomBytes } from 'node:crypto';
import { createServer, type Socket } from 'node:net';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { Logger } from '../../src/device/logger.js';
import { EtcdClient, EtcdUnavailableError, type WatchMessage } from '../../src/overlay/membership/etcd-client.js';
import { EtcdMembership } from '../../src/overlay/membership/etcd.js';
import type { EtcdMembershipConfig } from '../../src/overlay/membership/config.js';
import type { LocalRecord, NodeInfo } from '../../src/overlay/membership/membership.js';
import type { PeerSpec } from '../../src/overlay/protocol.js';
import { etcdctl, startEtcdCluster, type EtcdCluster } from '../../scripts/lib/etcd.js';
import { cleanup, createTempDir, requireCommands, waitUntil } from '../../scripts/lib/netns.js';

const TTL = 3;
const CLUSTER = '10.200.0.0/16';
let etcd: EtcdCluster;
let deploymentCounter = 0;

beforeAll(async () => {
  requireCommands('etcd', 'etcdctl');
  etcd = await startEtcdCluster();
}, 60_000);

afterAll(() => cleanup());

interface TestNode {
  info: NodeInfo;
  dataDir: string;
  membership: EtcdMembership;
  peers: Map<string, PeerSpec>;
  events: string[];
  errors: string[];
  verbose: string[];
  slice: string;
  record: LocalRecord;
}

function logger(errors: string[], verbose: string[]): Logger {
  return { verbose: (message) => verbose.push(message), error: (message) => errors.push(message) };
}

function etcdConfig(endpoints: string[] = etcd.endpoints, extra: Partial<EtcdMembershipConfig> = {}): EtcdMembershipConfig {
  return { endpoints, prefix: '/tswg-test', leaseTtlSeconds: TTL, sliceLength: 26, ...extra };
}

function newDeployment(): string {
  return `dep${process.pid}x${++deploymentCounter}`;
}

let endpointCounter = 0;
function record(): LocalRecord {
  return { endpoint: `192.0.2.${(++endpointCounter % 250) + 1}:51820`, candidates: [], serviceSubnets: [] };
}

/** Start a member (a fresh identity unless `from` is given: a restart with its data dir and key). */
/** A client that can be cut off from etcd (every call fails as if unreachable) and put back. */
class SeveredClient extends EtcdClient {
  severed = false;
  watchesStarted: number[] = [];
  override async leaseKeepAlive(id: string): Promise<number> {
    if (this.severed) throw new EtcdUnavailableError('severed by the test');
    return super.leaseKeepAlive(id);
  }
  override async watch(prefix: string, start: number, onMessage: (m: WatchMessage) => void, signal: AbortSignal): Promise<void> {
    if (this.severed) throw new EtcdUnavailableError('severed by the test');
    this.watchesStarted.push(start);
    return super.watch(prefix, start, onMessage, signal);
  }
}

async function join(
  deployment: string,
  nodeId: string,
  options: {
    from?: TestNode;
    config?: EtcdMembershipConfig;
    clusterCidr?: string;
    sliceCidr?: string;
    startTimeoutMs?: number;
    client?: EtcdClient;
    allocationLease?: { ttlSecs: number; renewMs: number };
  } = {},
): Promise<TestNode> {
  const dataDir = options.from?.dataDir ?? createTempDir('tswg-membership-');
  const info: NodeInfo = {
    deployment,
    nodeId,
    publicKey: options.from?.info.publicKey ?? randomBytes(32).toString('base64'),
    clusterCidr: options.clusterCidr ?? CLUSTER,
    wgPort: 51820,
    ...(options.sliceCidr === undefined ? {} : { sliceCidr: options.sliceCidr }),
  };
  const errors: string[] = [];
  const verbose: string[] = [];
  const config = options.config ?? etcdConfig();
  const membership = new EtcdMembership({
    config,
    dataDir,
    log: logger(errors, verbose),
    client: options.client ?? new EtcdClient({ endpoints: config.endpoints, timeoutMs: 1000 }),
    startTimeoutMs: options.startTimeoutMs ?? 10_000,
    ...(options.allocationLease === undefined ? {} : { allocationLease: options.allocationLease }),
  });
  const slice = await membership.start(info);
  const node: TestNode = { info, dataDir, membership, peers: new Map(), events: [], errors, verbose, slice, record: options.from?.record ?? record() };
  await membership.onPeers({
    add: async (id, spec) => {
      node.peers.set(id, spec);
      node.events.push(`add ${id}`);
    },
    remove: async (id) => {
      node.peers.delete(id);
      node.events.push(`remove ${id}`);
    },
  });
  await membership.publish(node.record);
  return node;
}

async function waitForPeer(node: TestNode, id: string, present: boolean, timeoutMs = 5000): Promise<number> {
  const started = Date.now();
  await waitUntil(() => node.peers.has(id) === present, `${node.info.nodeId} to ${present ? 'see' : 'drop'} ${id}`, timeoutMs, 20);
  return Date.now() - started;
}

function etcdRevision(): Promise<number> {
  return new EtcdClient({ endpoints: etcd.endpoints }).range('/').then((r) => r.revision);
}

describe('etcd membership', () => {
  it('two members get distinct slices and see each other (slice as allowed IPs)', async () => {
    const deployment = newDeployment();
    const [a, b] = await Promise.all([join(deployment, 'a'), join(deployment, 'b')]);
    expect(a.slice).not.toBe(b.slice);
    expect(a.slice).toMatch(/^10\.200\.\d+\.\d+\/26$/);
    await waitForPeer(a, 'b', true);
    await waitForPeer(b, 'a', true);
    expect(a.peers.get('b')).toMatchObject({ publicKey: b.info.publicKey, allowedIps: b.slice, endpoint: expect.stringMatching(/^192\.0\.2\./) });
    await waitUntil(() => a.membership.status().healthy && a.membership.status().member, 'a to be healthy and a member', 5000);
    expect(a.membership.status()).toMatchObject({ backend: 'etcd', healthy: true, member: true });
    await Promise.all([a.membership.stop(true), b.membership.stop(true)]);
  });

  it('revoke removes a member at once; a crash (no revoke) after the TTL; the slice stays reserved', async () => {
    const deployment = newDeployment();
    const a = await join(deployment, 'a');
    const b = await join(deployment, 'b');
    const c = await join(deployment, 'c');
    await waitForPeer(a, 'b', true);
    await waitForPeer(a, 'c', true);
    await b.membership.stop(true);
    // At once: when stop(true) returns, b's presence key is already gone from etcd (a lease running out would take the TTL).
    const nodes = await new EtcdClient({ endpoints: etcd.endpoints }).range(`/tswg-test/${deployment}/nodes/`, { prefix: true });
    expect(nodes.kvs.map((kv) => kv.key.split('/nodes/')[1]).sort()).toEqual(['a', 'c']);
    await waitForPeer(a, 'b', false, 30_000);
    await c.membership.stop(false); // as if killed: the lease runs out
    const took = await waitForPeer(a, 'c', false, (2 * TTL + 1) * 1000);
    expect(took).toBeGreaterThan(1000);
    const slices = await new EtcdClient({ endpoints: etcd.endpoints }).range(`/tswg-test/${deployment}/slices/`, { prefix: true });
    expect(slices.kvs.map((kv) => kv.key.split('/slices/')[1]).sort()).toEqual([a.slice, b.slice, c.slice].sort());
    await a.membership.stop(true);
  });

  it('a restarted member gets its slice back, and its peers see no flap', async () => {
    const deployment = newDeployment();
    const a = await join(deployment, 'a');
    const b = await join(deployment, 'b');
    await waitForPeer(a, 'b', true);
    await b.membership.stop(false);
    const again = await join(deployment, 'b', { from: b });
    expect(again.slice).toBe(b.slice);
    await waitForPeer(again, 'a', true);
    await new Promise((resolve) => setTimeout(resolve, (TTL + 1) * 1000));
    expect(a.events).toEqual(['add b']);
    await Promise.all([a.membership.stop(true), again.membership.stop(true)]);
  });

  it('renews the allocation lease, and reserves its slice again when the reservation disappears', async () => {
    const deployment = newDeployment();
    const a = await join(deployment, 'a', { allocationLease: { ttlSecs: 3, renewMs: 1000 } });
    const b = await join(deployment, 'b');
    await waitForPeer(b, 'a', true);
    const client = new EtcdClient({ endpoints: etcd.endpoints });
    const sliceKey = `/tswg-test/${deployment}/slices/${a.slice}`;
    const first = (await client.range(sliceKey)).kvs[0]!;
    await new Promise((resolve) => setTimeout(resolve, 5000)); // past the 3 s TTL: only renewal keeps it
    expect((await client.range(sliceKey)).kvs[0]?.lease).toBe(first.lease);
    await client.leaseRevoke(first.lease);
    await waitUntil(() => a.errors.some((e) => e.includes('allocation lease')), 'a to notice its reservation is gone', 5000);
    let restored: string | undefined;
    const deadline = Date.now() + 5000;
    while (restored === undefined && Date.now() < deadline) {
      restored = (await client.range(sliceKey)).kvs[0]?.lease;
      if (restored === undefined) await new Promise((resolve) => setTimeout(resolve, 100));
    }
    expect(restored).toBeDefined();
    expect(restored).not.toBe(first.lease);
    await waitForPeer(b, 'a', true);
    expect(b.peers.get('a')!.allowedIps).toBe(a.slice);
    await Promise.all([a.membership.stop(true), b.membership.stop(true)]);
  });

  it('ignores bad records with a warning naming them, and keeps watching', async () => {
    const deployment = newDeployment();
    const a = await join(deployment, 'a');
    const client = new EtcdClient({ endpoints: etcd.endpoints });
    const root = `/tswg-test/${deployment}/`;
    await client.put(`${root}nodes/garbage`, '{not json');
    await client.put(`${root}nodes/thief`, JSON.stringify({ publicKey: randomBytes(32).toString('base64'), slice: a.slice }));
    await client.put(`${root}nodes/short`, JSON.stringify({ publicKey: randomBytes(31).toString('base64'), slice: '10.200.9.0/26' }));
    await client.put(`${root}nodes/far`, JSON.stringify({ publicKey: randomBytes(32).toString('base64'), slice: '10.9.0.0/26' }));
    const b = await join(deployment, 'b');
    await waitForPeer(a, 'b', true);
    expect([...a.peers.keys()]).toEqual(['b']);
    for (const name of ['garbage', 'thief', 'short', 'far']) expect(a.errors.some((e) => e.includes(`${root}nodes/${name}`)), name).toBe(true);
    await Promise.all([a.membership.stop(true), b.membership.stop(true)]);
  });

  it('steady state writes nothing', async () => {
    const deployment = newDeployment();
    const a = await join(deployment, 'a');
    const b = await join(deployment, 'b');
    await waitForPeer(a, 'b', true);
    // The deployment's keys and their revisions (the store's revision moves with other tests' leases).
    const snapshot = async (): Promise<string[]> =>
      (await new EtcdClient({ endpoints: etcd.endpoints }).range(`/tswg-test/${deployment}/`, { prefix: true })).kvs.map((kv) => `${kv.key}@${kv.modRevision}`);
    await new Promise((resolve) => setTimeout(resolve, 500));
    const before = await snapshot();
    for (let i = 0; i < 5; i++) {
      await a.membership.publish({ ...a.record });
      await new Promise((resolve) => setTimeout(resolve, 300));
    }
    await new Promise((resolve) => setTimeout(resolve, TTL * 1000));
    expect(await snapshot()).toEqual(before);
    expect(before).toHaveLength(5); // config, two slices, two nodes
    await Promise.all([a.membership.stop(true), b.membership.stop(true)]);
  });

  it('a changed record reaches the other member: new candidates as they are, the endpoint only when it changed', async () => {
    const deployment = newDeployment();
    const a = await join(deployment, 'a');
    const b = await join(deployment, 'b');
    await waitForPeer(b, 'a', true);
    expect(b.peers.get('a')).toMatchObject({ endpoint: a.record.endpoint, candidates: [] });
    const candidates = [
      { candidateType: 'host', address: '198.51.100.7:51820', priority: 2130706431 },
      { candidateType: 'srflx', address: '203.0.113.9:40000', priority: 1694498815 },
    ];
    await a.membership.publish({ ...a.record, candidates });
    await waitUntil(() => (b.peers.get('a')?.candidates ?? []).length === 2, 'b to get a\'s candidates', 5000);
    // Same advertised endpoint: left out, so the device keeps the one that works.
    expect(b.peers.get('a')).toMatchObject({ endpoint: '0.0.0.0:0', candidates, allowedIps: a.slice });
    await a.membership.publish({ ...a.record, endpoint: '192.0.2.250:51820', candidates });
    await waitUntil(() => b.peers.get('a')?.endpoint === '192.0.2.250:51820', 'b to get a\'s new endpoint', 5000);
    expect(b.events).toEqual(['add a', 'add a', 'add a']);
    await Promise.all([a.membership.stop(true), b.membership.stop(true)]);
  });

  it('a join storm of 300 nodes reaches a member within seconds of the last write, and its lease is never lost', async () => {
    const deployment = newDeployment();
    const a = await join(deployment, 'a');
    const writer = new EtcdClient({ endpoints: etcd.endpoints });
    const { id: lease } = await writer.leaseGrant(120);
    const root = `/tswg-test/${deployment}/`;
    for (let i = 0; i < 300; i++) {
      const nodeId = `storm-${i}`;
      const publicKey = randomBytes(32).toString('base64');
      const slice = `10.200.${64 + (i >> 2)}.${(i & 3) * 64}/26`;
      await writer.createIfAbsent(`${root}slices/${slice}`, JSON.stringify({ nodeId, publicKey }), lease);
      await writer.put(`${root}nodes/${nodeId}`, JSON.stringify({ publicKey, slice, endpoint: '198.51.100.1:51820', candidates: [], serviceSubnets: [] }), lease);
    }
    const written = Date.now();
    await waitUntil(() => a.peers.size === 300, 'a to see all 300 nodes', 10_000, 50);
    expect(Date.now() - written).toBeLessThan(10_000);
    expect(a.errors.filter((e) => e.includes('lease'))).toEqual([]);
    expect(a.membership.status()).toMatchObject({ healthy: true, member: true });
    await writer.leaseRevoke(lease);
    await waitUntil(() => a.peers.size === 0, 'a to drop them all', 10_000, 50);
    await a.membership.stop(true);
  }, 60_000);

  it('hands out at most the cluster\'s slices: 20 joiners, 16 slices', async () => {
    const deployment = newDeployment();
    const config = etcdConfig(etcd.endpoints, { sliceLength: 28 });
    const results = await Promise.allSettled(Array.from({ length: 20 }, (_, i) => join(deployment, `n${i}`, { config, clusterCidr: '10.50.0.0/24' })));
    const joined = results.flatMap((r) => (r.status === 'fulfilled' ? [r.value] : []));
    const refused = results.flatMap((r) => (r.status === 'rejected' ? [String((r.reason as Error).message)] : []));
    expect(joined).toHaveLength(16);
    expect(new Set(joined.map((n) => n.slice)).size).toBe(16);
    expect(refused).toHaveLength(4);
    for (const message of refused) expect(message).toContain('no free slice in cluster 10.50.0.0/24');
    await Promise.all(joined.map((n) => n.membership.stop(true)));
  });

  it('honours a fixed slice, and refuses one held by another node', async () => {
    const deployment = newDeployment();
    const a = await join(deployment, 'a', { sliceCidr: '10.200.7.0/26' });
    expect(a.slice).toBe('10.200.7.0/26');
    await expect(join(deployment, 'b', { sliceCidr: '10.200.7.0/26' })).rejects.toThrow('sliceCidr 10.200.7.0/26 is reserved for node a');
    await expect(join(deployment, 'c', { sliceCidr: '10.200.7.0/24' })).rejects.toThrow('is a /24, but slices of 10.200.0.0/16 are /26');
    await expect(join(deployment, 'd', { clusterCidr: '10.201.0.0/16' })).rejects.toThrow('but this node is configured with 10.201.0.0/16');
    await a.membership.stop(true);
  });
});

describe('etcd client', () => {
  it('fails over from an endpoint that never answers (after its timeout) and from one that refuses', async () => {
    const sockets: Socket[] = [];
    const silent = createServer((socket) => void sockets.push(socket));
    await new Promise<void>((resolve) => silent.listen(0, '127.0.0.1', () => resolve()));
    const port = (silent.address() as { port: number }).port;
    try {
      const client = new EtcdClient({ endpoints: [`http://127.0.0.1:${port}`, 'http://127.0.0.1:9', ...etcd.endpoints], timeoutMs: 300 });
      const started = Date.now();
      await client.put('/tswg-test/failover', 'x');
      expect(Date.now() - started).toBeGreaterThanOrEqual(300);
      expect(client.endpoint).toBe(etcd.endpoints[0]);
      // The client stays on the endpoint that answered: the silent one gets no new connection.
      const connectionsToSilent = sockets.length;
      expect(connectionsToSilent).toBeGreaterThan(0);
      expect((await client.range('/tswg-test/failover')).kvs[0]?.value).toBe('x');
      expect(sockets.length).toBe(connectionsToSilent);
      const dead = new EtcdClient({ endpoints: [`http://127.0.0.1:${port}`, 'http://127.0.0.1:9'], timeoutMs: 200 });
      await expect(dead.range('/x')).rejects.toThrow(/etcd unreachable \(http:\/\/127\.0\.0\.1:\d+: no answer within 200 ms; http:\/\/127\.0\.0\.1:9: /);
    } finally {
      for (const socket of sockets) socket.destroy();
      silent.close();
    }
  });

  it('keeps lease ids exact (beyond 2^53) and re-attaches to a saved one', async () => {
    const client = new EtcdClient({ endpoints: etcd.endpoints });
    const { id } = await client.leaseGrant(30);
    expect(id).toMatch(/^\d+$/);
    expect(await new EtcdClient({ endpoints: etcd.endpoints }).leaseKeepAlive(id)).toBeGreaterThan(0);
    await client.leaseRevoke(id);
    expect(await client.leaseKeepAlive(id)).toBe(0);
    await client.leaseRevoke(id); // already gone: not an error
  });
});

describe('etcd with authentication', () => {
  it('authenticates with username and password; a wrong password is a clear error', async () => {
    const secured = await startEtcdCluster();
    etcdctl(secured, ['user', 'add', 'root:rootpw']);
    etcdctl(secured, ['user', 'grant-role', 'root', 'root']);
    etcdctl(secured, ['auth', 'enable']);
    const deployment = newDeployment();
    const good = (nodeId: string): Promise<TestNode> =>
      join(deployment, nodeId, { config: etcdConfig(secured.endpoints, { username: 'root', password: 'rootpw' }), client: new EtcdClient({ endpoints: secured.endpoints, username: 'root', password: 'rootpw' }) });
    const a = await good('a');
    const b = await good('b');
    await waitForPeer(a, 'b', true);
    const wrong = etcdConfig(secured.endpoints, { username: 'root', password: 'nope' });
    await expect(join(deployment, 'c', { config: wrong, client: new EtcdClient({ endpoints: secured.endpoints, username: 'root', password: 'nope' }) })).rejects.toThrow(
      /authentication as "root" failed/,
    );
    await Promise.all([a.membership.stop(true), b.membership.stop(true)]);
    await secured.stop(secured.members[0]!);
  });
});

describe('etcd outages', () => {
  it('a watch resumed after a compaction lists again and applies the difference', async () => {
    const deployment = newDeployment();
    const client = new SeveredClient({ endpoints: etcd.endpoints, timeoutMs: 1000 });
    const a = await join(deployment, 'a', { client });
    const b = await join(deployment, 'b');
    await waitForPeer(a, 'b', true);
    client.severed = true;
    await waitUntil(() => !a.membership.status().healthy, 'a to lose etcd', 5000);
    const seen = a.membership.status().revision!;
    await b.membership.stop(true);
    const c = await join(deployment, 'c');
    const now = await etcdRevision();
    const answer = await fetch(`${etcd.endpoints[0]}/v3/kv/compaction`, { method: 'POST', body: JSON.stringify({ revision: String(now), physical: true }) });
    expect(answer.ok).toBe(true);
    client.severed = false;
    await waitForPeer(a, 'c', true, 10_000);
    await waitForPeer(a, 'b', false, 1000);
    expect(client.watchesStarted).toContain(seen + 1);
    expect(a.verbose.some((line) => line.includes('was compacted'))).toBe(true);
    expect(a.membership.status().revision).toBeGreaterThanOrEqual(now);
    await Promise.all([a.membership.stop(true), c.membership.stop(true)]);
  });

  it('etcd stopped: peers kept, status degraded; back: healthy, and a restart during the outage starts from the saved state', async () => {
    const outage = await startEtcdCluster();
    const config = etcdConfig(outage.endpoints);
    const deployment = newDeployment();
    const a = await join(deployment, 'a', { config });
    const b = await join(deployment, 'b', { config });
    await waitForPeer(a, 'b', true);
    await outage.stop(outage.members[0]!);
    await waitUntil(() => !a.membership.status().healthy, 'a to notice the outage', 5000);
    await new Promise((resolve) => setTimeout(resolve, (TTL + 1) * 1000));
    expect(a.peers.has('b')).toBe(true);
    expect(a.events).toEqual(['add b']);
    // b restarts while etcd is away: its saved slice and peers.
    await b.membership.stop(false);
    const b2 = await join(deployment, 'b', { from: b, config, startTimeoutMs: 1000 });
    expect(b2.slice).toBe(b.slice);
    expect(b2.peers.has('a')).toBe(true);
    expect(b2.membership.status().healthy).toBe(false);
    await outage.start(outage.members[0]!);
    await waitUntil(() => a.membership.status().healthy && b2.membership.status().healthy, 'both healthy again', 10_000);
    expect(a.peers.has('b')).toBe(true);
    expect(b2.peers.has('a')).toBe(true);
    await Promise.all([a.membership.stop(true), b2.membership.stop(true)]);
    await outage.stop(outage.members[0]!);
  });

  it('a node with nothing saved fails clearly when etcd is unreachable', async () => {
    await expect(join(newDeployment(), 'a', { config: etcdConfig(['http://127.0.0.1:9']), startTimeoutMs: 500 })).rejects.toThrow(/etcd unreachable .*no slice saved in/);
  });

  it('a 3-member cluster with one member stopped still serves joins and watches', async () => {
    const cluster = await startEtcdCluster({ size: 3 });
    const config = etcdConfig(cluster.endpoints);
    await cluster.stop(cluster.members[0]!);
    const deployment = newDeployment();
    const a = await join(deployment, 'a', { config });
    const b = await join(deployment, 'b', { config });
    await waitForPeer(a, 'b', true);
    await cluster.stop(cluster.members[1]!); // quorum lost: degraded, peers kept
    await waitUntil(() => !a.membership.status().healthy, 'a to notice the lost quorum', 10_000);
    expect(a.peers.has('b')).toBe(true);
    await cluster.start(cluster.members[0]!);
    await waitUntil(() => a.membership.status().healthy, 'a healthy again', 15_000);
    await b.membership.stop(true);
    await waitForPeer(a, 'b', false, 3000);
    await a.membership.stop(true);
    for (const member of cluster.members) await cluster.stop(member);
  }, 60_000);
});
