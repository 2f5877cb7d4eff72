/**
 * The node-slice IP allocator, one per node and local to it:
 *  - the node's own IP is slice base + 1, deterministic and never handed out;
 *  - containers get base + 2, base + 3, …; released addresses are reused
 *    first, most recently released first (LIFO);
 *  - past the slice (or at the IPv4 broadcast address) allocation fails with
 *    "IP allocator exhausted: next address {a} is outside slice {cidr}";
 *  - release is idempotent and ignores the node IP. IPv4 and IPv6.
 *
 * Two traps avoided on purpose (pushing any released address into the pool,
 * and advancing the counter on a failed allocation):
 *  - release ignores addresses this allocator did not hand out (or claim),
 *    so a stray ReleaseIp cannot make the counter and the pool hand out the
 *    same address twice;
 *  - a failed allocation leaves the counter alone, so the error names the
 *    first address past the slice every time.
 *  - a slice too small to hold the node IP is refused up front.
 * claim() marks an address as taken, for restoring the
 * assignments a restarted node saved.
 */
import { AddressError, bytesToIp, formatCidr, ipToBytes, parseCidr, type Cidr } from '../device/index.js';
import { FIRST_CONTAINER_OFFSET, NODE_RESERVED_OFFSET } from './constants.js';
import { OverlayError } from './errors.js';

/** Big-endian bytes of an address as one integer. */
export function bytesToBigInt(bytes: Uint8Array): bigint {
  let value = 0n;
  for (const byte of bytes) value = (value << 8n) | BigInt(byte);
  return value;
}

/** The `length` big-endian bytes of `value` (taken modulo 2^(8·length)). */
export function bigIntToBytes(value: bigint, length: number): Uint8Array {
  const out = new Uint8Array(length);
  for (let i = length - 1; i >= 0; i--) {
    out[i] = Number(value & 0xffn);
    value >>= 8n;
  }
  return out;
}

/** Parse a CIDR; the error wording is the one ZLayer's control plane expects. */
export function parseCidrOrThrow(text: string): Cidr {
  try {
    return parseCidr(text);
  } catch (error) {
    if (error instanceof AddressError) throw new OverlayError(`invalid CIDR ${text}: ${error.message}`);
    throw error;
  }
}

export class IpAllocator {
  readonly cidr: Cidr;
  /** The slice in canonical text form ("10.200.0.0/26"). */
  readonly cidrText: string;
  /** Slice base + 1: the node's own overlay IP. */
  readonly nodeIp: string;
  private readonly base: bigint;
  private readonly size: bigint;
  private readonly addressBits: number;
  private nextOffset = BigInt(FIRST_CONTAINER_OFFSET);
  /** Released addresses, most recent last. */
  private readonly released: string[] = [];
  /** Handed out (or claimed) and not released. */
  private readonly taken = new Set<string>();

  constructor(cidr: string) {
    this.cidr = parseCidrOrThrow(cidr);
    this.cidrText = formatCidr(this.cidr);
    this.addressBits = this.cidr.bytes.length * 8;
    this.base = bytesToBigInt(this.cidr.bytes);
    this.size = 1n << BigInt(this.addressBits - this.cidr.prefixLength);
    if (!this.usableOffset(BigInt(NODE_RESERVED_OFFSET))) {
      throw new OverlayError(`slice ${this.cidrText} is too small: it has no room for the node IP (base + 1)`);
    }
    this.nodeIp = this.addressAt(BigInt(NODE_RESERVED_OFFSET));
  }

  /** The next free address: the most recently released one, else the next never used. Throws OverlayError when the slice is full. */
  allocate(): string {
    while (this.released.length > 0) {
      const ip = this.released.pop()!;
      if (this.taken.has(ip)) continue; // claimed again since its release
      this.taken.add(ip);
      return ip;
    }
    for (;;) {
      if (!this.usableOffset(this.nextOffset)) {
        throw new OverlayError(`IP allocator exhausted: next address ${this.addressAt(this.nextOffset)} is outside slice ${this.cidrText}`);
      }
      const ip = this.addressAt(this.nextOffset);
      this.nextOffset += 1n;
      if (this.taken.has(ip)) continue; // claimed (restored) ahead of the counter
      this.taken.add(ip);
      return ip;
    }
  }

  /** Give an address back (idempotent). The node IP, addresses outside the slice and addresses never handed out are ignored. */
  release(ip: string): void {
    const canonical = this.canonical(ip);
    if (canonical === this.nodeIp || !this.taken.delete(canonical)) return;
    this.released.push(canonical);
  }

  /**
   * Mark `ip` as taken (restoring a saved assignment): allocate() will not
   * hand it out until it is released. Throws OverlayError for the node IP or
   * an address outside the slice.
   */
  claim(ip: string): void {
    const canonical = this.canonical(ip);
    if (canonical === this.nodeIp) throw new OverlayError(`${ip} is the node IP of slice ${this.cidrText}; it cannot be assigned`);
    if (!this.contains(canonical)) throw new OverlayError(`${ip} is outside slice ${this.cidrText}`);
    this.taken.add(canonical);
  }

  /** The addresses handed out (or claimed) and not released, in address order. */
  allocated(): string[] {
    return [...this.taken].sort((a, b) => {
      const x = bytesToBigInt(ipToBytes(a));
      const y = bytesToBigInt(ipToBytes(b));
      return x < y ? -1 : x > y ? 1 : 0;
    });
  }

  /** Whether `ip` (any text form) is a usable address of this slice (not the base, not the IPv4 broadcast). */
  contains(ip: string): boolean {
    let bytes: Uint8Array;
    try {
      bytes = ipToBytes(ip);
    } catch {
      return false;
    }
    if (bytes.length !== this.cidr.bytes.length) return false;
    const offset = bytesToBigInt(bytes) - this.base;
    return offset > 0n && this.usableOffset(offset);
  }

  private usableOffset(offset: bigint): boolean {
    if (offset >= this.size) return false;
    // IPv4 keeps its broadcast address out; IPv6 has none.
    return !(this.cidr.family === 4 && offset === this.size - 1n);
  }

  private addressAt(offset: bigint): string {
    const modulus = 1n << BigInt(this.addressBits);
    return bytesToIp(bigIntToBytes((this.base + offset) % modulus, this.cidr.bytes.length));
  }

  private canonical(ip: string): string {
    try {
      return bytesToIp(ipToBytes(ip));
    } catch (error) {
      if (error instanceof AddressError) throw new OverlayError(`invalid IP address ${ip}: ${error.message}`);
      throw error;
    }
  }
}
