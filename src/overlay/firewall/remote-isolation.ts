/**
 * Isolation-network members hosted by other nodes, by node (its global
 * public key): network name → addresses. The firewall fences them like local
 * members, so a packet from red to blue is dropped on the node that sends it
 * and on the node that receives it. Kept in `<data-dir>/remote-isolation.json`
 * (atomic writes) so a restarted node fences them before anyone tells it
 * again; a node's entry goes when that peer is removed.
 */
import { join } from 'node:path';
import { writeFileAtomic } from '../atomic-file.js';
import { REMOTE_ISOLATION_FILE_NAME, STATE_FILE_MODE } from '../constants.js';
import { OverlayError } from '../errors.js';
import { readJsonFile } from '../state-store.js';

export type IsolationNetworks = Record<string, string[]>;

type RemoteIsolationDocument = { version: 1; nodes: Record<string, IsolationNetworks> };

/** Same networks, same members, whatever the order. */
function canonical(networks: IsolationNetworks): IsolationNetworks {
  const out: IsolationNetworks = {};
  for (const name of Object.keys(networks).sort()) {
    const members = [...new Set(networks[name])].sort();
    if (members.length > 0) out[name] = members;
  }
  return out;
}

export class RemoteIsolation {
  readonly path: string;
  private nodes: Record<string, IsolationNetworks>;

  constructor(dataDir: string) {
    this.path = join(dataDir, REMOTE_ISOLATION_FILE_NAME);
    const saved = readJsonFile<RemoteIsolationDocument>(this.path);
    if (saved !== null && (saved.version !== 1 || typeof saved.nodes !== 'object' || saved.nodes === null || Array.isArray(saved.nodes))) {
      throw new OverlayError(`${this.path} is corrupt: not a version 1 member list; move it away (the orchestrator sends the members again)`);
    }
    this.nodes = saved?.nodes ?? {};
  }

  /** Replace what `node` hosts; returns whether anything changed. An empty map forgets the node. */
  set(node: string, networks: IsolationNetworks): boolean {
    const next = canonical(networks);
    const current = this.nodes[node];
    if (JSON.stringify(current ?? {}) === JSON.stringify(next)) return false;
    const nodes = { ...this.nodes };
    if (Object.keys(next).length === 0) delete nodes[node];
    else nodes[node] = next;
    this.commit(nodes);
    return true;
  }

  /** Forget a node (its peer was removed); returns whether it was known. */
  drop(node: string): boolean {
    return this.set(node, {});
  }

  /** Every remote member, one entry per address. */
  members(): Array<{ ip: string; network: string }> {
    return Object.values(this.nodes).flatMap((networks) => Object.entries(networks).flatMap(([network, ips]) => ips.map((ip) => ({ ip, network }))));
  }

  /** Saved first: on a failed write the old list stays in memory too. */
  private commit(nodes: Record<string, IsolationNetworks>): void {
    const doc: RemoteIsolationDocument = { version: 1, nodes };
    writeFileAtomic(this.path, `${JSON.stringify(doc, null, 2)}\n`, STATE_FILE_MODE);
    this.nodes = nodes;
  }
}
