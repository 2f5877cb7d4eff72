/**
 * Peers added over the control socket, per device ("global" or a dedicated
 * service's name), kept in `<data-dir>/peers.json` so a restarted node has
 * them again without waiting for its orchestrator: the next
 * SetupGlobalOverlay re-adds them. Each entry is the PeerSpec as last
 * changed (AddAllowedIp / RemoveAllowedIp edit its allowedIps). A peer that
 * comes from the config file is re-added from the file instead; only the
 * CIDRs added to it at run time (another node's service subnet) are kept,
 * and merged in when the file adds it again. No keys of ours are in it, only
 * the peers' public keys.
 */
import { join } from 'node:path';
import { writeFileAtomic } from './atomic-file.js';
import { PEERS_FILE_NAME, STATE_FILE_MODE } from './constants.js';
import { OverlayError } from './errors.js';
import type { PeerSpec } from './protocol.js';
import { readJsonFile } from './state-store.js';

export const GLOBAL_PEER_SCOPE = 'global';

type PeersDocument = { version: 1; scopes: Record<string, PeerSpec[]>; extras?: Record<string, Record<string, string[]>> };

export class RuntimePeers {
  readonly path: string;
  private scopes: Record<string, PeerSpec[]>;
  /** scope → public key → CIDRs added at run time to a peer this file does not hold (a config-file peer). */
  private extras: Record<string, Record<string, string[]>>;

  constructor(dataDir: string) {
    this.path = join(dataDir, PEERS_FILE_NAME);
    const saved = readJsonFile<PeersDocument>(this.path);
    if (saved !== null && (saved.version !== 1 || typeof saved.scopes !== 'object' || saved.scopes === null || Array.isArray(saved.scopes))) {
      throw new OverlayError(`${this.path} is corrupt: not a version 1 peer list; move it away (peers are then re-added by the orchestrator)`);
    }
    this.scopes = saved?.scopes ?? {};
    this.extras = saved?.extras ?? {};
  }

  /** CIDRs added at run time to a peer that is not recorded here. */
  extraAllowedIps(scope: string, publicKey: string): string[] {
    return this.extras[scope]?.[publicKey] ?? [];
  }

  /** Record a run-time AddAllowedIp / RemoveAllowedIp on a peer that is not recorded here. */
  changeExtra(scope: string, publicKey: string, cidr: string, how: 'add' | 'remove'): void {
    const list = this.extraAllowedIps(scope, publicKey).filter((c) => c !== cidr);
    if (how === 'add') list.push(cidr);
    const byKey = { ...(this.extras[scope] ?? {}) };
    if (list.length === 0) delete byKey[publicKey];
    else byKey[publicKey] = list;
    const extras = { ...this.extras };
    if (Object.keys(byKey).length === 0) delete extras[scope];
    else extras[scope] = byKey;
    this.commit(this.scopes, extras);
  }

  isRecorded(scope: string, publicKey: string): boolean {
    return this.peers(scope).some((p) => p.publicKey === publicKey);
  }

  peers(scope: string): PeerSpec[] {
    return this.scopes[scope] ?? [];
  }

  /** Add or replace the peer with this key. */
  upsert(scope: string, spec: PeerSpec): void {
    this.write(scope, [...this.peers(scope).filter((p) => p.publicKey !== spec.publicKey), spec]);
  }

  remove(scope: string, publicKey: string): void {
    if (!this.peers(scope).some((p) => p.publicKey === publicKey)) return;
    this.write(scope, this.peers(scope).filter((p) => p.publicKey !== publicKey));
  }

  /** Replace the allowed IPs of a known peer (unknown peers are not recorded: they were not added here). */
  setAllowedIps(scope: string, publicKey: string, allowedIps: string[]): void {
    const peer = this.peers(scope).find((p) => p.publicKey === publicKey);
    if (peer === undefined) return;
    this.upsert(scope, { ...peer, allowedIps: allowedIps.join(',') });
  }

  dropScope(scope: string): void {
    if (this.scopes[scope] === undefined && this.extras[scope] === undefined) return;
    const next = { ...this.scopes };
    delete next[scope];
    const extras = { ...this.extras };
    delete extras[scope];
    this.commit(next, extras);
  }

  private write(scope: string, list: PeerSpec[]): void {
    const next = { ...this.scopes };
    if (list.length === 0) delete next[scope];
    else next[scope] = list;
    this.commit(next, this.extras);
  }

  /** Saved first: on a failed write the old list stays in memory too. */
  private commit(scopes: Record<string, PeerSpec[]>, extras: Record<string, Record<string, string[]>>): void {
    const doc: PeersDocument = { version: 1, scopes, extras };
    writeFileAtomic(this.path, `${JSON.stringify(doc, null, 2)}\n`, STATE_FILE_MODE);
    this.scopes = scopes;
    this.extras = extras;
  }
}
