/**
 * The node firewall end to end: two `tswg node` daemons in namespaces whose
 * hosts drop forwarded traffic three ways (FORWARD policy DROP in
 * iptables-nft and iptables-legacy, and a foreign nft table whose forward
 * chain drops), containers attached to service overlays, and a third
 * namespace standing for "the internet" behind node A's uplink.
 *
 * Shows: containers still reach each other across nodes, unNAT'd; egress is
 * masqueraded to the uplink address; isolation networks fence red from blue
 * on one bridge and across bridges; foreign rules added later change
 * nothing, reordering and `nft flush ruleset` are repaired within one
 * reconcile period without duplicates; kill -9 + restart removes leftovers
 * first; Shutdown leaves iptables-save / nft list ruleset as before, for
 * each backend; --no-firewall adds nothing; a rule the kernel refuses, at
 * start or in an update, is an error naming it with nothing half-applied.
 *
 * Needs root, ncat and a built dist/ (`npm run build`); fails, never skips.
 */
import { existsSync, mkdirSync, readdirSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { execInContainer, pingFromContainer, startContainer } from '../../scripts/lib/containers.js';
import { firewallRules } from '../../scripts/lib/firewall-dump.js';
import {
  addressAndUp,
  cleanup,
  createNamespace,
  createTempDir,
  createVethPair,
  execIn,
  ip,
  requireCommands,
  requireRoot,
  startIn,
  waitUntil,
  type NamespaceProcess,
} from '../../scripts/lib/netns.js';
import { createMesh, pingOverlay, prepareNode, request, startNode, writeConfig, type Mesh, type MeshNode } from '../../scripts/lib/overlay-mesh.js';
import { TSWG_BIN } from '../../scripts/lib/topology.js';
import type { Request, Response } from '../../src/overlay/protocol.js';

type Answer<T extends Response['type']> = Extract<Response, { type: T }>;

const INTERNET_NODE_SIDE = '203.0.113.1';
const INTERNET_HOST = '203.0.113.2';
/** One reconcile period (10 s) plus slack for a loaded 2-core machine. */
const REPAIR_WITHIN_MS = 16_000;

const FOREIGN_NFT = `table inet hostfw {
  chain forward {
    type filter hook forward priority filter; policy drop;
  }
  chain input {
    type filter hook input priority filter; policy accept;
    tcp dport 22 accept
  }
}
`;

let mesh: Mesh;
let a: MeshNode;
let b: MeshNode;
let internet: string;
let hostRoot: string;
const before = new Map<string, string>();

/** Wait until `node` has finished a firewall reconcile in a later second than `afterSecs`; returns that status. */
async function reconciledAfter(node: MeshNode, afterSecs: number): Promise<Answer<'Status'>> {
  const deadline = Date.now() + 3 * REPAIR_WITHIN_MS; // only matters on failure
  for (;;) {
    const status = await ok(node, { type: 'Status' }, 'Status');
    if (status.firewall!.lastReconcile > afterSecs) return status;
    if (Date.now() > deadline) throw new Error(`no firewall reconcile after ${afterSecs} (last ${status.firewall!.lastReconcile})`);
    await new Promise((resolve) => setTimeout(resolve, 250));
  }
}

async function ok<T extends Response['type']>(node: MeshNode, req: Request, type: T): Promise<Answer<T>> {
  const answer = await request(node, req);
  expect(answer, JSON.stringify(req)).toMatchObject({ type });
  return answer as Answer<T>;
}

function attachRequest(pid: number, service: string, isolationNetwork: string | null = null): Request {
  return { type: 'AttachContainer', handle: { linuxPid: pid }, service, joinGlobal: false, dnsServer: null, dnsDomain: null, ephemeral: false, isolationNetwork };
}

/** A host firewall that drops forwarded traffic in every tool. */
function hostileFirewall(namespace: string): void {
  execIn(namespace, 'iptables-nft', ['-w', '-P', 'FORWARD', 'DROP']);
  execIn(namespace, 'iptables-legacy', ['-w', '-P', 'FORWARD', 'DROP']);
  // Legacy tables, once created, cannot be removed: create nat now so before/after compare what the node can revert.
  execIn(namespace, 'iptables-legacy', ['-w', '-t', 'nat', '-S']);
  execIn(namespace, 'nft', ['-f', '-'], { input: FOREIGN_NFT });
}

/** Every rule of the namespace in both iptables variants and nft, without counters or timestamps. */
const rulesOf = firewallRules;

function pingFails(pid: number, target: string): void {
  expect(() => execInContainer(pid, 'ping', ['-c', '2', '-W', '1', '-n', target], { timeoutMs: 6000 }), `ping ${target} must fail`).toThrow();
}

/** A TCP server in `pid`'s namespace that answers each connection with the address it came from. */
function whoAmIServer(pid: number | null, namespace: string | null, port: number): NamespaceProcess {
  const argv = ['ncat', '-l', '-k', '-p', String(port), '--sh-exec', 'echo $NCAT_REMOTE_ADDR'];
  return pid === null ? startIn(namespace, argv[0]!, argv.slice(1), { name: `who-am-i :${port}` }) : startIn(null, 'nsenter', ['-t', String(pid), '-n', ...argv], { name: `who-am-i :${port}` });
}

/** The source address `target:port`'s who-am-i server sees for a connection from container `pid`. */
async function sourceSeenBy(pid: number, target: string, port: number): Promise<string> {
  let seen = '';
  let last = '';
  await waitUntil(
    () => {
      try {
        seen = execInContainer(pid, 'ncat', ['-w', '3', '--recv-only', target, String(port)], { timeoutMs: 6000 }).trim();
        return seen !== '';
      } catch (error) {
        last = (error as Error).message;
        return false;
      }
    },
    `a connection from container ${pid} to ${target}:${port} (last: ${last})`,
    15_000,
    300,
  );
  return seen;
}

/** "The internet": a namespace behind a node's second uplink (up0), the node's default route, with no route back to the cluster. */
function internetBehind(nodeNamespace: string): string {
  const namespace = createNamespace();
  const veth = createVethPair(nodeNamespace, { hostNamespace: namespace });
  ip(nodeNamespace, 'link', 'set', 'dev', veth.peer.name, 'name', 'up0');
  addressAndUp(nodeNamespace, 'up0', `${INTERNET_NODE_SIDE}/24`);
  addressAndUp(namespace, veth.host.name, `${INTERNET_HOST}/24`);
  ip(nodeNamespace, 'route', 'add', 'default', 'via', INTERNET_HOST);
  return namespace;
}

beforeAll(async () => {
  requireRoot('the firewall tests');
  requireCommands('ip', 'ping', 'ncat', 'nft', 'iptables-nft', 'iptables-legacy', 'unshare', 'nsenter');
  mesh = createMesh(2);
  [a, b] = mesh.nodes as [MeshNode, MeshNode];
  internet = internetBehind(a.namespace);
  hostRoot = createTempDir('tswg-fw-root-');
  mkdirSync(join(hostRoot, 'etc/systemd/network'), { recursive: true });
  mkdirSync(join(hostRoot, 'etc/NetworkManager/conf.d'), { recursive: true });
  for (const node of mesh.nodes) {
    hostileFirewall(node.namespace);
    before.set(node.namespace, rulesOf(node.namespace));
    writeConfig(mesh, node);
  }
  await Promise.all(mesh.nodes.map((node) => startNode(node, { config: true, env: { TSWG_HOST_CONFIG_ROOT: hostRoot } })));
  await pingOverlay(a, b.nodeIp);
});

afterAll(() => {
  cleanup();
});

describe('node firewall with hostile host firewalls on both nodes', () => {
  const subnets = new Map<MeshNode, string>();
  const web = new Map<MeshNode, { proc: NamespaceProcess; ip: string }>();

  it('status names the backend; rp_filter is loose on zl-*; networkd and NetworkManager drop-ins are written', async () => {
    const status = await ok(a, { type: 'Status' }, 'Status');
    expect(status.firewall).toMatchObject({ backend: 'nftables', repairs: 0 });
    expect(execIn(a.namespace, 'cat', [`/proc/sys/net/ipv4/conf/${status.interface}/rp_filter`]).trim()).toBe('2');
    expect(readdirSync(join(hostRoot, 'etc/systemd/network'))).toEqual(['00-tswg-unmanaged.network']);
    expect(readdirSync(join(hostRoot, 'etc/NetworkManager/conf.d'))).toEqual(['tswg-unmanaged.conf']);
    // One jump at position 1 in each iptables variant's FORWARD.
    for (const tool of ['iptables-nft', 'iptables-legacy']) {
      const rules = execIn(a.namespace, tool, ['-w', '-S', 'FORWARD']).trim().split('\n');
      expect(rules[0]).toBe('-P FORWARD DROP');
      expect(rules[1]).toMatch(/-j TSWG-FORWARD$/);
      expect(rules.filter((r) => r.includes('TSWG-FORWARD'))).toHaveLength(1);
    }
    expect(execIn(a.namespace, 'nft', ['list', 'chain', 'inet', 'hostfw', 'forward'])).toContain('iifname "zl-*" accept comment "tswg: accept traffic from zl-*"');
  });

  it('containers on two nodes reach each other, and see each other\'s own addresses (no NAT on the overlay)', async () => {
    for (const node of mesh.nodes) subnets.set(node, (await ok(node, { type: 'SetupServiceOverlay', service: 'web', mode: 'auto' }, 'ServiceOverlay')).subnet);
    for (const [node, subnet] of subnets) {
      for (const other of mesh.nodes) if (other !== node) await ok(other, { type: 'AddAllowedIp', pubkey: node.publicKey, cidr: subnet, scope: 'global' }, 'Ok');
    }
    for (const node of mesh.nodes) {
      const proc = await startContainer(node.namespace, `web on ${node.instanceId}`);
      web.set(node, { proc, ip: (await ok(node, attachRequest(proc.pid, 'web'), 'Attached')).ip });
    }
    await pingFromContainer(web.get(a)!.proc.pid, web.get(b)!.ip);
    await pingFromContainer(web.get(b)!.proc.pid, web.get(a)!.ip);
    whoAmIServer(web.get(b)!.proc.pid, null, 9000);
    expect(await sourceSeenBy(web.get(a)!.proc.pid, web.get(b)!.ip, 9000)).toBe(web.get(a)!.ip);
  });

  it('egress: traffic leaving the cluster is masqueraded to the uplink address', async () => {
    whoAmIServer(null, internet, 9001);
    expect(await sourceSeenBy(web.get(a)!.proc.pid, INTERNET_HOST, 9001)).toBe(INTERNET_NODE_SIDE);
  });

  it('with INPUT policy DROP in both iptables variants and rp_filter=1 everywhere: 10 MB container to container, and the node resolver answers dig from a container', async () => {
    const namespaces = mesh.nodes.map((node) => node.namespace);
    const rpFilter = 'net.ipv4.conf.all.rp_filter';
    const rpBefore = new Map(namespaces.map((ns) => [ns, execIn(ns, 'sysctl', ['-n', rpFilter]).trim()]));
    try {
      for (const ns of namespaces) {
        for (const tool of ['iptables-nft', 'iptables-legacy']) execIn(ns, tool, ['-w', '-P', 'INPUT', 'DROP']);
        execIn(ns, 'sysctl', ['-qw', `${rpFilter}=1`]);
      }
      const bytes = 10 * 1024 * 1024;
      const from = web.get(a)!;
      const to = web.get(b)!;
      const sink = startIn(null, 'nsenter', ['-t', String(to.proc.pid), '-n', 'sh', '-c', 'ncat -l -p 9100 --recv-only | wc -c'], { name: 'tcp sink' });
      await waitUntil(() => execInContainer(to.proc.pid, 'ss', ['-Hltn', 'sport = :9100']).trim() !== '', 'the TCP sink to listen', 5000, 50);
      execInContainer(from.proc.pid, 'sh', ['-c', `head -c ${bytes} /dev/zero | ncat -w 5 --send-only ${to.ip} 9100`], { timeoutMs: 60_000 });
      await sink.waitForExit(30_000);
      expect(sink.output().trim()).toBe(String(bytes));

      await ok(a, { type: 'RegisterDns', name: 'db', ip: '10.200.9.9' }, 'Ok');
      const answer = execInContainer(from.proc.pid, 'dig', ['+short', '+time=2', '+tries=3', `@${a.nodeIp}`, `db.${mesh.deployment}.internal`, 'A'], { timeoutMs: 15_000 });
      expect(answer.trim()).toBe('10.200.9.9');
      await ok(a, { type: 'UnregisterDns', name: 'db' }, 'Ok');
    } finally {
      for (const ns of namespaces) {
        for (const tool of ['iptables-nft', 'iptables-legacy']) execIn(ns, tool, ['-w', '-P', 'INPUT', 'ACCEPT']);
        execIn(ns, 'sysctl', ['-qw', `${rpFilter}=${rpBefore.get(ns)!}`]);
      }
    }
  });

  it('isolation networks: red and blue never meet, on one bridge or across bridges; each reaches its own, the node and the outside', async () => {
    await ok(a, { type: 'SetupServiceOverlay', service: 'iso', mode: 'auto' }, 'ServiceOverlay');
    await ok(a, { type: 'SetupServiceOverlay', service: 'iso2', mode: 'auto' }, 'ServiceOverlay');
    const start = async (service: string, network: string): Promise<{ pid: number; ip: string }> => {
      const proc = await startContainer(a.namespace, `${network} on ${service}`);
      return { pid: proc.pid, ip: (await ok(a, attachRequest(proc.pid, service, network), 'Attached')).ip };
    };
    const red1 = await start('iso', 'red');
    const red2 = await start('iso', 'red');
    const blue1 = await start('iso', 'blue');
    const blue2 = await start('iso2', 'blue');
    await pingFromContainer(red1.pid, red2.ip);
    await pingFromContainer(blue1.pid, blue2.ip);
    pingFails(red1.pid, blue1.ip);
    pingFails(blue1.pid, red2.ip);
    pingFails(red1.pid, blue2.ip);
    pingFails(blue2.pid, red1.ip);
    await pingFromContainer(red1.pid, a.nodeIp);
    expect(await sourceSeenBy(red1.pid, INTERNET_HOST, 9001)).toBe(INTERNET_NODE_SIDE);
    // A member that leaves is no longer fenced: blue1's address is out of the sets.
    await ok(a, { type: 'DetachContainer', handle: { linuxPid: blue1.pid } }, 'Ok');
    expect(execIn(a.namespace, 'nft', ['list', 'set', 'bridge', 'tswg', 'iso_all'])).not.toContain(`${blue1.ip},`);
  });

  it('foreign rules added after start change nothing; a rule put ahead of ours and `nft flush ruleset` are repaired within one period, without duplicates', async () => {
    const [pa, ipB] = [web.get(a)!.proc.pid, web.get(b)!.ip];
    execIn(a.namespace, 'iptables-nft', ['-w', '-A', 'FORWARD', '-j', 'DROP']);
    execIn(a.namespace, 'iptables-legacy', ['-w', '-A', 'FORWARD', '-j', 'DROP']);
    execIn(a.namespace, 'nft', ['add', 'rule', 'inet', 'hostfw', 'forward', 'drop']);
    await pingFromContainer(pa, ipB, 3000);

    const ownTable = execIn(a.namespace, 'nft', ['list', 'table', 'inet', 'tswg']);
    execIn(a.namespace, 'iptables-nft', ['-w', '-I', 'FORWARD', '1', '-s', '198.51.100.7', '-j', 'DROP']);
    execIn(a.namespace, 'nft', ['insert', 'rule', 'inet', 'hostfw', 'forward', 'ip', 'saddr', '198.51.100.7', 'drop']);
    await waitUntil(
      () => {
        const forward = execIn(a.namespace, 'iptables-nft', ['-w', '-S', 'FORWARD']).split('\n');
        const head = execIn(a.namespace, 'nft', ['list', 'chain', 'inet', 'hostfw', 'forward']).split('\n')[3] ?? '';
        return /-j TSWG-FORWARD$/.test(forward[1] ?? '') && head.includes('tswg: accept traffic from zl-*');
      },
      'our jump and bypass rules back at the head',
      REPAIR_WITHIN_MS,
      250,
    );
    expect(execIn(a.namespace, 'iptables-nft', ['-w', '-S', 'FORWARD']).split('\n').filter((r) => r.includes('TSWG-FORWARD'))).toHaveLength(1);
    expect(execIn(a.namespace, 'nft', ['list', 'chain', 'inet', 'hostfw', 'forward']).match(/tswg: accept traffic from zl-\*/g)).toHaveLength(1);
    await pingFromContainer(pa, ipB, 3000);

    execIn(a.namespace, 'nft', ['flush', 'ruleset']);
    await waitUntil(() => {
      try {
        return execIn(a.namespace, 'nft', ['list', 'table', 'inet', 'tswg']) === ownTable;
      } catch {
        return false;
      }
    }, 'the inet tswg table to be back, byte for byte', REPAIR_WITHIN_MS, 250);
    // The reconcile that put the table back goes on to the other tools: wait for one that ended after the table was seen back.
    const status = await reconciledAfter(a, Math.floor(Date.now() / 1000));
    expect(status.firewall!.repairs).toBeGreaterThanOrEqual(2);
    // Another whole reconcile: nothing more to repair, nothing duplicated.
    const next = await reconciledAfter(a, status.firewall!.lastReconcile);
    expect(execIn(a.namespace, 'nft', ['list', 'table', 'inet', 'tswg'])).toBe(ownTable);
    expect(next.firewall!.repairs).toBe(status.firewall!.repairs);
    await pingFromContainer(pa, ipB, 3000);
  }, 60_000);

  it('kill -9 and restart: leftovers are removed at start-up and before the rules go in again (no duplicates); Shutdown restores the rules as they were', async () => {
    const running = rulesOf(b.namespace);
    expect(running).toContain('table inet tswg');
    b.process!.child.kill('SIGKILL');
    await b.process!.exited;
    expect(rulesOf(b.namespace)).toBe(running);
    // Started without a config (no setup yet): the leftovers go at start-up all the same.
    await startNode(b, { env: { TSWG_HOST_CONFIG_ROOT: hostRoot } });
    await waitUntil(() => rulesOf(b.namespace) === before.get(b.namespace), 'the leftovers to be removed at start-up', 10_000, 100);
    await ok(b, { type: 'Shutdown' }, 'Ok');
    await b.process!.waitForExit(10_000);
    await startNode(b, { config: true, env: { TSWG_HOST_CONFIG_ROOT: hostRoot } });
    expect(rulesOf(b.namespace)).toBe(running);
    await pingFromContainer(web.get(b)!.proc.pid, web.get(a)!.ip);
    await ok(b, { type: 'Shutdown' }, 'Ok');
    await b.process!.waitForExit(10_000);
    expect(rulesOf(b.namespace)).toBe(before.get(b.namespace));
  });

  it('Shutdown removes everything of ours, drop-ins included', async () => {
    await ok(a, { type: 'Shutdown' }, 'Ok');
    await a.process!.waitForExit(10_000);
    expect(rulesOf(a.namespace)).not.toMatch(/tswg|TSWG/);
    expect(readdirSync(join(hostRoot, 'etc/systemd/network'))).toEqual([]);
    expect(readdirSync(join(hostRoot, 'etc/NetworkManager/conf.d'))).toEqual([]);
    expect(existsSync(join(a.dataDir, 'firewall.json'))).toBe(false);
  });
});

describe('each backend, and --no-firewall', () => {
  for (const backend of ['iptables-nft', 'iptables-legacy', 'off'] as const) {
    it(`${backend}: the rules go in with the jumps at position 1; TeardownGlobalOverlay, SIGTERM and Shutdown leave the rules as before`, async () => {
      const namespace = createNamespace();
      const node = prepareNode(namespace, 5, '192.168.78.10');
      const solo: Mesh = { deployment: mesh.deployment, lan: namespace, nodes: [node] };
      writeConfig(solo, node);
      hostileFirewall(namespace);
      const rulesBefore = rulesOf(namespace);
      const env = backend === 'off' ? {} : { TSWG_FIREWALL: backend };
      if (backend === 'off') {
        // --no-firewall through the CLI: startNode has no flag for it, so start the daemon by hand.
        node.process = startIn(namespace, TSWG_BIN, ['node', '--data-dir', node.dataDir, '--control', node.controlPath, '--config', node.configPath, '--no-firewall'], {
          name: 'tswg node --no-firewall',
          env: { ...process.env, LOG_LEVEL: 'verbose' },
        });
        await waitUntil(() => node.process!.output().includes('tswg node: ready') || !node.process!.running(), 'tswg node --no-firewall to be ready', 20_000, 50);
      } else {
        await startNode(node, { config: true, env });
      }
      const status = await ok(node, { type: 'Status' }, 'Status');
      if (backend === 'off') {
        expect(status.firewall).toEqual({ backend: null, reason: 'disabled by --no-firewall', lastReconcile: 0, repairs: 0 });
        expect(rulesOf(namespace)).toBe(rulesBefore);
      } else {
        expect(status.firewall!.backend).toBe(backend);
        // Nothing to masquerade before a container is attached: the nat table is left alone.
        expect(execIn(namespace, `${backend}-save`)).not.toContain('TSWG-POSTROUTING');
        for (const tool of ['iptables-nft', 'iptables-legacy']) {
          expect(execIn(namespace, tool, ['-w', '-S', 'FORWARD']).split('\n')[1]).toMatch(/-j TSWG-FORWARD$/);
        }
        expect(execIn(namespace, 'nft', ['list', 'chain', 'inet', 'hostfw', 'forward'])).toContain('tswg: accept traffic from zl-*');
        // The iptables rules at work: masquerade (MARK in filter, MASQUERADE in nat) and routed isolation (TSWG-ISO-N).
        const world = internetBehind(namespace);
        whoAmIServer(null, world, 9002);
        await ok(node, { type: 'SetupServiceOverlay', service: 'one', mode: 'auto' }, 'ServiceOverlay');
        await ok(node, { type: 'SetupServiceOverlay', service: 'two', mode: 'auto' }, 'ServiceOverlay');
        const member = async (service: string, network: string): Promise<{ pid: number; ip: string }> => {
          const proc = await startContainer(namespace, `${network} on ${service}`);
          return { pid: proc.pid, ip: (await ok(node, attachRequest(proc.pid, service, network), 'Attached')).ip };
        };
        const red1 = await member('one', 'red');
        const red2 = await member('two', 'red');
        const blue = await member('two', 'blue');
        const save = execIn(namespace, `${backend}-save`);
        expect(save).toContain(':TSWG-POSTROUTING');
        expect(save).toContain('-A POSTROUTING -m comment --comment "tswg: overlay rules" -j TSWG-POSTROUTING');
        expect(await sourceSeenBy(red1.pid, INTERNET_HOST, 9002)).toBe(INTERNET_NODE_SIDE);
        await pingFromContainer(red1.pid, red2.ip);
        pingFails(red1.pid, blue.ip);
        pingFails(blue.pid, red1.ip);
        expect(execIn(namespace, `${backend}-save`)).toContain(':TSWG-ISO-1');
      }
      // Each way out reverts: TeardownGlobalOverlay (the node stays up), SIGTERM, Shutdown.
      if (backend === 'iptables-nft') {
        await ok(node, { type: 'TeardownGlobalOverlay' }, 'Ok');
        expect(rulesOf(namespace)).toBe(rulesBefore);
      }
      if (backend === 'iptables-legacy') node.process!.child.kill('SIGTERM');
      else await ok(node, { type: 'Shutdown' }, 'Ok');
      expect((await node.process!.waitForExit(10_000)).code).toBe(0);
      expect(rulesOf(namespace)).toBe(rulesBefore);
    });
  }
});

describe('a host firewall that appears after start', () => {
  it('nftables: an iptables-legacy filter table created later gets the accept chain within one period', async () => {
    const namespace = createNamespace();
    const node = prepareNode(namespace, 6, '192.168.79.10');
    writeConfig({ deployment: mesh.deployment, lan: namespace, nodes: [node] }, node);
    await startNode(node, { config: true });
    expect((await ok(node, { type: 'Status' }, 'Status')).firewall!.backend).toBe('nftables');
    execIn(namespace, 'iptables-legacy', ['-w', '-P', 'FORWARD', 'DROP']);
    await waitUntil(
      () => /-j TSWG-FORWARD$/.test(execIn(namespace, 'iptables-legacy', ['-w', '-S', 'FORWARD']).split('\n')[1] ?? ''),
      'the jump into TSWG-FORWARD in the new legacy table',
      REPAIR_WITHIN_MS,
      250,
    );
    await ok(node, { type: 'Shutdown' }, 'Ok');
    await node.process!.waitForExit(10_000);
    expect(execIn(namespace, 'iptables-legacy-save')).not.toContain('TSWG');
  });
});

describe('a rule the kernel refuses', () => {
  const firewallModule = fileURLToPath(new URL('../../dist/src/overlay/firewall/node-firewall.js', import.meta.url));

  for (const backend of ['nftables', 'iptables-nft', 'iptables-legacy'] as const) {
    it(`${backend}: start fails naming the rule, and nothing is left applied`, () => {
      const namespace = createNamespace();
      hostileFirewall(namespace);
      const rulesBefore = rulesOf(namespace);
      const dataDir = createTempDir('tswg-fw-refused-');
      // An IPv6 node address in an IPv4 rule set: every tool refuses the DNS rule.
      const script = `
        import { NodeFirewall } from ${JSON.stringify(firewallModule)};
        const log = { verbose: () => {}, error: () => {} };
        const firewall = new NodeFirewall({ dataDir: ${JSON.stringify(dataDir)}, log, env: { ...process.env, TSWG_FIREWALL: ${JSON.stringify(backend)}, TSWG_HOST_CONFIG_ROOT: '/nonexistent' } });
        const input = { clusterCidr: '10.200.0.0/16', nodeIp: 'fd00::1', wgPorts: { first: 51820, last: 51884 }, members: [{ ip: '10.200.5.2', network: 'red' }] };
        try { await firewall.start(input); console.log(JSON.stringify({ applied: true })); }
        catch (error) { console.log(JSON.stringify({ error: error.message, status: firewall.status() })); }
      `;
      const result = JSON.parse(execIn(namespace, process.execPath, ['--input-type=module', '-e', script]).trim()) as { error?: string; status?: { backend: string | null } };
      expect(result.error).toBeDefined();
      expect(result.error).toMatch(/refused/);
      expect(result.error).toContain('fd00::1');
      expect(result.status?.backend).toBeNull();
      expect(rulesOf(namespace)).toBe(rulesBefore);
      expect(existsSync(join(dataDir, 'firewall.json'))).toBe(false);
    });

    it(`${backend}: an update it refuses fails naming the rule, and the last good rules stay exactly as they were`, () => {
      const namespace = createNamespace();
      hostileFirewall(namespace);
      const rulesBefore = rulesOf(namespace);
      const dataDir = createTempDir('tswg-fw-refused-update-');
      const dump = fileURLToPath(new URL('../../dist/scripts/lib/firewall-dump.js', import.meta.url));
      // A good rule set first, then one whose new member is an IPv6 address in an IPv4 set: the tool refuses it.
      const script = `
        import { NodeFirewall } from ${JSON.stringify(firewallModule)};
        import { firewallRules } from ${JSON.stringify(dump)};
        const log = { verbose: () => {}, error: () => {} };
        const firewall = new NodeFirewall({ dataDir: ${JSON.stringify(dataDir)}, log, env: { ...process.env, TSWG_FIREWALL: ${JSON.stringify(backend)}, TSWG_HOST_CONFIG_ROOT: '/nonexistent' } });
        const good = { clusterCidr: '10.200.0.0/16', nodeIp: '10.200.1.1', wgPorts: { first: 51820, last: 51884 }, members: [{ ip: '10.200.5.2', network: 'red' }, { ip: '10.200.5.3', network: 'blue' }], masquerade: true };
        await firewall.start(good);
        const applied = firewallRules(null);
        let error = null;
        try { await firewall.update({ ...good, nodeIp: 'fd00::1', members: [...good.members, { ip: '10.200.5.4', network: 'green' }] }); } catch (e) { error = e.message; }
        const kept = firewallRules(null) === applied;
        const backend = firewall.status().backend;
        await firewall.stop();
        console.log(JSON.stringify({ error, kept, backend, applied: applied.includes('10.200.5.3') }));
      `;
      const result = JSON.parse(execIn(namespace, process.execPath, ['--input-type=module', '-e', script]).trim().split('\n').pop()!) as { error: string | null; kept: boolean; backend: string | null; applied: boolean };
      expect(result.applied).toBe(true);
      expect(result.error).toMatch(/refused/);
      expect(result.error).toContain('fd00::1');
      expect(result.kept).toBe(true);
      expect(result.backend).toBe(backend);
      expect(rulesOf(namespace)).toBe(rulesBefore);
    });
  }
});
