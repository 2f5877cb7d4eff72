/**
 * The engine on a full disk: its data directory is a 16 KiB tmpfs, filled
 * up, so saving the state fails. Every request that saves must answer Err,
 * leave the state file byte for byte as it was (the private key with it) and
 * leave the engine's memory as the file is: once there is room again the
 * same requests give the answers they would have given the first time.
 *
 * Needs root (mount); fails, never skips.
 */
import { appendFileSync, readFileSync, readdirSync, rmSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { cleanup, createTempDir, requireRoot, run } from '../../scripts/lib/netns.js';
import { silentLogger } from '../../src/device/logger.js';
import { STATE_FILE_NAME } from '../../src/overlay/constants.js';
import { OverlayEngine } from '../../src/overlay/engine.js';

let mountPoint = '';
let mounted = false;
const FILLER = 'filler';

/** Append until the filesystem refuses: the disk is full. */
function fillUp(dir: string): void {
  const chunk = Buffer.alloc(1024, 0x61);
  for (let i = 0; i < 64; i++) {
    try {
      appendFileSync(join(dir, FILLER), chunk);
    } catch (error) {
      if ((error as NodeJS.ErrnoException).code === 'ENOSPC') return;
      throw error;
    }
  }
  throw new Error(`${dir} never filled up`);
}

beforeAll(() => {
  requireRoot('the full-disk engine test');
  mountPoint = createTempDir('tswg-full-disk-');
  run('mount', ['-t', 'tmpfs', '-o', 'size=16k,mode=0700', 'tswg-test', mountPoint]);
  mounted = true;
});

afterAll(() => {
  try {
    if (mounted) run('umount', [mountPoint]);
  } finally {
    cleanup();
  }
});

describe('a full disk', () => {
  it('answers Err to every request that saves, keeps the file and the key, and does not advance the state', async () => {
    const engine = new OverlayEngine({ dataDir: mountPoint, log: silentLogger, rootless: true });
    const first = await engine.handle({ type: 'AllocateIp', service: 'web', joinGlobal: false });
    expect(first).toEqual({ type: 'Ip', ip: '10.200.0.2' });
    const statePath = join(mountPoint, STATE_FILE_NAME);
    const before = readFileSync(statePath, 'utf8');
    const publicKey = engine.publicKey;

    fillUp(mountPoint);
    const allocated = await engine.handle({ type: 'AllocateIp', service: 'db', joinGlobal: false });
    expect(allocated).toMatchObject({ type: 'Err', message: expect.stringMatching(new RegExp(`^cannot write ${statePath}: .*ENOSPC.*previous file is unchanged`)) });
    expect(await engine.handle({ type: 'ReleaseIp', ip: '10.200.0.2' })).toMatchObject({ type: 'Err', message: expect.stringContaining(`cannot write ${statePath}`) });
    expect(await engine.handle({ type: 'SetLocalNodeId', nodeId: 7 })).toMatchObject({ type: 'Err', message: expect.stringContaining(`cannot write ${statePath}`) });

    expect(readFileSync(statePath, 'utf8')).toBe(before);
    expect(readdirSync(mountPoint).sort()).toEqual([FILLER, STATE_FILE_NAME].sort());
    expect(engine.publicKey).toBe(publicKey);
    // A new engine on the same directory reads the same identity and assignments.
    const reread = new OverlayEngine({ dataDir: mountPoint, log: silentLogger, rootless: true });
    expect(reread.publicKey).toBe(publicKey);

    // Room again: the failed requests were not half-done (10.200.0.3 was never handed out, .2 still held).
    rmSync(join(mountPoint, FILLER));
    expect(await engine.handle({ type: 'AllocateIp', service: 'db', joinGlobal: false })).toEqual({ type: 'Ip', ip: '10.200.0.3' });
    expect(await engine.handle({ type: 'ReleaseIp', ip: '10.200.0.2' })).toEqual({ type: 'Ok' });
    const saved = JSON.parse(readFileSync(statePath, 'utf8')) as { assignments: Record<string, string>; privateKey: string };
    expect(saved.assignments).toEqual({ '10.200.0.3': 'db' });
    expect(saved.privateKey).toBe((JSON.parse(before) as { privateKey: string }).privateKey);
  });
});
