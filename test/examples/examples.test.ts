/**
 * The files in examples/: the systemd unit passes `systemd-analyze verify` and
 * starts the node the CLI's own parser accepts; the wg-quick file configures a
 * real tswg interface through wg(8); the library program type-checks against
 * the package's exports and runs (its Device part as root, in a namespace).
 * Needs `npm run build` first.
 */
import { execFileSync, spawnSync } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, test } from 'vitest';
import { parseNodeDaemonArgs } from '../../src/cli/node.js';
import { DEFAULT_CONTROL_SOCKET } from '../../src/overlay/constants.js';

const ROOT = new URL('../../', import.meta.url).pathname;
const TSWG = join(ROOT, 'bin/tswg');
const scratch = mkdtempSync(join(tmpdir(), 'tswg-docs-examples-'));
const namespaces: string[] = [];

afterAll(() => {
  for (const namespace of namespaces) spawnSync('ip', ['netns', 'delete', namespace]);
  rmSync(scratch, { recursive: true, force: true });
});

function newNamespace(label: string): string {
  const name = `tswg-docs-${label}-${process.pid}`;
  execFileSync('ip', ['netns', 'add', name]);
  namespaces.push(name);
  execFileSync('ip', ['-n', name, 'link', 'set', 'lo', 'up']);
  return name;
}

function hasCommand(command: string): boolean {
  return spawnSync('sh', ['-c', `command -v ${command}`]).status === 0;
}

const isRoot = process.getuid?.() === 0;

describe('examples/tswg-node.service', () => {
  const unit = readFileSync(join(ROOT, 'examples/tswg-node.service'), 'utf8');
  const directive = (name: string): string[] => [...unit.matchAll(new RegExp(`^${name}=(.*)$`, 'gm'))].map((match) => match[1]!);

  test('is sandboxed: read-only system, network capabilities only, writable state and /run', () => {
    expect(directive('ProtectSystem')).toEqual(['strict']);
    expect(directive('CapabilityBoundingSet')[0]!.split(' ').sort()).toEqual(['CAP_NET_ADMIN', 'CAP_NET_BIND_SERVICE', 'CAP_NET_RAW']);
    const writable = directive('ReadWritePaths')[0]!.split(' ');
    expect(writable).toContain('/var/lib/tswg');
    expect(writable).toContain('/run');
    expect(directive('NoNewPrivileges')).toEqual(['yes']);
    expect(directive('DeviceAllow')).toEqual(['/dev/net/tun rw']);
  });

  test('starts the node with flags the CLI accepts, its data dir the unit\'s StateDirectory and its socket under /run', () => {
    const [execStart] = directive('ExecStart');
    const [binary, node, ...flags] = execStart!.split(/\s+/);
    expect(binary).toMatch(/\/tswg$/);
    expect(node).toBe('node');
    const args = parseNodeDaemonArgs(flags);
    expect(args.dataDir).toBe(`/var/lib/${directive('StateDirectory')[0]}`);
    expect(args.controlPath).toBe(DEFAULT_CONTROL_SOCKET);
    expect(DEFAULT_CONTROL_SOCKET.startsWith(`/run/${directive('RuntimeDirectory')[0]}/`)).toBe(true);
    expect(directive('RestartPreventExitStatus')).toEqual(['2']);
  });

  // CI (Debian) has systemd; a minimal container may not ship systemd-analyze, and then there is nothing to run it with.
  test.skipIf(!hasCommand('systemd-analyze'))('passes systemd-analyze verify with no warning', () => {
    // verify insists that ExecStart's binary exists: point it at this checkout's.
    const path = join(scratch, 'tswg-node.service');
    writeFileSync(path, unit.replaceAll('/usr/local/bin/tswg', TSWG));
    const out = spawnSync('systemd-analyze', ['verify', path], { encoding: 'utf8' });
    expect(out.status, out.stderr).toBe(0);
    expect(out.stderr.split('\n').filter((line) => line.includes('tswg-node.service'))).toEqual([]);
  });

  test.skipIf(!hasCommand('systemd-analyze'))('a misspelt directive would be caught (the check can fail)', () => {
    const path = join(scratch, 'tswg-node-typo.service');
    writeFileSync(path, unit.replaceAll('/usr/local/bin/tswg', TSWG).replace('ProtectSystem=strict', 'ProtectSystem=strictly'));
    const out = spawnSync('systemd-analyze', ['verify', path], { encoding: 'utf8' });
    expect(out.stderr).toMatch(/tswg-node-typo\.service.*protect system/i);
  });
});

describe('examples/wg0.conf', () => {
  test.runIf(isRoot)('wg-quick strips it, and wg setconf applies it to a real tswg interface', () => {
    const stripped = execFileSync('wg-quick', ['strip', join(ROOT, 'examples/wg0.conf')], { encoding: 'utf8', stdio: ['ignore', 'pipe', 'ignore'] });
    const conf = join(scratch, 'wg0-stripped.conf');
    writeFileSync(conf, stripped, { mode: 0o600 });
    const namespace = newNamespace('wgq');
    const name = `tswgdocs${process.pid % 10000}`;
    execFileSync('ip', ['netns', 'exec', namespace, TSWG, name]);
    try {
      execFileSync('ip', ['netns', 'exec', namespace, 'wg', 'setconf', name, conf]);
      const shown = execFileSync('ip', ['netns', 'exec', namespace, 'wg', 'showconf', name], { encoding: 'utf8' });
      const privateKey = /^PrivateKey = (\S+)$/m.exec(readFileSync(join(ROOT, 'examples/wg0.conf'), 'utf8'))![1]!;
      expect(shown).toContain(`PrivateKey = ${privateKey}`);
      expect(shown).toContain('ListenPort = 51820');
      expect(shown).toMatch(/PublicKey = KCv7P0UZu8KJDEP96PRlyU\/AVTAJCm8d\/ODNyl5czxE=/);
      expect(shown).toContain('AllowedIPs = 10.0.0.2/32');
      expect(shown).toContain('Endpoint = 192.0.2.2:51820');
      expect(shown).toContain('PersistentKeepalive = 25');
    } finally {
      spawnSync('ip', ['-n', namespace, 'link', 'delete', name]);
    }
  });
});

describe('examples/library/tunnel-pair.ts', () => {
  test('type-checks against the package exports and runs: a handshake and a packet in memory, then a real Device as root', { timeout: 180_000 }, () => {
    const compile = spawnSync(join(ROOT, 'node_modules/.bin/tsc'), ['-p', join(ROOT, 'examples/tsconfig.json')], { encoding: 'utf8' });
    expect(compile.status, compile.stdout + compile.stderr).toBe(0);
    const program = join(ROOT, 'dist/examples/library/tunnel-pair.js');
    expect(existsSync(program)).toBe(true);
    const command = isRoot ? ['ip', ['netns', 'exec', newNamespace('lib'), process.execPath, program, `tswgdocsl${process.pid % 10000}`]] as const : [process.execPath, [program]] as const;
    const out = spawnSync(command[0], command[1], { encoding: 'utf8' });
    expect(out.status, out.stderr).toBe(0);
    expect(out.stdout).toMatch(/^in memory: .+: "hello over WireGuard"$/m);
    expect(out.stdout).toMatch(isRoot ? /^device: tswgdocsl\d+ listened on UDP port [1-9]\d*, then closed$/m : /^device: skipped/m);
  });
});
