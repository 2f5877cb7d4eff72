/**
 * `tswg node` daemons with `membership: etcd` and no static peers or fixed
 * slices, on one bridged LAN with a real etcd in the LAN namespace: they get
 * distinct slices and ping each other's node IPs; an etcd outage keeps the
 * mesh up (status degraded); kill -9 removes a node after its lease expires
 * while its slice stays reserved; a restart gets the same slice and key;
 * SIGTERM removes a node at once; bad records leave the node running.
 *
 * Needs root, etcd/etcdctl and a built dist/ (`npm run build`); fails, never skips.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { addressAndUp, cleanup, requireCommands, requireRoot, waitUntil } from '../../scripts/lib/netns.js';
import { etcdctl, startEtcdCluster, type EtcdCluster } from '../../scripts/lib/etcd.js';
import { createMesh, pingOverlay, request, startNode, writeConfig, type Mesh, type MeshNode } from '../../scripts/lib/overlay-mesh.js';
import type { StatusSnapshot } from '../../src/overlay/protocol.js';

const TTL = 3;
const ETCD_ADDRESS = '192.168.77.2';
const PREFIX = '/tswg-node-test';
/** How long to wait for something the node does on its own; only matters on failure (a loaded machine is slow). */
const DEADLINE_MS = 15_000;
let mesh: Mesh;
let etcd: EtcdCluster;

async function status(node: MeshNode): Promise<StatusSnapshot> {
  const answer = await request(node, { type: 'Status' });
  if (answer.type !== 'Status') throw new Error(`Status of ${node.instanceId}: ${JSON.stringify(answer)}`);
  return answer;
}

/** Start with membership and learn the slice and node IP it was given. */
async function startMember(node: MeshNode): Promise<void> {
  writeConfig(mesh, node, { sliceCidr: undefined, peers: [], membership: { etcd: { endpoints: etcd.endpoints, prefix: PREFIX, leaseTtlSeconds: TTL } } });
  await startNode(node, { config: true });
  const s = await status(node);
  node.sliceCidr = s.sliceCidr!;
  node.nodeIp = s.nodeIp!;
}

async function peerKeys(node: MeshNode): Promise<string[]> {
  return (await status(node)).peers.map((p) => p.publicKey);
}

async function waitForPeer(node: MeshNode, other: MeshNode, present: boolean, timeoutMs: number): Promise<number> {
  const started = Date.now();
  let keys: string[] = [];
  for (;;) {
    keys = await peerKeys(node);
    if (keys.includes(other.publicKey) === present) return Date.now() - started;
    if (Date.now() - started > timeoutMs) throw new Error(`${node.instanceId} still ${present ? 'lacks' : 'has'} ${other.instanceId} after ${timeoutMs} ms (peers ${keys.join(', ')})`);
    await new Promise((resolve) => setTimeout(resolve, 50));
  }
}

beforeAll(async () => {
  requireRoot('the membership node tests');
  requireCommands('ip', 'ping', 'etcd', 'etcdctl');
  mesh = createMesh(2);
  addressAndUp(mesh.lan, 'br0', `${ETCD_ADDRESS}/24`);
  etcd = await startEtcdCluster({ namespace: mesh.lan, hosts: [ETCD_ADDRESS] });
  await Promise.all(mesh.nodes.map(startMember));
}, 60_000);

afterAll(() => cleanup());

describe('nodes on etcd membership', () => {
  it('get distinct slices, learn each other from etcd and ping each other\'s node IPs', async () => {
    const [a, b] = mesh.nodes as [MeshNode, MeshNode];
    expect(a.sliceCidr).not.toBe(b.sliceCidr);
    expect(a.sliceCidr).toMatch(/\/26$/);
    // Neither was given the other: each peer comes from the other's etcd record only.
    await waitForPeer(a, b, true, DEADLINE_MS);
    await waitForPeer(b, a, true, DEADLINE_MS);
    await pingOverlay(a, b.nodeIp, DEADLINE_MS);
    await pingOverlay(b, a.nodeIp, DEADLINE_MS);
  });

  it('Status reports the etcd membership', async () => {
    const s = await status(mesh.nodes[0]!);
    expect(s.membership).toMatchObject({ backend: 'etcd', healthy: true, member: true });
    expect(s.membership!.revision).toBeGreaterThan(0);
  });

  it('a service overlay\'s subnet is published and routed to its node by the other', async () => {
    const [a, b] = mesh.nodes as [MeshNode, MeshNode];
    const answer = await request(a, { type: 'SetupServiceOverlay', service: 'web', mode: 'auto' });
    if (answer.type !== 'ServiceOverlay') throw new Error(`SetupServiceOverlay: ${JSON.stringify(answer)}`);
    const deadline = Date.now() + DEADLINE_MS;
    const allowed = async (): Promise<string[]> => (await status(b)).peers.find((p) => p.publicKey === a.publicKey)?.allowedIps ?? [];
    while (!(await allowed()).includes(answer.subnet) && Date.now() < deadline) await new Promise((r) => setTimeout(r, 100));
    expect((await allowed()).sort()).toEqual([a.sliceCidr, answer.subnet].sort());
    expect(await request(a, { type: 'TeardownServiceOverlay', service: 'web' })).toEqual({ type: 'Ok' });
    const gone = Date.now() + DEADLINE_MS;
    while ((await allowed()).includes(answer.subnet) && Date.now() < gone) await new Promise((r) => setTimeout(r, 100));
    expect(await allowed()).toEqual([a.sliceCidr]);
  });

  it('etcd stopped: pings continue, nothing is removed, status degraded; back: healthy', async () => {
    const [a, b] = mesh.nodes as [MeshNode, MeshNode];
    await etcd.stop(etcd.members[0]!);
    try {
      const deadline = Date.now() + DEADLINE_MS;
      while ((await status(a)).membership!.healthy && Date.now() < deadline) await new Promise((r) => setTimeout(r, 100));
      expect((await status(a)).membership!.healthy).toBe(false);
      await new Promise((resolve) => setTimeout(resolve, (TTL + 1) * 1000));
      await pingOverlay(a, b.nodeIp, 3000);
      await pingOverlay(b, a.nodeIp, 3000);
      expect(await peerKeys(a)).toContain(b.publicKey);
    } finally {
      await etcd.start(etcd.members[0]!);
    }
    const deadline = Date.now() + 15_000;
    while (!(await status(a)).membership!.healthy && Date.now() < deadline) await new Promise((r) => setTimeout(r, 200));
    expect((await status(a)).membership!.healthy).toBe(true);
    expect(await peerKeys(a)).toContain(b.publicKey);
  });

  it('kill -9: the other node removes it within 2×TTL+1 s, and its slice stays reserved', async () => {
    const [a, b] = mesh.nodes as [MeshNode, MeshNode];
    process.kill(b.process!.pid, 'SIGKILL');
    await b.process!.waitForExit(5000);
    const took = await waitForPeer(a, b, false, (2 * TTL + 1) * 1000);
    expect(took).toBeLessThan((2 * TTL + 1) * 1000);
    const slices = etcdctl(etcd, ['get', '--prefix', '--keys-only', `${PREFIX}/${mesh.deployment}/slices/`], mesh.lan);
    expect(slices).toContain(b.sliceCidr);
  });

  it('a restarted node gets the same slice and key, and the mesh works again', async () => {
    const [a, b] = mesh.nodes as [MeshNode, MeshNode];
    const slice = b.sliceCidr;
    await startMember(b);
    expect(b.sliceCidr).toBe(slice);
    expect((await status(b)).publicKey).toBe(b.publicKey);
    await waitForPeer(a, b, true, DEADLINE_MS);
    await pingOverlay(a, b.nodeIp, 10_000);
    await pingOverlay(b, a.nodeIp, 10_000);
  });

  it('ignores bad records and keeps running', async () => {
    const [a, b] = mesh.nodes as [MeshNode, MeshNode];
    etcdctl(etcd, ['put', `${PREFIX}/${mesh.deployment}/nodes/bogus`, '{"publicKey":"short","slice":"10.200.99.0/26"}'], mesh.lan);
    etcdctl(etcd, ['put', `${PREFIX}/${mesh.deployment}/nodes/thief`, JSON.stringify({ publicKey: 'xTIBA5rboUvnH4htodjb6e697QjLERt1NAB4mZqp8Dg=', slice: b.sliceCidr })], mesh.lan);
    await waitUntil(() => a.process!.output().includes(`${PREFIX}/${mesh.deployment}/nodes/thief`), 'a warning naming the thief record', DEADLINE_MS);
    expect(a.process!.output()).toContain(`${PREFIX}/${mesh.deployment}/nodes/bogus`);
    expect(a.process!.running()).toBe(true);
    expect((await peerKeys(a)).sort()).toEqual([b.publicKey]);
    await pingOverlay(a, b.nodeIp, 3000);
  });

  it('a node restarted while etcd is down comes up with its saved slice and peers, and forwards', async () => {
    const [a, b] = mesh.nodes as [MeshNode, MeshNode];
    const slice = b.sliceCidr;
    await etcd.stop(etcd.members[0]!);
    try {
      await b.process!.stop(5000);
      await startMember(b);
      expect(b.sliceCidr).toBe(slice);
      expect((await status(b)).membership).toMatchObject({ backend: 'etcd', healthy: false });
      expect(await peerKeys(b)).toContain(a.publicKey);
      await pingOverlay(b, a.nodeIp, 10_000);
      await pingOverlay(a, b.nodeIp, 10_000);
    } finally {
      await etcd.start(etcd.members[0]!);
    }
    const deadline = Date.now() + 15_000;
    while (!(await status(b)).membership!.healthy && Date.now() < deadline) await new Promise((r) => setTimeout(r, 200));
    expect((await status(b)).membership).toMatchObject({ healthy: true, member: true });
    expect(await peerKeys(a)).toContain(b.publicKey);
  });

  it('SIGTERM: the node withdraws its record before it exits, and the other node drops it', async () => {
    const [a, b] = mesh.nodes as [MeshNode, MeshNode];
    await b.process!.stop(5000);
    // Gone from etcd at the moment b has exited: withdrawn, not left for its lease (TTL) to expire.
    const records = etcdctl(etcd, ['get', '--prefix', `${PREFIX}/${mesh.deployment}/nodes/`], mesh.lan);
    expect(records).not.toContain(b.publicKey);
    await waitForPeer(a, b, false, DEADLINE_MS);
  });
});
