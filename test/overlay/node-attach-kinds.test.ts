/**
 * One `tswg node` in a namespace: the attach kinds besides a Linux process,
 * recorded isolation membership, pool exhaustion, and the revert of
 * everything on Shutdown: a guest attach allocates its config and detach
 * releases it, an isolated network's membership is recorded, and teardown
 * reverts every resource and ip_forward.
 *
 * Needs root and a built dist/ (`npm run build`); fails, never skips.
 */
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startContainer } from '../../scripts/lib/containers.js';
import { cleanup, execIn, ip, requireCommands, requireRoot } from '../../scripts/lib/netns.js';
import { createMesh, networkSnapshot, request, settledLan, startNode, writeConfig, type Mesh, type MeshNode, type NetworkSnapshot } from '../../scripts/lib/overlay-mesh.js';
import type { Response } from '../../src/overlay/protocol.js';

let mesh: Mesh;
let node: MeshNode;
let before: NetworkSnapshot;

type Answer<T extends Response['type']> = Extract<Response, { type: T }>;

async function ok<T extends Response['type']>(req: unknown, type: T): Promise<Answer<T>> {
  const answer = await request(node, req as Parameters<typeof request>[1]);
  expect(answer, JSON.stringify(req)).toMatchObject({ type });
  return answer as Answer<T>;
}

function addressesOf(link: string): string[] {
  const entries = JSON.parse(ip(node.namespace, '-j', 'addr', 'show', 'dev', link)) as Array<{ addr_info: Array<{ local: string; prefixlen: number; scope: string }> }>;
  return entries[0]!.addr_info.filter((a) => a.scope !== 'link').map((a) => `${a.local}/${a.prefixlen}`);
}

function attachments(): Array<{ key: string; service: string; isolationNetwork: string | null; dnsServer: string | null; dnsDomain: string | null; state: string }> {
  return (JSON.parse(readFileSync(join(node.dataDir, 'attachments.json'), 'utf8')) as { attachments: never[] }).attachments;
}

beforeAll(async () => {
  requireRoot('the attach kinds tests');
  requireCommands('ip', 'wg', 'unshare', 'nsenter', 'sysctl');
  mesh = createMesh(1);
  node = mesh.nodes[0]!;
  execIn(node.namespace, 'sysctl', ['-qw', 'net.ipv4.ip_forward=0']);
  await settledLan(node.namespace);
  before = networkSnapshot(node.namespace);
  writeConfig(mesh, node);
  await startNode(node, { config: true });
});

afterAll(() => {
  cleanup();
});

describe('attach kinds on one node', () => {
  const globalIf = (): string => `zl-${mesh.deployment}-${node.instanceId}-g`;

  it('guestManaged: a key pair, a slice address, the node as its one peer; detach releases it', async () => {
    await ok({ type: 'SetupServiceOverlay', service: 'vm', mode: 'auto' }, 'ServiceOverlay');
    const guest = await ok({ type: 'AttachContainer', handle: { guestManaged: 'vm-1' }, service: 'vm', dnsServer: node.nodeIp, dnsDomain: 'cluster.local' }, 'GuestConfig');
    expect(guest.overlayIp).toBe('10.200.1.2');
    expect(guest.prefixLen).toBe(26);
    expect(guest.privateKey).toMatch(/^[A-Za-z0-9+/]{43}=$/);
    expect(guest.publicKey).not.toBe(node.publicKey);
    expect(guest.listenPort).toBe(51820);
    expect(guest.peers).toEqual([{ publicKey: node.publicKey, endpoint: `${node.nodeIp}:51820`, allowedIps: '10.200.0.0/16', persistentKeepaliveSecs: 25, candidates: [] }]);
    expect(guest.dnsServer).toBe(node.nodeIp);
    expect(guest.dnsDomain).toBe('cluster.local');
    const allowed = execIn(node.namespace, 'wg', ['show', globalIf(), 'allowed-ips']);
    expect(allowed).toContain(`${guest.publicKey}\t10.200.1.2/32`);
    await ok({ type: 'DetachContainer', handle: { guestManaged: 'vm-1' } }, 'Ok');
    expect(execIn(node.namespace, 'wg', ['show', globalIf(), 'allowed-ips'])).not.toContain(guest.publicKey);
    // The address is free again.
    expect((await ok({ type: 'AllocateIp', service: 'other', joinGlobal: false }, 'Ip')).ip).toBe('10.200.1.2');
    await ok({ type: 'ReleaseIp', ip: '10.200.1.2' }, 'Ok');
  });

  it('hostShared: a /32 alias of the slice on the global device, removed on detach', async () => {
    const attached = await ok({ type: 'AttachContainer', handle: { hostShared: 'box-1' }, service: 'vm' }, 'Attached');
    expect(addressesOf(globalIf())).toContain(`${attached.ip}/32`);
    await ok({ type: 'DetachContainer', handle: { hostShared: 'box-1' } }, 'Ok');
    expect(addressesOf(globalIf())).not.toContain(`${attached.ip}/32`);
  });

  it('records the isolation network and DNS settings of an attachment, and drops them on detach', async () => {
    const proc = await startContainer(node.namespace, 'isolated container');
    await ok({ type: 'AttachContainer', handle: { linuxPid: proc.pid }, service: 'vm', isolationNetwork: 'tenant-a', dnsServer: node.nodeIp, dnsDomain: 'svc' }, 'Attached');
    expect(attachments()).toEqual([
      expect.objectContaining({ key: `pid:${proc.pid}`, service: 'vm', isolationNetwork: 'tenant-a', dnsServer: node.nodeIp, dnsDomain: 'svc', state: 'attached' }),
    ]);
    expect(execIn(node.namespace, 'sysctl', ['-n', 'net.ipv4.ip_forward']).trim()).toBe('1');
    await ok({ type: 'DetachContainer', handle: { linuxPid: proc.pid } }, 'Ok');
    expect(attachments()).toEqual([]);
    await proc.stop();
  });

  it('a pool that is exhausted answers Err naming it, and nothing half-built stays', async () => {
    // A /24 cluster CIDR cannot be set on a live node; a /26 service pool can run dry: 61 addresses after the gateway.
    const allocated: string[] = [];
    for (;;) {
      const answer = await request(node, { type: 'AllocateIp', service: 'vm', joinGlobal: false });
      if (answer.type === 'Err') {
        expect(answer.message).toMatch(/^IP allocator exhausted: next address .* is outside slice 10\.200\./);
        break;
      }
      allocated.push((answer as Answer<'Ip'>).ip);
      expect(allocated.length).toBeLessThan(100);
    }
    expect(allocated).toHaveLength(61);
    const proc = await startContainer(node.namespace, 'one too many');
    const answer = await request(node, { type: 'AttachContainer', handle: { linuxPid: proc.pid }, service: 'vm', joinGlobal: false, dnsServer: null, dnsDomain: null, ephemeral: false, isolationNetwork: null });
    expect(answer.type).toBe('Err');
    expect(JSON.parse(ip(node.namespace, '-j', 'link', 'show')).map((l: { ifname: string }) => l.ifname)).not.toContain(`veth-${proc.pid}-s`);
    for (const address of allocated) await ok({ type: 'ReleaseIp', ip: address }, 'Ok');
    await proc.stop();
  });

  it('Shutdown puts back every link, address, route and ip_forward as they were before the node started', async () => {
    const proc = await startContainer(node.namespace, 'last container');
    await ok({ type: 'SetupServiceOverlay', service: 'db', mode: 'dedicated' }, 'ServiceOverlay');
    await ok({ type: 'SetupServiceOverlay', service: 'shared-a', mode: 'shared' }, 'ServiceOverlay');
    await ok({ type: 'AttachContainer', handle: { linuxPid: proc.pid }, service: 'db', joinGlobal: true }, 'Attached');
    await ok({ type: 'Shutdown' }, 'Ok');
    await node.process!.waitForExit(10_000);
    await settledLan(node.namespace);
    expect(networkSnapshot(node.namespace)).toEqual(before);
    await proc.stop();
  });
});
