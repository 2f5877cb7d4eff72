/**
 * Isolation networks across nodes on etcd membership: two `tswg node`
 * daemons with `membership: etcd` and a real etcd on their LAN. Each node's
 * record carries its isolation members; the other node's watch hands them to
 * its firewall. Red reaches red across nodes and never blue; a detach takes
 * the address out of the other node's sets; a record with nothing changed is
 * not written again.
 *
 * Needs root, etcd/etcdctl and a built dist/; fails, never skips.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { execInContainer, pingFromContainer, startContainer } from '../../scripts/lib/containers.js';
import { etcdctl, startEtcdCluster, type EtcdCluster } from '../../scripts/lib/etcd.js';
import { addressAndUp, cleanup, execIn, requireCommands, requireRoot, waitUntil } from '../../scripts/lib/netns.js';
import { createMesh, pingOverlay, request, startNode, writeConfig, type Mesh, type MeshNode } from '../../scripts/lib/overlay-mesh.js';

/** Long enough that a loaded 2-core machine never lets a presence lease lapse by accident. */
const TTL = 15;
const ETCD_ADDRESS = '192.168.77.2';
const PREFIX = '/tswg-isolation-test';
/** A publish check (2 s), the watch and a firewall update, with slack for a loaded machine. */
const PROPAGATION_MS = 15_000;

let mesh: Mesh;
let etcd: EtcdCluster;
let a: MeshNode;
let b: MeshNode;

async function startMember(node: MeshNode): Promise<void> {
  writeConfig(mesh, node, { sliceCidr: undefined, peers: [], membership: { etcd: { endpoints: etcd.endpoints, prefix: PREFIX, leaseTtlSeconds: TTL } } });
  await startNode(node, { config: true });
  const answer = await request(node, { type: 'Status' });
  if (answer.type !== 'Status') throw new Error(`Status of ${node.instanceId}: ${JSON.stringify(answer)}`);
  node.sliceCidr = answer.sliceCidr!;
  node.nodeIp = answer.nodeIp!;
}

async function member(node: MeshNode, network: string): Promise<{ pid: number; ip: string }> {
  const proc = await startContainer(node.namespace, `${network} on ${node.instanceId}`);
  const answer = await request(node, { type: 'AttachContainer', handle: { linuxPid: proc.pid }, service: 'iso', joinGlobal: false, dnsServer: null, dnsDomain: null, ephemeral: false, isolationNetwork: network });
  if (answer.type !== 'Attached') throw new Error(`AttachContainer: ${JSON.stringify(answer)}`);
  return { pid: proc.pid, ip: answer.ip };
}

/** Whether `ip` is an element of the node's isolation sets. */
function fenced(node: MeshNode, ip: string): boolean {
  return new RegExp(`[\\s{,]${ip.replace(/\./g, '\\.')}[\\s,}]`).test(execIn(node.namespace, 'nft', ['list', 'table', 'inet', 'tswg']));
}

/** The node's record in etcd: its isolation members and the revision it was last written at. */
function record(node: MeshNode): { isolation: Record<string, string[]>; revision: number } {
  const key = `${PREFIX}/${mesh.deployment}/nodes/${node.instanceId}`;
  const kv = (JSON.parse(etcdctl(etcd, ['get', key, '-w', 'json'], mesh.lan)) as { kvs: Array<{ value: string; mod_revision: number }> }).kvs[0]!;
  return { isolation: (JSON.parse(Buffer.from(kv.value, 'base64').toString()) as { isolation: Record<string, string[]> }).isolation, revision: kv.mod_revision };
}

beforeAll(async () => {
  requireRoot('the isolation-over-etcd tests');
  requireCommands('ip', 'ping', 'etcd', 'etcdctl', 'nft', 'unshare', 'nsenter');
  mesh = createMesh(2);
  [a, b] = mesh.nodes as [MeshNode, MeshNode];
  addressAndUp(mesh.lan, 'br0', `${ETCD_ADDRESS}/24`);
  etcd = await startEtcdCluster({ namespace: mesh.lan, hosts: [ETCD_ADDRESS] });
  // One at a time: two node start-ups at once on a loaded 2-core machine can pass the ready timeout.
  for (const node of mesh.nodes) await startMember(node);
  await pingOverlay(a, b.nodeIp, 15_000);
  for (const node of mesh.nodes) expect(await request(node, { type: 'SetupServiceOverlay', service: 'iso', mode: 'auto' })).toMatchObject({ type: 'ServiceOverlay' });
}, 90_000);

afterAll(() => cleanup());

describe('isolation members on etcd membership', () => {
  let red1: { pid: number; ip: string };
  let red2: { pid: number; ip: string };
  let blue2: { pid: number; ip: string };

  it('each node publishes its members and fences the other\'s: red reaches red across nodes, never blue', async () => {
    red1 = await member(a, 'red');
    red2 = await member(b, 'red');
    blue2 = await member(b, 'blue');
    await waitUntil(() => fenced(a, red2.ip) && fenced(a, blue2.ip), 'node A to fence node B\'s members', PROPAGATION_MS, 200);
    await waitUntil(() => fenced(b, red1.ip), 'node B to fence node A\'s member', PROPAGATION_MS, 200);
    expect(record(b).isolation).toEqual({ blue: [blue2.ip], red: [red2.ip] });
    expect(record(a).isolation).toEqual({ red: [red1.ip] });
    await pingFromContainer(red1.pid, red2.ip);
    for (const [from, to] of [[red1.pid, blue2.ip], [blue2.pid, red1.ip]] as const) {
      expect(() => execInContainer(from, 'ping', ['-c', '2', '-W', '1', '-n', to], { timeoutMs: 6000 }), `ping ${to} must fail`).toThrow();
    }
  }, 60_000);

  it('with nothing changed, the record is not written again', async () => {
    const before = record(b).revision;
    // Several publish checks (one every 2 s).
    await new Promise((resolve) => setTimeout(resolve, 7000));
    expect(record(b).revision).toBe(before);
  });

  it('a member that detaches leaves the other node\'s sets; the last one\'s network goes too', async () => {
    expect(await request(b, { type: 'DetachContainer', handle: { linuxPid: blue2.pid } })).toEqual({ type: 'Ok' });
    await waitUntil(() => !fenced(a, blue2.ip), 'the detached member to leave node A\'s sets', PROPAGATION_MS, 200);
    expect(fenced(a, red2.ip)).toBe(true);
    expect(record(b).isolation).toEqual({ red: [red2.ip] });
    await pingFromContainer(red1.pid, red2.ip);
    expect(await request(a, { type: 'DetachContainer', handle: { linuxPid: red1.pid } })).toEqual({ type: 'Ok' });
    await waitUntil(() => !fenced(b, red1.ip), 'node A\'s last member to leave node B\'s sets', PROPAGATION_MS, 200);
    expect(record(a).isolation).toEqual({});
  });
});
