/**
 * Host settings around the firewall, each recorded so revert (or the next
 * start after a crash) puts it back:
 *  - rp_filter loose (2) on the node's zl-* interfaces: strict reverse-path
 *    filtering drops overlay replies whose source the main table routes
 *    elsewhere (a peer's slice reached over another path);
 *  - drop-ins telling systemd-networkd and NetworkManager to leave zl-*
 *    alone (written only where the daemon's configuration directory exists;
 *    they take effect at the daemon's next reload).
 */
import { existsSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import {
  INTERFACE_PREFIX,
  NETWORKD_DIR,
  NETWORKD_DROPIN_NAME,
  NETWORKMANAGER_DIR,
  NETWORKMANAGER_DROPIN_NAME,
  RP_FILTER_LOOSE,
} from '../constants.js';

const CONF_DIR = '/proc/sys/net/ipv4/conf';

const NETWORKD_DROPIN = `# Written by tswg node; removed when it stops. The overlay's interfaces are managed by tswg.
[Match]
Name=${INTERFACE_PREFIX}*

[Link]
Unmanaged=yes
`;

const NETWORKMANAGER_DROPIN = `# Written by tswg node; removed when it stops. The overlay's interfaces are managed by tswg.
[keyfile]
unmanaged-devices=interface-name:${INTERFACE_PREFIX}*
`;

/** Write the drop-ins where those daemons are installed; returns the paths written. */
export function writeUnmanagedDropIns(root: string): string[] {
  const written: string[] = [];
  for (const [dir, name, text] of [
    [NETWORKD_DIR, NETWORKD_DROPIN_NAME, NETWORKD_DROPIN],
    [NETWORKMANAGER_DIR, NETWORKMANAGER_DROPIN_NAME, NETWORKMANAGER_DROPIN],
  ] as const) {
    const full = join(root, dir);
    if (!existsSync(full)) continue;
    const path = join(full, name);
    writeFileSync(path, text, { mode: 0o644 });
    written.push(path);
  }
  return written;
}

export function removeDropIns(paths: readonly string[]): void {
  for (const path of paths) rmSync(path, { force: true });
}

/** The node's interfaces that exist now. */
function overlayInterfaces(): string[] {
  try {
    return readdirSync(CONF_DIR).filter((name) => name.startsWith(INTERFACE_PREFIX));
  } catch {
    return [];
  }
}

/**
 * rp_filter=2 on every zl-* interface not yet in `before`; records the old
 * value there. Returns the interfaces changed now.
 */
export function loosenRpFilter(before: Record<string, string>): string[] {
  const changed: string[] = [];
  for (const name of overlayInterfaces()) {
    if (name in before) continue;
    const path = join(CONF_DIR, name, 'rp_filter');
    try {
      const old = readFileSync(path, 'utf8').trim();
      before[name] = old;
      if (old !== RP_FILTER_LOOSE) writeFileSync(path, RP_FILTER_LOOSE);
      changed.push(name);
    } catch {
      // Gone between the listing and the write: nothing to record.
    }
  }
  return changed;
}

/** Put rp_filter back on the interfaces that still exist; forgets all of them. */
export function restoreRpFilter(before: Record<string, string>): void {
  for (const [name, value] of Object.entries(before)) {
    try {
      if (existsSync(join(CONF_DIR, name))) writeFileSync(join(CONF_DIR, name, 'rp_filter'), value);
    } catch {
      // The interface went away meanwhile; nothing to restore.
    }
    delete before[name];
  }
}

/** Forget interfaces that no longer exist (a deleted bridge's entry must not block a new one of the same name). */
export function pruneRpFilter(before: Record<string, string>): void {
  for (const name of Object.keys(before)) if (!existsSync(join(CONF_DIR, name))) delete before[name];
}
