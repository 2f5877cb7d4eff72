/**
 * The command line's manners: check-config, the secret-key output warnings,
 * JSON logs and wireguard-go's way of naming peers. Needs `npm run build` first.
 */
import { execFileSync, spawn, spawnSync, type SpawnSyncReturns } from 'node:child_process';
import { chmodSync, closeSync, existsSync, mkdtempSync, openSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, test } from 'vitest';
import { createLogger, peerLogName } from '../../src/device/logger.js';
import { encodeKey, generatePrivateKey, publicKeyOf } from '../../src/noise/index.js';

const TSWG = new URL('../../bin/tswg', import.meta.url).pathname;
const directory = mkdtempSync(join(tmpdir(), 'tswg-docs-cli-'));
afterAll(() => rmSync(directory, { recursive: true, force: true }));

function tswg(args: string[], options: { env?: NodeJS.ProcessEnv; stdout?: number } = {}) {
  return spawnSync(TSWG, args, {
    encoding: 'utf8',
    env: { ...process.env, ...options.env },
    stdio: ['ignore', options.stdout ?? 'pipe', 'pipe'],
  });
}

async function waitFor(condition: () => boolean, timeoutMs = 10_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!condition()) {
    if (Date.now() > deadline) throw new Error('timed out waiting');
    await new Promise((resolve) => setTimeout(resolve, 50));
  }
}

function writeConfig(name: string, text: string): string {
  const path = join(directory, name);
  writeFileSync(path, text);
  return path;
}

describe('tswg node check-config', () => {
  const peerKey = encodeKey(publicKeyOf(generatePrivateKey()));

  test('a valid file: exit 0 and a summary of what the node would set up, touching no interface', () => {
    const path = writeConfig(
      'good.yaml',
      `deployment: demo\nclusterCidr: 10.99.0.0/16\nsliceCidr: 10.99.1.0/26\nwgPort: 51999\npeers:\n  - publicKey: ${peerKey}\n    endpoint: 192.0.2.2:51820\n    allowedIps: [10.99.2.0/26]\n`,
    );
    // In a namespace of its own, so that what it leaves behind is all there is to see (other tests add links to the host's).
    const namespace = `tswg-docs-cc-${process.pid}`;
    execFileSync('ip', ['netns', 'add', namespace]);
    let out: SpawnSyncReturns<string>;
    let links: string;
    try {
      out = spawnSync('ip', ['netns', 'exec', namespace, TSWG, 'node', 'check-config', path], { encoding: 'utf8' });
      links = execFileSync('ip', ['-n', namespace, '-o', 'link', 'show'], { encoding: 'utf8' });
    } finally {
      execFileSync('ip', ['netns', 'delete', namespace]);
    }
    expect(out.status, out.stderr).toBe(0);
    expect(out.stderr).toBe('');
    expect(links.trim().split('\n').map((line) => line.split(':')[1]!.trim())).toEqual(['lo']);
    expect(out.stdout).toMatch(new RegExp(`^${path}: ok\n`));
    expect(out.stdout).toMatch(/deployment\s+demo/);
    expect(out.stdout).toMatch(/slice\s+10\.99\.1\.0\/26/);
    expect(out.stdout).toMatch(/port\s+51999/);
    expect(out.stdout).toMatch(/peers\s+1/);
    expect(out.stdout).toMatch(/membership\s+static/);
  });

  test.each([
    ['a bad peer key', `deployment: demo\npeers:\n  - publicKey: abc\n`, /peers\[0\]\.publicKey/],
    ['an unknown field', `deployment: demo\nwgport: 1\n`, /wgport/],
    ['a port out of range', `deployment: demo\nwgPort: 70000\n`, /wgPort/],
    ['no deployment', `clusterCidr: 10.0.0.0/8\n`, /deployment/],
    ['not YAML', `deployment: [\n`, /not valid YAML or JSON/],
    ['a bad etcd endpoint', `deployment: demo\nmembership:\n  etcd: { endpoints: [ftp://x] }\n`, /membership\.etcd\.endpoints\[0\]/],
  ])('%s: exit 2, the file and the field named', (name, text, field) => {
    const path = writeConfig(`${name.replace(/\W/g, '-')}.yaml`, text);
    const out = tswg(['node', 'check-config', path]);
    expect(out.status).toBe(2);
    expect(out.stdout).toBe('');
    expect(out.stderr).toContain(path);
    expect(out.stderr).toMatch(field);
  });

  test('usage: no file, or two, is exit 2; a missing file is exit 2 naming it', () => {
    expect(tswg(['node', 'check-config']).status).toBe(2);
    expect(tswg(['node', 'check-config', 'a', 'b']).status).toBe(2);
    const missing = tswg(['node', 'check-config', join(directory, 'nope.yaml')]);
    expect(missing.status).toBe(2);
    expect(missing.stderr).toContain('nope.yaml');
  });
});

describe('secret key output warnings, as wg genkey gives them', () => {
  const WORLD_READABLE = /world accessible file/;

  test.each(['genkey', 'genpsk'])('%s into a world-readable file warns; into a 0600 file or a pipe it does not', (command) => {
    const open = join(directory, `${command}-open.key`);
    writeFileSync(open, '');
    chmodSync(open, 0o644);
    const fd = openSync(open, 'w');
    const loud = tswg([command], { stdout: fd });
    closeSync(fd);
    expect(loud.status).toBe(0);
    expect(loud.stderr).toMatch(WORLD_READABLE);
    expect(readFileSync(open, 'utf8')).toMatch(/^[A-Za-z0-9+/]{43}=\n$/);

    const closed = join(directory, `${command}-closed.key`);
    writeFileSync(closed, '', { mode: 0o600 });
    chmodSync(closed, 0o600);
    const privateFd = openSync(closed, 'w');
    const quiet = tswg([command], { stdout: privateFd });
    closeSync(privateFd);
    expect(quiet.stderr).toBe('');

    expect(tswg([command]).stderr).toBe('');
  });

  test('genkey on a terminal warns (run under script(1), which gives it a pseudo-terminal)', () => {
    const out = spawnSync('script', ['-qec', `${TSWG} genkey`, '/dev/null'], { encoding: 'utf8' });
    expect(out.status, out.stderr).toBe(0);
    expect(out.stdout).toMatch(/Warning: writing a secret key to a terminal/);
    expect(out.stdout).toMatch(/[A-Za-z0-9+/]{43}=/);
  });
});

describe('log lines', () => {
  test('peers are named as wireguard-go names them: the base64 key\'s first 4 and last 4 characters', () => {
    for (let i = 0; i < 20; i++) {
      const key = publicKeyOf(generatePrivateKey());
      const base64 = Buffer.from(key).toString('base64');
      // wireguard-go's Peer.String(): base64Key[0:4] + "…" + base64Key[39:43]
      const expected = `peer(${base64.substring(0, 4)}…${base64.substring(39, 43)})`;
      expect(peerLogName(key)).toBe(expected);
      expect(peerLogName(base64)).toBe(expected);
    }
  });

  test('the name is the one the real wireguard-go logs for the same key', async () => {
    const namespace = `tswg-docs-wgo-${process.pid}`;
    const name = `wgdocs${process.pid % 100000}`;
    const key = publicKeyOf(generatePrivateKey());
    execFileSync('ip', ['netns', 'add', namespace]);
    const child = spawn('ip', ['netns', 'exec', namespace, 'wireguard-go', '-f', name], { env: { ...process.env, LOG_LEVEL: 'verbose' }, stdio: ['ignore', 'pipe', 'pipe'] });
    let log = '';
    child.stdout.on('data', (chunk: Buffer) => (log += chunk.toString('utf8')));
    child.stderr.on('data', (chunk: Buffer) => (log += chunk.toString('utf8')));
    try {
      await waitFor(() => existsSync(`/var/run/wireguard/${name}.sock`));
      execFileSync('ip', ['netns', 'exec', namespace, 'wg', 'set', name, 'peer', encodeKey(key), 'allowed-ips', '10.9.0.2/32']);
      await waitFor(() => /peer\(/.test(log));
      expect(/peer\([^)]+\)/.exec(log)![0]).toBe(peerLogName(key));
    } finally {
      spawnSync('ip', ['-n', namespace, 'link', 'delete', name]);
      child.kill();
      spawnSync('ip', ['netns', 'delete', namespace]);
    }
  });

  test('LOG_FORMAT=json: one JSON object per line with time, level, interface and msg', () => {
    const lines: string[] = [];
    const log = createLogger('verbose', 'wg7', (line) => lines.push(line), 'json');
    log.verbose('handshake with "x"\nsecond line');
    log.error('failed');
    expect(lines).toHaveLength(2);
    for (const line of lines) expect(line.endsWith('\n') && !line.slice(0, -1).includes('\n')).toBe(true);
    const [first, second] = lines.map((line) => JSON.parse(line) as Record<string, string>);
    expect(first).toMatchObject({ level: 'debug', interface: 'wg7', msg: 'handshake with "x"\nsecond line' });
    expect(second).toMatchObject({ level: 'error', interface: 'wg7', msg: 'failed' });
    expect(Date.parse(first!.time!)).not.toBeNaN();
  });

  test('LOG_FORMAT=json reaches the commands: netcheck\'s verbose log is JSON lines on stderr, the text format otherwise', () => {
    // Long enough for one retransmission, which netcheck logs at verbose level.
    const args = ['netcheck', '--stun', '127.0.0.1:9', '--timeout-ms', '1500'];
    const json = tswg(args, { env: { LOG_LEVEL: 'verbose', LOG_FORMAT: 'json' } });
    const lines = json.stderr.split('\n').filter((line) => line.startsWith('{'));
    expect(lines.length).toBeGreaterThan(0);
    for (const line of lines) expect(JSON.parse(line)).toMatchObject({ level: expect.stringMatching(/^(debug|error)$/), interface: 'netcheck' });
    const text = tswg(args, { env: { LOG_LEVEL: 'verbose', LOG_FORMAT: '' } });
    expect(text.stderr).toMatch(/^DEBUG: \(netcheck\) /m);
  });
});
