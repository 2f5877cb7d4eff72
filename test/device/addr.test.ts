import { describe, expect, it } from 'vitest';
import { AddressError, bytesToIp, endpointBytes, formatCidr, formatEndpoint, ipToBytes, parseCidr, parseEndpoint } from '../../src/device/addr.js';

describe('addresses', () => {
  it.each([
    ['10.1.2.3', '10.1.2.3'],
    ['::', '::'],
    ['::1', '::1'],
    ['fd00:0:0:0:0:0:0:1', 'fd00::1'],
    ['2001:db8:0:0:1:0:0:1', '2001:db8::1:0:0:1'],
    ['::ffff:1.2.3.4', '::ffff:102:304'],
    ['1:0:0:2:0:0:0:3', '1:0:0:2::3'],
  ])('round-trips %s to canonical %s', (text, canonical) => {
    expect(bytesToIp(ipToBytes(text))).toBe(canonical);
  });

  it('parses CIDRs strictly and clears host bits', () => {
    expect(formatCidr(parseCidr('10.1.2.3/8'))).toBe('10.0.0.0/8');
    expect(formatCidr(parseCidr('fd00::1:2/64'))).toBe('fd00::/64');
    expect(formatCidr(parseCidr('192.0.2.7'))).toBe('192.0.2.7/32');
    for (const bad of ['10.0.0.0/33', 'fd00::/129', '10.0.0/8', '10.0.0.0/-1', '10.0.0.0/', 'x/8', '10.0.0.0/8/8', 'fe80::1%eth0/64']) {
      expect(() => parseCidr(bad), bad).toThrow(AddressError);
    }
  });

  it('parses endpoints, IPv6 in brackets, and names what is wrong', () => {
    expect(parseEndpoint('192.0.2.1:51820')).toEqual({ family: 4, address: '192.0.2.1', port: 51820 });
    expect(parseEndpoint('[2001:db8::1]:1')).toEqual({ family: 6, address: '2001:db8::1', port: 1 });
    expect(formatEndpoint(parseEndpoint('[2001:db8::1]:1'))).toBe('[2001:db8::1]:1');
    for (const bad of ['192.0.2.1', '192.0.2.1:65536', '2001:db8::1:5', '[2001:db8::1]5', 'host:80', '[::1]:x', '[fe80::1%eth0]:1']) {
      expect(() => parseEndpoint(bad), bad).toThrow(AddressError);
    }
    expect(() => parseEndpoint('192.0.2.1:99999')).toThrow(/port must be 0..65535/);
  });

  it('binds MAC2 cookies to address and port', () => {
    expect(Array.from(endpointBytes({ family: 4, address: '1.2.3.4', port: 0x0102 }))).toEqual([1, 2, 3, 4, 1, 2]);
    expect(endpointBytes({ family: 6, address: '::1', port: 1 }).length).toBe(18);
  });
});
