/**
 * Revert exactness when iptables-legacy is the host's firewall: a host whose
 * legacy filter table drops forwarded traffic, no legacy nat table, nothing
 * in nftables. A node that never had a container leaves iptables-legacy-save,
 * iptables-nft-save and `nft list ruleset` exactly as they were. Once a
 * container needs masquerading the node's rules go into the legacy nat
 * table, and that table outlives them: iptables-legacy instantiates a table
 * on first use and the kernel has no way to drop it again, so after Shutdown
 * the one difference is an empty nat table with ACCEPT policies.
 *
 * Needs root and a built dist/; fails, never skips.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startContainer } from '../../scripts/lib/containers.js';
import { firewallRules, iptablesRules, nftRules } from '../../scripts/lib/firewall-dump.js';
import { cleanup, createNamespace, execIn, requireCommands, requireRoot } from '../../scripts/lib/netns.js';
import { prepareNode, request, startNode, uniqueDeployment, writeConfig, type MeshNode } from '../../scripts/lib/overlay-mesh.js';
import { parseSave } from '../../src/overlay/firewall/iptables.js';
import type { Request, Response } from '../../src/overlay/protocol.js';

type Answer<T extends Response['type']> = Extract<Response, { type: T }>;

let namespace: string;
let node: MeshNode;
let before: string;
let beforeParts: { iptablesNft: string; legacy: string; nft: string };

async function ok<T extends Response['type']>(req: Request, type: T): Promise<Answer<T>> {
  const answer = await request(node, req);
  expect(answer, JSON.stringify(req)).toMatchObject({ type });
  return answer as Answer<T>;
}

async function shutdown(): Promise<void> {
  await ok({ type: 'Shutdown' }, 'Ok');
  expect((await node.process!.waitForExit(10_000)).code).toBe(0);
}

beforeAll(() => {
  requireRoot('the iptables-legacy revert tests');
  requireCommands('ip', 'nft', 'iptables-nft', 'iptables-legacy', 'unshare', 'nsenter');
  namespace = createNamespace();
  node = prepareNode(namespace, 7, '192.168.80.10');
  writeConfig({ deployment: uniqueDeployment(), lan: namespace, nodes: [node] }, node);
  // The host's own firewall, in legacy only: the node picks iptables-legacy by itself.
  execIn(namespace, 'iptables-legacy', ['-w', '-P', 'FORWARD', 'DROP']);
  before = firewallRules(namespace);
  beforeParts = { iptablesNft: iptablesRules(namespace, 'nft'), legacy: iptablesRules(namespace, 'legacy'), nft: nftRules(namespace) };
  expect(beforeParts.legacy).not.toContain('*nat');
});

afterAll(() => {
  cleanup();
});

describe('iptables-legacy as the host firewall', () => {
  it('without containers: nothing touches the nat table, and Shutdown leaves every tool exactly as before', async () => {
    await startNode(node, { config: true });
    expect((await ok({ type: 'Status' }, 'Status')).firewall?.backend).toBe('iptables-legacy');
    const running = iptablesRules(namespace, 'legacy');
    expect(running).toContain('-A FORWARD -m comment --comment "tswg: overlay rules" -j TSWG-FORWARD');
    expect(running).not.toContain('*nat');
    await shutdown();
    expect(firewallRules(namespace)).toBe(before);
  });

  it('with a container: masquerade goes into the nat table and leaves it on detach; after Shutdown only the empty nat table differs', async () => {
    await startNode(node, { config: true });
    await ok({ type: 'SetupServiceOverlay', service: 'web', mode: 'auto' }, 'ServiceOverlay');
    const container = await startContainer(namespace, 'web');
    const handle = { linuxPid: container.pid };
    await ok({ type: 'AttachContainer', handle, service: 'web', joinGlobal: false, dnsServer: null, dnsDomain: null, ephemeral: false, isolationNetwork: null }, 'Attached');
    expect(iptablesRules(namespace, 'legacy')).toContain('-A POSTROUTING -m comment --comment "tswg: overlay rules" -j TSWG-POSTROUTING');
    await ok({ type: 'DetachContainer', handle }, 'Ok');
    expect(iptablesRules(namespace, 'legacy')).not.toContain('TSWG-POSTROUTING');
    await shutdown();

    expect(iptablesRules(namespace, 'nft')).toBe(beforeParts.iptablesNft);
    expect(nftRules(namespace)).toBe(beforeParts.nft);
    const beforeLegacy = parseSave(beforeParts.legacy);
    const afterLegacy = parseSave(iptablesRules(namespace, 'legacy'));
    expect([...afterLegacy.keys()].sort()).toEqual([...beforeLegacy.keys(), 'nat'].sort());
    for (const [name, table] of beforeLegacy) expect(afterLegacy.get(name)).toEqual(table);
    // The one difference: the kernel keeps the nat table our masquerade instantiated, empty, every policy ACCEPT.
    const nat = afterLegacy.get('nat')!;
    expect([...nat.chains.keys()].sort()).toEqual(['INPUT', 'OUTPUT', 'POSTROUTING', 'PREROUTING']);
    for (const chain of nat.chains.values()) expect(chain).toEqual({ policy: 'ACCEPT', rules: [] });
  });
});
