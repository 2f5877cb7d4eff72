/**
 * ServiceSubnetRegistry: /26 and /120 blocks of the cluster, spread by a hash
 * of (service, nodeKey), never overlapping reserved ranges, `avoid` ranges or
 * each other; idempotent assign, release, exhaustion, restore.
 */
import { createHash } from 'node:crypto';
import { describe, expect, it } from 'vitest';
import { parseCidr } from '../../src/device/addr.js';
import { bytesToBigInt } from '../../src/overlay/allocator.js';
import { SERVICE_SUBNET_PREFIX_V4, SERVICE_SUBNET_PREFIX_V6 } from '../../src/overlay/constants.js';
import { OverlayError } from '../../src/overlay/errors.js';
import { SHARED_BRIDGE_KEY, ServiceSubnetRegistry } from '../../src/overlay/services/subnet-registry.js';
import { Rng } from '../helpers/fuzz.js';

interface Range {
  first: bigint;
  last: bigint;
}

function rangeOf(text: string): Range {
  const cidr = parseCidr(text);
  const first = bytesToBigInt(cidr.bytes);
  return { first, last: first + (1n << BigInt(cidr.bytes.length * 8 - cidr.prefixLength)) - 1n };
}

function overlaps(a: string, b: string): boolean {
  const x = rangeOf(a);
  const y = rangeOf(b);
  return x.first <= y.last && y.first <= x.last;
}

function inside(inner: string, outer: string): boolean {
  const x = rangeOf(inner);
  const y = rangeOf(outer);
  return x.first >= y.first && x.last <= y.last;
}

function thrown(fn: () => unknown): OverlayError {
  try {
    fn();
  } catch (error) {
    expect(error).toBeInstanceOf(OverlayError);
    return error as OverlayError;
  }
  throw new Error('expected an OverlayError');
}

describe('ServiceSubnetRegistry', () => {
  it('hands out an aligned /26 of an IPv4 cluster by default', () => {
    const registry = new ServiceSubnetRegistry('10.200.0.0/16');
    expect(registry.clusterCidr).toBe('10.200.0.0/16');
    expect(registry.prefixLength).toBe(SERVICE_SUBNET_PREFIX_V4);
    const subnet = registry.assign('web', '0');
    expect(subnet).toMatch(/^10\.200\.\d+\.(0|64|128|192)\/26$/);
    expect(inside(subnet, '10.200.0.0/16')).toBe(true);
  });

  it('hands out an aligned /120 of an IPv6 cluster by default', () => {
    const registry = new ServiceSubnetRegistry('fd00:200::/48');
    expect(registry.prefixLength).toBe(SERVICE_SUBNET_PREFIX_V6);
    const a = registry.assign('web', '0');
    const b = registry.assign('api', '0');
    for (const subnet of [a, b]) {
      expect(subnet).toMatch(/^fd00:200:.*00\/120$|^fd00:200::\/120$/);
      expect(inside(subnet, 'fd00:200::/48')).toBe(true);
    }
    expect(overlaps(a, b)).toBe(false);
  });

  it('starts probing at sha256(service "\\0" nodeKey)[0..6] mod block count', () => {
    const registry = new ServiceSubnetRegistry('10.200.0.0/16');
    const digest = createHash('sha256').update('web\u00000').digest();
    const index = Number(bytesToBigInt(digest.subarray(0, 6)) % 1024n);
    const expected = `10.200.${index >> 2}.${(index & 3) * 64}/26`;
    expect(registry.assign('web', '0')).toBe(expected);
  });

  it('canonicalises the cluster CIDR and honours a prefixLength option', () => {
    const registry = new ServiceSubnetRegistry('10.200.7.9/16', { prefixLength: 28 });
    expect(registry.clusterCidr).toBe('10.200.0.0/16');
    expect(registry.assign('web', '0')).toMatch(/\/28$/);
    expect(thrown(() => new ServiceSubnetRegistry('10.0.0.0/8', { prefixLength: 33 })).message).toContain('invalid service subnet prefix length 33');
    expect(thrown(() => new ServiceSubnetRegistry('not-a-cidr')).message).toContain('invalid CIDR not-a-cidr');
  });

  it('refuses a cluster smaller than one block', () => {
    expect(thrown(() => new ServiceSubnetRegistry('10.0.0.0/28')).message).toBe('cluster 10.0.0.0/28 is smaller than one /26 service subnet');
    expect(thrown(() => new ServiceSubnetRegistry('fd00::/121')).message).toBe('cluster fd00::/121 is smaller than one /120 service subnet');
    // Exactly one block is fine.
    expect(new ServiceSubnetRegistry('10.0.0.0/26').assign('web', '0')).toBe('10.0.0.0/26');
  });

  it('assign is idempotent; lookup answers; another node or service gets another block', () => {
    const registry = new ServiceSubnetRegistry('10.200.0.0/16');
    const web0 = registry.assign('web', '0');
    expect(registry.assign('web', '0')).toBe(web0);
    expect(registry.assign('web', '0', [web0])).toBe(web0); // the existing assignment wins over avoid
    expect(registry.lookup('web', '0')).toBe(web0);
    expect(registry.lookup('web', '1')).toBeUndefined();
    const web1 = registry.assign('web', '1');
    const api0 = registry.assign('api', '0');
    const shared = registry.assign(SHARED_BRIDGE_KEY, '0');
    expect(new Set([web0, web1, api0, shared]).size).toBe(4);
    expect(registry.entries().map((e) => e.subnet)).toEqual(
      [web0, web1, api0, shared].sort((a, b) => (rangeOf(a).first < rangeOf(b).first ? -1 : 1)),
    );
  });

  it('is deterministic: the same calls on fresh registries give the same answers', () => {
    const run = (): string[] => {
      const registry = new ServiceSubnetRegistry('10.200.0.0/16');
      registry.reserve('10.200.0.0/26');
      return ['web', 'api', 'db', 'cache', 'web'].map((s, i) => registry.assign(s, String(i % 2)));
    };
    expect(run()).toEqual(run());
  });

  it('release then reassign: the block is free again and the same key gets it back', () => {
    const registry = new ServiceSubnetRegistry('10.200.0.0/16');
    const web = registry.assign('web', '0');
    registry.release('web', '0');
    registry.release('web', '0'); // idempotent
    registry.release('never', 'assigned');
    expect(registry.lookup('web', '0')).toBeUndefined();
    expect(registry.entries()).toEqual([]);
    expect(registry.assign('web', '0')).toBe(web);
  });

  it('exhaustion: a /24 holds four /26 blocks, the fifth assign fails with the exact message', () => {
    const registry = new ServiceSubnetRegistry('10.200.0.0/24');
    const got = ['a', 'b', 'c', 'd'].map((s) => registry.assign(s, '0'));
    expect([...got].sort()).toEqual(['10.200.0.0/26', '10.200.0.128/26', '10.200.0.192/26', '10.200.0.64/26']);
    expect(thrown(() => registry.assign('web', '0')).message).toBe(
      'service subnet pool exhausted: no free /26 left in cluster 10.200.0.0/24 for service web',
    );
    registry.release('c', '0');
    expect(registry.assign('web', '0')).toBe(got[2]);
  });

  it('the node IP reserved: the block holding it is never assigned', () => {
    const registry = new ServiceSubnetRegistry('10.200.0.0/24');
    registry.reserve('10.200.0.65');
    const got = ['a', 'b', 'c'].map((s) => registry.assign(s, '0'));
    expect(got).not.toContain('10.200.0.64/26');
    expect(thrown(() => registry.assign('d', '0')).message).toContain('no free /26 left in cluster 10.200.0.0/24 for service d');

    const big = new ServiceSubnetRegistry('10.200.0.0/16');
    big.reserve('10.200.77.1');
    for (let i = 0; i < 1023; i++) expect(big.assign(`svc-${i}`, '0')).not.toBe('10.200.77.0/26');
    expect(() => big.assign('one-too-many', '0')).toThrow(OverlayError);
  });

  it('avoid: a block overlapping an avoided CIDR is skipped, for that call only', () => {
    const registry = new ServiceSubnetRegistry('10.200.0.0/24');
    const avoid = ['10.200.0.0/25', '10.200.0.200/32'];
    expect(registry.assign('web', '0', avoid)).toBe(`10.200.0.128/26`);
    expect(thrown(() => registry.assign('api', '0', avoid)).message).toContain('for service api');
    // Without the avoid list the low half is available again.
    expect(['10.200.0.0/26', '10.200.0.64/26', '10.200.0.192/26']).toContain(registry.assign('api', '0'));
    // Ranges of the other family, or outside the cluster, constrain nothing.
    registry.reserve('fd00::/8');
    registry.reserve('192.168.0.0/16');
    expect(registry.assign('db', '0', ['fd00::1', '172.16.0.0/12'])).toMatch(/^10\.200\.0\.\d+\/26$/);
    expect(thrown(() => registry.assign('x', '0', ['bogus'])).message).toContain('invalid CIDR bogus');
  });

  it('skips a huge reserved IPv6 range in one step', () => {
    const registry = new ServiceSubnetRegistry('fd00::/32');
    registry.reserve('fd00::/33'); // 2^87 addresses: block-by-block probing would never finish
    for (let i = 0; i < 50; i++) expect(inside(registry.assign(`svc-${i}`, '7'), 'fd00:0:8000::/33')).toBe(true);
  });

  it('500 random assignments never overlap reserved slices, node IPs, avoid ranges or each other', () => {
    const rng = new Rng(0x5eed); // seeded, so a failure reproduces
    const random = (): number => rng.float();
    const cluster = '10.200.0.0/16';
    const registry = new ServiceSubnetRegistry(cluster);
    // This node's slice, other nodes' slices, and node IPs inside them.
    const reserved = ['10.200.0.0/26', '10.200.3.0/24', '10.200.64.0/22', '10.200.0.1', '10.200.129.77', '10.200.200.5'];
    for (const r of reserved) registry.reserve(r);
    const live = new Map<string, string>();
    for (let i = 0; i < 500; i++) {
      const service = `svc-${Math.floor(random() * 400)}`;
      const nodeKey = String(Math.floor(random() * 3));
      const key = `${service}/${nodeKey}`;
      if (live.has(key) && random() < 0.3) {
        registry.release(service, nodeKey);
        live.delete(key);
        continue;
      }
      const avoid = Array.from({ length: Math.floor(random() * 4) }, () => {
        const third = Math.floor(random() * 256);
        return random() < 0.5 ? `10.200.${third}.0/24` : `10.200.${third}.${Math.floor(random() * 256)}`;
      });
      const existing = live.get(key);
      const subnet = registry.assign(service, nodeKey, avoid);
      if (existing !== undefined) {
        expect(subnet).toBe(existing);
        continue;
      }
      expect(inside(subnet, cluster)).toBe(true);
      expect(subnet.endsWith('/26')).toBe(true);
      for (const r of [...reserved, ...avoid]) expect(overlaps(subnet, r), `${subnet} overlaps ${r}`).toBe(false);
      for (const other of live.values()) expect(overlaps(subnet, other), `${subnet} overlaps ${other}`).toBe(false);
      live.set(key, subnet);
    }
    expect(registry.entries().length).toBe(live.size);
    expect(live.size).toBeGreaterThan(100);
  });

  it('restore round trip: saved entries come back and new blocks avoid them', () => {
    const first = new ServiceSubnetRegistry('fd00:200::/48');
    first.reserve('fd00:200::/64');
    for (const s of ['web', 'api', 'db', SHARED_BRIDGE_KEY]) first.assign(s, '3');
    const saved = JSON.parse(JSON.stringify(first.entries())) as ReturnType<typeof first.entries>;

    const second = new ServiceSubnetRegistry('fd00:200::/48');
    second.reserve('fd00:200::/64');
    second.restore(saved);
    expect(second.entries()).toEqual(saved);
    expect(second.assign('web', '3')).toBe(first.lookup('web', '3'));
    second.restore(saved); // re-claiming identical assignments is a no-op
    expect(second.entries()).toEqual(saved);
    const fresh = second.assign('new', '3');
    for (const entry of saved) expect(overlaps(fresh, entry.subnet)).toBe(false);
  });

  it('restore canonicalises a subnet written with host bits', () => {
    const registry = new ServiceSubnetRegistry('10.200.0.0/16');
    registry.restore([{ service: 'web', nodeKey: '0', subnet: '10.200.9.70/26' }]);
    expect(registry.lookup('web', '0')).toBe('10.200.9.64/26');
  });

  it('restore conflicts throw OverlayError naming the entry, and claim nothing', () => {
    const make = (): ServiceSubnetRegistry => {
      const registry = new ServiceSubnetRegistry('10.200.0.0/16');
      registry.reserve('10.200.0.0/24');
      registry.restore([{ service: 'api', nodeKey: '0', subnet: '10.200.5.0/26' }]);
      return registry;
    };
    const ok = { service: 'ok', nodeKey: '0', subnet: '10.200.9.0/26' };
    const cases: Array<[{ service: string; nodeKey: string; subnet: string }, string]> = [
      [{ service: 'web', nodeKey: '0', subnet: '10.201.0.0/26' }, 'saved service subnet 10.201.0.0/26 of web@0 is outside cluster 10.200.0.0/16'],
      [{ service: 'web', nodeKey: '0', subnet: '10.200.0.64/26' }, 'saved service subnet 10.200.0.64/26 of web@0 overlaps a reserved range'],
      [{ service: 'web', nodeKey: '1', subnet: '10.200.5.0/26' }, 'saved service subnet 10.200.5.0/26 of web@1 overlaps 10.200.5.0/26 of api@0'],
      [{ service: 'api', nodeKey: '0', subnet: '10.200.6.0/26' }, 'saved service subnet 10.200.6.0/26 of api@0 conflicts with its current subnet 10.200.5.0/26'],
      [{ service: 'web', nodeKey: '0', subnet: '10.200.9.0/28' }, 'saved service subnet 10.200.9.0/28 of web@0 is not a /26 of cluster 10.200.0.0/16'],
      [{ service: 'web', nodeKey: '0', subnet: 'fd00::/120' }, 'saved service subnet fd00::/120 of web@0 is not a /26 of cluster 10.200.0.0/16'],
      [{ service: 'web', nodeKey: '0', subnet: '10.200.9.0/26' }, 'saved service subnet 10.200.9.0/26 of web@0 overlaps 10.200.9.0/26 of ok@0'],
    ];
    for (const [entry, message] of cases) {
      const registry = make();
      expect(thrown(() => registry.restore([ok, entry])).message).toBe(message);
      expect(registry.entries()).toEqual([{ service: 'api', nodeKey: '0', subnet: '10.200.5.0/26' }]);
    }
    expect(thrown(() => make().restore([{ service: 'web', nodeKey: '0', subnet: 'junk' }])).message).toContain('invalid CIDR junk');
  });
});
