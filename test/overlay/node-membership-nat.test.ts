/**
 * NAT candidates through etcd: two `tswg node` daemons with NAT enabled and
 * `membership: etcd` on one bridged LAN (a real etcd and coturn as the STUN
 * server in the LAN namespace). Each advertises an endpoint nobody can reach
 * (TEST-NET-1), so the only way the two find each other is the candidates
 * their NAT tick gathers and publishes in their node records. Shown: a node's
 * record carries its host candidate; the record is not rewritten while the
 * candidates stay the same (ticks every 2 s); an address added to the node's
 * interface becomes a new candidate and the record is rewritten once; the
 * other node programs the candidates (its endpoint for the peer is the
 * candidate's address) and the overlay pings.
 *
 * Needs root, etcd/etcdctl, coturn and a built dist/ (`npm run build`); fails, never skips.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { addressAndUp, cleanup, ip, requireCommands, requireRoot, waitUntil } from '../../scripts/lib/netns.js';
import { startCoturn } from '../../scripts/lib/coturn.js';
import { etcdctl, startEtcdCluster, type EtcdCluster } from '../../scripts/lib/etcd.js';
import { createMesh, pingOverlay, request, startNode, WG_PORT, writeConfig, type Mesh, type MeshNode } from '../../scripts/lib/overlay-mesh.js';
import type { CandidateWire, StatusSnapshot } from '../../src/overlay/protocol.js';

const TTL = 5;
const LAN_SERVICES = '192.168.77.2';
const PREFIX = '/tswg-nat-test';
const TICK_SECS = 2;
/** An address added to node a's LAN interface mid-test: a new host candidate. */
const EXTRA_ADDRESS = '192.168.77.60';
let mesh: Mesh;
let etcd: EtcdCluster;

interface StoredRecord {
  modRevision: number;
  candidates: CandidateWire[];
  endpoint: string | null;
}

/** The node's record as etcd holds it (etcdctl prints keys and values base64 in JSON). */
function storedRecord(node: MeshNode): StoredRecord | null {
  const out = etcdctl(etcd, ['get', `${PREFIX}/${mesh.deployment}/nodes/${node.instanceId}`, '-w', 'json'], mesh.lan);
  const kv = (JSON.parse(out) as { kvs?: Array<{ value: string; mod_revision: number }> }).kvs?.[0];
  if (kv === undefined) return null;
  const value = JSON.parse(Buffer.from(kv.value, 'base64').toString('utf8')) as { candidates: CandidateWire[]; endpoint: string | null };
  return { modRevision: kv.mod_revision, candidates: value.candidates, endpoint: value.endpoint };
}

function candidateAddresses(record: StoredRecord | null): string[] {
  return (record?.candidates ?? []).map((c) => c.address).sort();
}

async function status(node: MeshNode): Promise<StatusSnapshot> {
  const answer = await request(node, { type: 'Status' });
  if (answer.type !== 'Status') throw new Error(`Status of ${node.instanceId}: ${JSON.stringify(answer)}`);
  return answer;
}

/** How long to wait for something the nodes do on their own; only matters on failure (a loaded machine is slow). */
const DEADLINE_MS = 30_000;

/** Wait until `node`'s NAT maintenance has refreshed its candidates `ticks` ticks' worth after now (its own clock, in seconds). */
async function waitForRefreshes(node: MeshNode, ticks: number): Promise<void> {
  const until = Math.floor(Date.now() / 1000) + ticks * TICK_SECS;
  const deadline = Date.now() + DEADLINE_MS;
  for (;;) {
    const answer = await request(node, { type: 'NatStatus' });
    if (answer.type !== 'NatStatus') throw new Error(`NatStatus of ${node.instanceId}: ${JSON.stringify(answer)}`);
    if (answer.lastRefresh >= until) return;
    if (Date.now() > deadline) throw new Error(`${node.instanceId} refreshed last at ${answer.lastRefresh}, not yet at ${until}`);
    await new Promise((resolve) => setTimeout(resolve, 200));
  }
}

beforeAll(async () => {
  requireRoot('the membership NAT candidates test');
  requireCommands('ip', 'ping', 'etcd', 'etcdctl', 'turnserver');
  mesh = createMesh(2);
  addressAndUp(mesh.lan, 'br0', `${LAN_SERVICES}/24`);
  await startCoturn(mesh.lan, { listenAddresses: [LAN_SERVICES] });
  etcd = await startEtcdCluster({ namespace: mesh.lan, hosts: [LAN_SERVICES] });
  await Promise.all(
    mesh.nodes.map(async (node, i) => {
      writeConfig(mesh, node, {
        sliceCidr: undefined,
        peers: [],
        nat: { enabled: true, stunServers: [`${LAN_SERVICES}:3478`], stunRefreshIntervalSecs: TICK_SECS, holePunchTimeoutSecs: 3 },
        membership: { etcd: { endpoints: etcd.endpoints, prefix: PREFIX, leaseTtlSeconds: TTL, advertiseEndpoint: `192.0.2.${21 + i}:${WG_PORT}` } },
      });
      await startNode(node, { config: true });
      const s = await status(node);
      node.sliceCidr = s.sliceCidr!;
      node.nodeIp = s.nodeIp!;
    }),
  );
}, 60_000);

afterAll(() => cleanup());

describe('NAT candidates in etcd node records', () => {
  it('a node\'s record carries the host candidate its NAT tick found (at most 10)', async () => {
    const [a] = mesh.nodes as [MeshNode, MeshNode];
    await waitUntil(() => candidateAddresses(storedRecord(a)).includes(`${a.lanAddress}:${WG_PORT}`), 'a\'s record to carry its host candidate', 15_000, 200);
    const record = storedRecord(a)!;
    expect(record.endpoint).toBe(`192.0.2.21:${WG_PORT}`);
    expect(record.candidates.length).toBeLessThanOrEqual(10);
    expect(record.candidates.find((c) => c.address === `${a.lanAddress}:${WG_PORT}`)).toMatchObject({ candidateType: 'host', priority: expect.any(Number) });
  });

  it('the other node programs them: its endpoint for the peer is the candidate, and the overlay pings', async () => {
    const [a, b] = mesh.nodes as [MeshNode, MeshNode];
    await waitUntil(() => candidateAddresses(storedRecord(b)).includes(`${b.lanAddress}:${WG_PORT}`), 'b\'s record to carry its host candidate', 15_000, 200);
    // The advertised endpoints lead nowhere: only the candidates can connect them.
    await pingOverlay(a, b.nodeIp, 20_000);
    await pingOverlay(b, a.nodeIp, DEADLINE_MS);
    const peerOfB = (await status(b)).peers.find((p) => p.publicKey === a.publicKey);
    expect(peerOfB?.endpoint).toBe(`${a.lanAddress}:${WG_PORT}`);
  });

  it('steady state: ticks with the same candidates rewrite nothing', async () => {
    const [a] = mesh.nodes as [MeshNode, MeshNode];
    const before = storedRecord(a)!;
    await waitForRefreshes(a, 3);
    expect(storedRecord(a)!.modRevision).toBe(before.modRevision);
  });

  it('a new address is a new candidate: the record is rewritten once, and the other node gets it', async () => {
    const [a, b] = mesh.nodes as [MeshNode, MeshNode];
    const before = storedRecord(a)!;
    ip(a.namespace, 'address', 'add', `${EXTRA_ADDRESS}/24`, 'dev', 'eth0');
    await waitUntil(() => candidateAddresses(storedRecord(a)).includes(`${EXTRA_ADDRESS}:${WG_PORT}`), 'a\'s record to carry the new candidate', 15_000, 200);
    const changed = storedRecord(a)!;
    expect(changed.modRevision).toBeGreaterThan(before.modRevision);
    expect(candidateAddresses(changed)).toEqual([...candidateAddresses(before), `${EXTRA_ADDRESS}:${WG_PORT}`].sort());
    await waitForRefreshes(a, 3);
    expect(storedRecord(a)!.modRevision).toBe(changed.modRevision);
    // b applied the changed record, kept the endpoint that works (not the advertised one), and still reaches a.
    await waitUntil(() => b.process!.output().includes(`updated peer ${a.instanceId}`), 'b to apply a\'s changed record', DEADLINE_MS);
    const peerOfB = (await status(b)).peers.find((p) => p.publicKey === a.publicKey);
    expect(peerOfB?.endpoint).toMatch(new RegExp(`^(${a.lanAddress}|${EXTRA_ADDRESS}):${WG_PORT}$`));
    await pingOverlay(b, a.nodeIp, DEADLINE_MS);
  });
});
