/**
 * The node's resolver, end to end: a real `tswg node` in a namespace, a
 * container attached to it, and `dig` run inside the container against the
 * node IP. Forwarding goes to a dnsmasq on the LAN namespace (another
 * namespace the node reaches over its eth0). Registered names survive a
 * restart; with dead upstreams forwarded names get SERVFAIL.
 *
 * Needs root, dig and dnsmasq, and a built dist/ (`npm run build`); fails, never skips.
 */
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { execInContainer, startContainer } from '../../scripts/lib/containers.js';
import { TSWG_BIN } from '../../scripts/lib/topology.js';
import { cleanup, createTempDir, execIn, ip, requireCommands, requireRoot, startIn, waitUntil, type NamespaceProcess } from '../../scripts/lib/netns.js';
import { createMesh, request, startNode, writeConfig, type Mesh, type MeshNode } from '../../scripts/lib/overlay-mesh.js';
import type { Request, Response } from '../../src/overlay/protocol.js';

let mesh: Mesh;
let node: MeshNode;
let container: NamespaceProcess;
let dnsmasq: NamespaceProcess;
let upstreamIp: string;
let domain: string;

type Answer<T extends Response['type']> = Extract<Response, { type: T }>;

async function ok<T extends Response['type']>(req: Request, type: T): Promise<Answer<T>> {
  const answer = await request(node, req);
  expect(answer, JSON.stringify(req)).toMatchObject({ type });
  return answer as Answer<T>;
}

/** dig inside the container against the node's resolver. */
function dig(...args: string[]): string {
  return execInContainer(container.pid, 'dig', [`@${node.nodeIp}`, '+time=15', '+tries=1', ...args], { timeoutMs: 30_000 });
}

function digShort(...args: string[]): string[] {
  return dig('+short', ...args)
    .split('\n')
    .map((line) => line.trim())
    .filter((line) => line !== '' && !line.startsWith(';'));
}

/** The status line of dig's header: "status: NOERROR". */
function rcodeOf(output: string): string {
  return /status: ([A-Z]+)/.exec(output)?.[1] ?? `no status in:\n${output}`;
}

async function dnsStatus(): Promise<NonNullable<Answer<'Status'>['dns']>> {
  return (await ok({ type: 'Status' }, 'Status')).dns!;
}

async function startDaemon(upstreams: string): Promise<void> {
  await startNode(node, { config: true, env: { TSWG_DNS_UPSTREAMS: upstreams } });
  await waitUntil(() => node.process!.output().includes('DNS for'), 'the node resolver to listen', 10_000, 50);
}

beforeAll(async () => {
  requireRoot('the node DNS tests');
  requireCommands('ip', 'wg', 'unshare', 'nsenter', 'dig', 'dnsmasq');
  mesh = createMesh(1);
  node = mesh.nodes[0]!;
  domain = `${mesh.deployment}.internal`;
  // The upstream: dnsmasq on the LAN bridge, which the node reaches over its eth0.
  upstreamIp = node.lanAddress.replace(/\.\d+$/, '.200');
  ip(mesh.lan, 'addr', 'add', `${upstreamIp}/24`, 'dev', 'br0');
  const pidFile = join(createTempDir('tswg-dnsmasq-'), 'dnsmasq.pid');
  dnsmasq = startIn(
    mesh.lan,
    'dnsmasq',
    ['--no-daemon', '--no-resolv', '--no-hosts', '--address=/example.test/192.0.2.7', `--listen-address=${upstreamIp}`, '--bind-interfaces', `--pid-file=${pidFile}`, '--user=root'],
    { name: 'dnsmasq' },
  );
  writeConfig(mesh, node);
  await startDaemon(upstreamIp);
  await ok({ type: 'SetupServiceOverlay', service: 'web', mode: 'auto' }, 'ServiceOverlay');
  container = await startContainer(node.namespace, 'dig container');
});

afterAll(() => {
  cleanup();
});

describe('the node resolver', () => {
  it('listens on the node IP and hands a container its resolv.conf on attach', async () => {
    const attached = await ok(
      { type: 'AttachContainer', handle: { linuxPid: container.pid }, service: 'web', joinGlobal: false, dnsServer: node.nodeIp, dnsDomain: null, ephemeral: false, isolationNetwork: null },
      'Attached',
    );
    expect(attached.resolvConf).toEqual({ nameserver: node.nodeIp, search: [domain], options: ['ndots:0'] });
    expect(await dnsStatus()).toMatchObject({ listening: `${node.nodeIp}:53`, domain, records: 0 });
  });

  it('RegisterDns: A records in the deployment domain, bad input answered Err naming it', async () => {
    await ok({ type: 'RegisterDns', name: 'web', ip: '10.200.1.50' }, 'Ok');
    await ok({ type: 'RegisterDns', name: `api.${domain}`, ip: '10.200.1.51' }, 'Ok');
    await ok({ type: 'RegisterDns', name: 'api', ip: '10.200.1.52' }, 'Ok');
    await ok({ type: 'RegisterDns', name: 'dual', ip: 'fd00::7' }, 'Ok');
    expect(await request(node, { type: 'RegisterDns', name: 'bad name', ip: '10.200.1.9' })).toEqual({ type: 'Err', message: expect.stringMatching(/invalid DNS name "bad name"/) });
    expect(await request(node, { type: 'RegisterDns', name: 'web', ip: 'nope' } as Request)).toMatchObject({ type: 'Err', message: expect.stringMatching(/RegisterDns\.ip/) });
    expect(digShort(`web.${domain}`, 'A')).toEqual(['10.200.1.50']);
    expect(digShort(`api.${domain}`, 'A').sort()).toEqual(['10.200.1.51', '10.200.1.52']);
    expect(digShort(`dual.${domain}`, 'AAAA')).toEqual(['fd00::7']);
    const full = dig(`web.${domain}`, 'A');
    expect(full).toMatch(/flags: qr aa rd ra;/);
    expect(full).toMatch(new RegExp(`web\\.${domain}\\.\\s+600\\s+IN\\s+A\\s+10\\.200\\.1\\.50`));
  });

  it('a name with no record of the asked type is NOERROR and empty; an unknown name NXDOMAIN with the SOA', () => {
    const empty = dig(`web.${domain}`, 'AAAA');
    expect(rcodeOf(empty)).toBe('NOERROR');
    expect(empty).toMatch(/ANSWER: 0,/);
    const nx = dig(`nope.${domain}`, 'A');
    expect(rcodeOf(nx)).toBe('NXDOMAIN');
    expect(nx).toMatch(new RegExp(`AUTHORITY SECTION:\\n${domain}\\.\\s+\\d+\\s+IN\\s+SOA\\s+ns\\.${domain}\\.`));
  });

  it('PTR for a registered address', () => {
    expect(digShort('-x', '10.200.1.50')).toEqual([`web.${domain}.`]);
  });

  it('over 512 bytes: TC over UDP, the whole answer over TCP', async () => {
    for (let i = 0; i < 40; i++) await ok({ type: 'RegisterDns', name: 'big', ip: `10.200.2.${i + 10}` }, 'Ok');
    const truncated = dig('+noedns', '+ignore', `big.${domain}`, 'A');
    expect(truncated).toMatch(/flags: qr aa tc rd ra;/);
    expect(truncated).toMatch(/ANSWER: 0,/);
    // dig retries over TCP by itself when it sees TC.
    const retried = dig('+noedns', `big.${domain}`, 'A');
    expect(retried).toMatch(/ANSWER: 40,/);
    expect(digShort('+tcp', `big.${domain}`, 'A')).toHaveLength(40);
  });

  it('forwards other names to the host resolver (dnsmasq), NXDOMAIN passed through, over UDP and TCP', () => {
    expect(digShort('www.example.test', 'A')).toEqual(['192.0.2.7']);
    expect(digShort('+tcp', 'www.example.test', 'A')).toEqual(['192.0.2.7']);
    // dnsmasq without upstreams refuses names it does not know; the node then has none left: SERVFAIL.
    expect(rcodeOf(dig('elsewhere.invalid', 'A'))).toMatch(/^(SERVFAIL|NXDOMAIN)$/);
  });

  it('survives 10,000 malformed datagrams, counts every one, and still answers', async () => {
    const before = (await dnsStatus()).malformed;
    // Ten batches of 1,000 random datagrams (1..300 bytes); each batch is sent once the node has
    // counted the last, so a loaded machine's socket buffer never decides the count.
    const batch = 1000;
    const script = `
      const dgram = require('node:dgram'); const { randomBytes } = require('node:crypto');
      const s = dgram.createSocket('udp4');
      (async () => {
        for (let i = 0; i < ${batch}; i++) {
          s.send(randomBytes(1 + ((i * 7) % 300)), 53, '${node.nodeIp}');
          if (i % 50 === 49) await new Promise((r) => setTimeout(r, 2));
        }
        setTimeout(() => s.close(), 100);
      })();`;
    for (let sent = batch; sent <= 10_000; sent += batch) {
      execInContainer(container.pid, process.execPath, ['-e', script], { timeoutMs: 60_000 });
      const deadline = Date.now() + 10_000;
      while ((await dnsStatus()).malformed - before < sent && Date.now() < deadline) await new Promise((resolve) => setTimeout(resolve, 50));
    }
    expect((await dnsStatus()).malformed - before).toBe(10_000);
    expect(digShort(`web.${domain}`, 'A')).toEqual(['10.200.1.50']);
    expect(node.process!.running()).toBe(true);
  });

  it('UnregisterDns drops a name (NXDOMAIN after), and Status counts what was done', async () => {
    await ok({ type: 'RegisterDns', name: 'gone', ip: '10.200.1.60' }, 'Ok');
    expect(digShort(`gone.${domain}`, 'A')).toEqual(['10.200.1.60']);
    await ok({ type: 'UnregisterDns', name: 'gone' }, 'Ok');
    await ok({ type: 'UnregisterDns', name: 'never-there' }, 'Ok');
    expect(rcodeOf(dig(`gone.${domain}`, 'A'))).toBe('NXDOMAIN');
    // The same through the CLI.
    const cli = (...args: string[]): string => execIn(node.namespace, TSWG_BIN, ['node', ...args, '--control', node.controlPath]);
    cli('dns-register', '--name', 'cli', '--ip', '10.200.1.70');
    expect(digShort(`cli.${domain}`, 'A')).toEqual(['10.200.1.70']);
    cli('dns-unregister', '--name', `cli.${domain}`);
    expect(rcodeOf(dig(`cli.${domain}`, 'A'))).toBe('NXDOMAIN');
    expect(cli('status')).toMatch(new RegExp(`dns: +${node.nodeIp.replace(/\./g, '\\.')}:53, ${domain}, 44 records; \\d+ answered`));
    const status = await dnsStatus();
    expect(status.records).toBe(4 + 40);
    expect(status.answered).toBeGreaterThan(10);
    expect(status.forwarded).toBeGreaterThanOrEqual(3);
  });

  it('a restart keeps the names; with dead upstreams forwarded names get SERVFAIL', async () => {
    await ok({ type: 'Shutdown' }, 'Ok');
    await node.process!.waitForExit(15_000);
    // Two closed ports (ICMP unreachable at once) and an address nobody has (a timeout).
    await startDaemon(`${upstreamIp}:5353,${upstreamIp}:5354,${upstreamIp.replace(/\.\d+$/, '.201')}`);
    await ok({ type: 'SetupServiceOverlay', service: 'web', mode: 'auto' }, 'ServiceOverlay');
    await ok(
      { type: 'AttachContainer', handle: { linuxPid: container.pid }, service: 'web', joinGlobal: false, dnsServer: null, dnsDomain: 'svc.example', ephemeral: false, isolationNetwork: null },
      'Attached',
    ).then((attached) => expect(attached.resolvConf).toEqual({ nameserver: node.nodeIp, search: ['svc.example'], options: ['ndots:0'] }));
    expect(digShort(`web.${domain}`, 'A')).toEqual(['10.200.1.50']);
    expect(digShort(`big.${domain}`, 'A', '+tcp')).toHaveLength(40);
    const started = Date.now();
    expect(rcodeOf(dig('www.example.test', 'A'))).toBe('SERVFAIL');
    // The address nobody has was tried too (an ARP failure or the 4 s timeout).
    expect(Date.now() - started).toBeGreaterThanOrEqual(2_500);
    expect(dnsmasq.running()).toBe(true);
  });
});
