/**
 * The state file: atomic writes (a crash before the rename leaves the old
 * file intact and its temp file is ignored), mode 0600, first-run identity,
 * restart keeps it, corrupt files give a clear error naming the file.
 */
import { chmodSync, mkdtempSync, readdirSync, readFileSync, rmSync, statSync, symlinkSync, writeFileSync, mkdirSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, afterEach, describe, expect, it, vi } from 'vitest';
import { decodeKey, encodeKey, publicKeyOf } from '../../src/noise/keys.js';
import { OverlayError } from '../../src/overlay/errors.js';
import { readJsonFile, StateStore, TEMP_FILE_PREFIX, writeJsonAtomic, type NodeState } from '../../src/overlay/state-store.js';

/**
 * When set, node:fs renameSync throws as if the process died just before the
 * rename; writeSync takes at most `writeChunk` bytes a call, and nothing at
 * all once `writeBudget` bytes are spent (a disk filling up). mkdirSync calls
 * are counted, and past MKDIR_SPIN_LIMIT it throws, so a spin ends in a failure.
 */
const crash = vi.hoisted(() => ({ beforeRename: false, writeChunk: Infinity, writeBudget: Infinity, mkdirCalls: 0 }));
const MKDIR_SPIN_LIMIT = 1000;
vi.mock('node:fs', async (importOriginal) => {
  const fs = await importOriginal<typeof import('node:fs')>();
  return {
    ...fs,
    mkdirSync: (...args: Parameters<typeof fs.mkdirSync>) => {
      if (++crash.mkdirCalls > MKDIR_SPIN_LIMIT) throw new Error(`mkdirSync called over ${MKDIR_SPIN_LIMIT} times: spinning`);
      return fs.mkdirSync(...args);
    },
    renameSync: (from: string, to: string) => {
      if (crash.beforeRename) throw Object.assign(new Error('simulated crash before rename'), { code: 'EIO' });
      return fs.renameSync(from, to);
    },
    writeSync: (fd: number, buffer: Uint8Array, offset?: number, length?: number) => {
      const start = offset ?? 0;
      const wanted = Math.min(length ?? buffer.length - start, crash.writeChunk, crash.writeBudget);
      if (wanted <= 0) return 0;
      const written = fs.writeSync(fd, buffer, start, wanted);
      crash.writeBudget -= written;
      return written;
    },
  };
});

const root = mkdtempSync(join(tmpdir(), 'tswg-core-state-'));
let counter = 0;
const freshDir = () => join(root, `d${counter++}`);

afterEach(() => {
  crash.beforeRename = false;
  crash.writeChunk = Infinity;
  crash.writeBudget = Infinity;
});
afterAll(() => rmSync(root, { recursive: true, force: true }));

describe('writeJsonAtomic / readJsonFile', () => {
  it('round-trips, mode 0600, no temp file left, newline-terminated', () => {
    const dir = freshDir();
    mkdirSync(dir);
    const path = join(dir, 'x.json');
    writeJsonAtomic(path, { a: 1, b: ['c'] });
    expect(readJsonFile(path)).toEqual({ a: 1, b: ['c'] });
    expect(statSync(path).mode & 0o777).toBe(0o600);
    expect(readdirSync(dir)).toEqual(['x.json']);
    expect(readFileSync(path, 'utf8').endsWith('}\n')).toBe(true);
    writeJsonAtomic(path, { a: 2 });
    expect(readJsonFile(path)).toEqual({ a: 2 });
    expect(statSync(path).mode & 0o777).toBe(0o600);
  });

  it('missing file → null', () => {
    expect(readJsonFile(join(root, 'nope.json'))).toBeNull();
  });

  it('a crash before the rename leaves the old file intact and no temp file', () => {
    const dir = freshDir();
    mkdirSync(dir);
    const path = join(dir, 'state.json');
    writeJsonAtomic(path, { generation: 1 });
    crash.beforeRename = true;
    expect(() => writeJsonAtomic(path, { generation: 2 })).toThrow(OverlayError);
    expect(() => writeJsonAtomic(path, { generation: 2 })).toThrow(`cannot write ${path}: simulated crash before rename`);
    expect(readJsonFile(path)).toEqual({ generation: 1 });
    expect(readdirSync(dir)).toEqual(['state.json']);
  });

  it('corrupt JSON → OverlayError naming the file', () => {
    const path = join(root, 'corrupt.json');
    writeFileSync(path, '{"version": 1, "privateKey": ');
    expect(() => readJsonFile(path)).toThrow(OverlayError);
    expect(() => readJsonFile(path)).toThrow(new RegExp(`^${path.replace(/[.*+?^${}()|[\]\\/]/g, '\\$&')} is corrupt \\(not valid JSON`));
  });

  it.each([
    ['a bad token', '{"privateKey": "SECRETKEYBYTES" x}', /not valid JSON at byte 32\)/],
    ['an unterminated string', '{"privateKey": "SECRETKEYBYTES', /not valid JSON at byte 30\)/],
    ['truncated', '{"privateKey": "SECRETKEYBYTES",', /not valid JSON at byte 32\)/],
    ['empty', '', /not valid JSON: it ends early, at byte 0\)/],
    ['not JSON at all', 'SECRETKEYBYTES', /\(not valid JSON\)/],
  ])('a corrupt file (%s): the error says where, never what the file holds', (_what, text, place) => {
    const path = join(root, 'foreign.json');
    writeFileSync(path, text);
    let message = '';
    try {
      readJsonFile(path);
    } catch (error) {
      message = (error as Error).message;
    }
    expect(message).toMatch(place);
    expect(message).not.toContain('SECRET');
  });

  it('a short write is continued until everything is written', () => {
    const dir = freshDir();
    mkdirSync(dir);
    const path = join(dir, 'state.json');
    crash.writeChunk = 7;
    writeJsonAtomic(path, { key: 'x'.repeat(100) });
    expect(readJsonFile(path)).toEqual({ key: 'x'.repeat(100) });
  });

  it('a full disk mid-write fails, keeps the old file whole and removes the temp file', () => {
    const dir = freshDir();
    mkdirSync(dir);
    const path = join(dir, 'state.json');
    writeJsonAtomic(path, { generation: 1, key: 'k'.repeat(64) });
    crash.writeChunk = 10;
    crash.writeBudget = 30;
    expect(() => writeJsonAtomic(path, { generation: 2, key: 'k'.repeat(64) })).toThrow(/cannot write .*wrote 30 of \d+ bytes.*previous file is unchanged/);
    expect(readJsonFile(path)).toEqual({ generation: 1, key: 'k'.repeat(64) });
    expect(readdirSync(dir)).toEqual(['state.json']);
  });

  it('an unreadable path (a directory) → OverlayError naming it', () => {
    const dir = freshDir();
    mkdirSync(dir);
    expect(() => readJsonFile(dir)).toThrow(`cannot read ${dir}`);
  });
});

describe('StateStore', () => {
  it('first run creates keys and an instance id and saves them (0600); a restart keeps them', () => {
    const dir = freshDir();
    const first = new StateStore(dir).load();
    expect(first.version).toBe(1);
    expect(first.instanceId).toMatch(/^[0-9a-f]{8}$/);
    expect(first.publicKey).toBe(encodeKey(publicKeyOf(decodeKey(first.privateKey))));
    expect(first.assignments).toEqual({});
    const store = new StateStore(dir);
    expect(store.path).toBe(join(dir, 'node-state.json'));
    expect(statSync(store.path).mode & 0o777).toBe(0o600);
    const again = store.load();
    expect(again).toEqual(first);
    expect(new StateStore(freshDir()).load().privateKey).not.toBe(first.privateKey);
  });

  it('save + load round-trips every field', () => {
    const dir = freshDir();
    const store = new StateStore(dir);
    const state: NodeState = {
      ...store.load(),
      deployment: 'prod',
      interfaceName: 'zl-prod-7-g',
      wgPort: 51820,
      clusterCidr: '10.200.0.0/16',
      sliceCidr: '10.200.1.0/26',
      nodeIp: '10.200.1.1',
      assignments: { '10.200.1.2': 'web', '10.200.1.3': 'db' },
      localNodeId: 42,
    };
    store.save(state);
    expect(new StateStore(dir).load()).toEqual(state);
  });

  it('a temp file left by a crash is ignored; the saved state loads', () => {
    const dir = freshDir();
    const store = new StateStore(dir);
    const saved = store.load();
    writeFileSync(join(dir, `${TEMP_FILE_PREFIX}node-state.json.999.deadbeef`), '{"version": 1, "privateKey": "trunc');
    expect(store.load()).toEqual(saved);
    // The next save still works.
    store.save({ ...saved, nodeIp: '10.200.0.1' });
    expect(store.load().nodeIp).toBe('10.200.0.1');
  });

  it('a crash during save keeps the previous identity', () => {
    const dir = freshDir();
    const store = new StateStore(dir);
    const saved = store.load();
    crash.beforeRename = true;
    expect(() => store.save({ ...saved, privateKey: encodeKey(new Uint8Array(32).fill(7)) })).toThrow(OverlayError);
    crash.beforeRename = false;
    expect(store.load()).toEqual(saved);
  });

  it.each([
    ['not JSON', '{{{', /node-state\.json is corrupt \(not valid JSON/],
    ['not an object', '[1,2]', /node-state\.json is corrupt: not a JSON object/],
    ['wrong version', '{"version": 2}', /unsupported version \(expected 1\)/],
    ['no private key', '{"version": 1, "instanceId": "a", "assignments": {}}', /privateKey is missing/],
    ['bad private key', '{"version": 1, "privateKey": "abc", "instanceId": "a", "assignments": {}}', /privateKey is not a base64 WireGuard key/],
    ['no instance id', `{"version": 1, "privateKey": "${'A'.repeat(43)}=", "assignments": {}}`, /instanceId is missing/],
    ['bad wgPort', `{"version": 1, "privateKey": "${'A'.repeat(43)}=", "instanceId": "a", "wgPort": "x"}`, /wgPort is not an integer/],
    ['bad assignment', `{"version": 1, "privateKey": "${'A'.repeat(43)}=", "instanceId": "a", "assignments": {"10.0.0.2": 5}}`, /assignment #1 is not a string/],
  ])('corrupt state (%s) → OverlayError naming the file and the problem', (_what, text, pattern) => {
    const dir = freshDir();
    mkdirSync(dir);
    writeFileSync(join(dir, 'node-state.json'), text);
    const store = new StateStore(dir);
    expect(() => store.load()).toThrow(OverlayError);
    expect(() => store.load()).toThrow(pattern);
    expect(() => store.load()).toThrow(store.path);
    // The corrupt file is left for a person to look at, never overwritten.
    expect(readFileSync(store.path, 'utf8')).toBe(text);
  });

  it('refuses a data directory that is a symbolic link or group/world-writable, naming it', () => {
    const real = freshDir();
    mkdirSync(real, { mode: 0o700 });
    const link = `${real}-link`;
    symlinkSync(real, link);
    expect(() => new StateStore(link).load()).toThrow(`data directory ${link} is a symbolic link`);
    for (const mode of [0o770, 0o707]) {
      const open = freshDir();
      mkdirSync(open);
      chmodSync(open, mode);
      expect(() => new StateStore(open).load()).toThrow(new RegExp(`data directory ${open} is group- or world-writable \\(mode 0${mode.toString(8)}\\)`));
      expect(readdirSync(open)).toEqual([]);
    }
    const file = join(root, 'plain-file');
    writeFileSync(file, 'x');
    expect(() => new StateStore(file).load()).toThrow(`data directory ${file} is not a directory`);
  });

  it('creates a missing nested data directory 0700, and gives up at once where mkdir cannot work (/proc)', () => {
    const nested = join(freshDir(), 'a', 'b');
    new StateStore(nested).load();
    expect(statSync(nested).mode & 0o777).toBe(0o700);
    crash.mkdirCalls = 0;
    expect(() => new StateStore('/proc/tswg-no-such-dir/x').load()).toThrow(/cannot create data directory \/proc\/tswg-no-such-dir\/x: ENOENT/);
    // At once: each of the three levels tried at most twice, however slow the machine.
    expect(crash.mkdirCalls).toBeLessThanOrEqual(6);
  });

  it('re-derives the public key from the private key (a hand-edited publicKey cannot disagree)', () => {
    const dir = freshDir();
    const store = new StateStore(dir);
    const saved = store.load();
    writeFileSync(store.path, JSON.stringify({ ...saved, publicKey: 'wrong' }));
    expect(store.load().publicKey).toBe(saved.publicKey);
  });
});
