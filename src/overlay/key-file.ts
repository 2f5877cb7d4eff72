/**
 * Private keys of the node's extra WireGuard devices, one file each
 * (`<data-dir>/keys/<interface>.key`, base64 as `wg genkey` prints it, mode
 * 0600 in a 0700 directory): a key never sits inside a JSON document that
 * gets copied into bug reports, and each file is written atomically.
 */
import { mkdirSync, readFileSync, rmSync } from 'node:fs';
import { join } from 'node:path';
import { decodeKey, encodeKey, generatePrivateKey } from '../noise/index.js';
import { writeFileAtomic } from './atomic-file.js';
import { KEY_DIRECTORY_NAME, STATE_FILE_MODE } from './constants.js';
import { OverlayError } from './errors.js';

export class KeyFiles {
  readonly directory: string;

  constructor(dataDir: string) {
    this.directory = join(dataDir, KEY_DIRECTORY_NAME);
  }

  pathOf(name: string): string {
    if (!/^[A-Za-z0-9_-]+$/.test(name)) throw new OverlayError(`invalid key name ${JSON.stringify(name)}`);
    return join(this.directory, `${name}.key`);
  }

  /** The saved key, or null when there is none. A damaged file is an error naming it (the key is never guessed). */
  load(name: string): Uint8Array | null {
    const path = this.pathOf(name);
    let text: string;
    try {
      text = readFileSync(path, 'utf8');
    } catch (error) {
      if ((error as NodeJS.ErrnoException).code === 'ENOENT') return null;
      throw new OverlayError(`cannot read ${path}: ${(error as Error).message}`);
    }
    try {
      return decodeKey(text.trim(), 'private key');
    } catch {
      throw new OverlayError(`${path} does not hold a base64 WireGuard private key; move it away to get a new key`);
    }
  }

  /** The saved key, or a new one saved first. */
  loadOrCreate(name: string): Uint8Array {
    const existing = this.load(name);
    if (existing !== null) return existing;
    const key = generatePrivateKey();
    try {
      mkdirSync(this.directory, { recursive: true, mode: 0o700 });
    } catch (error) {
      throw new OverlayError(`cannot create ${this.directory}: ${(error as Error).message}`);
    }
    writeFileAtomic(this.pathOf(name), `${encodeKey(key)}\n`, STATE_FILE_MODE);
    return key;
  }

  remove(name: string): void {
    rmSync(this.pathOf(name), { force: true });
  }
}
