/**
 * The node-slice allocator: the node IP is the first usable address and
 * reserved (IPv4 and IPv6), allocate and release round trip, the
 * exhaustion message, LIFO reuse, and the fixes (stray release, slice too small).
 */
import { describe, expect, it } from 'vitest';
import { IpAllocator } from '../../src/overlay/allocator.js';
import { DEFAULT_CLUSTER_CIDR } from '../../src/overlay/constants.js';
import { OverlayError } from '../../src/overlay/errors.js';

describe('IpAllocator', () => {
  it('node_ip_is_first_usable_and_reserved (/26)', () => {
    const alloc = new IpAllocator('10.200.0.0/26');
    expect(alloc.nodeIp).toBe('10.200.0.1');
    const handedOut: string[] = [];
    for (let i = 0; i < 10; i++) {
      const ip = alloc.allocate();
      expect(ip).not.toBe('10.200.0.1');
      handedOut.push(ip);
    }
    expect(alloc.nodeIp).toBe('10.200.0.1');
    expect(handedOut[0]).toBe('10.200.0.2');
    expect(new Set(handedOut).size).toBe(10);
    alloc.release('10.200.0.1');
    expect(alloc.allocate()).not.toBe('10.200.0.1');
  });

  it('node_ip_ipv6_is_first_usable (fd00:200::/64)', () => {
    const alloc = new IpAllocator('fd00:200::/64');
    expect(alloc.nodeIp).toBe('fd00:200::1');
    const got = Array.from({ length: 5 }, () => alloc.allocate());
    expect(got).not.toContain('fd00:200::1');
    expect(got[0]).toBe('fd00:200::2');
    expect(alloc.nodeIp).toBe('fd00:200::1');
  });

  it('allocate_and_release_ip_round_trip: a released address comes back first', () => {
    const alloc = new IpAllocator(DEFAULT_CLUSTER_CIDR);
    const a = alloc.allocate();
    const b = alloc.allocate();
    expect(a).not.toBe(b);
    alloc.release(a);
    expect(alloc.allocate()).toBe(a);
  });

  it('reuses released addresses most recent first (LIFO), then continues the counter', () => {
    const alloc = new IpAllocator('10.9.0.0/24');
    const [a, b, c] = [alloc.allocate(), alloc.allocate(), alloc.allocate()];
    alloc.release(a);
    alloc.release(c);
    expect(alloc.allocate()).toBe(c);
    expect(alloc.allocate()).toBe(a);
    expect(alloc.allocate()).toBe('10.9.0.5');
    expect(b).toBe('10.9.0.3');
  });

  it('release is idempotent: releasing twice does not hand the address out twice', () => {
    const alloc = new IpAllocator('10.9.0.0/24');
    const a = alloc.allocate();
    alloc.release(a);
    alloc.release(a);
    const first = alloc.allocate();
    const second = alloc.allocate();
    expect(first).toBe(a);
    expect(second).not.toBe(a);
  });

  it('ignores the release of an address it never handed out (fix: no duplicate hand-out)', () => {
    const alloc = new IpAllocator('10.9.0.0/24');
    alloc.release('10.9.0.7');
    alloc.release('192.168.1.1');
    alloc.release('fd00::5');
    const got = Array.from({ length: 10 }, () => alloc.allocate());
    expect(got[0]).toBe('10.9.0.2');
    expect(new Set(got).size).toBe(10);
  });

  it('exhaustion: a /29 gives .2 to .6, then the exhaustion message; the broadcast address is never handed out', () => {
    const alloc = new IpAllocator('10.0.0.0/29');
    expect(Array.from({ length: 5 }, () => alloc.allocate())).toEqual(['10.0.0.2', '10.0.0.3', '10.0.0.4', '10.0.0.5', '10.0.0.6']);
    expect(() => alloc.allocate()).toThrow(new OverlayError('IP allocator exhausted: next address 10.0.0.7 is outside slice 10.0.0.0/29'));
    // The counter does not run on: the same address is named again, and a release makes room.
    expect(() => alloc.allocate()).toThrow(/next address 10\.0\.0\.7 is outside/);
    alloc.release('10.0.0.4');
    expect(alloc.allocate()).toBe('10.0.0.4');
  });

  it('IPv6 exhaustion has no broadcast: a /126 hands out ::2 and ::3', () => {
    const alloc = new IpAllocator('fd00::/126');
    expect([alloc.allocate(), alloc.allocate()]).toEqual(['fd00::2', 'fd00::3']);
    expect(() => alloc.allocate()).toThrow('IP allocator exhausted: next address fd00::4 is outside slice fd00::/126');
  });

  it('normalises host bits and address text', () => {
    const alloc = new IpAllocator('10.200.5.77/26');
    expect(alloc.cidrText).toBe('10.200.5.64/26');
    expect(alloc.nodeIp).toBe('10.200.5.65');
    const v6 = new IpAllocator('FD00:0200:0:0::/64');
    const ip = v6.allocate();
    v6.release('fd00:200:0:0:0:0:0:2');
    expect(v6.allocated()).toEqual([]);
    expect(v6.allocate()).toBe(ip);
  });

  it('claim() restores a saved assignment: it is skipped by allocate until released', () => {
    const alloc = new IpAllocator('10.9.0.0/24');
    alloc.claim('10.9.0.2');
    alloc.claim('10.9.0.4');
    expect(alloc.allocate()).toBe('10.9.0.3');
    expect(alloc.allocate()).toBe('10.9.0.5');
    expect(alloc.allocated()).toEqual(['10.9.0.2', '10.9.0.3', '10.9.0.4', '10.9.0.5']);
    alloc.release('10.9.0.2');
    expect(alloc.allocate()).toBe('10.9.0.2');
    expect(() => alloc.claim('10.9.0.1')).toThrow(/node IP/);
    expect(() => alloc.claim('10.9.1.1')).toThrow(/outside slice 10\.9\.0\.0\/24/);
  });

  it('refuses bad and too-small slices with a clear error', () => {
    expect(() => new IpAllocator('10.0.0.0/33')).toThrow(/^invalid CIDR 10\.0\.0\.0\/33: /);
    expect(() => new IpAllocator('banana')).toThrow(OverlayError);
    expect(() => new IpAllocator('10.0.0.0/31')).toThrow(/too small/);
    expect(() => new IpAllocator('10.0.0.0/32')).toThrow(/too small/);
    expect(() => new IpAllocator('fd00::1/128')).toThrow(/too small/);
    expect(new IpAllocator('10.0.0.0/30').allocate()).toBe('10.0.0.2');
    expect(() => new IpAllocator('x').release('1.2.3.4')).toThrow();
    expect(() => new IpAllocator('10.0.0.0/24').release('not-an-ip')).toThrow(/invalid IP address not-an-ip/);
  });

  it('walks a whole /24: 253 distinct addresses, never .0, .1 or .255', () => {
    const alloc = new IpAllocator('10.1.2.0/24');
    const got = new Set<string>();
    for (let i = 0; i < 253; i++) got.add(alloc.allocate());
    expect(got.size).toBe(253);
    for (const bad of ['10.1.2.0', '10.1.2.1', '10.1.2.255']) expect(got.has(bad)).toBe(false);
    expect(() => alloc.allocate()).toThrow(/exhausted: next address 10\.1\.2\.255/);
  });
});
