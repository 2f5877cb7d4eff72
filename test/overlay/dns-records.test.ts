/**
 * The zone without a network: name rules, A/AAAA/PTR answers, NODATA and
 * NXDOMAIN with the SOA, what is left to forwarding, and the records file.
 */
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { DnsRecordStore } from '../../src/overlay/dns/record-store.js';
import { addressOfReverseName, canonicalIp, DnsZone } from '../../src/overlay/dns/records.js';

const DOMAIN = 'prod.internal';

function addresses(result: ReturnType<DnsZone['lookup']>): string[] {
  if (result.kind !== 'answer') throw new Error(`expected an answer, got ${result.kind}`);
  return result.answers.map((a) => String((a as { data: unknown }).data)).sort();
}

describe('DnsZone names', () => {
  it('appends the domain to a name given without it, keeps one given with it, any case, trailing dot ignored', () => {
    const zone = new DnsZone(DOMAIN);
    expect(zone.register('web', '10.200.1.2')).toBe('web.prod.internal');
    expect(zone.register('API.prod.internal.', '10.200.1.3')).toBe('api.prod.internal');
    expect(zone.register('db.eu', '10.200.1.4')).toBe('db.eu.prod.internal');
    expect(zone.register('other.example.com', '10.200.1.5')).toBe('other.example.com.prod.internal');
  });

  it('refuses bad names and addresses with an error naming them', () => {
    const zone = new DnsZone(DOMAIN);
    expect(() => zone.register('bad name', '10.0.0.1')).toThrow(/invalid DNS name "bad name"/);
    expect(() => zone.register('-web', '10.0.0.1')).toThrow(/label "-web"/);
    expect(() => zone.register('a..b', '10.0.0.1')).toThrow(/label ""/);
    expect(() => zone.register(`${'x'.repeat(64)}`, '10.0.0.1')).toThrow(/label "x{64}"/);
    expect(() => zone.register('prod.internal', '10.0.0.1')).toThrow(/is the domain prod.internal itself/);
    expect(() => zone.register('web', '10.0.0.300')).toThrow(/invalid DNS address "10.0.0.300"/);
    expect(() => zone.register('web', 'web')).toThrow(/invalid DNS address "web"/);
    expect(() => new DnsZone('bad domain')).toThrow(/invalid DNS domain "bad domain"/);
    expect(zone.recordCount).toBe(0);
  });

  it('one spelling per address: 2001:DB8:0::1 and 2001:db8::1 are one record', () => {
    const zone = new DnsZone(DOMAIN);
    zone.register('v6', '2001:DB8:0::1');
    zone.register('v6', '2001:db8::1');
    expect(zone.recordCount).toBe(1);
    expect(canonicalIp('2001:DB8:0::1')).toBe('2001:db8::1');
  });
});

describe('DnsZone answers', () => {
  it('A and AAAA with TTL 600; a name with only A answers AAAA with nothing and the SOA (NODATA)', () => {
    const zone = new DnsZone(DOMAIN);
    zone.register('web', '10.200.1.2');
    zone.register('web', '10.200.1.3');
    zone.register('dual', '10.200.1.9');
    zone.register('dual', 'fd00::9');
    const a = zone.lookup('WEB.prod.internal.', 'A');
    expect(addresses(a)).toEqual(['10.200.1.2', '10.200.1.3']);
    if (a.kind !== 'answer') throw new Error('unreachable');
    expect(a.answers.every((r) => (r as { ttl: number }).ttl === 600 && r.type === 'A' && r.name === 'web.prod.internal')).toBe(true);
    const aaaa = zone.lookup('web.prod.internal', 'AAAA');
    expect(aaaa).toMatchObject({ kind: 'answer', answers: [], authorities: [{ type: 'SOA', name: DOMAIN }] });
    expect(addresses(zone.lookup('dual.prod.internal', 'AAAA'))).toEqual(['fd00::9']);
    expect(addresses(zone.lookup('dual.prod.internal', 'ANY'))).toEqual(['10.200.1.9', 'fd00::9']);
    expect(zone.lookup('web.prod.internal', 'MX')).toMatchObject({ kind: 'answer', answers: [] });
  });

  it('shuffles the addresses of a name', () => {
    const zone = new DnsZone(DOMAIN);
    for (let i = 2; i < 12; i++) zone.register('many', `10.200.1.${i}`);
    const firsts = new Set<string>();
    for (let i = 0; i < 200; i++) {
      const result = zone.lookup('many.prod.internal', 'A');
      if (result.kind === 'answer') firsts.add(String((result.answers[0] as { data: unknown }).data));
    }
    expect(firsts.size).toBeGreaterThan(3);
  });

  it('an unknown name in the domain is NXDOMAIN with the SOA; a name with names below it exists (NODATA)', () => {
    const zone = new DnsZone(DOMAIN);
    zone.register('db.eu', '10.200.1.4');
    expect(zone.lookup('nope.prod.internal', 'A')).toMatchObject({ kind: 'nxdomain', authorities: [{ type: 'SOA', name: DOMAIN, ttl: 30 }] });
    expect(zone.lookup('eu.prod.internal', 'A')).toMatchObject({ kind: 'answer', answers: [] });
    expect(zone.lookup('x.db.eu.prod.internal', 'A')).toMatchObject({ kind: 'nxdomain' });
    zone.unregister('db.eu');
    expect(zone.lookup('eu.prod.internal', 'A')).toMatchObject({ kind: 'nxdomain' });
  });

  it('the apex answers its SOA and nothing else', () => {
    const zone = new DnsZone(DOMAIN);
    expect(zone.lookup('prod.internal', 'SOA')).toMatchObject({ kind: 'answer', answers: [{ type: 'SOA', data: { mname: 'ns.prod.internal', minimum: 30 } }] });
    expect(zone.lookup('prod.internal', 'A')).toMatchObject({ kind: 'answer', answers: [] });
  });

  it('PTR for registered addresses (IPv4 and IPv6); unregistered ones and other names are forwarded', () => {
    const zone = new DnsZone(DOMAIN);
    zone.register('web', '10.200.1.2');
    zone.register('www', '10.200.1.2');
    zone.register('v6', 'fd00::2');
    const ptr = zone.lookup('2.1.200.10.in-addr.arpa', 'PTR');
    expect(addresses(ptr)).toEqual(['web.prod.internal', 'www.prod.internal']);
    const v6name = `${`fd00${'0000'.repeat(6)}0002`.split('').reverse().join('.')}.ip6.arpa`;
    expect(addressOfReverseName(v6name)).toBe('fd00::2');
    expect(addresses(zone.lookup(v6name, 'PTR'))).toEqual(['v6.prod.internal']);
    expect(zone.lookup('3.1.200.10.in-addr.arpa', 'PTR')).toEqual({ kind: 'outside' });
    expect(zone.lookup('example.com', 'A')).toEqual({ kind: 'outside' });
    expect(zone.lookup('internal', 'NS')).toEqual({ kind: 'outside' });
    zone.unregister('web');
    expect(addresses(zone.lookup('2.1.200.10.in-addr.arpa', 'PTR'))).toEqual(['www.prod.internal']);
  });

  it('a single-label address question is NXDOMAIN here, never forwarded', () => {
    const zone = new DnsZone(DOMAIN);
    expect(zone.lookup('web', 'A')).toEqual({ kind: 'nxdomain', authorities: [] });
    expect(zone.lookup('com', 'NS')).toEqual({ kind: 'outside' });
  });

  it('reverse names that are not addresses are not PTR lookups', () => {
    expect(addressOfReverseName('1.2.3.in-addr.arpa')).toBeNull();
    expect(addressOfReverseName('256.1.2.3.in-addr.arpa')).toBeNull();
    expect(addressOfReverseName('01.1.2.3.in-addr.arpa')).toBeNull();
    expect(addressOfReverseName('x.ip6.arpa')).toBeNull();
  });
});

describe('DnsRecordStore', () => {
  const dirs: string[] = [];
  const tempDir = (): string => {
    const dir = mkdtempSync(join(tmpdir(), 'tswg-dns-'));
    dirs.push(dir);
    return dir;
  };
  afterEach(() => {
    for (const dir of dirs.splice(0)) rmSync(dir, { recursive: true, force: true });
  });

  it('keeps each domain apart and survives a new store (a restart)', () => {
    const dir = tempDir();
    const store = new DnsRecordStore(dir);
    expect(store.load(DOMAIN)).toEqual({});
    store.save(DOMAIN, { 'web.prod.internal': ['10.200.1.2'] });
    store.save('other.internal', { 'a.other.internal': ['10.200.1.3'] });
    const again = new DnsRecordStore(dir);
    expect(again.load(DOMAIN)).toEqual({ 'web.prod.internal': ['10.200.1.2'] });
    expect(again.load('other.internal')).toEqual({ 'a.other.internal': ['10.200.1.3'] });
    again.save('other.internal', {});
    expect(JSON.parse(readFileSync(store.path, 'utf8'))).toEqual({ version: 1, zones: { [DOMAIN]: { 'web.prod.internal': ['10.200.1.2'] } } });
  });

  it('a corrupt file is an error naming it', () => {
    const dir = tempDir();
    const store = new DnsRecordStore(dir);
    writeFileSync(store.path, '{"version": 1, "zones": {"x": {"a": [1]}}}');
    expect(() => store.load('x')).toThrow(/dns-records.json is corrupt: zones\["x"\]/);
    writeFileSync(store.path, 'nope');
    expect(() => new DnsRecordStore(dir).load('x')).toThrow(/dns-records.json is corrupt/);
  });
});
