/**
 * The sticky source address, as the kernel's WireGuard and wireguard-go
 * keep it: a peer's replies leave from the local address (and interface)
 * its packets arrived on, so a host with several addresses answers from the
 * one the peer wrote to, and the peer's NAT or firewall sees the flow it
 * expects. When that address is gone, sends fall back to the kernel's
 * choice and the next packet from the peer sets it again.
 */
import { EADDRNOTAVAIL, EINVAL, ENETUNREACH, ENODEV, type LocalSource, META_INTERFACE_INDEX, META_LOCAL_ADDRESS, META_LOCAL_FAMILY } from '../platform/index.js';
import type { SourceRoute } from './bind.js';


/** Errors of a send from a remembered source that say the source (its address or interface) is gone. */
export const SOURCE_GONE_ERRORS: ReadonlySet<number> = new Set([EINVAL, EADDRNOTAVAIL, ENETUNREACH, ENODEV]);

/**
 * The local source a received datagram's meta bytes name: `current` when it
 * is the same (so the data path allocates nothing), a new one when it
 * changed, null when the kernel did not say.
 */
export function localSourceOf(meta: Uint8Array, current: LocalSource | null): LocalSource | null {
  const family = meta[META_LOCAL_FAMILY];
  if (family !== 4 && family !== 6) return null;
  const interfaceIndex = (meta[META_INTERFACE_INDEX]! | (meta[META_INTERFACE_INDEX + 1]! << 8) | (meta[META_INTERFACE_INDEX + 2]! << 16) | (meta[META_INTERFACE_INDEX + 3]! << 24)) >>> 0;
  const length = family === 4 ? 4 : 16;
  if (current !== null && current.family === family && current.interfaceIndex === interfaceIndex && sameAddress(current.address, meta, length)) return current;
  return { family, address: meta.slice(META_LOCAL_ADDRESS, META_LOCAL_ADDRESS + length), interfaceIndex };
}

function sameAddress(address: Uint8Array, meta: Uint8Array, length: number): boolean {
  for (let i = 0; i < length; i++) if (address[i] !== meta[META_LOCAL_ADDRESS + i]) return false;
  return true;
}

/** Do two remembered sources name the same address and interface? */
export function sameLocalSource(a: LocalSource | null, b: LocalSource | null): boolean {
  if (a === b) return true;
  if (a === null || b === null || a.family !== b.family || a.interfaceIndex !== b.interfaceIndex) return false;
  return a.address.every((byte, i) => byte === b.address[i]);
}

/**
 * The route for an answer to a datagram that arrived on `local` and belongs
 * to no session (a cookie reply): it leaves from that address too; none
 * when the kernel did not say. When the address is gone there is nothing to
 * forget, and the kernel picks the source.
 */
export function replyRoute(local: LocalSource | null): SourceRoute | undefined {
  return local === null ? undefined : { source: local, gone: forgetNothing };
}

function forgetNothing(): void {}
