/**
 * The value net.ipv4.ip_forward had before the node first changed it,
 * kept in `<data-dir>/sysctl-before.json` until the node puts it back. A
 * node killed with -9 never restores it; without this file the next run
 * would read its own "1" as the original and leave forwarding on for good.
 */
import { readFileSync, rmSync } from 'node:fs';
import { join } from 'node:path';
import { writeFileAtomic } from './atomic-file.js';
import { STATE_FILE_MODE, SYSCTL_SNAPSHOT_FILE_NAME } from './constants.js';

export class SysctlSnapshot {
  readonly path: string;

  constructor(dataDir: string) {
    this.path = join(dataDir, SYSCTL_SNAPSHOT_FILE_NAME);
  }

  /** The saved original, or null when no run has changed it (or the file is unreadable: then the live value is the best guess). */
  ipv4ForwardBefore(): string | null {
    try {
      const value = (JSON.parse(readFileSync(this.path, 'utf8')) as { ipv4Forward?: unknown }).ipv4Forward;
      return value === '0' || value === '1' ? value : null;
    } catch {
      return null;
    }
  }

  save(ipv4Forward: string): void {
    writeFileAtomic(this.path, `${JSON.stringify({ ipv4Forward })}\n`, STATE_FILE_MODE);
  }

  clear(): void {
    rmSync(this.path, { force: true });
  }
}
