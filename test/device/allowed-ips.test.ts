/**
 * The allowed-IPs table against the cases of the kernel's
 * selftest/allowedips.c and wireguard-go's allowedips_test.go, the edges of
 * prefix lengths and families, and a seeded randomized comparison with a
 * linear-scan reference (the kernel's "horrible_allowedips" idea).
 */
import { describe, expect, it } from 'vitest';
import { AddressError, formatCidr, ipToBytes, maskBytes, parseCidr, type Cidr, type IpFamily } from '../../src/device/addr.js';
import { AllowedIps } from '../../src/device/allowed-ips.js';
import { Rng } from '../helpers/fuzz.js';

interface TestPeer {
  name: string;
}

function peer(name: string): TestPeer {
  return { name };
}

const cidr = parseCidr;
const ip = ipToBytes;

/** A prefix straight from bytes, host bits left in: the table must mask them itself. */
function rawCidr(bytes: number[] | Uint8Array, prefixLength: number): Cidr {
  const b = Uint8Array.from(bytes);
  return { family: b.length === 4 ? 4 : 6, bytes: b, prefixLength };
}

function ip4(a: number, b: number, c: number, d: number): Uint8Array {
  return Uint8Array.of(a, b, c, d);
}

/** An IPv6 address from four big-endian 32-bit words, as the kernel selftest writes them. */
function ip6(a: number, b: number, c: number, d: number): Uint8Array {
  const out = new Uint8Array(16);
  const view = new DataView(out.buffer);
  [a, b, c, d].forEach((w, i) => view.setUint32(i * 4, w >>> 0));
  return out;
}

function names(cidrs: Cidr[]): string[] {
  return cidrs.map(formatCidr);
}

describe('AllowedIps: the kernel selftest', () => {
  const [a, b, c, d, e, f, g, h] = ['a', 'b', 'c', 'd', 'e', 'f', 'g', 'h'].map(peer) as [
    TestPeer, TestPeer, TestPeer, TestPeer, TestPeer, TestPeer, TestPeer, TestPeer,
  ];

  function populated(): AllowedIps<TestPeer> {
    const t = new AllowedIps<TestPeer>();
    t.insert(rawCidr(ip4(192, 168, 4, 0), 24), a);
    t.insert(rawCidr(ip4(192, 168, 4, 4), 32), b);
    t.insert(rawCidr(ip4(192, 168, 0, 0), 16), c);
    t.insert(rawCidr(ip4(192, 95, 5, 64), 27), d);
    // replaces the previous entry, and needs the host bits masked
    t.insert(rawCidr(ip4(192, 95, 5, 65), 27), c);
    t.insert(rawCidr(ip6(0x26075300, 0x60006b00, 0, 0xc05f0543), 128), d);
    t.insert(rawCidr(ip6(0x26075300, 0x60006b00, 0, 0), 64), c);
    t.insert(rawCidr(ip4(0, 0, 0, 0), 0), e);
    t.insert(rawCidr(ip6(0, 0, 0, 0), 0), e);
    // replaces the previous entry
    t.insert(rawCidr(ip6(0, 0, 0, 0), 0), f);
    t.insert(rawCidr(ip6(0x24046800, 0, 0, 0), 32), g);
    // needs the host bits masked
    t.insert(rawCidr(ip6(0x24046800, 0x40040800, 0xdeadbeef, 0xdeadbeef), 64), h);
    t.insert(rawCidr(ip6(0x24046800, 0x40040800, 0xdeadbeef, 0xdeadbeef), 128), a);
    t.insert(rawCidr(ip6(0x24446800, 0x40e40800, 0xdeaebeef, 0xdefbeef), 128), c);
    t.insert(rawCidr(ip6(0x24446800, 0xf0e40800, 0xeeaebeef, 0), 98), b);
    t.insert(rawCidr(ip4(64, 15, 112, 0), 20), g);
    // needs the host bits masked
    t.insert(rawCidr(ip4(64, 15, 123, 211), 25), h);
    t.insert(rawCidr(ip4(10, 0, 0, 0), 25), a);
    t.insert(rawCidr(ip4(10, 0, 0, 128), 25), b);
    t.insert(rawCidr(ip4(10, 1, 0, 0), 30), a);
    t.insert(rawCidr(ip4(10, 1, 0, 4), 30), b);
    t.insert(rawCidr(ip4(10, 1, 0, 8), 29), c);
    t.insert(rawCidr(ip4(10, 1, 0, 16), 29), d);
    return t;
  }

  it('finds the longest prefix for every probe', () => {
    const t = populated();
    const cases: [TestPeer, Uint8Array][] = [
      [a, ip4(192, 168, 4, 20)],
      [a, ip4(192, 168, 4, 0)],
      [b, ip4(192, 168, 4, 4)],
      [c, ip4(192, 168, 200, 182)],
      [c, ip4(192, 95, 5, 68)],
      [e, ip4(192, 95, 5, 96)],
      [d, ip6(0x26075300, 0x60006b00, 0, 0xc05f0543)],
      [c, ip6(0x26075300, 0x60006b00, 0, 0xc02e01ee)],
      [f, ip6(0x26075300, 0x60006b01, 0, 0)],
      [g, ip6(0x24046800, 0x40040806, 0, 0x1006)],
      [g, ip6(0x24046800, 0x40040806, 0x1234, 0x5678)],
      [f, ip6(0x240467ff, 0x40040806, 0x1234, 0x5678)],
      [f, ip6(0x24046801, 0x40040806, 0x1234, 0x5678)],
      [h, ip6(0x24046800, 0x40040800, 0x1234, 0x5678)],
      [h, ip6(0x24046800, 0x40040800, 0, 0)],
      [h, ip6(0x24046800, 0x40040800, 0x10101010, 0x10101010)],
      [a, ip6(0x24046800, 0x40040800, 0xdeadbeef, 0xdeadbeef)],
      [g, ip4(64, 15, 116, 26)],
      [g, ip4(64, 15, 127, 3)],
      [g, ip4(64, 15, 123, 1)],
      [h, ip4(64, 15, 123, 128)],
      [h, ip4(64, 15, 123, 129)],
      [a, ip4(10, 0, 0, 52)],
      [b, ip4(10, 0, 0, 220)],
      [a, ip4(10, 1, 0, 2)],
      [b, ip4(10, 1, 0, 6)],
      [c, ip4(10, 1, 0, 10)],
      [d, ip4(10, 1, 0, 20)],
    ];
    for (const [want, address] of cases) expect(t.lookup(address)?.name, Array.from(address).join(',')).toBe(want.name);
    // 192.95.5.64/27 moved from d to c; e lost ::/0 to f
    expect(names(t.entriesForPeer(d))).toEqual(['10.1.0.16/29', '2607:5300:6000:6b00::c05f:543/128']);
    expect(names(t.entriesForPeer(e))).toEqual(['0.0.0.0/0']);
    expect(t.size).toBe(21);
  });

  it('removeByPeer removes host routes spread across the trie', () => {
    const t = populated();
    for (const first of [1, 64, 128, 192, 255]) t.insert(rawCidr(ip4(first, 0, 0, 0), 32), a);
    for (const first of [1, 64, 128, 192, 255]) expect(t.lookup(ip4(first, 0, 0, 0))).toBe(a);
    t.removeByPeer(a);
    for (const first of [1, 64, 128, 192, 255]) expect(t.lookup(ip4(first, 0, 0, 0))).not.toBe(a);
    expect(t.entriesForPeer(a)).toEqual([]);
    for (const p of [a, b, c, d, e, f, g, h]) t.removeByPeer(p);
    expect(t.size).toBe(0);
    expect(t.nodeCount).toBe(0);
  });

  it('removeByPeer of a prefix and its sub-prefix', () => {
    const t = new AllowedIps<TestPeer>();
    t.insert(cidr('192.168.0.0/16'), a);
    t.insert(cidr('192.168.0.0/24'), a);
    t.removeByPeer(a);
    expect(t.lookup(ip('192.168.0.1'))).toBeUndefined();
    expect(t.nodeCount).toBe(0);
  });

  it('128 IPv6 host routes one bit apart build and tear down cleanly', () => {
    const t = new AllowedIps<TestPeer>();
    for (let i = 0; i < 128; i++) {
      const bytes = new Uint8Array(16).fill(0xff);
      bytes[i >> 3]! &= ~(0x80 >> (i & 7));
      t.insert(rawCidr(bytes, 128), a);
    }
    expect(t.size).toBe(128);
    expect(t.nodeCount).toBeLessThanOrEqual(2 * 128 - 1);
    expect(t.lookup(new Uint8Array(16).fill(0xff))).toBeUndefined();
    t.removeByPeer(a);
    expect(t.nodeCount).toBe(0);
  });

  it('lists one peer across both families, masked', () => {
    const t = new AllowedIps<TestPeer>();
    t.insert(rawCidr(ip4(192, 95, 5, 93), 27), a);
    t.insert(rawCidr(ip6(0x26075300, 0x60006b00, 0, 0xc05f0543), 128), a);
    t.insert(rawCidr(ip4(10, 1, 0, 20), 29), a);
    t.insert(rawCidr(ip6(0x26075300, 0x6d8a6bf8, 0xdab1f1df, 0xc05f1523), 83), a);
    t.insert(rawCidr(ip6(0x26075300, 0x6d8a6bf8, 0xdab1f1df, 0xc05f1523), 21), a);
    expect(names(t.entriesForPeer(a))).toEqual([
      '10.1.0.16/29',
      '192.95.5.64/27',
      '2607:5000::/21',
      '2607:5300:6000:6b00::c05f:543/128',
      '2607:5300:6d8a:6bf8:dab1:e000::/83',
    ]);
  });
});

describe('AllowedIps: semantics', () => {
  it('overlapping IPv4 prefixes pick the longest', () => {
    const t = new AllowedIps<TestPeer>();
    const [all, ten, tenOne, host] = ['all', 'ten', 'tenOne', 'host'].map(peer) as [TestPeer, TestPeer, TestPeer, TestPeer];
    t.insert(cidr('10.1.2.3/32'), host);
    t.insert(cidr('10.0.0.0/8'), ten);
    t.insert(cidr('0.0.0.0/0'), all);
    t.insert(cidr('10.1.0.0/16'), tenOne);
    expect(t.lookup(ip('10.1.2.3'))).toBe(host);
    expect(t.lookup(ip('10.1.2.4'))).toBe(tenOne);
    expect(t.lookup(ip('10.1.255.255'))).toBe(tenOne);
    expect(t.lookup(ip('10.2.0.0'))).toBe(ten);
    expect(t.lookup(ip('10.255.255.255'))).toBe(ten);
    expect(t.lookup(ip('11.0.0.0'))).toBe(all);
    expect(t.lookup(ip('9.255.255.255'))).toBe(all);
    expect(t.lookup(ip('0.0.0.0'))).toBe(all);
    expect(t.lookup(ip('255.255.255.255'))).toBe(all);
    expect(t.size).toBe(4);

    expect(t.remove(cidr('10.1.0.0/16'), tenOne)).toBe(true);
    expect(t.lookup(ip('10.1.2.4'))).toBe(ten);
    expect(t.lookup(ip('10.1.2.3'))).toBe(host);
    expect(t.remove(cidr('10.0.0.0/8'), ten)).toBe(true);
    expect(t.lookup(ip('10.1.2.4'))).toBe(all);
    expect(t.remove(cidr('0.0.0.0/0'), all)).toBe(true);
    expect(t.lookup(ip('10.1.2.4'))).toBeUndefined();
    expect(t.lookup(ip('10.1.2.3'))).toBe(host);
    expect(t.remove(cidr('10.1.2.3/32'), host)).toBe(true);
    expect(t.lookup(ip('10.1.2.3'))).toBeUndefined();
    expect(t.size).toBe(0);
    expect(t.nodeCount).toBe(0);
  });

  it('overlapping IPv6 prefixes pick the longest', () => {
    const t = new AllowedIps<TestPeer>();
    const [all, ula, net, host] = ['all', 'ula', 'net', 'host'].map(peer) as [TestPeer, TestPeer, TestPeer, TestPeer];
    t.insert(cidr('::/0'), all);
    t.insert(cidr('fd00::/8'), ula);
    t.insert(cidr('fd00:1::/64'), net);
    t.insert(cidr('fd00:1::1/128'), host);
    expect(t.lookup(ip('fd00:1::1'))).toBe(host);
    expect(t.lookup(ip('fd00:1::2'))).toBe(net);
    expect(t.lookup(ip('fd00:1::ffff:ffff:ffff:ffff'))).toBe(net);
    expect(t.lookup(ip('fd00:1:0:1::1'))).toBe(ula);
    expect(t.lookup(ip('fdff:ffff::'))).toBe(ula);
    expect(t.lookup(ip('fe00::'))).toBe(all);
    expect(t.lookup(ip('::'))).toBe(all);
    expect(t.lookup(ip('ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff'))).toBe(all);
    t.removeByPeer(net);
    expect(t.lookup(ip('fd00:1::2'))).toBe(ula);
    expect(t.lookup(ip('fd00:1::1'))).toBe(host);
    for (const p of [all, ula, host]) t.removeByPeer(p);
    expect(t.nodeCount).toBe(0);
  });

  it('inserting an existing prefix moves it to the new peer', () => {
    const t = new AllowedIps<TestPeer>();
    const [a, b] = [peer('a'), peer('b')];
    t.insert(cidr('10.0.0.0/24'), a);
    t.insert(cidr('fd00::/64'), a);
    t.insert(cidr('10.0.0.0/24'), b);
    expect(t.lookup(ip('10.0.0.7'))).toBe(b);
    expect(t.size).toBe(2);
    expect(names(t.entriesForPeer(a))).toEqual(['fd00::/64']);
    expect(names(t.entriesForPeer(b))).toEqual(['10.0.0.0/24']);
    // the old owner can no longer remove it
    expect(t.remove(cidr('10.0.0.0/24'), a)).toBe(false);
    expect(t.lookup(ip('10.0.0.7'))).toBe(b);
    // inserting it again for the same peer changes nothing
    t.insert(cidr('10.0.0.0/24'), b);
    expect(t.size).toBe(2);
    expect(names(t.entriesForPeer(b))).toEqual(['10.0.0.0/24']);
    t.removeByPeer(a);
    expect(t.lookup(ip('10.0.0.7'))).toBe(b);
    expect(t.lookup(ip('fd00::1'))).toBeUndefined();
  });

  it('remove only takes a prefix from its owner, and only that exact prefix', () => {
    const t = new AllowedIps<TestPeer>();
    const [a, b] = [peer('a'), peer('b')];
    t.insert(cidr('10.0.0.0/8'), a);
    t.insert(cidr('10.1.0.0/16'), b);
    expect(t.remove(cidr('10.0.0.0/8'), b)).toBe(false);
    expect(t.remove(cidr('10.0.0.0/9'), a)).toBe(false);
    expect(t.remove(cidr('10.0.0.0/7'), a)).toBe(false);
    expect(t.remove(cidr('10.1.0.0/16'), a)).toBe(false);
    expect(t.remove(cidr('::/0'), a)).toBe(false);
    expect(t.size).toBe(2);
    expect(t.remove(cidr('10.0.0.0/8'), a)).toBe(true);
    expect(t.remove(cidr('10.0.0.0/8'), a)).toBe(false);
    expect(t.lookup(ip('10.2.0.0'))).toBeUndefined();
    expect(t.lookup(ip('10.1.0.0'))).toBe(b);
    expect(t.size).toBe(1);
  });

  it('removing a branch point keeps what hangs below it', () => {
    const t = new AllowedIps<TestPeer>();
    const [a, b, c] = [peer('a'), peer('b'), peer('c')];
    t.insert(cidr('10.0.0.0/8'), a);
    t.insert(cidr('10.0.0.0/16'), b);
    t.insert(cidr('10.128.0.0/16'), c);
    expect(t.remove(cidr('10.0.0.0/8'), a)).toBe(true);
    expect(t.lookup(ip('10.0.1.1'))).toBe(b);
    expect(t.lookup(ip('10.128.1.1'))).toBe(c);
    expect(t.lookup(ip('10.64.0.0'))).toBeUndefined();
    // the node stays as a branch point for the two /16s
    expect(t.nodeCount).toBe(3);
    expect(t.remove(cidr('10.0.0.0/16'), b)).toBe(true);
    // ... and goes once one side is empty
    expect(t.nodeCount).toBe(1);
    t.insert(cidr('10.0.0.0/8'), a);
    expect(t.lookup(ip('10.64.0.0'))).toBe(a);
    expect(t.lookup(ip('10.128.1.1'))).toBe(c);
  });

  it('removeByPeer leaves other peers alone', () => {
    const t = new AllowedIps<TestPeer>();
    const [a, b] = [peer('a'), peer('b')];
    for (let i = 0; i < 64; i++) {
      t.insert(cidr(`10.${i}.0.0/16`), i % 2 === 0 ? a : b);
      t.insert(cidr(`fd00:${i.toString(16)}::/32`), i % 2 === 0 ? b : a);
    }
    t.removeByPeer(a);
    expect(t.size).toBe(64);
    expect(t.entriesForPeer(a)).toEqual([]);
    expect(t.entriesForPeer(b)).toHaveLength(64);
    expect(t.lookup(ip('10.0.1.1'))).toBeUndefined();
    expect(t.lookup(ip('10.1.1.1'))).toBe(b);
    expect(t.lookup(ip('fd00:0::1'))).toBe(b);
    expect(t.lookup(ip('fd00:1::1'))).toBeUndefined();
    t.removeByPeer(a); // again: nothing to do
    t.removeByPeer(peer('never added'));
    expect(t.size).toBe(64);
  });

  it('parseCidr already zeroes host bits, and the table masks raw prefixes too', () => {
    const parsed = cidr('10.1.2.3/8');
    expect(formatCidr(parsed)).toBe('10.0.0.0/8');
    expect(Array.from(parsed.bytes)).toEqual([10, 0, 0, 0]);
    expect(formatCidr(cidr('fd00:1:2::3/20'))).toBe('fd00::/20');

    const t = new AllowedIps<TestPeer>();
    const [a, b] = [peer('a'), peer('b')];
    t.insert(rawCidr([10, 1, 2, 3], 8), a);
    expect(names(t.entriesForPeer(a))).toEqual(['10.0.0.0/8']);
    expect(t.lookup(ip('10.200.0.1'))).toBe(a);
    // the same prefix, written with other host bits, is the same entry
    t.insert(rawCidr([10, 9, 9, 9], 8), b);
    expect(t.size).toBe(1);
    expect(t.remove(rawCidr([10, 7, 7, 7], 8), b)).toBe(true);
    expect(t.size).toBe(0);
  });

  it('/0, /32 and /128 edges', () => {
    const t = new AllowedIps<TestPeer>();
    const [def4, def6, top4, bottom4, top6, bottom6] = ['def4', 'def6', 'top4', 'bottom4', 'top6', 'bottom6'].map(peer) as TestPeer[];
    t.insert(cidr('255.255.255.255/32'), top4!);
    t.insert(cidr('0.0.0.0/32'), bottom4!);
    t.insert(cidr('ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff/128'), top6!);
    t.insert(cidr('::/128'), bottom6!);
    expect(t.lookup(ip('255.255.255.255'))).toBe(top4);
    expect(t.lookup(ip('255.255.255.254'))).toBeUndefined();
    expect(t.lookup(ip('0.0.0.0'))).toBe(bottom4);
    expect(t.lookup(ip('0.0.0.1'))).toBeUndefined();
    expect(t.lookup(ip('ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff'))).toBe(top6);
    expect(t.lookup(ip('ffff:ffff:ffff:ffff:ffff:ffff:ffff:fffe'))).toBeUndefined();
    expect(t.lookup(ip('::'))).toBe(bottom6);
    expect(t.lookup(ip('::1'))).toBeUndefined();
    t.insert(cidr('0.0.0.0/0'), def4!);
    t.insert(cidr('::/0'), def6!);
    expect(t.lookup(ip('255.255.255.254'))).toBe(def4);
    expect(t.lookup(ip('0.0.0.0'))).toBe(bottom4);
    expect(t.lookup(ip('::1'))).toBe(def6);
    expect(t.lookup(ip('::'))).toBe(bottom6);
    expect(t.lookup(ip('8000::'))).toBe(def6);
    expect(names(t.entriesForPeer(def4!))).toEqual(['0.0.0.0/0']);
    expect(names(t.entriesForPeer(def6!))).toEqual(['::/0']);
    // a /0 next to a /32 inside 0.0.0.0/1 and one inside 128.0.0.0/1
    expect(t.remove(cidr('0.0.0.0/32'), bottom4!)).toBe(true);
    expect(t.lookup(ip('0.0.0.0'))).toBe(def4);
    expect(t.size).toBe(5);
  });

  it('families never mix', () => {
    const t = new AllowedIps<TestPeer>();
    const [six, four] = [peer('six'), peer('four')];
    t.insert(cidr('::/0'), six);
    expect(t.lookup(ip('10.0.0.1'))).toBeUndefined();
    expect(t.lookup(ip('0.0.0.0'))).toBeUndefined();
    t.insert(cidr('0.0.0.0/0'), four);
    t.insert(cidr('10.0.0.0/8'), four);
    expect(t.lookup(ip('10.0.0.1'))).toBe(four);
    expect(t.lookup(ip('::'))).toBe(six);
    // IPv4-mapped and -compatible IPv6 addresses are IPv6 to the table, as in wireguard-go
    expect(t.lookup(ip('::ffff:10.0.0.1'))).toBe(six);
    expect(t.lookup(ip('::10.0.0.1'))).toBe(six);
    // 0.0.0.0/0 and ::/0 are different prefixes: removing one keeps the other
    expect(t.remove(cidr('::/0'), four)).toBe(false);
    expect(t.remove(cidr('0.0.0.0/0'), six)).toBe(false);
    t.removeByPeer(six);
    expect(t.lookup(ip('::'))).toBeUndefined();
    expect(t.lookup(ip('1.2.3.4'))).toBe(four);
  });

  it('lookups of other lengths find nothing', () => {
    const t = new AllowedIps<TestPeer>();
    t.insert(cidr('0.0.0.0/0'), peer('a'));
    t.insert(cidr('::/0'), peer('b'));
    for (const length of [0, 1, 3, 5, 8, 15, 17, 32]) expect(t.lookup(new Uint8Array(length))).toBeUndefined();
    // a Buffer is a Uint8Array
    expect(t.lookup(Buffer.from([1, 2, 3, 4]))?.name).toBe('a');
  });

  it('refuses malformed prefixes', () => {
    const t = new AllowedIps<TestPeer>();
    const a = peer('a');
    const bad: Cidr[] = [
      { family: 4, bytes: new Uint8Array(16), prefixLength: 8 },
      { family: 6, bytes: new Uint8Array(4), prefixLength: 8 },
      { family: 4, bytes: new Uint8Array(4), prefixLength: 33 },
      { family: 6, bytes: new Uint8Array(16), prefixLength: 129 },
      { family: 4, bytes: new Uint8Array(4), prefixLength: -1 },
      { family: 4, bytes: new Uint8Array(4), prefixLength: 1.5 },
      { family: 5 as IpFamily, bytes: new Uint8Array(4), prefixLength: 8 },
    ];
    for (const c of bad) {
      expect(() => t.insert(c, a)).toThrow(AddressError);
      expect(() => t.remove(c, a)).toThrow(AddressError);
    }
    expect(t.size).toBe(0);
    expect(t.nodeCount).toBe(0);
  });

  it('entriesForPeer returns sorted copies', () => {
    const t = new AllowedIps<TestPeer>();
    const a = peer('a');
    for (const text of ['fd00::/8', '10.0.0.0/16', '10.0.0.0/8', '::/0', '9.0.0.0/8', '0.0.0.0/0', 'fd00::/16', '10.0.0.1/32']) {
      t.insert(cidr(text), a);
    }
    const entries = t.entriesForPeer(a);
    expect(names(entries)).toEqual(['0.0.0.0/0', '9.0.0.0/8', '10.0.0.0/8', '10.0.0.0/16', '10.0.0.1/32', '::/0', 'fd00::/8', 'fd00::/16']);
    entries[0]!.bytes[0] = 99;
    expect(names(t.entriesForPeer(a))[0]).toBe('0.0.0.0/0');
  });

  it('clear empties both families', () => {
    const t = new AllowedIps<TestPeer>();
    const a = peer('a');
    t.insert(cidr('10.0.0.0/8'), a);
    t.insert(cidr('fd00::/8'), a);
    t.clear();
    expect(t.size).toBe(0);
    expect(t.nodeCount).toBe(0);
    expect(t.lookup(ip('10.0.0.1'))).toBeUndefined();
    expect(t.lookup(ip('fd00::1'))).toBeUndefined();
    expect(t.entriesForPeer(a)).toEqual([]);
    t.insert(cidr('10.0.0.0/8'), a);
    expect(t.lookup(ip('10.0.0.1'))).toBe(a);
  });

  it('insert/remove cycles leave no nodes behind', () => {
    const rng = new Rng(7);
    const t = new AllowedIps<TestPeer>();
    const peers = [peer('a'), peer('b'), peer('c')];
    for (let cycle = 0; cycle < 200; cycle++) {
      const family: IpFamily = cycle % 2 === 0 ? 4 : 6;
      const length = family === 4 ? 4 : 16;
      const added: [Cidr, TestPeer][] = [];
      for (let i = 0; i < 20; i++) {
        const prefixLength = rng.range(0, length * 8);
        const c: Cidr = { family, bytes: maskBytes(rng.bytes(length), prefixLength), prefixLength };
        const p = rng.pick(peers);
        t.insert(c, p);
        added.push([c, p]);
      }
      // the last insert of a prefix owns it; removing in reverse hits each owner first
      for (const [c, p] of added.reverse()) t.remove(c, p);
      expect(t.size).toBe(0);
      expect(t.nodeCount).toBe(0);
    }
  });
});

/** The obviously-correct table: a list scanned in full. */
class Reference<Peer> {
  readonly entries: { cidr: Cidr; peer: Peer }[] = [];

  insert(cidr: Cidr, peer: Peer): void {
    const existing = this.entries.find((e) => sameCidr(e.cidr, cidr));
    if (existing) existing.peer = peer;
    else this.entries.push({ cidr, peer });
  }

  remove(cidr: Cidr, peer: Peer): boolean {
    const i = this.entries.findIndex((e) => sameCidr(e.cidr, cidr) && e.peer === peer);
    if (i < 0) return false;
    this.entries.splice(i, 1);
    return true;
  }

  removeByPeer(peer: Peer): void {
    for (let i = this.entries.length - 1; i >= 0; i--) if (this.entries[i]!.peer === peer) this.entries.splice(i, 1);
  }

  lookup(address: Uint8Array): Peer | undefined {
    let best: { cidr: Cidr; peer: Peer } | undefined;
    for (const e of this.entries) {
      if (e.cidr.bytes.length !== address.length || !prefixMatches(e.cidr, address)) continue;
      if (best === undefined || e.cidr.prefixLength > best.cidr.prefixLength) best = e;
    }
    return best?.peer;
  }

  entriesForPeer(peer: Peer): string[] {
    const mine = this.entries.filter((e) => e.peer === peer).map((e) => e.cidr);
    mine.sort((x, y) => x.family - y.family || Buffer.compare(x.bytes, y.bytes) || x.prefixLength - y.prefixLength);
    return names(mine);
  }
}

function sameCidr(x: Cidr, y: Cidr): boolean {
  return x.family === y.family && x.prefixLength === y.prefixLength && Buffer.compare(x.bytes, y.bytes) === 0;
}

function prefixMatches(c: Cidr, address: Uint8Array): boolean {
  for (let bit = 0; bit < c.prefixLength; bit++) {
    const mask = 0x80 >> (bit & 7);
    if (((c.bytes[bit >> 3]! ^ address[bit >> 3]!) & mask) !== 0) return false;
  }
  return true;
}

/** `base` with its first `keep` bits kept and the rest random: addresses near existing prefixes. */
function near(rng: Rng, base: Uint8Array, keep: number): Uint8Array {
  const noise = rng.bytes(base.length);
  const keepMask = maskBytes(new Uint8Array(base.length).fill(0xff), keep);
  return base.map((byte, i) => (byte & keepMask[i]!) | (noise[i]! & ~keepMask[i]!));
}

const SEEDS = [1, 2, 0xdecafbad, ...(process.env.FUZZ_SEED ? [Number(process.env.FUZZ_SEED)] : [])];

describe.each([4, 6] as const)('AllowedIps against a linear scan, IPv%i', (family) => {
  const length = family === 4 ? 4 : 16;
  const maxBits = length * 8;

  function randomPrefixLength(rng: Rng): number {
    if (rng.chance(0.05)) return rng.pick([0, maxBits]);
    // mostly the lengths people route, but every length now and then
    return rng.chance(0.7) ? rng.range(Math.max(0, maxBits - 40), maxBits) : rng.range(0, maxBits);
  }

  it.each(SEEDS)('random inserts, removes and lookups agree (seed %i)', (seed) => {
    const rng = new Rng(seed);
    const peers = Array.from({ length: 16 }, (_, i) => peer(`p${i}`));
    const t = new AllowedIps<TestPeer>();
    const ref = new Reference<TestPeer>();
    const other = new AllowedIps<TestPeer>(); // the other family's table stays empty for lookups of this one
    const bases: Uint8Array[] = [];
    const randomAddress = (): Uint8Array =>
      bases.length > 0 && rng.chance(0.7) ? near(rng, rng.pick(bases), rng.range(0, maxBits)) : rng.bytes(length);

    for (let op = 0; op < 6000; op++) {
      const roll = rng.float();
      const context = `seed ${seed}, op ${op}`;
      if (roll < 0.4) {
        const prefixLength = randomPrefixLength(rng);
        const address = randomAddress();
        const p = rng.pick(peers);
        // half the time with host bits set: the table must mask them as the reference does
        const c: Cidr = { family, bytes: rng.chance(0.5) ? address : maskBytes(address, prefixLength), prefixLength };
        t.insert(c, p);
        ref.insert({ family, bytes: maskBytes(address, prefixLength), prefixLength }, p);
        bases.push(address);
      } else if (roll < 0.55 && ref.entries.length > 0) {
        const entry = rng.pick(ref.entries);
        const p = rng.chance(0.75) ? entry.peer : rng.pick(peers);
        const c = rng.chance(0.1) ? { ...entry.cidr, prefixLength: Math.max(0, entry.cidr.prefixLength - 1) } : entry.cidr;
        const masked = { ...c, bytes: maskBytes(c.bytes, c.prefixLength) };
        expect(t.remove(masked, p), context).toBe(ref.remove(masked, p));
      } else if (roll < 0.57) {
        const p = rng.pick(peers);
        t.removeByPeer(p);
        ref.removeByPeer(p);
      } else {
        const address = randomAddress();
        expect(t.lookup(address)?.name, `${context}: ${Array.from(address).join(',')}`).toBe(ref.lookup(address)?.name);
      }
      if (op % 500 === 0) {
        expect(t.size, context).toBe(ref.entries.length);
        for (const p of peers) expect(names(t.entriesForPeer(p)), context).toEqual(ref.entriesForPeer(p));
      }
      expect(t.nodeCount, context).toBeLessThanOrEqual(Math.max(0, 2 * t.size - 1));
    }
    expect(t.size).toBe(ref.entries.length);
    expect(other.lookup(rng.bytes(length))).toBeUndefined();
    for (const p of peers) t.removeByPeer(p);
    expect(t.size).toBe(0);
    expect(t.nodeCount).toBe(0);
  });

  it.each(SEEDS)('a dense table built like the kernel randomized test agrees (seed %i)', (seed) => {
    const rng = new Rng(seed ^ 0x5a5a5a5a);
    const peers = Array.from({ length: 200 }, (_, i) => peer(`p${i}`));
    const t = new AllowedIps<TestPeer>();
    const ref = new Reference<TestPeer>();
    for (let i = 0; i < 100; i++) {
      const base = rng.bytes(length);
      const insert = (address: Uint8Array): void => {
        const prefixLength = rng.range(1, maxBits);
        const p = rng.pick(peers);
        t.insert({ family, bytes: address, prefixLength }, p);
        ref.insert({ family, bytes: maskBytes(address, prefixLength), prefixLength }, p);
      };
      insert(base);
      for (let j = 0; j < 30; j++) insert(near(rng, base, rng.range(0, maxBits - 1)));
    }
    // probe both uniformly and near stored prefixes (where the interesting branches are)
    for (let q = 0; q < 3000; q++) {
      const address = q % 2 === 0 ? rng.bytes(length) : near(rng, rng.pick(ref.entries).cidr.bytes, rng.range(0, maxBits));
      expect(t.lookup(address)?.name, `seed ${seed}, query ${q}`).toBe(ref.lookup(address)?.name);
    }
    expect(t.size).toBe(ref.entries.length);
  });
});

/** A minimal IPv4 header (no options) carrying `payloadLength` zero bytes. */
function ipv4Packet(source: string, destination: string, payloadLength = 8): Uint8Array {
  const packet = new Uint8Array(20 + payloadLength);
  packet[0] = 0x45;
  new DataView(packet.buffer).setUint16(2, packet.length);
  packet[8] = 64;
  packet[9] = 17;
  packet.set(ip(source), 12);
  packet.set(ip(destination), 16);
  return packet;
}

/** A minimal IPv6 header carrying `payloadLength` zero bytes. */
function ipv6Packet(source: string, destination: string, payloadLength = 8): Uint8Array {
  const packet = new Uint8Array(40 + payloadLength);
  packet[0] = 0x60;
  new DataView(packet.buffer).setUint16(4, payloadLength);
  packet[6] = 17;
  packet[7] = 64;
  packet.set(ip(source), 8);
  packet.set(ip(destination), 24);
  return packet;
}

describe('AllowedIps: packet helpers', () => {
  const [local, remote, other] = [peer('local'), peer('remote'), peer('other')];
  function table(): AllowedIps<TestPeer> {
    const t = new AllowedIps<TestPeer>();
    t.insert(cidr('10.0.0.1/32'), local);
    t.insert(cidr('10.0.0.2/32'), remote);
    t.insert(cidr('192.168.0.0/16'), other);
    t.insert(cidr('fd00::1/128'), local);
    t.insert(cidr('fd00::2/128'), remote);
    t.insert(cidr('fd00:9::/32'), other);
    return t;
  }

  it('reads IPv4 source and destination', () => {
    const t = table();
    const packet = ipv4Packet('10.0.0.1', '10.0.0.2');
    expect(t.lookupPacketSource(packet)).toBe(local);
    expect(t.lookupPacketDestination(packet)).toBe(remote);
    expect(t.lookupPacketDestination(ipv4Packet('10.0.0.2', '192.168.7.7'))).toBe(other);
    expect(t.lookupPacketDestination(ipv4Packet('10.0.0.2', '8.8.8.8'))).toBeUndefined();
    // exactly a header, no payload
    expect(t.lookupPacketSource(ipv4Packet('10.0.0.2', '10.0.0.1', 0))).toBe(remote);
    // a header inside a larger buffer
    const buffer = new Uint8Array(100);
    buffer.set(ipv4Packet('10.0.0.1', '10.0.0.2'), 30);
    expect(t.lookupPacketDestination(buffer.subarray(30))).toBe(remote);
    expect(t.lookupPacketDestination(Buffer.from(packet))).toBe(remote);
  });

  it('reads IPv6 source and destination', () => {
    const t = table();
    const packet = ipv6Packet('fd00::1', 'fd00::2');
    expect(t.lookupPacketSource(packet)).toBe(local);
    expect(t.lookupPacketDestination(packet)).toBe(remote);
    expect(t.lookupPacketDestination(ipv6Packet('fd00::1', 'fd00:9:1::5', 0))).toBe(other);
    expect(t.lookupPacketSource(ipv6Packet('fd00::3', 'fd00::1'))).toBeUndefined();
  });

  it('the inbound check: the source must belong to the sending peer', () => {
    const t = table();
    expect(t.lookupPacketSource(ipv4Packet('10.0.0.2', '10.0.0.1'))).toBe(remote);
    // remote spoofing another peer's address is told apart by identity
    expect(t.lookupPacketSource(ipv4Packet('192.168.1.1', '10.0.0.1'))).not.toBe(remote);
    expect(t.lookupPacketSource(ipv6Packet('fd00::7', 'fd00::1'))).toBeUndefined();
  });

  it('short, empty and non-IP input finds nothing', () => {
    const t = table();
    t.insert(cidr('0.0.0.0/0'), other);
    t.insert(cidr('::/0'), other);
    const v4 = ipv4Packet('10.0.0.1', '10.0.0.2', 0);
    const v6 = ipv6Packet('fd00::1', 'fd00::2', 0);
    for (const packet of [new Uint8Array(0), v4.subarray(0, 1), v4.subarray(0, 19), v6.subarray(0, 20), v6.subarray(0, 39)]) {
      expect(t.lookupPacketSource(packet)).toBeUndefined();
      expect(t.lookupPacketDestination(packet)).toBeUndefined();
    }
    for (const version of [0, 1, 2, 3, 5, 7, 8, 15]) {
      const packet = new Uint8Array(60);
      packet[0] = (version << 4) | 5;
      expect(t.lookupPacketSource(packet)).toBeUndefined();
      expect(t.lookupPacketDestination(packet)).toBeUndefined();
    }
    // the version nibble decides the layout, whatever the length
    const v4Long = new Uint8Array(60);
    v4Long[0] = 0x45;
    v4Long.set(ip('10.0.0.2'), 16);
    expect(t.lookupPacketDestination(v4Long)).toBe(remote);
  });

  it('never throws on random bytes, and agrees with reading the header by hand', () => {
    const t = table();
    const rng = new Rng(0xa110ed);
    for (let i = 0; i < 20_000; i++) {
      const packet = rng.bytes(rng.range(0, 64));
      if (packet.length > 0 && rng.chance(0.6)) packet[0] = (rng.pick([4, 6]) << 4) | (packet[0]! & 0x0f);
      if (rng.chance(0.3) && packet.length >= 40) packet.set(rng.pick([ip('10.0.0.1'), ip('fd00::2').subarray(0, 4)]), 12);
      const version = packet.length > 0 ? packet[0]! >> 4 : -1;
      const byHand = (v4: number, v6: number): TestPeer | undefined =>
        version === 4 && packet.length >= 20
          ? t.lookup(packet.slice(v4, v4 + 4))
          : version === 6 && packet.length >= 40
            ? t.lookup(packet.slice(v6, v6 + 16))
            : undefined;
      expect(t.lookupPacketSource(packet)).toBe(byHand(12, 8));
      expect(t.lookupPacketDestination(packet)).toBe(byHand(16, 24));
    }
  });
});
