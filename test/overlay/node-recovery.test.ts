/**
 * A node whose global device dies (`ip link del` of its zl-…-g interface
 * inside its namespace) restarts it once with the same setup and peers:
 * the interface comes back, Status says health "ok", the peer still
 * answers pings. A second death within a minute of that restart stops the
 * node with exit 1, the reason logged, socket and interface gone.
 *
 * A SetupGlobalOverlay with a new slice that fails (its UDP port is taken)
 * leaves the old slice's IP assignments whole, in memory and on disk.
 *
 * `--metrics :PORT` says at start-up that it listens on every address.
 *
 * Needs root and a built dist/ (`npm run build`); fails, never skips.
 */
import { existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { cleanup, ip, requireCommands, requireRoot, startIn, waitUntil } from '../../scripts/lib/netns.js';
import { STATE_FILE_NAME } from '../../src/overlay/constants.js';
import type { Response } from '../../src/overlay/protocol.js';
import { createMesh, pingOverlay, request, setupRequest, startNode, writeConfig, type Mesh, type MeshNode } from '../../scripts/lib/overlay-mesh.js';

let mesh: Mesh;

function interfaceOf(node: MeshNode): string {
  return `zl-${mesh.deployment}-${node.instanceId}-g`;
}

function hasLink(node: MeshNode): boolean {
  return ip(node.namespace, '-o', 'link', 'show').includes(`${interfaceOf(node)}:`);
}

async function statusOf(node: MeshNode): Promise<Extract<Response, { type: 'Status' }>> {
  return (await request(node, { type: 'Status' })) as Extract<Response, { type: 'Status' }>;
}

beforeAll(async () => {
  requireRoot('the overlay node recovery tests');
  requireCommands('ip', 'ping');
  mesh = createMesh(3);
  // Each of the first two has only the other as a peer.
  writeConfig({ ...mesh, nodes: mesh.nodes.slice(0, 2) }, mesh.nodes[0]!);
  writeConfig({ ...mesh, nodes: mesh.nodes.slice(0, 2) }, mesh.nodes[1]!);
  await startNode(mesh.nodes[0]!, { config: true, metrics: ':0' });
  await startNode(mesh.nodes[1]!, { config: true });
});

afterAll(() => {
  cleanup();
});

describe('the global device dies', () => {
  it('says at start-up that :PORT metrics listen on every address and name peers', () => {
    expect(mesh.nodes[0]!.process!.output()).toMatch(/tswg node: metrics on http:\/\/0\.0\.0\.0:\d+\/metrics \(all addresses; the page names peers and endpoints\)/);
  });

  it('is restarted once with its peers: interface back, health ok, pings pass', async () => {
    const [node, other] = [mesh.nodes[0]!, mesh.nodes[1]!];
    await pingOverlay(node, other.nodeIp);
    ip(node.namespace, 'link', 'del', interfaceOf(node));
    await waitUntil(() => node.process!.output().includes('restarted with 1 peer(s)'), 'the node to restart its global overlay', 15_000, 50);
    expect(node.process!.output()).toMatch(new RegExp(`global overlay ${interfaceOf(node)} stopped: .*; restarting it`));
    expect(hasLink(node)).toBe(true);
    const status = await statusOf(node);
    expect(status).toMatchObject({ interface: interfaceOf(node), health: 'ok', peerCount: 1, nodeIp: node.nodeIp });
    await pingOverlay(node, other.nodeIp);
    await pingOverlay(other, node.nodeIp);
  }, 60_000);

  it('a second death within a minute of the restart stops the node: exit 1, reason logged, socket and interface gone', async () => {
    const node = mesh.nodes[0]!;
    ip(node.namespace, 'link', 'del', interfaceOf(node));
    const exit = await node.process!.waitForExit(10_000);
    expect(exit.code, node.process!.output()).toBe(1);
    expect(node.process!.output()).toMatch(/it failed again within 60 s of a restart, giving up/);
    expect(existsSync(node.controlPath)).toBe(false);
    expect(hasLink(node)).toBe(false);
  });
});

describe('a slice change that fails', () => {
  it('keeps the old slice and its assignments, in memory and on disk', async () => {
    const node = mesh.nodes[2]!;
    await startNode(node);
    expect(await request(node, setupRequest(mesh, node))).toEqual({ type: 'BridgeName', name: interfaceOf(node) });
    expect(await request(node, { type: 'AllocateIp', service: 'web', joinGlobal: true })).toEqual({ type: 'Ip', ip: '10.200.3.2' });
    expect(await request(node, { type: 'AllocateIp', service: 'db', joinGlobal: true })).toEqual({ type: 'Ip', ip: '10.200.3.3' });
    expect(await request(node, { type: 'TeardownGlobalOverlay' })).toEqual({ type: 'Ok' });
    const statePath = join(node.dataDir, STATE_FILE_NAME);
    const saved = readFileSync(statePath, 'utf8');

    const holder = startIn(node.namespace, process.execPath, ['-e', "require('dgram').createSocket('udp4').bind(51999, () => console.log('bound'))"], { name: 'port holder' });
    try {
      await waitUntil(() => holder.output().includes('bound'), 'the port holder', 5000);
      const moved = { ...setupRequest(mesh, node), sliceCidr: '10.200.9.0/26', wgPort: 51999, hostAdapterMandatory: true };
      expect(await request(node, moved)).toMatchObject({ type: 'Err', message: expect.stringContaining('on UDP port 51999') });
    } finally {
      await holder.stop();
    }
    expect(readFileSync(statePath, 'utf8')).toBe(saved);
    expect(hasLink(node)).toBe(false);
    // The old slice again: its assignments are still held, the next address is new.
    expect(await request(node, setupRequest(mesh, node))).toEqual({ type: 'BridgeName', name: interfaceOf(node) });
    expect(await request(node, { type: 'AllocateIp', service: 'cache', joinGlobal: true })).toEqual({ type: 'Ip', ip: '10.200.3.4' });
    const assignments = (JSON.parse(readFileSync(statePath, 'utf8')) as { assignments: Record<string, string> }).assignments;
    expect(assignments).toEqual({ '10.200.3.2': 'web', '10.200.3.3': 'db', '10.200.3.4': 'cache' });
  }, 60_000);
});
