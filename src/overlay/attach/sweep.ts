/**
 * Orphan veths: veth-<pid>-<tag> / vc-<pid>-<tag> links whose process is
 * gone. A container's exit normally takes its veth pair with its namespace;
 * what survives is a pair whose namespace something else still holds, or a
 * vc-… end a crash left before it was moved. Swept at start-up and before
 * each attach.
 */
import { existsSync } from 'node:fs';
import { deleteLinkByName, listAllLinks } from '../../platform/network-config.js';
import { HOST_VETH_PREFIX, PENDING_VETH_PREFIX } from '../constants.js';

const VETH_NAME = new RegExp(`^(?:${HOST_VETH_PREFIX}|${PENDING_VETH_PREFIX})(\\d+)-[a-z]+$`);

/** The PID in a veth-<pid>-<tag> or vc-<pid>-<tag> name, null for any other name. */
function vethPid(name: string): number | null {
  const match = VETH_NAME.exec(name);
  return match === null ? null : Number(match[1]);
}

export function processAlive(pid: number): boolean {
  return existsSync(`/proc/${pid}`);
}

/** Delete every orphan veth; returns the names deleted. */
export async function sweepOrphanVeths(alive: (pid: number) => boolean = processAlive): Promise<string[]> {
  const swept: string[] = [];
  for (const { name } of await listAllLinks()) {
    const pid = vethPid(name);
    if (pid === null || alive(pid)) continue;
    await deleteLinkByName(name);
    swept.push(name);
  }
  return swept;
}
