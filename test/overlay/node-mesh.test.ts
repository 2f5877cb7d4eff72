/**
 * Three `tswg node` daemons, each in its own namespace on one bridged LAN,
 * started only with --config files (no orchestrator): they form a full mesh
 * and every ordered pair pings over the overlay IPs. Then: `tswg node status
 * --json` shows two peers with handshakes, `wg show` reads the in-process
 * UAPI socket, the metrics endpoint serves the prometheus_wireguard_exporter
 * names with their labels, and a restarted node keeps its key, interface
 * name and node IP (and the mesh works again).
 *
 * Needs root and a built dist/ (`npm run build`); fails, never skips.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { cleanup, execIn, ip, requireCommands, requireRoot } from '../../scripts/lib/netns.js';
import { TSWG_BIN } from '../../scripts/lib/topology.js';
import { runCommand } from '../helpers/daemon-process.js';
import { createMesh, pingOverlay, startNode, writeConfig, type Mesh, type MeshNode } from '../../scripts/lib/overlay-mesh.js';

const METRICS_ADDRESS = '127.0.0.1:9586';
let mesh: Mesh;

interface StatusJson {
  type: string;
  interface: string | null;
  nodeIp: string | null;
  publicKey: string | null;
  peerCount: number;
  peers: Array<{ publicKey: string; endpoint: string | null; allowedIps: string[]; latestHandshake: number; rxBytes: number; txBytes: number }>;
}

function statusJson(node: MeshNode): StatusJson {
  const result = runCommand(null, TSWG_BIN, ['node', 'status', '--json', '--control', node.controlPath]);
  expect(result.status, result.stderr).toBe(0);
  return JSON.parse(result.stdout) as StatusJson;
}

async function pingEveryPair(): Promise<void> {
  for (const from of mesh.nodes) {
    for (const to of mesh.nodes) if (from !== to) await pingOverlay(from, to.nodeIp);
  }
}

beforeAll(async () => {
  requireRoot('the overlay node mesh tests');
  requireCommands('ip', 'ping', 'wg', 'curl', 'sysctl');
  mesh = createMesh(3);
  for (const node of mesh.nodes) writeConfig(mesh, node);
  await startNode(mesh.nodes[0]!, { config: true, metrics: METRICS_ADDRESS });
  await Promise.all(mesh.nodes.slice(1).map((node) => startNode(node, { config: true })));
});

afterAll(() => {
  cleanup();
});

describe('three nodes from config files', () => {
  it('form a full mesh: every ordered pair pings over the overlay IPs', async () => {
    await pingEveryPair();
  });

  it('tswg node status --json shows the interface, node IP, key and two peers with handshakes', () => {
    for (const node of mesh.nodes) {
      const status = statusJson(node);
      expect(status.type).toBe('Status');
      expect(status.interface).toBe(`zl-${mesh.deployment}-${node.instanceId}-g`);
      expect(status.nodeIp).toBe(node.nodeIp);
      expect(status.publicKey).toBe(node.publicKey);
      expect(status.peerCount).toBe(2);
      const others = mesh.nodes.filter((other) => other !== node);
      expect(status.peers.map((p) => p.publicKey).sort()).toEqual(others.map((o) => o.publicKey).sort());
      for (const peer of status.peers) {
        const other = others.find((o) => o.publicKey === peer.publicKey)!;
        expect(peer.latestHandshake, `handshake ${node.instanceId} ↔ ${other.instanceId}`).toBeGreaterThan(0);
        expect(peer.rxBytes).toBeGreaterThan(0);
        expect(peer.txBytes).toBeGreaterThan(0);
        expect(peer.allowedIps).toEqual([other.sliceCidr]);
        expect(peer.endpoint).toBe(`${other.lanAddress}:51820`);
      }
    }
  });

  it('the human tables list the peers, and wg(8) reads the same device', () => {
    const node = mesh.nodes[0]!;
    const table = runCommand(null, TSWG_BIN, ['node', 'peers', '--control', node.controlPath]);
    expect(table.status, table.stderr).toBe(0);
    for (const other of mesh.nodes.slice(1)) expect(table.stdout).toContain(other.publicKey);
    const status = statusJson(node);
    const wg = execIn(node.namespace, 'wg', ['show', status.interface!, 'dump']);
    expect(wg).toContain(mesh.nodes[1]!.publicKey);
    expect(wg.split('\n')[0]).toContain('\t51820\t');
    // Address, MTU 1420, up, and the cluster route through the interface.
    expect(ip(node.namespace, '-4', 'addr', 'show', 'dev', status.interface!)).toContain(`inet ${node.nodeIp}/16`);
    const link = ip(node.namespace, 'link', 'show', 'dev', status.interface!);
    expect(link).toContain('mtu 1420');
    expect(link).toMatch(/<[^>]*\bUP\b[^>]*>/);
    expect(ip(node.namespace, 'route', 'show', '10.200.0.0/16')).toContain(`dev ${status.interface}`);
  });

  it('serves Prometheus metrics with the exporter names and labels', () => {
    const node = mesh.nodes[0]!;
    const interfaceName = statusJson(node).interface!;
    const text = execIn(node.namespace, 'curl', ['-sf', `http://${METRICS_ADDRESS}/metrics`]);
    for (const other of mesh.nodes.slice(1)) {
      const labels = `interface="${interfaceName}",public_key="${other.publicKey}",allowed_ips="${other.sliceCidr}"`;
      expect(text).toMatch(new RegExp(`wireguard_sent_bytes_total\\{${escape(labels)}\\} [1-9]\\d*`));
      expect(text).toMatch(new RegExp(`wireguard_received_bytes_total\\{${escape(labels)}\\} [1-9]\\d*`));
      expect(text).toMatch(new RegExp(`wireguard_latest_handshake_seconds\\{${escape(labels)}\\} [1-9]\\d*`));
    }
    expect(text).toContain('# TYPE wireguard_sent_bytes_total counter');
    const notFound = runCommand(node.namespace, 'curl', ['-s', '-o', '/dev/null', '-w', '%{http_code}', `http://${METRICS_ADDRESS}/other`]);
    expect(notFound.stdout).toBe('404');
  });

  it('a restarted node keeps its key, interface name and node IP, and the mesh works again', async () => {
    const node = mesh.nodes[1]!;
    const before = statusJson(node);
    const exit = await node.process!.stop(5000);
    expect(exit.code, node.process!.output()).toBe(0);
    expect(ip(node.namespace, 'link', 'show')).not.toContain(before.interface!);
    await startNode(node, { config: true });
    const after = statusJson(node);
    expect(after.publicKey).toBe(before.publicKey);
    expect(after.interface).toBe(before.interface);
    expect(after.nodeIp).toBe(before.nodeIp);
    await pingOverlay(node, mesh.nodes[0]!.nodeIp);
    await pingOverlay(mesh.nodes[2]!, node.nodeIp);
  });
});

function escape(text: string): string {
  return text.replace(/[.*+?^${}()|[\]\\/]/g, '\\$&');
}
