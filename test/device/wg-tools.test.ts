/**
 * The stock tools against tswg: `wg show`, `wg showconf`, `wg set`,
 * `wg setconf`, `wg syncconf`, and `wg-quick up/down` with
 * WG_QUICK_USERSPACE_IMPLEMENTATION=tswg, compared with wireguard-go where
 * that is cheap (same commands, same keys, `wg show dump` and `wg showconf`
 * compared with peers sorted: wireguard-go lists them in Go map order).
 *
 * Every device lives in a network namespace of its own (UAPI sockets are in
 * the one /var/run/wireguard, so names are unique per run). Everything is
 * registered with the cleanup registry of scripts/lib/netns.ts; the daemons
 * wg-quick starts are found by their interface name. Needs root; fails (does
 * not skip) without.
 */
import { execFileSync } from 'node:child_process';
import { existsSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import {
  addressAndUp,
  cleanup,
  createNamespace,
  createTempDir,
  createVethPair,
  ip,
  leftovers,
  randomBenchmarkSubnet30,
  requireCommands,
  requireRoot,
  uniqueName,
  writeSecretFile,
} from '../../scripts/lib/netns.js';
import { createPair, ping, startImplementation, wgKeyPair, type Implementation, type KeyPair } from '../../scripts/lib/topology.js';
import {
  TSWG_BIN,
  cleanEnv,
  daemonPids,
  describeResult,
  isSocket,
  linkDetails,
  linkExists,
  pathExists,
  runCommand,
  socketPath,
  trackDaemon,
  waitFor,
  type CommandResult,
} from '../helpers/daemon-process.js';
import { configOf, normaliseShowconf, parseDump, withoutPeer } from '../helpers/daemon-wg.js';

const interfacesUsed: string[] = [];
const tempDirs: string[] = [];
/** What a clean shutdown may take. */
const EXIT_WITHIN_MS = 3000;

interface Node {
  implementation: Implementation;
  ns: string;
  name: string;
}

/** A fresh namespace (unless given) with `implementation` serving a fresh interface name, in the foreground. */
async function startNode(implementation: Implementation, ns: string = createNamespace()): Promise<Node> {
  const name = uniqueName();
  interfacesUsed.push(name);
  await startImplementation(implementation, ns, name, { env: cleanEnv() });
  return { implementation, ns, name };
}

function wg(ns: string | null, args: readonly string[], input?: string): CommandResult {
  return runCommand(ns, 'wg', args, input === undefined ? {} : { input });
}

/** `wg args...` that must succeed; returns stdout. */
function wgOk(ns: string | null, ...args: string[]): string {
  const result = wg(ns, args);
  expect(result.status, `wg ${args.join(' ')}\n${describeResult(result)}`).toBe(0);
  return result.stdout;
}

function dumpOf(node: Node): string {
  return wgOk(node.ns, 'show', node.name, 'dump');
}

function showconfOf(node: Node): string {
  return wgOk(node.ns, 'showconf', node.name);
}

function genpsk(): string {
  return execFileSync('wg', ['genpsk'], { encoding: 'utf8' }).trim();
}

/** Replace the interface name in wg's messages so that two devices' messages compare. */
function generic(text: string, name: string): string {
  return text.replaceAll(name, 'IFNAME');
}

describe('stock wg(8) and wg-quick(8) against tswg', () => {
  let dir: string;

  beforeAll(() => {
    requireRoot('the wg-tools tests');
    requireCommands('ip', 'wg', 'wg-quick', 'wireguard-go', 'ping', 'nft', 'sysctl');
    if (!existsSync(new URL('../../dist/src/cli/main.js', import.meta.url))) {
      throw new Error('dist/ is missing: run `npm run build` before these tests (bin/tswg runs dist/)');
    }
    dir = createTempDir('tswg-wgtools-');
    tempDirs.push(dir);
  });

  afterAll(() => {
    cleanup();
    expect(leftovers()).toEqual([]);
    for (const name of interfacesUsed) {
      expect(daemonPids(name), `processes serving ${name} after cleanup`).toEqual([]);
      expect(pathExists(socketPath(name)), `${socketPath(name)} after cleanup`).toBe(false);
    }
    for (const path of tempDirs) expect(pathExists(path), `${path} after cleanup`).toBe(false);
  });

  describe('wg showconf / setconf / syncconf', () => {
    it('showconf of a configured tswg is a valid config; setconf of it reproduces the device on a fresh tswg and on wireguard-go', async () => {
      const source = await startNode('tswg');
      const own = wgKeyPair();
      const [p1, p2, p3] = [wgKeyPair(), wgKeyPair(), wgKeyPair()];
      const psk = writeSecretFile(dir, 'roundtrip.psk', `${genpsk()}\n`);
      wgOk(
        source.ns,
        'set', source.name,
        'private-key', writeSecretFile(dir, 'roundtrip.key', `${own.privateKey}\n`),
        'listen-port', '51820',
        'fwmark', '0x1234',
        'peer', p1!.publicKey, 'preshared-key', psk, 'endpoint', '198.18.9.9:51820', 'allowed-ips', '10.1.0.0/16,fd00:1::/64', 'persistent-keepalive', '25',
        'peer', p2!.publicKey, 'endpoint', '[2001:db8::1]:12345', 'allowed-ips', '10.2.0.1/32',
        'peer', p3!.publicKey,
      );
      const conf = showconfOf(source);
      expect(conf).toMatch(/^\[Interface\]\n/);
      expect(conf).toContain(`PrivateKey = ${own.privateKey}\n`);
      expect(conf).toContain('ListenPort = 51820\n');
      expect(conf).toContain('FwMark = 0x1234\n');
      expect(conf.match(/^\[Peer\]$/gm)).toHaveLength(3);
      expect(conf).toContain(`PublicKey = ${p1!.publicKey}\n`);
      expect(conf).toMatch(/AllowedIPs = 10\.1\.0\.0\/16, fd00:1::\/64\n/);
      expect(conf).toContain('Endpoint = 198.18.9.9:51820\n');
      expect(conf).toContain('PersistentKeepalive = 25\n');
      expect(conf).toContain('Endpoint = [2001:db8::1]:12345\n');
      // Valid: wg setconf takes it back below, on tswg and on wireguard-go.
      const file = join(dir, 'roundtrip.conf');
      writeFileSync(file, conf, { mode: 0o600 });

      const expected = configOf(parseDump(dumpOf(source)));
      expect(parseDump(dumpOf(source)).publicKey).toBe(own.publicKey);
      for (const implementation of ['tswg', 'wireguard-go'] as const) {
        const copy = await startNode(implementation);
        wgOk(copy.ns, 'setconf', copy.name, file);
        expect(configOf(parseDump(dumpOf(copy))), `setconf on ${implementation}`).toBe(expected);
        expect(normaliseShowconf(showconfOf(copy)), `showconf of the ${implementation} copy`).toBe(normaliseShowconf(conf));
      }
      expect(dumpOf(source), 'the source is unchanged').toContain(own.publicKey);
      // wg finds userspace interfaces through their sockets: tswg's is listed with the others.
      expect(wgOk(source.ns, 'show', 'interfaces').trim().split(/\s+/)).toContain(source.name);
      expect(wgOk(source.ns, 'show', 'all', 'dump')).toContain(`${source.name}\t${own.privateKey}\t${own.publicKey}\t51820\t0x1234\n`);
    });

    it('syncconf removes a peer missing from the file, keeps and updates the others, and keeps the session of an unchanged peer', async () => {
      const pair = await createPair({ left: 'tswg', right: 'wireguard-go' });
      interfacesUsed.push(pair.a.interfaceName, pair.b.interfaceName);
      tempDirs.push(pair.dir);
      const a: Node = { implementation: 'tswg', ns: pair.a.namespace, name: pair.a.interfaceName };
      ping(pair.a, pair.b.inner4, 2);
      const [p2, p3] = [wgKeyPair(), wgKeyPair()];
      wgOk(a.ns, 'set', a.name, 'peer', p2!.publicKey, 'allowed-ips', '10.2.0.0/24', 'peer', p3!.publicKey, 'allowed-ips', '10.3.0.0/24');
      const before = parseDump(dumpOf(a));
      const session = before.peers.find((peer) => peer.publicKey === pair.b.keys.publicKey)!;
      expect(session.latestHandshake, 'a handshake with the wireguard-go peer').toBeGreaterThan(0);
      // A session that were reset would get a new handshake at least a second later.
      await new Promise((resolve) => setTimeout(resolve, 1200));

      const conf = withoutPeer(showconfOf(a), p3!.publicKey).replace('AllowedIPs = 10.2.0.0/24', 'AllowedIPs = 10.2.0.0/24, 10.20.0.0/16');
      const file = writeSecretFile(dir, 'sync.conf', conf);
      wgOk(a.ns, 'syncconf', a.name, file);

      const after = parseDump(dumpOf(a));
      expect(after.peers.map((peer) => peer.publicKey).sort()).toEqual([pair.b.keys.publicKey, p2!.publicKey].sort());
      expect(after.peers.find((peer) => peer.publicKey === p2!.publicKey)!.allowedIps.sort()).toEqual(['10.2.0.0/24', '10.20.0.0/16']);
      const kept = after.peers.find((peer) => peer.publicKey === pair.b.keys.publicKey)!;
      expect(kept.latestHandshake, 'the handshake time of the unchanged peer is kept').toBe(session.latestHandshake);
      expect(kept.rxBytes).toBeGreaterThanOrEqual(session.rxBytes);
      expect(kept.txBytes).toBeGreaterThanOrEqual(session.txBytes);
      expect(kept.allowedIps).toEqual(session.allowedIps);
      expect(kept.endpoint).toBe(session.endpoint);
      expect(after.privateKey).toBe(before.privateKey);
      expect(after.listenPort).toBe(before.listenPort);
      // Traffic still flows on the old session: no new handshake.
      ping(pair.a, pair.b.inner4, 2);
      const later = parseDump(dumpOf(a)).peers.find((peer) => peer.publicKey === pair.b.keys.publicKey)!;
      expect(later.latestHandshake, 'no new handshake: the session survived syncconf').toBe(session.latestHandshake);
      expect(later.rxBytes).toBeGreaterThan(kept.rxBytes);
    });
  });

  describe('wg set', () => {
    it('bad input: wg fails as it does with wireguard-go, and tswg keeps running with its config unchanged', async () => {
      const ns = createNamespace();
      const tswg = await startNode('tswg', ns);
      const go = await startNode('wireguard-go', ns);
      const peer = wgKeyPair();
      const badKey = writeSecretFile(dir, 'bad.key', 'garbage\n');
      for (const [node, port] of [[tswg, '40001'], [go, '40002']] as const) {
        wgOk(node.ns, 'set', node.name, 'private-key', writeSecretFile(dir, `${node.name}.key`, `${wgKeyPair().privateKey}\n`), 'listen-port', port,
          'peer', peer.publicKey, 'allowed-ips', '10.7.0.0/24', 'endpoint', '198.18.7.7:51820');
      }
      const missing = uniqueName();
      const cases: string[][] = [
        ['peer', 'notakey', 'allowed-ips', '10.9.0.0/24'],
        ['peer', `${peer.publicKey.slice(0, -2)}=`, 'allowed-ips', '10.9.0.0/24'],
        ['private-key', badKey],
        ['private-key', join(dir, 'no-such-file')],
        ['peer', peer.publicKey, 'endpoint', '198.18.9.9'],
        ['peer', peer.publicKey, 'endpoint', '[2001:db8::1:51820'],
        ['peer', peer.publicKey, 'allowed-ips', '10.0.0.0/33'],
        ['peer', peer.publicKey, 'allowed-ips', '300.1.2.3/32'],
        ['peer', peer.publicKey, 'allowed-ips', 'fd00::/129'],
        ['peer', peer.publicKey, 'persistent-keepalive', '70000'],
        ['listen-port', 'port'],
        ['fwmark', 'bogus'],
        ['bogus-option', '1'],
      ];
      const tswgBefore = dumpOf(tswg);
      const goBefore = dumpOf(go);
      for (const args of cases) {
        const onTswg = wg(ns, ['set', tswg.name, ...args]);
        const onGo = wg(ns, ['set', go.name, ...args]);
        expect(onTswg.status, `wg set ${args.join(' ')}\n${describeResult(onTswg)}`).not.toBe(0);
        expect(onTswg.stderr.trim()).not.toBe('');
        expect({ status: onTswg.status, stderr: generic(onTswg.stderr, tswg.name) }, `wg set ${args.join(' ')}`).toEqual({
          status: onGo.status,
          stderr: generic(onGo.stderr, go.name),
        });
        expect(dumpOf(tswg), `tswg's config after wg set ${args.join(' ')}`).toBe(tswgBefore);
      }
      expect(dumpOf(go)).toBe(goBefore);
      const absent = wg(ns, ['set', missing, 'listen-port', '1']);
      expect(absent.status).toBe(1);
      // No socket and no kernel module here: wg's netlink fallback says so ("Protocol not supported").
      expect(absent.stderr).toMatch(/^Unable to modify interface: (No such device|Protocol not supported)\n$/);
      const absentShow = wg(ns, ['show', missing]);
      expect(absentShow.status).toBe(1);
      expect(absentShow.stderr).toMatch(/^Unable to access interface: (No such device|Protocol not supported)\n$/);
      expect(daemonPids(tswg.name)).toHaveLength(1);
      expect(wgOk(ns, 'show', tswg.name)).toContain(`interface: ${tswg.name}`);
      expect(dumpOf(tswg)).toBe(tswgBefore);
    });

    it('a listen port in use is refused (EADDRINUSE, as wireguard-go does) and tswg keeps its port and keeps working', async () => {
      const ns = createNamespace();
      const tswg = await startNode('tswg', ns);
      const go = await startNode('wireguard-go', ns);
      wgOk(ns, 'set', tswg.name, 'listen-port', '40101');
      wgOk(ns, 'set', go.name, 'listen-port', '40102');
      ip(ns, 'link', 'set', 'dev', tswg.name, 'up');
      ip(ns, 'link', 'set', 'dev', go.name, 'up');
      const before = dumpOf(tswg);
      const onTswg = wg(ns, ['set', tswg.name, 'listen-port', '40102']);
      const onGo = wg(ns, ['set', go.name, 'listen-port', '40101']);
      expect(onTswg.status, describeResult(onTswg)).toBe(1);
      expect(onTswg.stderr).toBe('Unable to modify interface: Address already in use\n');
      expect(onTswg.stderr).toBe(onGo.stderr);
      // wireguard-go 0.0.20220316 is left with no port at all (listening port 0); tswg keeps the one it had.
      expect(dumpOf(tswg)).toBe(before);
      expect(wgOk(ns, 'show', tswg.name, 'listen-port').trim()).toBe('40101');
      wgOk(ns, 'set', tswg.name, 'listen-port', '40103');
      expect(wgOk(ns, 'show', tswg.name, 'listen-port').trim()).toBe('40103');
    });

    it('the same wg set / addconf / setconf sequence on tswg and on wireguard-go gives the same wg show dump and wg showconf after every step', async () => {
      const tswg = await startNode('tswg');
      const go = await startNode('wireguard-go');
      const own = wgKeyPair();
      const [p1, p2, p3, p4, p5] = [wgKeyPair(), wgKeyPair(), wgKeyPair(), wgKeyPair(), wgKeyPair()] as [KeyPair, KeyPair, KeyPair, KeyPair, KeyPair];
      const key = writeSecretFile(dir, 'sequence.key', `${own.privateKey}\n`);
      const p3Key = writeSecretFile(dir, 'sequence-p3.key', `${p3.privateKey}\n`);
      const psk = writeSecretFile(dir, 'sequence.psk', `${genpsk()}\n`);
      const addconf = writeSecretFile(dir, 'sequence-add.conf', [
        '[Peer]', `PublicKey = ${p5.publicKey}`, 'AllowedIPs = 10.6.0.0/24, fd00:6::/64', 'Endpoint = 198.18.6.6:6666', '',
        '[Peer]', `PublicKey = ${p2.publicKey}`, 'AllowedIPs = 10.7.0.0/24', 'Endpoint = 198.18.7.7:7777', 'PersistentKeepalive = 7', '',
      ].join('\n'));
      const setconf = writeSecretFile(dir, 'sequence-set.conf', [
        '[Interface]', `PrivateKey = ${own.privateKey}`, 'ListenPort = 51820', 'FwMark = 0x51', '',
        '[Peer]', `PublicKey = ${p1.publicKey}`, `PresharedKey = ${genpsk()}`, 'AllowedIPs = 10.1.0.0/16', '',
      ].join('\n'));
      const IF = '%IF';
      const steps: string[][] = [
        ['set', IF, 'private-key', key, 'listen-port', '51820'],
        ['set', IF, 'fwmark', '1234'],
        ['set', IF, 'peer', p1.publicKey, 'allowed-ips', '10.1.0.0/16,fd00:1::/64', 'endpoint', '198.18.9.9:51820', 'persistent-keepalive', '25'],
        ['set', IF, 'peer', p2.publicKey, 'preshared-key', psk, 'allowed-ips', '10.2.3.4/8,fd00:2::1/48', 'endpoint', '[2001:db8::1]:12345'],
        ['set', IF, 'peer', p3.publicKey, 'allowed-ips', '10.1.2.0/24'],
        ['set', IF, 'peer', p3.publicKey, 'allowed-ips', '10.1.0.0/16,10.1.2.0/24'],
        ['set', IF, 'peer', p1.publicKey, 'allowed-ips', '+192.168.1.0/24'],
        ['set', IF, 'peer', p1.publicKey, 'allowed-ips', '-fd00:1::/64'],
        ['set', IF, 'peer', p1.publicKey, 'endpoint', '198.18.9.10:1'],
        ['set', IF, 'peer', p1.publicKey, 'endpoint', '[::ffff:198.18.9.11]:7'],
        ['set', IF, 'peer', p2.publicKey, 'preshared-key', '/dev/null', 'persistent-keepalive', 'off'],
        ['set', IF, 'peer', p2.publicKey, 'allowed-ips', ''],
        ['set', IF, 'peer', own.publicKey, 'allowed-ips', '10.99.0.0/24'],
        ['set', IF, 'peer', p4.publicKey, 'allowed-ips', '0.0.0.0/0,::/0', 'persistent-keepalive', '1'],
        ['set', IF, 'peer', p4.publicKey, 'allowed-ips', '10.5.0.0/16,10.5.0.0/16,10.5.1.2/32,::/0', 'persistent-keepalive', '65535'],
        ['set', IF, 'peer', p2.publicKey, 'allowed-ips', '0.0.0.0/0,::/0'],
        ['set', IF, 'fwmark', '0xffffffff'],
        // A private key whose public key is a peer's: wireguard-go drops that peer.
        ['set', IF, 'private-key', p3Key],
        ['set', IF, 'private-key', key],
        ['addconf', IF, addconf],
        ['set', IF, 'peer', p1.publicKey, 'remove'],
        ['set', IF, 'fwmark', 'off'],
        ['set', IF, 'peer', p3.publicKey, 'remove', 'peer', p4.publicKey, 'remove'],
        ['setconf', IF, setconf],
        ['set', IF, 'private-key', '/dev/null'],
      ];
      for (const [index, step] of steps.entries()) {
        const results = [tswg, go].map((node) => wg(node.ns, step.map((arg) => (arg === IF ? node.name : arg))));
        const what = `step ${index + 1}: wg ${step.join(' ')}`;
        expect(results[0]!.status, `${what}\n${describeResult(results[0]!)}`).toBe(results[1]!.status);
        expect(generic(results[0]!.stderr, tswg.name), what).toBe(generic(results[1]!.stderr, go.name));
        expect(configOf(parseDump(dumpOf(tswg))), `${what}: wg show dump`).toBe(configOf(parseDump(dumpOf(go))));
        expect(normaliseShowconf(showconfOf(tswg)), `${what}: wg showconf`).toBe(normaliseShowconf(showconfOf(go)));
      }
    });
  });

  describe('wg-quick with WG_QUICK_USERSPACE_IMPLEMENTATION=tswg', () => {
    interface QuickSetup {
      nsA: string;
      nsB: string;
      name: string;
      file: string;
      peer: Node;
      inner: { a4: string; a6: string; b4: string; b6: string; beyond: string; beyondNet: string };
    }

    /**
     * nsA (wg-quick, tswg) ── veth ── nsB (wireguard-go). The inner /24 is
     * 198.19.N.0/24; B also answers on 198.19.M.1, in a /24 that only the
     * AllowedIPs (and so wg-quick's route) send into the tunnel.
     */
    async function quickSetup(options: { allowedIps: (inner: QuickSetup['inner']) => string; endpointVia: 'link' | 'default-route' }): Promise<QuickSetup> {
      const nsA = createNamespace();
      const nsB = createNamespace();
      const veth = createVethPair(nsB, { hostNamespace: nsA });
      const outer = randomBenchmarkSubnet30();
      addressAndUp(nsA, veth.host.name, `${outer.first}/30`);
      addressAndUp(nsB, veth.peer.name, `${outer.second}/30`);
      let endpoint = outer.second;
      if (options.endpointVia === 'default-route') {
        // The endpoint is reachable only through the main table's default route, so wg-quick's
        // policy routing sends the encrypted packets into the tunnel unless they carry the fwmark.
        const far = randomBenchmarkSubnet30();
        ip(nsB, 'addr', 'add', `${far.first}/32`, 'dev', 'lo');
        ip(nsA, 'route', 'add', 'default', 'via', outer.second, 'dev', veth.host.name);
        endpoint = far.first;
      }
      const n = 1 + Math.floor(Math.random() * 120);
      const inner = { a4: `198.19.${n}.1`, a6: `fd19:0:0:${n.toString(16)}::1`, b4: `198.19.${n}.2`, b6: `fd19:0:0:${n.toString(16)}::2`, beyond: `198.19.${n + 128}.1`, beyondNet: `198.19.${n + 128}.0/24` };

      const peer = await startNode('wireguard-go', nsB);
      const keysA = wgKeyPair();
      const keysB = wgKeyPair();
      wgOk(nsB, 'set', peer.name, 'private-key', writeSecretFile(dir, `${peer.name}.key`, `${keysB.privateKey}\n`), 'listen-port', '51820',
        'peer', keysA.publicKey, 'allowed-ips', `${inner.a4}/32,${inner.a6}/128`);
      ip(nsB, 'addr', 'add', `${inner.b4}/24`, 'dev', peer.name);
      ip(nsB, 'addr', 'add', `${inner.b6}/64`, 'dev', peer.name, 'nodad');
      ip(nsB, 'addr', 'add', `${inner.beyond}/24`, 'dev', peer.name);
      ip(nsB, 'link', 'set', 'dev', peer.name, 'up');

      const name = uniqueName();
      interfacesUsed.push(name);
      trackDaemon(name);
      const file = writeSecretFile(
        dir,
        `${name}.conf`,
        [
          '[Interface]',
          `PrivateKey = ${keysA.privateKey}`,
          `Address = ${inner.a4}/24, ${inner.a6}/64`,
          'MTU = 1380',
          'ListenPort = 51821',
          '',
          '[Peer]',
          `PublicKey = ${keysB.publicKey}`,
          `AllowedIPs = ${options.allowedIps(inner)}`,
          `Endpoint = ${endpoint}:51820`,
          'PersistentKeepalive = 5',
          '',
        ].join('\n'),
      );
      return { nsA, nsB, name, file, peer, inner };
    }

    function wgQuick(setup: QuickSetup, action: 'up' | 'down'): CommandResult {
      return runCommand(
        setup.nsA,
        'env',
        [`WG_QUICK_USERSPACE_IMPLEMENTATION=${TSWG_BIN}`, 'WG_ENDPOINT_RESOLUTION_RETRIES=0', 'wg-quick', action, setup.file],
        { env: cleanEnv(), timeoutMs: 30_000 },
      );
    }

    function latestHandshake(setup: QuickSetup): number {
      const dump = parseDump(wgOk(setup.nsA, 'show', setup.name, 'dump'));
      return dump.peers[0]?.latestHandshake ?? 0;
    }

    async function expectDownCleanly(setup: QuickSetup): Promise<void> {
      const down = wgQuick(setup, 'down');
      expect(down.status, describeResult(down)).toBe(0);
      expect(linkExists(setup.nsA, setup.name)).toBe(false);
      await waitFor(() => daemonPids(setup.name).length === 0, `tswg ${setup.name} to exit after wg-quick down`, EXIT_WITHIN_MS);
      await waitFor(() => !pathExists(socketPath(setup.name)), `${socketPath(setup.name)} to be removed`, 1000);
    }

    it('up: addresses, MTU 1380, the route to the extra /24, keepalive; a handshake without traffic; ping through; down removes everything', async () => {
      const setup = await quickSetup({ allowedIps: (inner) => `${inner.b4}/32, ${inner.b6}/128, ${inner.beyondNet}`, endpointVia: 'link' });
      const up = wgQuick(setup, 'up');
      expect(up.status, describeResult(up)).toBe(0);
      expect(up.stderr).toContain('Falling back to slow userspace implementation');
      expect(up.stderr).toContain(`[#] ${TSWG_BIN} ${setup.name}\n`);
      expect(daemonPids(setup.name)).toHaveLength(1);
      expect(isSocket(socketPath(setup.name))).toBe(true);

      const details = linkDetails(setup.nsA, setup.name)!;
      expect(details).toMatch(/\bmtu 1380\b/);
      expect(details).toMatch(/<POINTOPOINT,MULTICAST,NOARP,UP,LOWER_UP>/);
      const addresses = ip(setup.nsA, '-o', 'addr', 'show', 'dev', setup.name);
      expect(addresses).toContain(`inet ${setup.inner.a4}/24`);
      expect(addresses).toContain(`inet6 ${setup.inner.a6}/64`);
      expect(ip(setup.nsA, '-4', 'route', 'show', setup.inner.beyondNet)).toMatch(new RegExp(`dev ${setup.name}\\b`));
      expect(ip(setup.nsA, '-4', 'route', 'get', setup.inner.beyond)).toMatch(new RegExp(`dev ${setup.name}\\b`));
      const dump = parseDump(wgOk(setup.nsA, 'show', setup.name, 'dump'));
      expect(dump.listenPort).toBe('51821');
      expect(dump.peers).toHaveLength(1);
      expect(dump.peers[0]!.persistentKeepalive).toBe('5');
      expect(wgOk(setup.nsA, 'show', setup.name)).toContain('persistent keepalive: every 5 seconds');

      // PersistentKeepalive alone brings the handshake: nothing else is sent into the tunnel yet.
      await waitFor(() => latestHandshake(setup) > 0, 'a handshake driven by PersistentKeepalive', 10_000, 100);
      const fromB = parseDump(wgOk(setup.nsB, 'show', setup.peer.name, 'dump')).peers[0]!;
      expect(fromB.latestHandshake, 'wireguard-go saw the handshake too').toBeGreaterThan(0);

      const ping4 = runCommand(setup.nsA, 'ping', ['-c', '3', '-i', '0.2', '-W', '5', setup.inner.beyond]);
      expect(ping4.status, describeResult(ping4)).toBe(0);
      const ping6 = runCommand(setup.nsA, 'ping', ['-c', '3', '-i', '0.2', '-W', '5', setup.inner.b6]);
      expect(ping6.status, describeResult(ping6)).toBe(0);

      const again = wgQuick(setup, 'up');
      expect(again.status, 'a second up refuses: the interface exists').toBe(1);
      expect(again.stderr).toContain(`\`${setup.name}' already exists`);
      expect(daemonPids(setup.name)).toHaveLength(1);

      await expectDownCleanly(setup);
    });

    it('AllowedIPs 0.0.0.0/0, ::/0: wg-quick sets fwmark and policy routing; tswg marks its packets (SO_MARK), so pings reach an endpoint behind the default route; down removes rules and all', async () => {
      const setup = await quickSetup({ allowedIps: () => '0.0.0.0/0, ::/0', endpointVia: 'default-route' });
      const up = wgQuick(setup, 'up');
      expect(up.status, describeResult(up)).toBe(0);
      expect(up.stderr).toContain(`[#] wg set ${setup.name} fwmark 51820`);
      expect(wgOk(setup.nsA, 'show', setup.name, 'fwmark').trim()).toBe('0xca6c');
      expect(ip(setup.nsA, '-4', 'rule', 'show')).toMatch(/not from all fwmark 0xca6c lookup 51820/);
      expect(ip(setup.nsA, '-6', 'rule', 'show')).toMatch(/not from all fwmark 0xca6c lookup 51820/);
      expect(ip(setup.nsA, '-4', 'route', 'show', 'table', '51820')).toMatch(new RegExp(`^default dev ${setup.name}\\b`, 'm'));

      // wg-quick brings the link up (and so the first handshake goes out) before it adds the policy
      // rules; the pings below are sent after them: each encrypted packet must carry the fwmark, or
      // the "not fwmark 51820" rule routes it back into the tunnel and nothing arrives.
      await waitFor(() => latestHandshake(setup) > 0, 'a handshake with the endpoint behind the default route', 10_000, 100);
      for (const target of [setup.inner.b4, setup.inner.beyond, setup.inner.b6]) {
        const result = runCommand(setup.nsA, 'ping', ['-c', '2', '-i', '0.2', '-W', '5', target]);
        expect(result.status, `ping ${target}\n${describeResult(result)}`).toBe(0);
      }

      await expectDownCleanly(setup);
      expect(ip(setup.nsA, '-4', 'rule', 'show')).not.toMatch(/51820|suppress_prefixlength/);
      expect(ip(setup.nsA, '-6', 'rule', 'show')).not.toMatch(/51820|suppress_prefixlength/);
      expect(runCommand(setup.nsA, 'nft', ['list', 'tables']).stdout).not.toContain(`wg-quick-${setup.name}`);
    });
  });
});
