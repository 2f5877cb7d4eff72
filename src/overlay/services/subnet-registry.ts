/**
 * Service subnets: one block of the cluster CIDR (a /26, or a /120 for IPv6)
 * per (service, nodeKey): assign / release / reserve / snapshot, with the
 * block chosen so:
 *
 *  - nodes assign independently (there is no cluster-wide coordination yet),
 *    so the first probed block comes from a hash of (service, nodeKey) rather
 *    than "the lowest free one", which every node would pick alike;
 *  - from there the blocks are probed in order (wrapping) for the first one
 *    overlapping no reserved range, no `avoid` range and no assigned block;
 *  - the same inputs in the same state give the same answer.
 *
 * Probing steps over whole occupied ranges at a time, so a reserved /64 in
 * an IPv6 cluster costs one step, not 2^56.
 */
import { createHash } from 'node:crypto';
import { bytesToIp, formatCidr, type Cidr } from '../../device/index.js';
import { bigIntToBytes, bytesToBigInt, parseCidrOrThrow } from '../allocator.js';
import { SERVICE_SUBNET_PREFIX_V4, SERVICE_SUBNET_PREFIX_V6, SUBNET_START_HASH_BYTES } from '../constants.js';
import { OverlayError } from '../errors.js';

export { SHARED_BRIDGE_KEY } from '../constants.js';

export interface ServiceSubnetEntry {
  service: string;
  nodeKey: string;
  subnet: string;
}

export interface ServiceSubnetRegistryOptions {
  /** The block size; defaults to /26 (IPv4) or /120 (IPv6). */
  prefixLength?: number;
}

/** An inclusive address range [first, last]. */
interface Range {
  first: bigint;
  last: bigint;
}

interface Assignment extends ServiceSubnetEntry {
  range: Range;
}

function keyOf(service: string, nodeKey: string): string {
  // JSON keeps the pair unambiguous whatever characters the names hold.
  return JSON.stringify([service, nodeKey]);
}

function overlaps(a: Range, b: Range): boolean {
  return a.first <= b.last && b.first <= a.last;
}

export class ServiceSubnetRegistry {
  /** The cluster CIDR in canonical form ("10.200.0.0/16"). */
  readonly clusterCidr: string;
  /** The prefix length of every subnet handed out. */
  readonly prefixLength: number;
  private readonly cluster: Cidr;
  private readonly clusterRange: Range;
  private readonly blockSize: bigint;
  private readonly blockCount: bigint;
  private readonly reserved: Range[] = [];
  private readonly assigned = new Map<string, Assignment>();

  constructor(clusterCidr: string, options: ServiceSubnetRegistryOptions = {}) {
    this.cluster = parseCidrOrThrow(clusterCidr);
    this.clusterCidr = formatCidr(this.cluster);
    const bits = this.cluster.bytes.length * 8;
    const prefixLength = options.prefixLength ?? (this.cluster.family === 4 ? SERVICE_SUBNET_PREFIX_V4 : SERVICE_SUBNET_PREFIX_V6);
    if (!Number.isInteger(prefixLength) || prefixLength < 0 || prefixLength > bits) {
      throw new OverlayError(`invalid service subnet prefix length ${prefixLength}: must be 0..${bits} for cluster ${this.clusterCidr}`);
    }
    if (this.cluster.prefixLength > prefixLength) {
      throw new OverlayError(`cluster ${this.clusterCidr} is smaller than one /${prefixLength} service subnet`);
    }
    this.prefixLength = prefixLength;
    this.blockSize = 1n << BigInt(bits - prefixLength);
    this.blockCount = 1n << BigInt(prefixLength - this.cluster.prefixLength);
    const base = bytesToBigInt(this.cluster.bytes);
    this.clusterRange = { first: base, last: base + this.blockCount * this.blockSize - 1n };
  }

  /**
   * Never hand out a block overlapping this address or CIDR (the node IP,
   * this node's slice, other nodes' slices). An address of the other family
   * cannot overlap and is ignored. Subnets already assigned are kept.
   */
  reserve(cidrOrIp: string): void {
    const range = this.rangeOf(cidrOrIp);
    if (range !== null) this.reserved.push(range);
  }

  /**
   * The subnet of (service, nodeKey): the existing one, else a new free
   * block. `avoid`: CIDRs in use elsewhere right now (other nodes' routed
   * subnets); a block overlapping any of them is skipped. Throws
   * OverlayError when no block is free.
   */
  assign(service: string, nodeKey: string, avoid: readonly string[] = []): string {
    const existing = this.assigned.get(keyOf(service, nodeKey));
    if (existing !== undefined) return existing.subnet;
    const occupied = this.occupiedRanges(avoid);
    const start = this.startBlock(service, nodeKey);
    const index = this.firstFreeBlock(start, this.blockCount - 1n, occupied) ?? this.firstFreeBlock(0n, start - 1n, occupied);
    if (index === null) {
      throw new OverlayError(
        `service subnet pool exhausted: no free /${this.prefixLength} left in cluster ${this.clusterCidr} for service ${service}`,
      );
    }
    const first = this.clusterRange.first + index * this.blockSize;
    const subnet = this.format(first);
    this.assigned.set(keyOf(service, nodeKey), { service, nodeKey, subnet, range: { first, last: first + this.blockSize - 1n } });
    return subnet;
  }

  /** Give the subnet of (service, nodeKey) back (idempotent). */
  release(service: string, nodeKey: string): void {
    this.assigned.delete(keyOf(service, nodeKey));
  }

  lookup(service: string, nodeKey: string): string | undefined {
    return this.assigned.get(keyOf(service, nodeKey))?.subnet;
  }

  /** Every assignment, sorted by subnet: which (service, nodeKey) owns a subnet (mapping a bridge back on prune, saving state). */
  entries(): ServiceSubnetEntry[] {
    return [...this.assigned.values()]
      .sort((a, b) => (a.range.first < b.range.first ? -1 : a.range.first > b.range.first ? 1 : 0))
      .map(({ service, nodeKey, subnet }) => ({ service, nodeKey, subnet }));
  }

  /**
   * Re-claim saved entries (after a restart). All or nothing: an entry that
   * is not a /prefixLength inside the cluster, that overlaps a reserved range,
   * another entry or a different assignment, throws OverlayError naming it
   * and nothing is claimed. Re-claiming an identical assignment is a no-op.
   */
  restore(entries: readonly ServiceSubnetEntry[]): void {
    const pending: Assignment[] = [];
    for (const entry of entries) {
      const who = `${entry.service}@${entry.nodeKey}`;
      const cidr = parseCidrOrThrow(entry.subnet);
      const subnet = formatCidr(cidr);
      if (cidr.family !== this.cluster.family || cidr.prefixLength !== this.prefixLength) {
        throw new OverlayError(`saved service subnet ${entry.subnet} of ${who} is not a /${this.prefixLength} of cluster ${this.clusterCidr}`);
      }
      const first = bytesToBigInt(cidr.bytes);
      const range = { first, last: first + this.blockSize - 1n };
      if (!(range.first >= this.clusterRange.first && range.last <= this.clusterRange.last)) {
        throw new OverlayError(`saved service subnet ${subnet} of ${who} is outside cluster ${this.clusterCidr}`);
      }
      const current = this.assigned.get(keyOf(entry.service, entry.nodeKey));
      if (current !== undefined) {
        if (current.subnet === subnet) continue;
        throw new OverlayError(`saved service subnet ${subnet} of ${who} conflicts with its current subnet ${current.subnet}`);
      }
      if (this.reserved.some((r) => overlaps(r, range))) {
        throw new OverlayError(`saved service subnet ${subnet} of ${who} overlaps a reserved range`);
      }
      const clash = [...this.assigned.values(), ...pending].find((a) => overlaps(a.range, range));
      if (clash !== undefined) {
        throw new OverlayError(`saved service subnet ${subnet} of ${who} overlaps ${clash.subnet} of ${clash.service}@${clash.nodeKey}`);
      }
      pending.push({ service: entry.service, nodeKey: entry.nodeKey, subnet, range });
    }
    for (const assignment of pending) this.assigned.set(keyOf(assignment.service, assignment.nodeKey), assignment);
  }

  /** The block index probing starts at: the first bytes of sha256(service "\0" nodeKey), modulo the block count. */
  private startBlock(service: string, nodeKey: string): bigint {
    const digest = createHash('sha256').update(`${service}\0${nodeKey}`, 'utf8').digest();
    return bytesToBigInt(digest.subarray(0, SUBNET_START_HASH_BYTES)) % this.blockCount;
  }

  /** The lowest block index in [from, to] overlapping none of `occupied` (sorted, merged), or null. */
  private firstFreeBlock(from: bigint, to: bigint, occupied: readonly Range[]): bigint | null {
    let index = from;
    for (const range of occupied) {
      if (index > to) return null;
      const blockFirst = this.clusterRange.first + index * this.blockSize;
      if (range.last < blockFirst) continue;
      if (range.first > blockFirst + this.blockSize - 1n) return index;
      // Overlapping: the next candidate is the block just past this range.
      index = (range.last - this.clusterRange.first) / this.blockSize + 1n;
    }
    return index <= to ? index : null;
  }

  /** Reserved, avoided and assigned ranges, clipped to the cluster, sorted and merged. */
  private occupiedRanges(avoid: readonly string[]): Range[] {
    const ranges: Range[] = [...this.reserved];
    for (const text of avoid) {
      const range = this.rangeOf(text);
      if (range !== null) ranges.push(range);
    }
    for (const assignment of this.assigned.values()) ranges.push(assignment.range);
    const clipped = ranges
      .filter((r) => overlaps(r, this.clusterRange))
      .map((r) => ({
        first: r.first < this.clusterRange.first ? this.clusterRange.first : r.first,
        last: r.last > this.clusterRange.last ? this.clusterRange.last : r.last,
      }))
      .sort((a, b) => (a.first < b.first ? -1 : a.first > b.first ? 1 : 0));
    const merged: Range[] = [];
    for (const range of clipped) {
      const last = merged[merged.length - 1];
      if (last !== undefined && range.first <= last.last + 1n) {
        if (range.last > last.last) last.last = range.last;
      } else {
        merged.push({ ...range });
      }
    }
    return merged;
  }

  /** The address range of a CIDR or bare address; null when it is of the other family. */
  private rangeOf(cidrOrIp: string): Range | null {
    const cidr = parseCidrOrThrow(cidrOrIp);
    if (cidr.family !== this.cluster.family) return null;
    const first = bytesToBigInt(cidr.bytes);
    const size = 1n << BigInt(cidr.bytes.length * 8 - cidr.prefixLength);
    return { first, last: first + size - 1n };
  }

  private format(first: bigint): string {
    return `${bytesToIp(bigIntToBytes(first, this.cluster.bytes.length))}/${this.prefixLength}`;
  }
}
