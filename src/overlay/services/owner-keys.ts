/**
 * Owner keys of saved network records and per-network allocators:
 * "service:<name>" for a dedicated service, "iso:<name>" for an isolation
 * network. Separate namespaces, so an isolation network and a service of
 * the same name never share a record or an allocator.
 */

export type OwnerKind = 'service' | 'iso';

const KINDS: readonly OwnerKind[] = ['service', 'iso'];

/** The owner key of `name` in the `kind` namespace: ownerKey('service', 'alpha') = "service:alpha". */
export function ownerKey(kind: OwnerKind, name: string): string {
  return `${kind}:${name}`;
}

/** The kind and name of an owner key; null for a key of neither namespace (or an empty name). */
export function parseOwnerKey(owner: string): { kind: OwnerKind; name: string } | null {
  const colon = owner.indexOf(':');
  if (colon < 0) return null;
  const kind = KINDS.find((k) => k === owner.slice(0, colon));
  const name = owner.slice(colon + 1);
  return kind === undefined || name === '' ? null : { kind, name };
}
