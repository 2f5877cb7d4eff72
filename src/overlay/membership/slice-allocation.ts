/**
 * Claiming a slice in etcd. A slice belongs to whoever created its
 * slices/<cidr> key: creation is a transaction that requires the key not to
 * exist, so two nodes can never both win. In order of preference:
 *   1. a slice fixed by the config (checked: inside the cluster, of the
 *      cluster's slice length, not someone else's);
 *   2. the slice already reserved for this node id (a restart);
 *   3. the slice saved in the data directory, if it is still free;
 *   4. a random one among the first few free ones (concurrent joiners rarely
 *      collide, and a collision is simply retried).
 * The reservation is on the long allocation lease and carries the node's
 * current key; one found with another lease or key is rewritten.
 */
import { formatCidr, parseCidr, type Cidr } from '../../device/index.js';
import { SLICE_ALLOCATION_ATTEMPTS, SLICE_PICK_WINDOW } from '../constants.js';
import { OverlayError } from '../errors.js';
import type { EtcdClient, KeyValue } from './etcd-client.js';
import { cidrInside, encodeSliceRecord, parseSliceRecord, slicesOf, type KeyLayout } from './records.js';

export interface SliceRequest {
  layout: KeyLayout;
  cluster: Cidr;
  clusterText: string;
  sliceLength: number;
  nodeId: string;
  publicKey: string;
  /** The allocation lease the reservation is attached to. */
  leaseId: string;
  /** From the config: this slice or an error. */
  fixed?: string;
  /** From the data directory: preferred if still free. */
  saved?: string;
  /** [0, 1) — injectable for tests. */
  random?: () => number;
}

/** Check a slice the config or the data dir names; returns its canonical text. */
export function checkSliceFits(text: string, request: Pick<SliceRequest, 'cluster' | 'clusterText' | 'sliceLength'>, what: string): string {
  let slice: Cidr;
  try {
    slice = parseCidr(text);
  } catch (error) {
    throw new OverlayError(`${what} ${text}: ${(error as Error).message}`);
  }
  if (!cidrInside(request.cluster, slice)) throw new OverlayError(`${what} ${text} is not inside the cluster ${request.clusterText}`);
  if (slice.prefixLength !== request.sliceLength) {
    throw new OverlayError(`${what} ${text} is a /${slice.prefixLength}, but slices of ${request.clusterText} are /${request.sliceLength} (membership.etcd.sliceLength)`);
  }
  return formatCidr(slice);
}

/** Reserve a slice for the node; returns its canonical text. Throws OverlayError when none can be had. */
export async function allocateSlice(client: EtcdClient, request: SliceRequest): Promise<string> {
  const { layout } = request;
  const random = request.random ?? Math.random;
  const value = encodeSliceRecord({ nodeId: request.nodeId, publicKey: request.publicKey });

  // Ours already (or taken over from an earlier lease or key of ours)?
  const keep = async (kv: KeyValue): Promise<boolean> => {
    if (kv.value === value && kv.lease === request.leaseId) return true;
    return client.replaceIfUnchanged(kv.key, value, kv.modRevision, request.leaseId);
  };
  const ownerOf = (kv: KeyValue): string | null => {
    try {
      return parseSliceRecord(kv.value, kv.key).nodeId;
    } catch {
      return null;
    }
  };

  if (request.fixed !== undefined) {
    const slice = checkSliceFits(request.fixed, request, 'sliceCidr');
    for (let attempt = 0; attempt < SLICE_ALLOCATION_ATTEMPTS; attempt++) {
      const claim = await client.createIfAbsent(layout.sliceKey(slice), value, request.leaseId);
      if (claim.created) return slice;
      if (claim.existing === null) continue; // deleted in between: try again
      const owner = ownerOf(claim.existing);
      if (owner !== request.nodeId) throw new OverlayError(`sliceCidr ${slice} is reserved for node ${owner ?? '(unreadable record)'} in etcd (${claim.existing.key})`);
      if (await keep(claim.existing)) return slice;
    }
    throw new OverlayError(`sliceCidr ${slice}: could not reserve it after ${SLICE_ALLOCATION_ATTEMPTS} attempts (its record keeps changing)`);
  }

  for (let attempt = 0; attempt < SLICE_ALLOCATION_ATTEMPTS; attempt++) {
    const { kvs } = await client.range(layout.slices, { prefix: true });
    const taken = new Set(kvs.map((kv) => kv.key.slice(layout.slices.length)));
    const mine = kvs.find((kv) => ownerOf(kv) === request.nodeId);
    if (mine !== undefined) {
      if (await keep(mine)) return mine.key.slice(layout.slices.length);
      continue;
    }
    let choice: string | undefined;
    if (request.saved !== undefined && !taken.has(request.saved)) {
      try {
        choice = checkSliceFits(request.saved, request, 'saved slice');
      } catch {
        choice = undefined; // the cluster changed since: allocate afresh
      }
    }
    if (choice === undefined) {
      const free: string[] = [];
      for (const slice of slicesOf(request.cluster, request.sliceLength)) {
        if (!taken.has(slice)) free.push(slice);
        if (free.length >= SLICE_PICK_WINDOW) break;
      }
      if (free.length === 0) {
        throw new OverlayError(`no free slice in cluster ${request.clusterText}: all ${taken.size} /${request.sliceLength} slices are reserved in etcd (${layout.slices})`);
      }
      choice = free[Math.min(free.length - 1, Math.floor(random() * free.length))]!;
    }
    const claim = await client.createIfAbsent(layout.sliceKey(choice), value, request.leaseId);
    if (claim.created) return choice;
    // Someone else was faster: list again and pick another.
  }
  throw new OverlayError(`no slice reserved in cluster ${request.clusterText} after ${SLICE_ALLOCATION_ATTEMPTS} conflicting attempts`);
}
