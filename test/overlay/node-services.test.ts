/**
 * Containers on the overlay, end to end: two `tswg node` daemons in their own
 * namespaces, service overlays on each, and "containers" (processes in a
 * network namespace of their own, started inside a node's namespace)
 * attached to them. Checks the cross-node data path container to container
 * (auto, dedicated), shared versus auto bridges, joinGlobal's eth1, detach,
 * bad requests, and recovery after kill -9: dedicated key and port kept,
 * orphans swept, PruneOrphanBridges reclaiming exactly the orphan set.
 *
 * Needs root and a built dist/ (`npm run build`); fails, never skips.
 */
import { existsSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { containerAddresses, containerLinks, execInContainer, pingFromContainer, startContainer } from '../../scripts/lib/containers.js';
import { cleanup, execIn, ip, requireCommands, requireRoot, type NamespaceProcess } from '../../scripts/lib/netns.js';
import { createMesh, pingOverlay, request, startNode, writeConfig, type Mesh, type MeshNode } from '../../scripts/lib/overlay-mesh.js';
import type { Response } from '../../src/overlay/protocol.js';

let mesh: Mesh;
let a: MeshNode;
let b: MeshNode;

type Answer<T extends Response['type']> = Extract<Response, { type: T }>;

async function ok<T extends Response['type']>(node: MeshNode, req: Parameters<typeof request>[1], type: T): Promise<Answer<T>> {
  const answer = await request(node, req);
  expect(answer, JSON.stringify(req)).toMatchObject({ type });
  return answer as Answer<T>;
}

async function err(node: MeshNode, req: unknown): Promise<string> {
  const answer = await request(node, req as Parameters<typeof request>[1]);
  expect(answer.type, JSON.stringify(req)).toBe('Err');
  return (answer as Answer<'Err'>).message;
}

function links(node: MeshNode): string[] {
  return (JSON.parse(ip(node.namespace, '-j', 'link', 'show') || '[]') as Array<{ ifname: string }>).map((l) => l.ifname);
}

function masterOf(node: MeshNode, link: string): string | null {
  const entry = (JSON.parse(ip(node.namespace, '-j', 'link', 'show', 'dev', link)) as Array<{ master?: string }>)[0];
  return entry?.master ?? null;
}

async function attach(node: MeshNode, pid: number, service: string, extra: Record<string, unknown> = {}): Promise<Answer<'Attached'>> {
  return ok(node, { type: 'AttachContainer', handle: { linuxPid: pid }, service, ...extra } as never, 'Attached');
}

/** Each node routes the other's service subnet to it (the orchestrator's job today). */
async function crossRoute(subnets: Map<MeshNode, string>): Promise<void> {
  for (const [node, subnet] of subnets) {
    for (const other of mesh.nodes) {
      if (other !== node) await ok(other, { type: 'AddAllowedIp', pubkey: node.publicKey, cidr: subnet, scope: 'global' }, 'Ok');
    }
  }
}

beforeAll(async () => {
  requireRoot('the container attach tests');
  requireCommands('ip', 'ping', 'wg', 'unshare', 'nsenter');
  mesh = createMesh(2);
  [a, b] = mesh.nodes as [MeshNode, MeshNode];
  for (const node of mesh.nodes) writeConfig(mesh, node);
  await Promise.all(mesh.nodes.map((node) => startNode(node, { config: true })));
  await pingOverlay(a, b.nodeIp);
});

afterAll(() => {
  cleanup();
});

describe('service overlays and containers across two nodes', () => {
  const subnets = new Map<MeshNode, string>();
  const containers = new Map<MeshNode, NamespaceProcess>();
  const ips = new Map<MeshNode, string>();

  it('auto: each node gets its own bridge and /26; a container on A pings a container on B', async () => {
    for (const node of mesh.nodes) {
      const info = await ok(node, { type: 'SetupServiceOverlay', service: 'web', mode: 'AUTO' } as never, 'ServiceOverlay');
      expect(info.mode).toBe('auto');
      expect(info.bridge).toMatch(/^zl-.*-b$/);
      expect(info.subnet).toMatch(/\/26$/);
      expect(info.wgPublicKey).toBeNull();
      expect(links(node)).toContain(info.bridge);
      subnets.set(node, info.subnet);
      // Idempotent.
      expect(await ok(node, { type: 'SetupServiceOverlay', service: 'web' } as never, 'ServiceOverlay')).toEqual(info);
    }
    expect(subnets.get(a)).not.toBe(subnets.get(b));
    await crossRoute(subnets);
    for (const node of mesh.nodes) {
      const container = await startContainer(node.namespace, `container on ${node.instanceId}`);
      containers.set(node, container);
      const attached = await attach(node, container.pid, 'web');
      expect(attached.globalIp).toBeNull();
      ips.set(node, attached.ip);
      const eth0 = containerLinks(container.pid).find((l) => l.ifname === 'eth0');
      expect(eth0?.mtu).toBe(1420);
      expect(containerAddresses(container.pid, 'eth0')).toEqual([`${attached.ip}/26`]);
      expect(masterOf(node, `veth-${container.pid}-s`)).toMatch(/-b$/);
    }
    await pingFromContainer(containers.get(a)!.pid, ips.get(b)!);
    await pingFromContainer(containers.get(b)!.pid, ips.get(a)!);
    const status = await ok(a, { type: 'Status' }, 'Status');
    expect(status.serviceCount).toBe(1);
    expect(status.services).toEqual([{ name: 'web', mode: 'auto', bridge: status.services[0]!.bridge, subnet: subnets.get(a), members: 1 }]);
  });

  it('AllocateIp draws from the service bridge pool; ReleaseIp gives it back', async () => {
    const { ip: allocated } = await ok(a, { type: 'AllocateIp', service: 'web', joinGlobal: false }, 'Ip');
    const base = subnets.get(a)!.split('/')[0]!.split('.').slice(0, 3).join('.');
    expect(allocated.startsWith(base)).toBe(true);
    await ok(a, { type: 'ReleaseIp', ip: allocated }, 'Ok');
    expect((await ok(a, { type: 'AllocateIp', service: 'web', joinGlobal: false }, 'Ip')).ip).toBe(allocated);
    await ok(a, { type: 'ReleaseIp', ip: allocated }, 'Ok');
  });

  it('shared services share one -sh bridge; an auto service gets its own', async () => {
    const one = await ok(a, { type: 'SetupServiceOverlay', service: 'cache', mode: 'shared' }, 'ServiceOverlay');
    const two = await ok(a, { type: 'SetupServiceOverlay', service: 'queue', mode: 'Shared' } as never, 'ServiceOverlay');
    expect(one.bridge).toMatch(/-sh$/);
    expect(two.bridge).toBe(one.bridge);
    expect(two.subnet).toBe(one.subnet);
    expect(one.bridge).not.toBe((await ok(a, { type: 'SetupServiceOverlay', service: 'web' } as never, 'ServiceOverlay')).bridge);
    const c1 = await startContainer(a.namespace, 'cache container');
    const c2 = await startContainer(a.namespace, 'queue container');
    const x = await attach(a, c1.pid, 'cache');
    await attach(a, c2.pid, 'queue');
    expect(masterOf(a, `veth-${c1.pid}-s`)).toBe(one.bridge);
    expect(masterOf(a, `veth-${c2.pid}-s`)).toBe(one.bridge);
    await pingFromContainer(c2.pid, x.ip);
    await ok(a, { type: 'DetachContainer', handle: { linuxPid: c1.pid } }, 'Ok');
    await ok(a, { type: 'DetachContainer', handle: { linuxPid: c2.pid } }, 'Ok');
    // Tearing a shared service down keeps the bridge for the others.
    await ok(a, { type: 'TeardownServiceOverlay', service: 'cache' }, 'Ok');
    expect(links(a)).toContain(one.bridge);
    await ok(a, { type: 'TeardownServiceOverlay', service: 'queue' }, 'Ok');
    await c1.stop();
    await c2.stop();
  });

  it('dedicated: its own device, key and port; the service traffic rides it', async () => {
    const infos = new Map<MeshNode, Answer<'ServiceOverlay'>>();
    for (const node of mesh.nodes) {
      const info = await ok(node, { type: 'SetupServiceOverlay', service: 'db', mode: 'dedicated' }, 'ServiceOverlay');
      expect(info.wgPublicKey).not.toBeNull();
      expect(info.wgPublicKey).not.toBe(node.publicKey);
      expect(info.wgPort).toBe(51821);
      expect(info.overlayIp).not.toBeNull();
      const gateway = execIn(node.namespace, 'ip', ['-j', 'addr', 'show', 'dev', info.bridge]);
      expect(gateway).not.toContain(`"${info.overlayIp}"`);
      infos.set(node, info);
    }
    for (const node of mesh.nodes) {
      const other = node === a ? b : a;
      const theirs = infos.get(other)!;
      await ok(
        node,
        {
          type: 'AddPeer',
          peer: { publicKey: theirs.wgPublicKey!, endpoint: `${other.lanAddress}:${theirs.wgPort}`, allowedIps: theirs.subnet, persistentKeepaliveSecs: 0, candidates: [] },
          scope: { service: 'db' },
        },
        'Ok',
      );
    }
    const dbContainers = new Map<MeshNode, { proc: NamespaceProcess; ip: string }>();
    for (const node of mesh.nodes) {
      const proc = await startContainer(node.namespace, `db container on ${node.instanceId}`);
      dbContainers.set(node, { proc, ip: (await attach(node, proc.pid, 'db')).ip });
    }
    await pingFromContainer(dbContainers.get(a)!.proc.pid, dbContainers.get(b)!.ip);
    const device = (await ok(a, { type: 'Status' }, 'Status')).dedicatedServices[0]!.interface;
    expect(device).toMatch(/^zl-.*-d$/);
    const handshakes = execIn(a.namespace, 'wg', ['show', device, 'latest-handshakes']);
    expect(handshakes).toContain(infos.get(b)!.wgPublicKey!);
    expect(Number(handshakes.trim().split(/\s+/)[1])).toBeGreaterThan(0);
    const status = await ok(a, { type: 'Status' }, 'Status');
    expect(status.dedicatedServices).toEqual([
      {
        service: 'db',
        interface: device,
        publicKey: infos.get(a)!.wgPublicKey,
        listenPort: 51821,
        overlayIp: infos.get(a)!.overlayIp,
        subnet: infos.get(a)!.subnet,
        peerCount: 1,
      },
    ]);
  });

  it('joinGlobal: eth1 gets a slice address that the other node reaches', async () => {
    const proc = await startContainer(a.namespace, 'global container');
    const attached = await attach(a, proc.pid, 'web', { joinGlobal: true });
    expect(attached.globalIp).not.toBeNull();
    expect(attached.globalIp!.startsWith('10.200.1.')).toBe(true);
    expect(containerAddresses(proc.pid, 'eth1')).toEqual([`${attached.globalIp}/26`]);
    await pingOverlay(b, attached.globalIp!);
    await ok(a, { type: 'DetachContainer', handle: { linuxPid: proc.pid } }, 'Ok');
    expect(links(a).filter((l) => l.startsWith(`veth-${proc.pid}-`))).toEqual([]);
    expect(containerLinks(proc.pid).map((l) => l.ifname)).toEqual(['lo']);
    await ok(a, { type: 'DetachContainer', handle: { linuxPid: proc.pid } }, 'Ok');
    await proc.stop();
  });

  it('bad requests get an Err naming the thing, and nothing is left behind', async () => {
    const before = links(a);
    expect(await err(a, { type: 'AttachContainer', handle: { linuxPid: 1 }, service: 'nope' })).toContain('nope');
    expect(await err(a, { type: 'SetupServiceOverlay', service: 'x', mode: 'mesh' })).toContain('mode');
    expect(await err(a, { type: 'AttachContainer', handle: { linuxPid: 0 }, service: 'web' })).toContain('linuxPid');
    expect(await err(a, { type: 'AttachContainer', handle: { linuxPid: 'x' }, service: 'web' })).toContain('linuxPid');
    expect(await err(a, { type: 'AttachContainer', handle: { dockerId: 'x' }, service: 'web' })).toContain('dockerId');
    expect(await err(a, { type: 'AttachContainer', handle: { linuxPid: 4_000_000 }, service: 'web' })).toContain('process 4000000');
    // The node's own namespace: its own PID.
    const self = a.process!.pid;
    expect(await err(a, { type: 'AttachContainer', handle: { linuxPid: self }, service: 'web' })).toContain("node's own network namespace");
    expect(links(a)).toEqual(before);
    // A long service name still makes valid interface names.
    const long = 'a-very-long-service-name-that-no-interface-name-could-hold';
    const info = await ok(a, { type: 'SetupServiceOverlay', service: long, mode: 'auto' }, 'ServiceOverlay');
    expect(info.bridge.length).toBeLessThanOrEqual(15);
    await ok(a, { type: 'TeardownServiceOverlay', service: long }, 'Ok');
    await ok(a, { type: 'TeardownServiceOverlay', service: long }, 'Ok');
    expect(links(a)).toEqual(before);
  });

  it('ephemeral: the last member leaving tears the service overlay down', async () => {
    const info = await ok(a, { type: 'SetupServiceOverlay', service: 'job', mode: 'auto' }, 'ServiceOverlay');
    const p1 = await startContainer(a.namespace, 'job 1');
    const p2 = await startContainer(a.namespace, 'job 2');
    await attach(a, p1.pid, 'job', { ephemeral: true });
    await attach(a, p2.pid, 'job', { ephemeral: true });
    await ok(a, { type: 'DetachContainer', handle: { linuxPid: p1.pid } }, 'Ok');
    expect(links(a)).toContain(info.bridge);
    await ok(a, { type: 'DetachContainer', handle: { linuxPid: p2.pid } }, 'Ok');
    expect(links(a)).not.toContain(info.bridge);
    await p1.stop();
    await p2.stop();
  });

  it('kill -9 and restart: service overlays, dedicated key and port come back; orphans swept; prune reclaims exactly the orphans', async () => {
    const before = await ok(a, { type: 'Status' }, 'Status');
    const dedicated = before.dedicatedServices[0]!;
    const survivor = containers.get(a)!;
    // A container that dies while the node is down leaves a veth pair held by something else: simulate with a link named for a gone PID.
    ip(a.namespace, 'link', 'add', 'veth-4194000-s', 'type', 'veth', 'peer', 'name', 'vc-4194000-s');
    a.process!.child.kill('SIGKILL');
    await a.process!.exited;
    await startNode(a, { config: true });
    await ok(a, { type: 'SetupGlobalOverlay', deployment: mesh.deployment, instanceId: a.instanceId, clusterCidr: '10.200.0.0/16', sliceCidr: a.sliceCidr, wgPort: 51820, hostAdapterMandatory: false }, 'BridgeName');
    const after = await ok(a, { type: 'Status' }, 'Status');
    expect(after.dedicatedServices[0]).toMatchObject({ publicKey: dedicated.publicKey, listenPort: dedicated.listenPort, interface: dedicated.interface, subnet: dedicated.subnet });
    expect(after.services.map((s) => s.name)).toEqual(['db', 'web']);
    expect(after.services.find((s) => s.name === 'web')!.members).toBe(1);
    expect(links(a)).not.toContain('veth-4194000-s');
    // The surviving container still reaches the other node's container.
    await pingFromContainer(survivor.pid, ips.get(b)!);
    // The key file: mode 0600, and never inside a JSON document.
    const keyFile = join(a.dataDir, 'keys', `${dedicated.interface}.key`);
    expect(existsSync(keyFile)).toBe(true);
    expect(execIn(null, 'stat', ['-c', '%a', keyFile]).trim()).toBe('600');
    expect(execIn(null, 'cat', [join(a.dataDir, 'services.json')])).not.toMatch(/privateKey|PrivateKey/);

    // Live, protected and orphan names mixed, with zl-prod-0-gone-d shortened: at 16 bytes no kernel link can carry that name.
    for (const name of ['zl-prod-0-web-b', 'zl-prod-0-api-b', 'zl-prod-0-db-d', 'zl-1ca4568944-b', 'zl-81c6bc17c7-b', 'zl-prod-0-old-d', 'zl-not-a-bridge']) {
      ip(a.namespace, 'link', 'add', name, 'type', 'bridge');
    }
    const live = ['zl-prod-0-web-b', 'zl-prod-0-api-b', 'zl-prod-0-db-d', ...after.services.map((s) => s.bridge)];
    const pruned = await ok(a, { type: 'PruneOrphanBridges', liveBridgeNames: live }, 'PrunedBridges');
    expect(pruned.reclaimed.sort()).toEqual(['zl-1ca4568944-b', 'zl-81c6bc17c7-b', 'zl-prod-0-old-d']);
    expect(links(a)).toContain(dedicated.interface);
    for (const name of ['zl-prod-0-web-b', 'zl-prod-0-api-b', 'zl-prod-0-db-d', 'zl-not-a-bridge']) ip(a.namespace, 'link', 'del', name);
  });

  it('Shutdown removes every bridge, device and veth the node made', async () => {
    await ok(b, { type: 'Shutdown' }, 'Ok');
    await b.process!.waitForExit(10_000);
    const left = links(b).filter((l) => l.startsWith('zl-') || l.startsWith('veth-') || l.startsWith('vc-'));
    expect(left).toEqual([]);
    expect(execInContainer(containers.get(b)!.pid, 'ip', ['-o', 'link']).includes('eth0')).toBe(false);
  });
});
