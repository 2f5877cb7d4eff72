/**
 * A host with neither iptables nor nft: node A runs in a mount namespace of
 * its own where every iptables*, ip6tables* and nft binary (in /usr/sbin,
 * /sbin and on PATH) is covered by an empty, non-executable file. It starts,
 * logs once which features are off, Status says so, containers attach on it
 * and reach a container on node B (a normal host) over the overlay, and
 * Shutdown leaves its namespace's links, addresses, routes, sysctls and
 * firewall rules as they were.
 *
 * Needs root and a built dist/; fails, never skips.
 */
import { realpathSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { pingFromContainer, startContainer } from '../../scripts/lib/containers.js';
import { firewallRules } from '../../scripts/lib/firewall-dump.js';
import { cleanup, createTempDir, requireCommands, requireRoot, startIn, waitUntil } from '../../scripts/lib/netns.js';
import {
  createMesh,
  networkSnapshot,
  pingOverlay,
  request,
  settledLan,
  startNode,
  writeConfig,
  type MeshNode,
  type NetworkSnapshot,
} from '../../scripts/lib/overlay-mesh.js';
import { TSWG_BIN } from '../../scripts/lib/topology.js';
import type { Request, Response } from '../../src/overlay/protocol.js';

type Answer<T extends Response['type']> = Extract<Response, { type: T }>;

const FIREWALL_TOOLS = [
  'nft',
  ...['iptables', 'ip6tables'].flatMap((base) => [base, `${base}-save`, `${base}-restore`, ...['nft', 'legacy'].flatMap((v) => [`${base}-${v}`, `${base}-${v}-save`, `${base}-${v}-restore`])]),
];
const OFF_LINE = 'firewall off: neither nft nor iptables is installed';

let a: MeshNode;
let b: MeshNode;
let rulesBefore: string;
let networkBefore: NetworkSnapshot;

async function ok<T extends Response['type']>(node: MeshNode, req: Request, type: T): Promise<Answer<T>> {
  const answer = await request(node, req);
  expect(answer, JSON.stringify(req)).toMatchObject({ type });
  return answer as Answer<T>;
}

function attachRequest(pid: number, isolationNetwork: string | null = null): Request {
  return { type: 'AttachContainer', handle: { linuxPid: pid }, service: 'web', joinGlobal: false, dnsServer: null, dnsDomain: null, ephemeral: false, isolationNetwork };
}

/** Every file the tool names resolve to, wherever the node's lookup would find them. */
function toolFiles(): string[] {
  const dirs = [...(process.env.PATH ?? '').split(':'), '/usr/sbin', '/sbin', '/usr/bin', '/bin'].filter((d) => d !== '');
  const files = new Set<string>();
  for (const dir of dirs) {
    for (const tool of FIREWALL_TOOLS) {
      try {
        files.add(realpathSync(join(dir, tool)));
      } catch {
        // Not in this directory.
      }
    }
  }
  return [...files].sort();
}

/** Start `tswg node` for `node` in a private mount namespace where the firewall tools cannot be run. */
async function startWithoutTools(node: MeshNode): Promise<void> {
  const empty = join(createTempDir('tswg-no-tools-'), 'hidden');
  writeFileSync(empty, '', { mode: 0o644 });
  const files = toolFiles();
  expect(files.length).toBeGreaterThan(0);
  const quote = (text: string): string => `'${text.replace(/'/g, `'\\''`)}'`;
  const script = [
    ...files.map((file) => `mount --bind ${quote(empty)} ${quote(file)}`),
    // Proof inside the namespace: nothing of the list can be run any more.
    `for t in ${FIREWALL_TOOLS.join(' ')}; do if command -v "$t" >/dev/null 2>&1 || [ -x "/usr/sbin/$t" ] || [ -x "/sbin/$t" ]; then echo "still runnable: $t"; exit 3; fi; done`,
    `exec ${quote(TSWG_BIN)} node --data-dir ${quote(node.dataDir)} --control ${quote(node.controlPath)} --config ${quote(node.configPath)}`,
  ].join(' && ');
  const proc = startIn(node.namespace, 'unshare', ['--mount', '--propagation', 'private', 'sh', '-c', script], {
    name: `tswg node ${node.instanceId} without firewall tools`,
    env: { ...process.env, LOG_LEVEL: 'verbose', PATH: '/usr/sbin:/usr/bin:/sbin:/bin' },
  });
  node.process = proc;
  await waitUntil(() => proc.output().includes('tswg node: ready') || !proc.running(), `tswg node ${node.instanceId} to be ready`, 20_000, 50);
  if (!proc.running()) throw new Error(`tswg node ${node.instanceId} exited before it was ready:\n${proc.output()}`);
}

beforeAll(async () => {
  requireRoot('the firewall-less host test');
  requireCommands('ip', 'ping', 'unshare', 'nsenter', 'mount', 'nft', 'iptables-nft', 'iptables-legacy');
  const mesh = createMesh(2);
  [a, b] = mesh.nodes as [MeshNode, MeshNode];
  for (const node of mesh.nodes) writeConfig(mesh, node);
  await settledLan(a.namespace);
  rulesBefore = firewallRules(a.namespace);
  networkBefore = networkSnapshot(a.namespace);
  await startWithoutTools(a);
  await startNode(b, { config: true });
  await pingOverlay(a, b.nodeIp);
}, 60_000);

afterAll(() => {
  cleanup();
});

describe('a host with neither iptables nor nft', () => {
  it('the node starts, logs once which features are off, and Status shows it', async () => {
    const status = await ok(a, { type: 'Status' }, 'Status');
    expect(status.firewall).toEqual({
      backend: null,
      reason: 'neither nft nor iptables is installed: no masquerade, isolation or bypass of host firewalls',
      lastReconcile: 0,
      repairs: 0,
    });
    expect(a.process!.output().split(OFF_LINE)).toHaveLength(2);
    // The tools still work outside the node's mount namespace: the test hid them from the node only.
    expect((await ok(b, { type: 'Status' }, 'Status')).firewall?.backend).toBe('nftables');
  });

  it('containers attach on it and reach a container on another node over the overlay', async () => {
    const subnets = new Map<MeshNode, string>();
    for (const node of [a, b]) subnets.set(node, (await ok(node, { type: 'SetupServiceOverlay', service: 'web', mode: 'auto' }, 'ServiceOverlay')).subnet);
    await ok(a, { type: 'AddAllowedIp', pubkey: b.publicKey, cidr: subnets.get(b)!, scope: 'global' }, 'Ok');
    await ok(b, { type: 'AddAllowedIp', pubkey: a.publicKey, cidr: subnets.get(a)!, scope: 'global' }, 'Ok');
    const onA = await startContainer(a.namespace, 'web on a');
    const onB = await startContainer(b.namespace, 'web on b');
    const ipA = (await ok(a, attachRequest(onA.pid), 'Attached')).ip;
    const ipB = (await ok(b, attachRequest(onB.pid), 'Attached')).ip;
    await pingFromContainer(onA.pid, ipB);
    await pingFromContainer(onB.pid, ipA);
    await ok(a, { type: 'DetachContainer', handle: { linuxPid: onA.pid } }, 'Ok');
    // Attach, detach and a NatTick (which reconciles) log nothing more about the firewall.
    await ok(a, { type: 'NatTick' }, 'Ok');
    expect(a.process!.output().split(OFF_LINE)).toHaveLength(2);
    expect(a.process!.output()).not.toMatch(/firewall: (removing|reconcile)/);
  });

  it('Shutdown leaves the kernel as it was', async () => {
    await ok(a, { type: 'Shutdown' }, 'Ok');
    expect((await a.process!.waitForExit(10_000)).code).toBe(0);
    expect(networkSnapshot(a.namespace)).toEqual(networkBefore);
    expect(firewallRules(a.namespace)).toBe(rulesBefore);
    await ok(b, { type: 'Shutdown' }, 'Ok');
    await b.process!.waitForExit(10_000);
  });
});
