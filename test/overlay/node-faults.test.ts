/**
 * `tswg node` under faults, each a real daemon in a network namespace:
 *  - 10,000 garbage lines on the control socket: every one answered Err,
 *    the daemon keeps serving and its memory stays bounded;
 *  - 64 control clients at once, each asking Status: all answered;
 *  - a NatTick made slow (its STUN server's name resolves through a DNS
 *    server that never answers): Status is answered meanwhile, a second
 *    NatTick answers Ok at once, and Shutdown or SIGTERM still ends the node
 *    (exit 0, interface gone) within 2 s;
 *  - a full disk (the data directory is a 16 KiB tmpfs, filled up): a
 *    request that saves answers Err, the state file and the key unchanged,
 *    and the node keeps serving.
 *
 * Needs root and a built dist/ (`npm run build`); fails, never skips.
 */
import { appendFileSync, existsSync, mkdirSync, readFileSync, rmdirSync, rmSync, writeFileSync } from 'node:fs';
import net from 'node:net';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { cleanup, createTempDir, ip, registerCleanup, requireCommands, requireRoot, run } from '../../scripts/lib/netns.js';
import { ControlClient } from '../../src/overlay/control-client.js';
import { STATE_FILE_NAME } from '../../src/overlay/constants.js';
import { createMesh, prepareNode, request, startNode, writeConfig, type Mesh, type MeshNode } from '../../scripts/lib/overlay-mesh.js';

/** On the mesh LAN, but nobody has it: what is sent there vanishes. */
const BLACKHOLE = '192.168.77.250';
const SLOW_STUN = 'stun.blackholed.test:3478';
const STOP_WITHIN_MS = 2000;

let mesh: Mesh;

function interfaceOf(node: MeshNode): string {
  return `zl-${mesh.deployment}-${node.instanceId}-g`;
}

function rssKiB(pid: number): number {
  const match = /VmRSS:\s+(\d+) kB/.exec(readFileSync(`/proc/${pid}/status`, 'utf8'));
  return Number(match![1]);
}

/**
 * Name lookups in `namespace` go to a DNS server that never answers, for up
 * to 30 s (`ip netns exec` mounts /etc/netns/NS/resolv.conf over the real one).
 */
function blackholeDns(namespace: string): void {
  const dir = `/etc/netns/${namespace}`;
  if (!existsSync('/etc/netns')) {
    mkdirSync('/etc/netns', { mode: 0o755 });
    registerCleanup('file', 'remove /etc/netns if empty', () => {
      try {
        rmdirSync('/etc/netns');
      } catch {
        // Other namespaces' files are there.
      }
    });
  }
  mkdirSync(dir);
  writeFileSync(join(dir, 'resolv.conf'), `nameserver ${BLACKHOLE}\noptions timeout:30 attempts:1\n`);
  registerCleanup('file', `remove ${dir}`, () => rmSync(dir, { recursive: true, force: true }));
  // A neighbour entry of its own, so no failed ARP ends the wait early with "host unreachable".
  ip(namespace, 'neigh', 'replace', BLACKHOLE, 'lladdr', '02:00:00:00:00:fa', 'dev', 'eth0', 'nud', 'permanent');
}

/** A node set up by its config, with NAT on and a STUN server whose name never resolves. */
async function startSlowNatNode(index: number): Promise<MeshNode> {
  const node = mesh.nodes[index]!;
  blackholeDns(node.namespace);
  writeConfig(mesh, node, { peers: [], nat: { enabled: true, stunServers: [SLOW_STUN], stunRefreshIntervalSecs: 3600 } });
  await startNode(node, { config: true });
  return node;
}

/** Send NatTick and leave it running (its answer comes when the STUN lookup gives up). */
async function slowTickInFlight(node: MeshNode): Promise<ControlClient> {
  const client = await ControlClient.connect(node.controlPath);
  void client.request({ type: 'NatTick' }).catch(() => undefined);
  // Let the node start the tick (the daemon's own first tick runs 500 ms after start-up too).
  await new Promise((resolve) => setTimeout(resolve, 300));
  return client;
}

beforeAll(async () => {
  requireRoot('the overlay node fault tests');
  requireCommands('ip', 'mount', 'umount');
  mesh = createMesh(5);
});

afterAll(() => {
  cleanup();
});

describe('a node under faults', () => {
  it('answers 10,000 garbage lines with Err, keeps serving, and its memory stays bounded', async () => {
    const node = mesh.nodes[0]!;
    writeConfig(mesh, node, { peers: [] });
    const proc = await startNode(node, { config: true });
    const before = rssKiB(proc.pid);
    const answers = await new Promise<string[]>((resolve, reject) => {
      const socket = net.createConnection(node.controlPath);
      let text = '';
      socket.on('data', (chunk) => {
        text += chunk.toString('utf8');
        const lines = text.split('\n');
        if (lines.length > 10_000) {
          socket.destroy();
          resolve(lines.slice(0, 10_000));
        }
      });
      socket.on('error', reject);
      const garbage = Array.from({ length: 10_000 }, (_, i) => (i % 3 === 0 ? `{"type":"Nope${i}"}` : i % 3 === 1 ? `\u0000\u00ff garbage ${'x'.repeat(i % 500)}` : `[${i},`));
      socket.write(`${garbage.join('\n')}\n`);
    });
    expect(answers.every((line) => (JSON.parse(line) as { type: string }).type === 'Err')).toBe(true);
    expect((await request(node, { type: 'Status' })).type).toBe('Status');
    expect(proc.running()).toBe(true);
    expect(rssKiB(proc.pid) - before, 'RSS growth in KiB').toBeLessThan(64 * 1024);
  }, 60_000);

  it('answers 64 concurrent clients asking Status', async () => {
    const node = mesh.nodes[0]!;
    const clients = await Promise.all(Array.from({ length: 64 }, () => ControlClient.connect(node.controlPath)));
    try {
      const answers = await Promise.all(clients.map((client) => client.request({ type: 'Status' })));
      expect(answers.map((a) => a.type)).toEqual(Array(64).fill('Status'));
      for (const answer of answers) expect(answer).toMatchObject({ interface: interfaceOf(node), health: 'ok' });
    } finally {
      for (const client of clients) client.close();
    }
    expect(await request(node, { type: 'Shutdown' })).toEqual({ type: 'Ok' });
    expect((await node.process!.waitForExit(10_000)).code).toBe(0);
  }, 60_000);

  it('a slow NatTick holds nothing: Status answered, a second NatTick Ok at once, Shutdown ends the node within 2 s', async () => {
    const node = await startSlowNatNode(1);
    const tickClient = await slowTickInFlight(node);
    let started = Date.now();
    expect((await request(node, { type: 'Status' })).type).toBe('Status');
    expect(await request(node, { type: 'NatTick' })).toEqual({ type: 'Ok' });
    expect(Date.now() - started).toBeLessThan(1000);
    started = Date.now();
    expect(await request(node, { type: 'Shutdown' })).toEqual({ type: 'Ok' });
    const exit = await node.process!.waitForExit(STOP_WITHIN_MS + 1000);
    const elapsed = Date.now() - started;
    tickClient.close();
    expect(exit.code, node.process!.output()).toBe(0);
    expect(elapsed, node.process!.output()).toBeLessThan(STOP_WITHIN_MS);
    expect(ip(node.namespace, 'link', 'show')).not.toContain(interfaceOf(node));
  }, 60_000);

  it('SIGTERM during a slow NatTick: exit 0 within 2 s, the interface gone', async () => {
    const node = await startSlowNatNode(2);
    const tickClient = await slowTickInFlight(node);
    expect(ip(node.namespace, 'link', 'show')).toContain(interfaceOf(node));
    const started = Date.now();
    process.kill(node.process!.pid, 'SIGTERM');
    const exit = await node.process!.waitForExit(STOP_WITHIN_MS + 1000);
    const elapsed = Date.now() - started;
    tickClient.close();
    expect(exit.code, node.process!.output()).toBe(0);
    expect(elapsed, node.process!.output()).toBeLessThan(STOP_WITHIN_MS);
    expect(ip(node.namespace, 'link', 'show')).not.toContain(interfaceOf(node));
  }, 60_000);

  it('a full disk: a request that saves answers Err, the state file and the key unchanged, the node serving', async () => {
    const slot = mesh.nodes[3]!;
    const mountPoint = createTempDir('tswg-node-full-');
    // Room for the node's files (one page each on tmpfs) and a little more; the filler takes the rest.
    run('mount', ['-t', 'tmpfs', '-o', 'size=64k,mode=0700', 'tswg-test', mountPoint]);
    try {
      const node: MeshNode = { ...prepareNode(slot.namespace, slot.index, slot.lanAddress), dataDir: mountPoint };
      writeConfig(mesh, node, { peers: [] });
      await startNode(node, { config: true });
      const statePath = join(mountPoint, STATE_FILE_NAME);
      const before = readFileSync(statePath, 'utf8');
      const publicKey = ((await request(node, { type: 'Status' })) as { publicKey: string }).publicKey;
      const chunk = Buffer.alloc(1024, 0x61);
      try {
        for (let i = 0; i < 256; i++) appendFileSync(join(mountPoint, 'filler'), chunk);
        throw new Error('the tmpfs never filled up');
      } catch (error) {
        if ((error as NodeJS.ErrnoException).code !== 'ENOSPC') throw error;
      }
      expect(await request(node, { type: 'AllocateIp', service: 'web', joinGlobal: false })).toMatchObject({
        type: 'Err',
        message: expect.stringMatching(new RegExp(`^cannot write ${statePath}: .*ENOSPC`)),
      });
      expect(readFileSync(statePath, 'utf8')).toBe(before);
      const status = await request(node, { type: 'Status' });
      expect(status).toMatchObject({ type: 'Status', publicKey, interface: interfaceOf(node) });
      rmSync(join(mountPoint, 'filler'));
      expect(await request(node, { type: 'AllocateIp', service: 'web', joinGlobal: false })).toEqual({ type: 'Ip', ip: '10.200.4.2' });
      expect(await request(node, { type: 'Shutdown' })).toEqual({ type: 'Ok' });
      expect((await node.process!.waitForExit(10_000)).code).toBe(0);
    } finally {
      await mesh.nodes[3]!.process?.stop();
      run('umount', [mountPoint]);
    }
  }, 60_000);
});
