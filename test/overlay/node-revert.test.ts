/**
 * Teardown and Shutdown revert everything the node changed: after SIGTERM,
 * after TeardownGlobalOverlay (daemon still running) and after a Shutdown
 * request, `ip -j link/addr/route` (both families, every table) and the
 * forwarding sysctls of the node's namespace equal the snapshot taken
 * before the node started — with ip_forward 0 beforehand (the node sets it
 * to 1 while up) and with ip_forward 1 beforehand (restored, not forced to
 * 0). Also: a stale interface of the global name is removed at setup.
 *
 * Needs root and a built dist/ (`npm run build`); fails, never skips.
 */
import { existsSync } from 'node:fs';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { cleanup, execIn, ip, requireCommands, requireRoot, waitUntil } from '../../scripts/lib/netns.js';
import { createMesh, networkSnapshot, request, setupRequest, startNode, writeConfig, type Mesh, type MeshNode } from '../../scripts/lib/overlay-mesh.js';

let mesh: Mesh;
let node: MeshNode;

function interfaceName(): string {
  return `zl-${mesh.deployment}-${node.instanceId}-g`;
}

function setForwarding(value: '0' | '1'): void {
  execIn(node.namespace, 'sysctl', ['-qw', `net.ipv4.ip_forward=${value}`]);
}

/** IPv6 duplicate address detection changes addresses' flags for a moment after a link comes up. */
async function settled(): Promise<void> {
  await waitUntil(() => !ip(node.namespace, 'addr').includes('tentative'), 'IPv6 addresses to leave the tentative state', 10_000, 100);
}

beforeAll(() => {
  requireRoot('the overlay node revert tests');
  requireCommands('ip', 'sysctl');
  mesh = createMesh(1);
  node = mesh.nodes[0]!;
  writeConfig(mesh, node);
});

afterAll(() => {
  cleanup();
});

describe('teardown reverts links, routes and forwarding sysctls', () => {
  it('after SIGTERM (config-started node, ip_forward 0 before)', async () => {
    setForwarding('0');
    await settled();
    const before = networkSnapshot(node.namespace);
    const proc = await startNode(node, { config: true });
    await settled();
    const during = networkSnapshot(node.namespace);
    expect(during.sysctls['net.ipv4.ip_forward']).toBe('1');
    expect(during.links.map((l) => (l as { ifname: string }).ifname)).toContain(interfaceName());
    expect(JSON.stringify(during.routes4)).toContain(interfaceName());
    const exit = await proc.stop(5000);
    expect(exit.code, proc.output()).toBe(0);
    expect(networkSnapshot(node.namespace)).toEqual(before);
    expect(existsSync(node.controlPath)).toBe(false);
  });

  it('after TeardownGlobalOverlay and after a Shutdown request (ip_forward 1 before: restored, not reset)', async () => {
    setForwarding('1');
    await settled();
    const before = networkSnapshot(node.namespace);
    const proc = await startNode(node);
    expect(await request(node, setupRequest(mesh, node))).toEqual({ type: 'BridgeName', name: interfaceName() });
    expect(ip(node.namespace, 'link', 'show')).toContain(interfaceName());
    expect(await request(node, { type: 'TeardownGlobalOverlay' })).toEqual({ type: 'Ok' });
    expect(networkSnapshot(node.namespace)).toEqual(before);
    expect(proc.running()).toBe(true);
    expect((await request(node, { type: 'Status' })).type).toBe('Status');

    // Up again (a second setup after a teardown builds a new device), then Shutdown.
    expect(await request(node, setupRequest(mesh, node))).toEqual({ type: 'BridgeName', name: interfaceName() });
    expect(await request(node, { type: 'Shutdown' })).toEqual({ type: 'Ok' });
    const exit = await proc.waitForExit(10_000);
    expect(exit.code, proc.output()).toBe(0);
    expect(networkSnapshot(node.namespace)).toEqual(before);
    setForwarding('0');
  });

  it('an IPv6 cluster: address and route of the cluster prefix, forwarding on that interface only, all reverted', async () => {
    await settled();
    const before = networkSnapshot(node.namespace);
    const proc = await startNode(node);
    const v6 = { ...setupRequest(mesh, node), clusterCidr: 'fd00:200::/48', sliceCidr: 'fd00:200:0:1::/64' };
    expect(await request(node, v6)).toEqual({ type: 'BridgeName', name: interfaceName() });
    expect(await request(node, { type: 'Status' })).toMatchObject({ nodeIp: 'fd00:200:0:1::1', overlayCidr: 'fd00:200::/48', sliceCidr: 'fd00:200:0:1::/64' });
    expect(await request(node, { type: 'AllocateIp', service: 'web', joinGlobal: false })).toEqual({ type: 'Ip', ip: 'fd00:200:0:1::2' });
    expect(ip(node.namespace, '-6', 'addr', 'show', 'dev', interfaceName())).toContain('inet6 fd00:200:0:1::1/48');
    expect(ip(node.namespace, '-6', 'route', 'show', 'fd00:200::/48')).toContain(`dev ${interfaceName()}`);
    expect(execIn(node.namespace, 'sysctl', ['-n', `net.ipv6.conf.${interfaceName()}.forwarding`]).trim()).toBe('1');
    expect(execIn(node.namespace, 'sysctl', ['-n', 'net.ipv6.conf.all.forwarding']).trim()).toBe(before.sysctls['net.ipv6.conf.all.forwarding']);
    expect(execIn(node.namespace, 'sysctl', ['-n', 'net.ipv4.ip_forward']).trim()).toBe(before.sysctls['net.ipv4.ip_forward']);
    expect(await request(node, { type: 'ReleaseIp', ip: 'fd00:200:0:1::2' })).toEqual({ type: 'Ok' });
    const exit = await proc.stop(5000);
    expect(exit.code, proc.output()).toBe(0);
    expect(networkSnapshot(node.namespace)).toEqual(before);
  });

  it('removes a stale interface of the global name before creating its own', async () => {
    ip(node.namespace, 'tuntap', 'add', 'mode', 'tun', 'name', interfaceName());
    ip(node.namespace, 'addr', 'add', '10.250.0.1/24', 'dev', interfaceName());
    const proc = await startNode(node, { config: true });
    const addresses = ip(node.namespace, 'addr', 'show', 'dev', interfaceName());
    expect(addresses).toContain(`inet ${node.nodeIp}/16`);
    expect(addresses).not.toContain('10.250.0.1');
    const exit = await proc.stop(5000);
    expect(exit.code, proc.output()).toBe(0);
    expect(ip(node.namespace, 'link', 'show')).not.toContain(interfaceName());
  });
});
