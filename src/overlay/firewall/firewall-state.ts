/**
 * What the firewall changed that a crashed run cannot otherwise know
 * (`<data-dir>/firewall.json`, atomic writes): iptables-nft tables and
 * chains it created, rp_filter values before it, drop-ins it wrote. Written before
 * each change takes effect; the next start reverts from it, then deletes it.
 */
import { rmSync } from 'node:fs';
import { join } from 'node:path';
import { writeFileAtomic } from '../atomic-file.js';
import { FIREWALL_STATE_FILE_NAME, STATE_FILE_MODE } from '../constants.js';
import { readJsonFile } from '../state-store.js';

export interface FirewallState {
  version: 1;
  /** iptables-nft tables and built-in chains our rules created ("ip nat", "ip filter INPUT"). */
  created: string[];
  rpFilterBefore: Record<string, string>;
  dropIns: string[];
}

export function emptyFirewallState(): FirewallState {
  return { version: 1, created: [], rpFilterBefore: {}, dropIns: [] };
}

export class FirewallStateFile {
  readonly path: string;

  constructor(dataDir: string) {
    this.path = join(dataDir, FIREWALL_STATE_FILE_NAME);
  }

  load(): FirewallState {
    try {
      const saved = readJsonFile<Partial<FirewallState>>(this.path);
      if (saved === null || saved.version !== 1) return emptyFirewallState();
      return {
        version: 1,
        created: Array.isArray(saved.created) ? saved.created.filter((t) => typeof t === 'string') : [],
        rpFilterBefore: typeof saved.rpFilterBefore === 'object' && saved.rpFilterBefore !== null ? { ...saved.rpFilterBefore } : {},
        dropIns: Array.isArray(saved.dropIns) ? saved.dropIns.filter((p) => typeof p === 'string') : [],
      };
    } catch {
      // A corrupt file only loses crash recovery of these few settings.
      return emptyFirewallState();
    }
  }

  save(state: FirewallState): void {
    writeFileAtomic(this.path, `${JSON.stringify(state, null, 2)}\n`, STATE_FILE_MODE);
  }

  remove(): void {
    rmSync(this.path, { force: true });
  }
}
