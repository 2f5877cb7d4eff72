/**
 * Three `tswg node` daemons started with no config, driven only through
 * their control sockets (as an orchestrator would): SetupGlobalOverlay
 * (twice: the second reuses the live device), AddPeer for every pair, pings
 * over every ordered pair, `tswg node status --json` with two peers and
 * handshakes; the CLI's add-peer / remove-peer; AddAllowedIp /
 * RemoveAllowedIp seen by wg(8); AllocateIp; 1,000 malformed lines that
 * leave the daemon serving; a second daemon refused on a live socket; and
 * Shutdown over the socket (exit 0, socket and interface gone).
 *
 * Needs root and a built dist/ (`npm run build`); fails, never skips.
 */
import { existsSync } from 'node:fs';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { cleanup, execIn, ip, requireCommands, requireRoot, startIn, waitUntil } from '../../scripts/lib/netns.js';
import { TSWG_BIN } from '../../scripts/lib/topology.js';
import { ControlClient } from '../../src/overlay/control-client.js';
import type { Response } from '../../src/overlay/protocol.js';
import { runCommand } from '../helpers/daemon-process.js';
import { MALFORMED_CASES } from '../helpers/overlay-malformed.js';
import { createMesh, peerSpecOf, pingOverlay, request, setupRequest, startNode, type Mesh, type MeshNode } from '../../scripts/lib/overlay-mesh.js';

const FAKE_KEY = 'BBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBA=';
let mesh: Mesh;

function expectedName(node: MeshNode): string {
  return `zl-${mesh.deployment}-${node.instanceId}-g`;
}

function cli(node: MeshNode, ...args: string[]) {
  return runCommand(null, TSWG_BIN, ['node', ...args, '--control', node.controlPath]);
}

function statusOf(node: MeshNode): Extract<Response, { type: 'Status' }> {
  const result = cli(node, 'status', '--json');
  expect(result.status, result.stderr).toBe(0);
  return JSON.parse(result.stdout) as Extract<Response, { type: 'Status' }>;
}

beforeAll(async () => {
  requireRoot('the overlay node control tests');
  requireCommands('ip', 'ping', 'wg');
  mesh = createMesh(3);
  await Promise.all(mesh.nodes.map((node) => startNode(node)));
});

afterAll(() => {
  cleanup();
});

describe('three nodes driven through the control socket', () => {
  it('report an empty status before setup', () => {
    const status = statusOf(mesh.nodes[0]!);
    expect(status).toMatchObject({ interface: null, nodeIp: null, publicKey: null, overlayCidr: '10.200.0.0/16', peerCount: 0 });
  });

  it('set up the global overlay; a second setup reuses the live device', async () => {
    for (const node of mesh.nodes) {
      expect(await request(node, setupRequest(mesh, node))).toEqual({ type: 'BridgeName', name: expectedName(node) });
    }
    const node = mesh.nodes[0]!;
    const index = ip(node.namespace, '-o', 'link', 'show', 'dev', expectedName(node)).split(':')[0];
    expect(await request(node, setupRequest(mesh, node))).toEqual({ type: 'BridgeName', name: expectedName(node) });
    expect(ip(node.namespace, '-o', 'link', 'show', 'dev', expectedName(node)).split(':')[0]).toBe(index);
    const other = { ...setupRequest(mesh, node), sliceCidr: '10.200.50.0/26' };
    expect(await request(node, other)).toMatchObject({ type: 'Err', message: expect.stringContaining('tear it down first') });
  });

  it('add every pair as peers and ping over every ordered pair', async () => {
    for (const node of mesh.nodes) {
      for (const other of mesh.nodes) {
        if (other !== node) expect(await request(node, { type: 'AddPeer', peer: peerSpecOf(other), scope: 'global' })).toEqual({ type: 'Ok' });
      }
    }
    for (const from of mesh.nodes) for (const to of mesh.nodes) if (from !== to) await pingOverlay(from, to.nodeIp);
    for (const node of mesh.nodes) {
      const status = statusOf(node);
      expect(status.interface).toBe(expectedName(node));
      expect(status.nodeIp).toBe(node.nodeIp);
      expect(status.publicKey).toBe(node.publicKey);
      expect(status.peerCount).toBe(2);
      for (const peer of status.peers) expect(peer.latestHandshake).toBeGreaterThan(0);
    }
  });

  it('the CLI adds and removes a peer', () => {
    const node = mesh.nodes[0]!;
    const added = cli(node, 'add-peer', '--public-key', FAKE_KEY, '--endpoint', '192.0.2.9:51820', '--allowed-ips', '10.200.60.0/26,10.200.61.0/26', '--keepalive', '25');
    expect(added.status, added.stderr).toBe(0);
    const peer = statusOf(node).peers.find((p) => p.publicKey === FAKE_KEY);
    expect(peer).toMatchObject({ endpoint: '192.0.2.9:51820', allowedIps: ['10.200.60.0/26', '10.200.61.0/26'] });
    const bad = cli(node, 'add-peer', '--public-key', FAKE_KEY, '--endpoint', 'nowhere', '--allowed-ips', '10.200.60.0/26');
    expect(bad.status).toBe(1);
    expect(bad.stderr).toMatch(/invalid peer endpoint nowhere/);
    const removed = cli(node, 'remove-peer', '--public-key', FAKE_KEY);
    expect(removed.status, removed.stderr).toBe(0);
    expect(statusOf(node).peerCount).toBe(2);
  });

  it('AddAllowedIp / RemoveAllowedIp change what wg(8) shows', async () => {
    const node = mesh.nodes[0]!;
    const peer = mesh.nodes[1]!;
    const allowed = (): string => execIn(node.namespace, 'wg', ['show', expectedName(node), 'allowed-ips']);
    expect(await request(node, { type: 'AddAllowedIp', pubkey: peer.publicKey, cidr: '10.99.0.0/24', scope: 'global' })).toEqual({ type: 'Ok' });
    expect(allowed()).toMatch(new RegExp(`${peer.publicKey.replace(/[+/]/g, '\\$&')}\\t.*10\\.99\\.0\\.0/24`));
    expect(await request(node, { type: 'RemoveAllowedIp', pubkey: peer.publicKey, cidr: '10.99.0.0/24', scope: 'global' })).toEqual({ type: 'Ok' });
    expect(allowed()).not.toContain('10.99.0.0/24');
    expect(allowed()).toContain(peer.sliceCidr);
    expect(await request(node, { type: 'AddAllowedIp', pubkey: FAKE_KEY, cidr: '10.98.0.0/24', scope: 'global' })).toMatchObject({ type: 'Err', message: expect.stringContaining('unknown peer') });
  });

  it('status --watch redraws the table until interrupted', async () => {
    const node = mesh.nodes[0]!;
    const watcher = startIn(null, TSWG_BIN, ['node', 'status', '--watch', '0.3', '--control', node.controlPath], { name: 'tswg node status --watch' });
    const drawn = new RegExp(`interface:\\s+${expectedName(node)}`, 'g');
    const draws = (): number => watcher.output().match(drawn)?.length ?? 0;
    // A second draw proves the redraw; the deadline only matters on failure (a loaded machine starts Node slowly).
    await waitUntil(() => draws() >= 2 || !watcher.running(), 'two status tables', 30_000);
    expect(watcher.running(), watcher.output()).toBe(true);
    watcher.child.kill('SIGINT');
    const exit = await watcher.waitForExit(30_000);
    expect(exit.signal, watcher.output()).toBe('SIGINT');
    expect(draws(), watcher.output()).toBeGreaterThanOrEqual(2);
  });

  it('AllocateIp hands out the slice from base + 2', async () => {
    expect(await request(mesh.nodes[2]!, { type: 'AllocateIp', service: 'web', joinGlobal: true })).toEqual({ type: 'Ip', ip: '10.200.3.2' });
  });

  it('1,000 malformed lines leave the daemon serving', async () => {
    const node = mesh.nodes[2]!;
    const client = await ControlClient.connect(node.controlPath);
    const answers = await Promise.all(Array.from({ length: 1000 }, (_, i) => client.requestLine(MALFORMED_CASES[i % MALFORMED_CASES.length]!.line)));
    expect(answers.every((a) => a.type === 'Err')).toBe(true);
    expect((await client.request({ type: 'Status' })).type).toBe('Status');
    client.close();
    expect(node.process!.running()).toBe(true);
    expect(statusOf(node).peerCount).toBe(2);
  });

  it('a second node on a live control socket is refused', async () => {
    const node = mesh.nodes[1]!;
    const second = startIn(node.namespace, TSWG_BIN, ['node', '--data-dir', node.dataDir, '--control', node.controlPath], { name: 'second tswg node' });
    const exit = await second.waitForExit(15_000);
    expect(exit.code).toBe(1);
    expect(second.output()).toContain(`another tswg node is already listening on ${node.controlPath}`);
    expect(statusOf(node).interface).toBe(expectedName(node));
  });

  it('Shutdown over the socket exits 0 and removes the socket and the interface', async () => {
    const node = mesh.nodes[2]!;
    expect(await request(node, { type: 'Shutdown' })).toEqual({ type: 'Ok' });
    const exit = await node.process!.waitForExit(10_000);
    expect(exit.code, node.process!.output()).toBe(0);
    expect(existsSync(node.controlPath)).toBe(false);
    expect(ip(node.namespace, 'link', 'show')).not.toContain(expectedName(node));
    const missing = cli(node, 'status');
    expect(missing.status).toBe(1);
    expect(missing.stderr).toContain(`no tswg node is listening on ${node.controlPath}`);
  });
});
