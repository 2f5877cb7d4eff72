/** `tswg genkey|pubkey|genpsk` against the real wg(8). Needs `npm run build` first (npm test does it). */
import { execFileSync, spawnSync } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { existsSync } from 'node:fs';
import { describe, expect, test } from 'vitest';
import { encodeKey, publicKeyOf } from '../../src/noise/keys.js';

const TSWG = new URL('../../bin/tswg', import.meta.url).pathname;
const KEY_LINE = /^[A-Za-z0-9+/]{43}=\n$/;

function tswg(args: string[], input?: string) {
  return spawnSync(TSWG, args, { input, encoding: 'utf8' });
}

function wgPubkey(privateKey: string): string {
  return execFileSync('wg', ['pubkey'], { input: privateKey, encoding: 'utf8' });
}

// Every tswg run is a Node start-up, seconds each on a loaded 2-core machine; one test runs up to 11.
describe('key commands', { timeout: 300_000 }, () => {
  test('dist/ is built (npm test builds it)', () => {
    expect(existsSync(new URL('../../dist/src/cli/main.js', import.meta.url)), 'run `npm run build` before the CLI tests').toBe(true);
  });

  test('genkey prints a clamped base64 private key like wg genkey', () => {
    const out = tswg(['genkey']);
    expect(out.status).toBe(0);
    expect(out.stdout).toMatch(KEY_LINE);
    const key = Buffer.from(out.stdout.trim(), 'base64');
    expect(key[0]! & 7).toBe(0);
    expect(key[31]! & 0xc0).toBe(0x40);
  });

  test('genpsk prints a 32-byte base64 key', () => {
    const out = tswg(['genpsk']);
    expect(out.status).toBe(0);
    expect(out.stdout).toMatch(KEY_LINE);
  });

  // Each tswg run starts a Node process (seconds on a loaded machine): the command is checked on a
  // few keys chosen to cover clamping, the function behind it on many random ones.
  test('pubkey agrees with wg pubkey on keys clamped and not', () => {
    const clamped = randomBytes(32);
    clamped[0]! &= 248;
    clamped[31] = (clamped[31]! & 127) | 64;
    const unclamped = randomBytes(32);
    unclamped[0]! |= 7;
    unclamped[31]! |= 128;
    for (const key of [clamped, unclamped, Buffer.alloc(32), Buffer.alloc(32, 0xff)]) {
      const privateKey = `${key.toString('base64')}\n`;
      const ours = tswg(['pubkey'], privateKey);
      expect(ours.status).toBe(0);
      expect(ours.stdout).toBe(wgPubkey(privateKey));
    }
  });

  test('the key derivation behind pubkey agrees with wg pubkey on random keys', () => {
    for (let i = 0; i < 25; i++) {
      const key = randomBytes(32);
      expect(`${encodeKey(publicKeyOf(key))}\n`).toBe(wgPubkey(`${key.toString('base64')}\n`));
    }
  });

  test('pubkey of genkey output agrees with wg pubkey', () => {
    const privateKey = tswg(['genkey']).stdout;
    expect(tswg(['pubkey'], privateKey).stdout).toBe(wgPubkey(privateKey));
  });

  test.each([
    ['empty input', ''],
    ['too short', 'AAAA\n'],
    ['not base64', `${'!'.repeat(43)}=\n`],
    ['33 bytes', `${randomBytes(33).toString('base64')}\n`],
    ['two keys', `${randomBytes(32).toString('base64')} ${randomBytes(32).toString('base64')}\n`],
  ])('pubkey rejects a malformed key (%s) with exit code 1 and a clear message', (_name, input) => {
    const out = tswg(['pubkey'], input);
    expect(out.status).toBe(1);
    expect(out.stdout).toBe('');
    expect(out.stderr).toMatch(/^tswg: Key is not the correct length or format/);
  });

  test('--help lists the commands; an unknown option fails', () => {
    const help = tswg(['--help']);
    expect(help.status).toBe(0);
    expect(help.stdout).toMatch(/INTERFACE[\s\S]*genkey[\s\S]*pubkey[\s\S]*genpsk/);
    const bad = tswg(['--frobnicate']);
    expect(bad.status).toBe(2);
    expect(bad.stderr).toContain("unknown option '--frobnicate'");
  });

  test('exit status: 2 for usage errors, 1 for runtime failures, usage on stderr when no command is given', () => {
    const none = tswg([]);
    expect(none.status).toBe(2);
    expect(none.stdout).toBe('');
    expect(none.stderr).toMatch(/^Usage: tswg/);
    for (const args of [['genkey', 'extra'], ['node', '--frobnicate'], ['node', 'status', '--watch', '0'], ['node', 'frob'], ['node'], ['node', '--data-dir', '/tmp/x', '--metrics', 'nope'], ['-x'], ['a', 'b']]) {
      const out = tswg(args);
      expect(out.status, `${args.join(' ')}: ${out.stderr}`).toBe(2);
      expect(out.stderr).toMatch(/^tswg: /);
    }
    expect(tswg(['netcheck', '--frobnicate']).status).toBe(2);
    const noNode = tswg(['node', 'status', '--control', '/nonexistent/tswg.sock']);
    expect(noNode.status).toBe(1);
    expect(noNode.stderr).toContain('no tswg node is listening on /nonexistent/tswg.sock');
  });

  test('--version prints the package version', () => {
    const out = tswg(['--version']);
    expect(out.status).toBe(0);
    expect(out.stdout).toMatch(/^tswg v\d+\.\d+\.\d+\n$/);
  });

  test('version is a command, and no command word is ever taken as an interface name', () => {
    expect(tswg(['version']).stdout).toBe(tswg(['--version']).stdout);
    for (const word of ['version', 'node', 'netcheck', 'genkey', 'pubkey', 'genpsk', 'help']) {
      const out = tswg(['-f', word]);
      expect(out.status, word).toBe(2);
      expect(out.stderr).toContain(`'${word}' is a tswg command, not an interface name`);
      expect(existsSync(`/sys/class/net/${word}`)).toBe(false);
    }
  });
});
