/**
 * Upstream discovery without root: resolv.conf parsing, the systemd-resolved
 * stub case, the node's own address dropped, at most three, and the
 * TSWG_DNS_UPSTREAMS override.
 */
import { describe, expect, it } from 'vitest';
import { discoverUpstreams, parseResolvConf, parseUpstreamList } from '../../src/overlay/dns/resolv-conf.js';

const RESOLV = '/etc/resolv.conf';
const RESOLVED = '/run/systemd/resolve/resolv.conf';

function files(map: Record<string, string>): (path: string) => string | null {
  return (path) => map[path] ?? null;
}

describe('parseResolvConf', () => {
  it('nameserver lines in order; comments, options, search and junk ignored', () => {
    const text = [
      '# generated',
      'search example.com',
      'nameserver 192.0.2.1',
      '  nameserver   2001:db8::53   # trailing comment',
      'nameserver fe80::1%eth0',
      'nameserver not-an-ip',
      'nameserver',
      '; nameserver 192.0.2.99',
      'options ndots:2 timeout:1',
      'nameserver 192.0.2.2\r',
    ].join('\n');
    expect(parseResolvConf(text)).toEqual(['192.0.2.1', '2001:db8::53', 'fe80::1%eth0', '192.0.2.2']);
    expect(parseResolvConf('')).toEqual([]);
  });
});

describe('parseUpstreamList', () => {
  it('ip, ip:port, [v6]:port and bare v6', () => {
    expect(parseUpstreamList('192.0.2.1, 192.0.2.2:5353,[2001:db8::1]:54,2001:db8::2,')).toEqual([
      { host: '192.0.2.1', port: 53 },
      { host: '192.0.2.2', port: 5353 },
      { host: '2001:db8::1', port: 54 },
      { host: '2001:db8::2', port: 53 },
    ]);
  });

  it('a bad entry is an error naming it and the variable', () => {
    expect(() => parseUpstreamList('192.0.2.1,dns.example:53')).toThrow(/invalid TSWG_DNS_UPSTREAMS entry "dns.example:53"/);
    expect(() => parseUpstreamList('192.0.2.1:0')).toThrow(/"192.0.2.1:0"/);
    expect(() => parseUpstreamList('192.0.2.1:70000')).toThrow(/"192.0.2.1:70000"/);
  });
});

describe('discoverUpstreams', () => {
  it('resolv.conf nameservers, at most three, the node itself dropped', () => {
    const readFile = files({ [RESOLV]: 'nameserver 10.200.1.1\nnameserver 192.0.2.1\nnameserver 192.0.2.2\nnameserver 192.0.2.3\nnameserver 192.0.2.4\n' });
    expect(discoverUpstreams({ env: {}, readFile, ownAddresses: ['10.200.1.1'] })).toEqual([
      { host: '192.0.2.1', port: 53 },
      { host: '192.0.2.2', port: 53 },
      { host: '192.0.2.3', port: 53 },
    ]);
  });

  it("only systemd-resolved's stub: its upstream file instead; the stub when that file is missing", () => {
    const stub = 'nameserver 127.0.0.53\noptions edns0 trust-ad\n';
    expect(discoverUpstreams({ env: {}, readFile: files({ [RESOLV]: stub, [RESOLVED]: 'nameserver 192.0.2.8\nnameserver 192.0.2.9\n' }) })).toEqual([
      { host: '192.0.2.8', port: 53 },
      { host: '192.0.2.9', port: 53 },
    ]);
    expect(discoverUpstreams({ env: {}, readFile: files({ [RESOLV]: stub }) })).toEqual([{ host: '127.0.0.53', port: 53 }]);
    // A stub beside a real server is an ordinary list.
    expect(discoverUpstreams({ env: {}, readFile: files({ [RESOLV]: `${stub}nameserver 192.0.2.7\n`, [RESOLVED]: 'nameserver 192.0.2.8\n' }) })).toEqual([
      { host: '127.0.0.53', port: 53 },
      { host: '192.0.2.7', port: 53 },
    ]);
  });

  it('TSWG_DNS_UPSTREAMS wins over the files; no files means no upstreams', () => {
    const readFile = files({ [RESOLV]: 'nameserver 192.0.2.1\n' });
    expect(discoverUpstreams({ env: { TSWG_DNS_UPSTREAMS: '198.51.100.1:5300' }, readFile })).toEqual([{ host: '198.51.100.1', port: 5300 }]);
    expect(discoverUpstreams({ env: { TSWG_DNS_UPSTREAMS: ' ' }, readFile })).toEqual([{ host: '192.0.2.1', port: 53 }]);
    expect(discoverUpstreams({ env: {}, readFile: files({}) })).toEqual([]);
  });
});
