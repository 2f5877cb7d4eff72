/**
 * The allowed-IPs table: longest-prefix match from an IP address to the peer
 * that owns it. Outbound, it picks the peer for a packet's destination;
 * inbound, a decrypted packet is accepted only if its source maps back to the
 * peer that sent it. Semantics follow the kernel's allowedips.c and
 * wireguard-go's allowedips.go: a prefix belongs to exactly one peer, and
 * inserting it again moves it.
 *
 * One path-compressed binary trie per family, as the kernel's: a node is a
 * prefix (key masked to `cidr` bits); a node without a peer is a branch
 * point and always has two children, so the trie holds fewer than two nodes
 * per prefix and a path has at most 33 (IPv4) or 129 (IPv6) nodes, with
 * strictly growing prefix lengths. Keys are kept as four int32 words so a
 * lookup compares a whole word per step and allocates nothing.
 */
import { AddressError, type Cidr, type IpFamily } from './addr.js';

/** MASKS[n]: the top n bits of a 32-bit word set (as int32), n = 0..32. */
const MASKS = new Int32Array(33);
for (let n = 1; n <= 32; n++) MASKS[n] = -1 << (32 - n);

/** The mask for the word that starts `bitsBefore` bits into a key of length `cidr`. */
function wordMask(cidr: number, bitsBefore: number): number {
  const n = cidr - bitsBefore;
  return n <= 0 ? 0 : n >= 32 ? -1 : MASKS[n]!;
}

type Key = [number, number, number, number];

class Node<Peer> {
  child0: Node<Peer> | null = null;
  child1: Node<Peer> | null = null;

  constructor(
    public parent: Node<Peer> | null,
    readonly family: IpFamily,
    readonly w0: number,
    readonly w1: number,
    readonly w2: number,
    readonly w3: number,
    readonly cidr: number,
    public peer: Peer | undefined,
  ) {}
}

function word(key: Key | Node<unknown>, index: number): number {
  if (Array.isArray(key)) return key[index]!;
  const node = key as Node<unknown>;
  return index === 0 ? node.w0 : index === 1 ? node.w1 : index === 2 ? node.w2 : node.w3;
}

/** Bit `index` (0 = most significant bit of the first byte) of a key. */
function bitAt(key: Key | Node<unknown>, index: number): number {
  return (word(key, index >> 5) >>> (31 - (index & 31))) & 1;
}

/** How many leading bits two keys share, at most `limit`. */
function commonBits(a: Key | Node<unknown>, b: Key | Node<unknown>, limit: number): number {
  for (let i = 0; i * 32 < limit; i++) {
    const diff = word(a, i) ^ word(b, i);
    if (diff !== 0) return Math.min(i * 32 + Math.clz32(diff), limit);
  }
  return limit;
}

function readWord(bytes: Uint8Array, offset: number): number {
  return (bytes[offset]! << 24) | (bytes[offset + 1]! << 16) | (bytes[offset + 2]! << 8) | bytes[offset + 3]!;
}

function maskedKey(words: Key, cidr: number): Key {
  return [words[0] & wordMask(cidr, 0), words[1] & wordMask(cidr, 32), words[2] & wordMask(cidr, 64), words[3] & wordMask(cidr, 96)];
}

/** The masked key of a prefix; host bits past the prefix length are ignored, as the kernel does. */
function keyOf(cidr: Cidr): Key {
  const expected = cidr.family === 4 ? 4 : cidr.family === 6 ? 16 : -1;
  if (expected < 0 || cidr.bytes.length !== expected) {
    throw new AddressError(`not a valid IPv${cidr.family} prefix: ${cidr.bytes.length} address bytes`);
  }
  const maxBits = expected * 8;
  if (!Number.isInteger(cidr.prefixLength) || cidr.prefixLength < 0 || cidr.prefixLength > maxBits) {
    throw new AddressError(`not a valid IPv${cidr.family} prefix: prefix length ${cidr.prefixLength} is not 0..${maxBits}`);
  }
  const words: Key = [readWord(cidr.bytes, 0), 0, 0, 0];
  if (expected === 16) {
    words[1] = readWord(cidr.bytes, 4);
    words[2] = readWord(cidr.bytes, 8);
    words[3] = readWord(cidr.bytes, 12);
  }
  return maskedKey(words, cidr.prefixLength);
}

function cidrOf(node: Node<unknown>): Cidr {
  const bytes = new Uint8Array(node.family === 4 ? 4 : 16);
  const view = new DataView(bytes.buffer);
  view.setInt32(0, node.w0);
  if (node.family === 6) {
    view.setInt32(4, node.w1);
    view.setInt32(8, node.w2);
    view.setInt32(12, node.w3);
  }
  return { family: node.family, bytes, prefixLength: node.cidr };
}

function compareCidrs(a: Cidr, b: Cidr): number {
  if (a.family !== b.family) return a.family - b.family;
  for (let i = 0; i < a.bytes.length; i++) {
    const d = a.bytes[i]! - b.bytes[i]!;
    if (d !== 0) return d;
  }
  return a.prefixLength - b.prefixLength;
}

/**
 * Peers are compared by identity; `undefined` is reserved to mean "no peer",
 * hence the non-nullish bound.
 */
export class AllowedIps<Peer extends {}> {
  private root4: Node<Peer> | null = null;
  private root6: Node<Peer> | null = null;
  /** Each peer's prefixes, so removeByPeer and entriesForPeer need no walk. */
  private readonly byPeer = new Map<Peer, Set<Node<Peer>>>();
  private prefixes = 0;
  private nodes = 0;

  /** The number of prefixes in the table. */
  get size(): number {
    return this.prefixes;
  }

  /** Trie nodes, branch points included: for tests that check pruning. */
  get nodeCount(): number {
    return this.nodes;
  }

  /** Route `cidr` to `peer`, taking it from whichever peer had it. Throws AddressError on a malformed prefix. */
  insert(cidr: Cidr, peer: Peer): void {
    const key = keyOf(cidr);
    const length = cidr.prefixLength;
    const family = cidr.family;
    let parent: Node<Peer> | null = null;
    let node = family === 4 ? this.root4 : this.root6;
    while (node !== null && node.cidr <= length && commonBits(node, key, node.cidr) === node.cidr) {
      if (node.cidr === length) {
        this.assign(node, peer);
        return;
      }
      parent = node;
      node = bitAt(key, node.cidr) === 0 ? node.child0 : node.child1;
    }
    // `node` (if any) lies under `parent` but is not a prefix of the new key.
    const added = new Node<Peer>(null, family, key[0], key[1], key[2], key[3], length, undefined);
    this.nodes++;
    this.assign(added, peer);
    if (node === null) {
      this.attach(parent, added, key, family);
      return;
    }
    const common = commonBits(node, key, Math.min(node.cidr, length));
    if (common === length) {
      // The new prefix covers `node`: slot it in between.
      this.attach(parent, added, key, family);
      this.setChild(added, bitAt(node, length), node);
      return;
    }
    // They diverge at bit `common`: a branch point takes both.
    const branchKey = maskedKey(key, common);
    const branch = new Node<Peer>(null, family, branchKey[0], branchKey[1], branchKey[2], branchKey[3], common, undefined);
    this.nodes++;
    this.attach(parent, branch, key, family);
    this.setChild(branch, bitAt(node, common), node);
    this.setChild(branch, bitAt(key, common), added);
  }

  /** Remove `cidr` if `peer` owns it; false when it is absent or another peer's. */
  remove(cidr: Cidr, peer: Peer): boolean {
    const key = keyOf(cidr);
    const node = this.find(key, cidr.prefixLength, cidr.family);
    if (node === null || node.peer !== peer) return false;
    this.unassign(node);
    this.prune(node);
    return true;
  }

  /** Remove every prefix of `peer`. */
  removeByPeer(peer: Peer): void {
    const owned = this.byPeer.get(peer);
    if (owned === undefined) return;
    for (const node of [...owned]) {
      this.unassign(node);
      this.prune(node);
    }
  }

  /** The prefixes of `peer`, by family, then address, then prefix length. */
  entriesForPeer(peer: Peer): Cidr[] {
    const owned = this.byPeer.get(peer);
    if (owned === undefined) return [];
    return [...owned].map(cidrOf).sort(compareCidrs);
  }

  clear(): void {
    this.root4 = null;
    this.root6 = null;
    this.byPeer.clear();
    this.prefixes = 0;
    this.nodes = 0;
  }

  /** The peer with the longest prefix containing `ip` (4 or 16 bytes; any other length finds nothing). */
  lookup(ip: Uint8Array): Peer | undefined {
    if (ip.length === 4) return this.lookup4(ip, 0);
    if (ip.length === 16) return this.lookup6(ip, 0);
    return undefined;
  }

  /** The peer for an IP packet's destination address; undefined for anything that is not an IPv4/IPv6 header. */
  lookupPacketDestination(packet: Uint8Array): Peer | undefined {
    const version = packet.length > 0 ? packet[0]! >> 4 : 0;
    if (version === 4 && packet.length >= 20) return this.lookup4(packet, 16);
    if (version === 6 && packet.length >= 40) return this.lookup6(packet, 24);
    return undefined;
  }

  /** The peer for an IP packet's source address: the inbound check compares it with the sender. */
  lookupPacketSource(packet: Uint8Array): Peer | undefined {
    const version = packet.length > 0 ? packet[0]! >> 4 : 0;
    if (version === 4 && packet.length >= 20) return this.lookup4(packet, 12);
    if (version === 6 && packet.length >= 40) return this.lookup6(packet, 8);
    return undefined;
  }

  // The hot path: one word, one mask, one bit per node.
  private lookup4(bytes: Uint8Array, offset: number): Peer | undefined {
    const a = readWord(bytes, offset);
    let found: Peer | undefined;
    let node = this.root4;
    while (node !== null) {
      const cidr = node.cidr;
      if (((a ^ node.w0) & MASKS[cidr]!) !== 0) break;
      if (node.peer !== undefined) found = node.peer;
      if (cidr === 32) break;
      node = ((a >>> (31 - cidr)) & 1) === 0 ? node.child0 : node.child1;
    }
    return found;
  }

  private lookup6(bytes: Uint8Array, offset: number): Peer | undefined {
    const a0 = readWord(bytes, offset);
    const a1 = readWord(bytes, offset + 4);
    const a2 = readWord(bytes, offset + 8);
    const a3 = readWord(bytes, offset + 12);
    let found: Peer | undefined;
    let node = this.root6;
    while (node !== null) {
      const cidr = node.cidr;
      const differs =
        ((a0 ^ node.w0) & wordMask(cidr, 0)) |
        ((a1 ^ node.w1) & wordMask(cidr, 32)) |
        ((a2 ^ node.w2) & wordMask(cidr, 64)) |
        ((a3 ^ node.w3) & wordMask(cidr, 96));
      if (differs !== 0) break;
      if (node.peer !== undefined) found = node.peer;
      if (cidr === 128) break;
      const w = cidr < 32 ? a0 : cidr < 64 ? a1 : cidr < 96 ? a2 : a3;
      node = ((w >>> (31 - (cidr & 31))) & 1) === 0 ? node.child0 : node.child1;
    }
    return found;
  }

  /** The node for exactly this prefix, with or without a peer. */
  private find(key: Key, length: number, family: IpFamily): Node<Peer> | null {
    let node = family === 4 ? this.root4 : this.root6;
    while (node !== null && node.cidr <= length && commonBits(node, key, node.cidr) === node.cidr) {
      if (node.cidr === length) return node;
      node = bitAt(key, node.cidr) === 0 ? node.child0 : node.child1;
    }
    return null;
  }

  private assign(node: Node<Peer>, peer: Peer): void {
    if (node.peer === peer) return;
    if (node.peer === undefined) this.prefixes++;
    else this.byPeer.get(node.peer)?.delete(node);
    node.peer = peer;
    let owned = this.byPeer.get(peer);
    if (owned === undefined) this.byPeer.set(peer, (owned = new Set()));
    owned.add(node);
  }

  private unassign(node: Node<Peer>): void {
    const peer = node.peer;
    if (peer === undefined) return;
    const owned = this.byPeer.get(peer);
    owned?.delete(node);
    if (owned?.size === 0) this.byPeer.delete(peer);
    node.peer = undefined;
    this.prefixes--;
  }

  /** Drop a node that lost its peer unless it still joins two subtrees; then its parent if that became pointless. */
  private prune(node: Node<Peer>): void {
    if (node.child0 !== null && node.child1 !== null) return;
    const child = node.child0 ?? node.child1;
    const parent = node.parent;
    this.replace(node, child);
    if (child !== null || parent === null || parent.peer !== undefined) return;
    // `parent` was a branch point with two children and now has one.
    this.replace(parent, parent.child0 ?? parent.child1);
  }

  /** Put `replacement` where `node` was and forget `node`. */
  private replace(node: Node<Peer>, replacement: Node<Peer> | null): void {
    const parent = node.parent;
    if (replacement !== null) replacement.parent = parent;
    if (parent === null) {
      if (node.family === 4) this.root4 = replacement;
      else this.root6 = replacement;
    } else if (parent.child0 === node) {
      parent.child0 = replacement;
    } else {
      parent.child1 = replacement;
    }
    node.parent = node.child0 = node.child1 = null;
    this.nodes--;
  }

  /** Hang `node` under `parent` on the side `key` goes (or make it the root). */
  private attach(parent: Node<Peer> | null, node: Node<Peer>, key: Key, family: IpFamily): void {
    if (parent === null) {
      if (family === 4) this.root4 = node;
      else this.root6 = node;
      node.parent = null;
    } else {
      this.setChild(parent, bitAt(key, parent.cidr), node);
    }
  }

  private setChild(parent: Node<Peer>, bit: number, child: Node<Peer>): void {
    if (bit === 0) parent.child0 = child;
    else parent.child1 = child;
    child.parent = parent;
  }
}
