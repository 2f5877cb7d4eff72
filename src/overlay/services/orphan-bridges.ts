/**
 * Which host links PruneOrphanBridges may reclaim, and which service each
 * belonged to. Pure: the caller lists the links and does the deleting.
 *
 * Only our per-service bridges (zl-…-b) and dedicated devices (zl-…-d) are
 * candidates. The global device (-g) and the shared bridge (-sh) never end in
 * -b/-d; container veths (veth-…, vc-…) belong to the PID-keyed veth sweep;
 * anything without the zl- prefix is not ours.
 */
import { BRIDGE_SUFFIX, DEDICATED_SUFFIX, INTERFACE_PREFIX } from '../constants.js';
import { dedicatedInterfaceName, serviceBridgeName } from '../naming.js';

export type ServiceInterfaceKind = 'bridge' | 'dedicated';

/** A zl-…-b or zl-…-d link that is neither live nor protected: a bridge (or dedicated device) left by a service that is gone. */
export function isOrphanServiceBridge(name: string, live: ReadonlySet<string>, protectedNames: ReadonlySet<string>): boolean {
  if (!name.startsWith(INTERFACE_PREFIX)) return false;
  if (!(name.endsWith(`-${BRIDGE_SUFFIX}`) || name.endsWith(`-${DEDICATED_SUFFIX}`))) return false;
  return !live.has(name) && !protectedNames.has(name);
}

/** The orphans among `linkNames`, in their order. */
export function selectOrphanBridges(
  linkNames: readonly string[],
  live: ReadonlySet<string>,
  protectedNames: ReadonlySet<string>,
): string[] {
  return linkNames.filter((name) => isOrphanServiceBridge(name, live, protectedNames));
}

/**
 * Map a bridge/device name back to the service it was made for, by
 * recomputing each known service's -b and -d names (a hashed name cannot be
 * reversed). Null when no known service gives this name.
 */
export function serviceForInterface(
  name: string,
  deployment: string,
  instanceId: string,
  services: Iterable<string>,
): { service: string; kind: ServiceInterfaceKind } | null {
  for (const service of services) {
    if (serviceBridgeName(deployment, instanceId, service) === name) return { service, kind: 'bridge' };
    if (dedicatedInterfaceName(deployment, instanceId, service) === name) return { service, kind: 'dedicated' };
  }
  return null;
}
