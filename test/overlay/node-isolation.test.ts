/**
 * Isolation networks across nodes: two `tswg node` daemons in namespaces,
 * containers of one service on each, red on node A, red and blue on node B.
 * Each node learns what the other hosts through SetRemoteIsolation; red
 * reaches red across nodes and never blue, and either node alone fences the
 * pair (the sender drops on the way out, the receiver on the way in). A
 * detached member leaves the sets once the update is sent, the list survives
 * a restart, and RemovePeer forgets that node's members.
 *
 * Run for nftables and iptables-nft. Needs root and a built dist/; fails, never skips.
 */
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { execInContainer, pingFromContainer, startContainer } from '../../scripts/lib/containers.js';
import { cleanup, execIn, requireCommands, requireRoot } from '../../scripts/lib/netns.js';
import { TSWG_BIN } from '../../scripts/lib/topology.js';
import { createMesh, pingOverlay, request, startNode, writeConfig, type MeshNode } from '../../scripts/lib/overlay-mesh.js';
import type { Request, Response } from '../../src/overlay/protocol.js';

/** A CLI process start on a loaded 2-core machine. */
const CLI_TIMEOUT_MS = 30_000;

type Answer<T extends Response['type']> = Extract<Response, { type: T }>;

async function ok<T extends Response['type']>(node: MeshNode, req: Request, type: T): Promise<Answer<T>> {
  const answer = await request(node, req);
  expect(answer, JSON.stringify(req)).toMatchObject({ type });
  return answer as Answer<T>;
}

function attachRequest(pid: number, isolationNetwork: string): Request {
  return { type: 'AttachContainer', handle: { linuxPid: pid }, service: 'web', joinGlobal: false, dnsServer: null, dnsDomain: null, ephemeral: false, isolationNetwork };
}

function pingFails(pid: number, target: string): void {
  expect(() => execInContainer(pid, 'ping', ['-c', '2', '-W', '1', '-n', target], { timeoutMs: 6000 }), `ping ${target} must fail`).toThrow();
}

/** The node's routed isolation rules as its backend holds them. */
function isolationRules(node: MeshNode, backend: string): string {
  return backend === 'nftables' ? execIn(node.namespace, 'nft', ['list', 'table', 'inet', 'tswg']) : execIn(node.namespace, `${backend}-save`, ['-t', 'filter']);
}

/** Whether `ip` is one of the fenced addresses in `rules` (a set element or an iptables -s/-d match). */
function fences(rules: string, ip: string): boolean {
  return new RegExp(`[\\s{,]${ip.replace(/\./g, '\\.')}(/32)?[\\s,}]`).test(rules);
}

beforeAll(() => {
  requireRoot('the cross-node isolation tests');
  requireCommands('ip', 'ping', 'nft', 'iptables-nft', 'unshare', 'nsenter');
});

afterAll(() => {
  cleanup();
});

describe.each(['nftables', 'iptables-nft'] as const)('%s: isolation networks across two nodes', (backend) => {
  let a: MeshNode;
  let b: MeshNode;
  let red1: { pid: number; ip: string };
  let red2: { pid: number; ip: string };
  let blue2: { pid: number; ip: string };
  const env = { TSWG_FIREWALL: backend };

  beforeAll(async () => {
    const mesh = createMesh(2);
    [a, b] = mesh.nodes as [MeshNode, MeshNode];
    for (const node of mesh.nodes) writeConfig(mesh, node);
    await Promise.all(mesh.nodes.map((node) => startNode(node, { config: true, env })));
    await pingOverlay(a, b.nodeIp);
    const subnets = new Map<MeshNode, string>();
    for (const node of mesh.nodes) subnets.set(node, (await ok(node, { type: 'SetupServiceOverlay', service: 'web', mode: 'auto' }, 'ServiceOverlay')).subnet);
    await ok(a, { type: 'AddAllowedIp', pubkey: b.publicKey, cidr: subnets.get(b)!, scope: 'global' }, 'Ok');
    await ok(b, { type: 'AddAllowedIp', pubkey: a.publicKey, cidr: subnets.get(a)!, scope: 'global' }, 'Ok');
    const member = async (node: MeshNode, network: string): Promise<{ pid: number; ip: string }> => {
      const proc = await startContainer(node.namespace, `${network} on ${node.instanceId}`);
      return { pid: proc.pid, ip: (await ok(node, attachRequest(proc.pid, network), 'Attached')).ip };
    };
    red1 = await member(a, 'red');
    red2 = await member(b, 'red');
    blue2 = await member(b, 'blue');
  }, 90_000);

  it('before anyone is told, neither node knows the other\'s members: red on A reaches blue on B', async () => {
    expect((await ok(a, { type: 'Status' }, 'Status')).firewall?.backend).toBe(backend);
    await pingFromContainer(red1.pid, blue2.ip);
    expect(fences(isolationRules(a, backend), blue2.ip)).toBe(false);
  });

  it('told on both nodes: red on A reaches red on B, never blue on B, either way', async () => {
    await ok(a, { type: 'SetRemoteIsolation', node: b.publicKey, networks: { red: [red2.ip], blue: [blue2.ip] } }, 'Ok');
    await ok(b, { type: 'SetRemoteIsolation', node: a.publicKey, networks: { red: [red1.ip] } }, 'Ok');
    expect(fences(isolationRules(a, backend), blue2.ip)).toBe(true);
    expect(fences(isolationRules(b, backend), red1.ip)).toBe(true);
    await pingFromContainer(red1.pid, red2.ip);
    await pingFromContainer(red2.pid, red1.ip);
    pingFails(red1.pid, blue2.ip);
    pingFails(blue2.pid, red1.ip);
  });

  it('each node alone fences the pair: the sender on the way out, the receiver on the way in', async () => {
    // Only B knows: A forwards red1 → blue2, B drops it on the way in (and blue2's answers on the way out).
    await ok(a, { type: 'SetRemoteIsolation', node: b.publicKey, networks: {} }, 'Ok');
    expect(fences(isolationRules(a, backend), blue2.ip)).toBe(false);
    pingFails(red1.pid, blue2.ip);
    pingFails(blue2.pid, red1.ip);
    // Only A knows.
    await ok(a, { type: 'SetRemoteIsolation', node: b.publicKey, networks: { red: [red2.ip], blue: [blue2.ip] } }, 'Ok');
    await ok(b, { type: 'SetRemoteIsolation', node: a.publicKey, networks: {} }, 'Ok');
    pingFails(red1.pid, blue2.ip);
    pingFails(blue2.pid, red1.ip);
    await ok(b, { type: 'SetRemoteIsolation', node: a.publicKey, networks: { red: [red1.ip] } }, 'Ok');
    await pingFromContainer(red1.pid, red2.ip);
  });

  it('the list survives a restart of the node', async () => {
    const saved = JSON.parse(readFileSync(join(a.dataDir, 'remote-isolation.json'), 'utf8')) as { nodes: Record<string, Record<string, string[]>> };
    expect(saved.nodes[b.publicKey]).toEqual({ blue: [blue2.ip], red: [red2.ip] });
    await ok(a, { type: 'Shutdown' }, 'Ok');
    await a.process!.waitForExit(10_000);
    await startNode(a, { config: true, env });
    // Nobody has told the new process anything: the rules come from the file.
    expect(fences(isolationRules(a, backend), blue2.ip)).toBe(true);
    // Shutdown detached red1 (every link goes); it comes back with the same address.
    expect((await ok(a, attachRequest(red1.pid, 'red'), 'Attached')).ip).toBe(red1.ip);
    await pingFromContainer(red1.pid, red2.ip);
    pingFails(red1.pid, blue2.ip);
  });

  it('a member that detaches on B is no longer fenced on A once the update is sent; RemovePeer forgets B\'s members', async () => {
    await ok(b, { type: 'DetachContainer', handle: { linuxPid: blue2.pid } }, 'Ok');
    expect(fences(isolationRules(b, backend), blue2.ip)).toBe(false);
    expect(fences(isolationRules(a, backend), blue2.ip)).toBe(true);
    // The update through the command line this time.
    expect(execIn(a.namespace, TSWG_BIN, ['node', 'remote-isolation', '--control', a.controlPath, '--public-key', b.publicKey, '--networks', `red=${red2.ip}`], { timeoutMs: CLI_TIMEOUT_MS }).trim()).toBe('ok');
    const rules = isolationRules(a, backend);
    expect(fences(rules, blue2.ip)).toBe(false);
    expect(fences(rules, red2.ip)).toBe(true);
    await ok(a, { type: 'RemovePeer', pubkey: b.publicKey, scope: 'global' }, 'Ok');
    expect(fences(isolationRules(a, backend), red2.ip)).toBe(false);
    expect(JSON.parse(readFileSync(join(a.dataDir, 'remote-isolation.json'), 'utf8'))).toEqual({ version: 1, nodes: {} });
  });

  it('bad input is Err naming it, and the node keeps running', async () => {
    const cli = (networks: string): unknown => execIn(a.namespace, TSWG_BIN, ['node', 'remote-isolation', '--control', a.controlPath, '--public-key', b.publicKey, '--networks', networks], { timeoutMs: CLI_TIMEOUT_MS });
    expect(() => cli('red')).toThrow(/expected NAME=IP/);
    expect(() => cli('red=10.0.0.300')).toThrow(/SetRemoteIsolation\.networks\.red\[0\]: expected an IP address/);
    const own = await request(a, { type: 'SetRemoteIsolation', node: a.publicKey, networks: { red: ['10.200.9.9'] } });
    expect(own).toMatchObject({ type: 'Err', message: expect.stringContaining('own public key') });
    await ok(a, { type: 'Status' }, 'Status');
    for (const node of [a, b]) {
      await ok(node, { type: 'Shutdown' }, 'Ok');
      await node.process!.waitForExit(10_000);
    }
  });
});
