/**
 * Candidates: the wire conversion (round trips; "bogus" types and bad addresses become null), RFC 8445 priorities,
 * ordering and the pair cap, host-candidate selection over netlink dumps
 * (pure, plus the real dump of this namespace), and a fuzz run of the wire parser.
 */
import { describe, expect, it } from 'vitest';
import { Rng } from '../helpers/fuzz.js';
import {
  candidateFromWire,
  candidatePriority,
  candidateToWire,
  candidatesFromWire,
  gatherHostCandidates,
  makeCandidate,
  orderCandidates,
  pairCandidates,
  selectHostCandidates,
  type Candidate,
} from '../../src/nat/candidates.js';
import type { AddressEntry, LinkEntry } from '../../src/platform/netlink/types.js';

const v4 = (address: string, port: number) => ({ family: 4 as const, address, port });

describe('wire conversion', () => {
  it('round-trips every type, IPv4 and IPv6, keeping the priority verbatim (candidate_wire_conversions_round_trip)', () => {
    const cases: Candidate[] = [
      { type: 'host', address: v4('192.0.2.1', 51820), priority: 100 },
      { type: 'server-reflexive', address: v4('203.0.113.7', 40000), priority: 50 },
      { type: 'relay', address: { family: 6, address: '2001:db8::1', port: 3478 }, priority: 0 },
    ];
    for (const candidate of cases) {
      const wire = candidateToWire(candidate);
      expect(JSON.parse(JSON.stringify(wire))).toEqual(wire);
      expect(candidateFromWire(wire)).toEqual(candidate);
    }
    expect(candidateToWire(cases[0]!)).toEqual({ candidateType: 'host', address: '192.0.2.1:51820', priority: 100 });
    expect(candidateToWire(cases[2]!).address).toBe('[2001:db8::1]:3478');
    expect(candidateToWire(cases[1]!).candidateType).toBe('server-reflexive');
  });

  it.each([
    [{ candidateType: 'bogus', address: '192.0.2.1:1', priority: 1 }],
    [{ candidateType: 'srflx', address: '192.0.2.1:1', priority: 1 }],
    [{ candidateType: 'host', address: 'not-an-address', priority: 1 }],
    [{ candidateType: 'host', address: '192.0.2.1', priority: 1 }],
    [{ candidateType: 'host', address: '192.0.2.1:99999', priority: 1 }],
    [{ candidateType: 'host', address: '192.0.2.1:0', priority: 1 }],
    [{ candidateType: 'host', address: '2001:db8::1:5', priority: 1 }],
    [{ candidateType: 'host', address: 'example.com:5', priority: 1 }],
    [{ candidateType: 'host', address: '192.0.2.1:5', priority: -1 }],
    [{ candidateType: 'host', address: '192.0.2.1:5', priority: '5' }],
    [{ candidateType: 'host', address: 5, priority: 5 }],
    [null],
    ['host'],
  ])('%j is dropped (null)', (wire) => {
    expect(candidateFromWire(wire)).toBeNull();
  });

  it('drops only the invalid entries of a list', () => {
    const list = [
      { candidateType: 'host', address: '10.0.0.1:51820', priority: 9 },
      { candidateType: 'bogus', address: '10.0.0.2:51820', priority: 8 },
      { candidateType: 'relay', address: 'nope', priority: 7 },
      { candidateType: 'relay', address: '198.51.100.1:3478', priority: 6 },
    ];
    expect(candidatesFromWire(list).map((candidate) => candidate.priority)).toEqual([9, 6]);
    expect(candidatesFromWire('x')).toEqual([]);
  });

  it('never throws on random input (fuzz)', () => {
    const alphabet = '0123456789abcdef.:[]%x -';
    const rng = new Rng(99);
    const random = (n: number): number => rng.int(n);
    let valid = 0;
    for (let i = 0; i < 5000; i++) {
      let address = '';
      const length = random(24);
      for (let j = 0; j < length; j++) address += alphabet[random(alphabet.length)];
      if (random(3) === 0) address = `${random(256)}.${random(256)}.${random(300)}.${random(256)}:${random(70000)}`;
      const candidate = candidateFromWire({ candidateType: ['host', 'relay', 'server-reflexive', 'x'][random(4)], address, priority: random(2 ** 31) });
      if (candidate !== null) {
        valid++;
        expect(candidateFromWire(candidateToWire(candidate))).toEqual(candidate);
      }
    }
    expect(valid).toBeGreaterThan(100);
  });
});

describe('priorities', () => {
  it('follow RFC 8445 §5.1.2.1 with type preferences 126 / 100 / 0', () => {
    expect(candidatePriority('host', 4)).toBe(126 * 2 ** 24 + 65535 * 2 ** 8 + 255);
    expect(candidatePriority('server-reflexive', 4)).toBe(100 * 2 ** 24 + 65535 * 2 ** 8 + 255);
    expect(candidatePriority('relay', 4)).toBe(65535 * 2 ** 8 + 255);
    expect(candidatePriority('host', 6)).toBe(126 * 2 ** 24 + 65534 * 2 ** 8 + 255);
    // RFC 8445's example: a host candidate with local preference 65535, component 1.
    expect(candidatePriority('host', 4)).toBe(2130706431);
    for (const family of [4, 6] as const) {
      expect(candidatePriority('host', family)).toBeGreaterThan(candidatePriority('server-reflexive', family));
      expect(candidatePriority('server-reflexive', family)).toBeGreaterThan(candidatePriority('relay', family));
      expect(candidatePriority('host', family)).toBeLessThan(2 ** 31);
    }
    expect(makeCandidate('relay', v4('198.51.100.1', 3478)).priority).toBe(candidatePriority('relay'));
  });

  it('ordering sorts by priority (stable), drops duplicate addresses and caps the count', () => {
    const list: Candidate[] = [
      { type: 'relay', address: v4('198.51.100.1', 1), priority: 1 },
      { type: 'host', address: v4('10.0.0.1', 1), priority: 100 },
      { type: 'server-reflexive', address: v4('203.0.113.1', 1), priority: 50 },
      { type: 'server-reflexive', address: v4('10.0.0.1', 1), priority: 50 },
      { type: 'host', address: v4('10.0.0.2', 1), priority: 100 },
    ];
    expect(orderCandidates(list, 10).map((c) => c.address.address)).toEqual(['10.0.0.1', '10.0.0.2', '203.0.113.1', '198.51.100.1']);
    expect(orderCandidates(list, 2).map((c) => c.address.address)).toEqual(['10.0.0.1', '10.0.0.2']);
  });

  it('pairs only same-family candidates, best pair first, capped', () => {
    const local = [makeCandidate('host', v4('10.0.0.1', 1)), makeCandidate('server-reflexive', v4('203.0.113.1', 1))];
    const remote = [makeCandidate('relay', v4('198.51.100.1', 1)), makeCandidate('host', { family: 6, address: 'fd00::1', port: 1 }), makeCandidate('host', v4('10.0.1.1', 1))];
    const pairs = pairCandidates(local, remote, 10);
    expect(pairs).toHaveLength(4);
    expect(pairs[0]!.local.type).toBe('host');
    expect(pairs[0]!.remote.type).toBe('host');
    expect(pairs.at(-1)!.remote.type).toBe('relay');
    expect(pairCandidates(local, remote, 3)).toHaveLength(3);
  });
});

describe('host candidates', () => {
  const link = (index: number, name: string, up = true, kind?: string): LinkEntry => ({ index, name, flags: up ? 1 : 0, type: 1, ...(kind ? { kind } : {}) });
  const address = (index: number, family: 4 | 6, text: string, scope = 0): AddressEntry => ({ index, family, address: text, prefixLength: 24, scope, flags: 0 });

  it('keep global addresses of up, non-virtual links, IPv4 first', () => {
    const links = [link(1, 'lo'), link(2, 'eth0'), link(3, 'wg0'), link(4, 'docker0'), link(5, 'eth1', false), link(6, 'tswgt-x', true, 'tun'), link(7, 'br0'), link(8, 'veth12')];
    const addresses = [
      address(1, 4, '127.0.0.1', 254),
      address(2, 6, '2001:db8::5'),
      address(2, 6, 'fe80::1', 253),
      address(2, 4, '192.0.2.5'),
      address(3, 4, '10.99.0.1'),
      address(4, 4, '172.17.0.1'),
      address(5, 4, '192.0.2.9'),
      address(6, 4, '10.98.0.1'),
      address(7, 4, '192.168.1.1'),
      address(8, 4, '10.1.1.1'),
    ];
    const candidates = selectHostCandidates(links, addresses, 51820);
    expect(candidates.map((c) => `${c.address.address}:${c.address.port}`)).toEqual(['192.0.2.5:51820', '192.168.1.1:51820', '2001:db8::5:51820']);
    expect(candidates.every((c) => c.type === 'host' && c.priority === candidatePriority('host', c.address.family))).toBe(true);
    expect(selectHostCandidates(links, addresses, 1, { excludeInterfaces: ['br0'] }).map((c) => c.address.address)).toEqual(['192.0.2.5', '2001:db8::5']);
  });

  it('the real dump of this namespace yields only global, non-loopback addresses', async () => {
    const candidates = await gatherHostCandidates(4242);
    for (const candidate of candidates) {
      expect(candidate.address.port).toBe(4242);
      expect(candidate.address.address.startsWith('127.')).toBe(false);
      expect(candidate.address.address).not.toBe('::1');
      expect(candidate.address.address.startsWith('fe80')).toBe(false);
    }
  });
});
