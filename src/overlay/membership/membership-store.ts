/**
 * What the etcd backend remembers in <data-dir>/membership.json: the lease
 * ids (a restarted node renews its own leases instead of flapping out and
 * back in), its slice and the peers it last knew. With those, a node that
 * restarts while etcd is unreachable still sets up its slice and forwards to
 * the peers it had. No secrets: lease ids, slices and public keys only.
 */
import { join } from 'node:path';
import { MEMBERSHIP_FILE_NAME } from '../constants.js';
import { OverlayError } from '../errors.js';
import type { PeerSpec } from '../protocol.js';
import { readJsonFile, writeJsonAtomic } from '../state-store.js';

export interface SavedMembership {
  version: 1;
  deployment: string;
  nodeId: string;
  clusterCidr: string;
  slice: string | null;
  allocationLeaseId: string | null;
  presenceLeaseId: string | null;
  /** The etcd revision the peers below were seen at. */
  revision: number;
  peers: Array<{ nodeId: string; spec: PeerSpec }>;
}

export class MembershipStore {
  readonly path: string;

  constructor(dataDir: string) {
    this.path = join(dataDir, MEMBERSHIP_FILE_NAME);
  }

  /** The saved state for this deployment and node; null when there is none (or it belongs to another one). */
  load(deployment: string, nodeId: string): SavedMembership | null {
    let saved: SavedMembership | null;
    try {
      saved = readJsonFile<SavedMembership>(this.path);
    } catch (error) {
      throw new OverlayError(`${this.path}: ${(error as Error).message}; move it away (the slice and peers are then taken from etcd)`);
    }
    if (saved === null) return null;
    if (saved.version !== 1 || typeof saved !== 'object' || !Array.isArray(saved.peers)) {
      throw new OverlayError(`${this.path} is corrupt: not a version 1 membership file; move it away (the slice and peers are then taken from etcd)`);
    }
    if (saved.deployment !== deployment || saved.nodeId !== nodeId) return null;
    return saved;
  }

  save(state: SavedMembership): void {
    writeJsonAtomic(this.path, state);
  }
}
