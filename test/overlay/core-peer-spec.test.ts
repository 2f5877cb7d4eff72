/**
 * PeerSpec → PeerInfo (endpoint and keepalive parsed, a bad endpoint
 * refused in the control plane's wording) and candidate wire conversion.
 */
import { describe, expect, it } from 'vitest';
import { decodeKey } from '../../src/noise/keys.js';
import { OverlayError } from '../../src/overlay/errors.js';
import { allowedIpsToText, parseAllowedIps, parsePeerEndpoint, peerSpecToInfo, type PeerSpec } from '../../src/overlay/peer-spec.js';

const KEY = 'HIgo9xNzJMWLKASShiTqIybxZ0U3wGLiUeJ1PKf8ykw=';
const spec = (over: Partial<PeerSpec> = {}): PeerSpec => ({
  publicKey: KEY,
  endpoint: '1.2.3.4:51820',
  allowedIps: '10.200.0.5/32,10.200.1.0/24',
  persistentKeepaliveSecs: 25,
  candidates: [],
  ...over,
});

describe('peerSpecToInfo', () => {
  it('peer_spec_to_info_parses_endpoint_and_keepalive', () => {
    const info = peerSpecToInfo(spec());
    expect(info.publicKeyBase64).toBe(KEY);
    expect(info.publicKey).toEqual(decodeKey(KEY));
    expect(info.endpoint).toEqual({ family: 4, address: '1.2.3.4', port: 51820 });
    expect(info.allowedIpsText).toBe('10.200.0.5/32,10.200.1.0/24');
    expect(allowedIpsToText(info.allowedIps)).toEqual(['10.200.0.5/32', '10.200.1.0/24']);
    expect(info.persistentKeepaliveSecs).toBe(25);
    expect(info.candidates).toEqual([]);
  });

  it('a bad endpoint is refused as "invalid peer endpoint …"', () => {
    expect(() => peerSpecToInfo(spec({ endpoint: 'not-a-socket-addr' }))).toThrow(OverlayError);
    expect(() => peerSpecToInfo(spec({ endpoint: 'not-a-socket-addr' }))).toThrow(/^invalid peer endpoint not-a-socket-addr: /);
    expect(() => peerSpecToInfo(spec({ endpoint: '1.2.3.4' }))).toThrow(/^invalid peer endpoint 1\.2\.3\.4: /);
    expect(() => peerSpecToInfo(spec({ endpoint: '1.2.3.4:70000' }))).toThrow(/^invalid peer endpoint 1\.2\.3\.4:70000: /);
    expect(() => peerSpecToInfo(spec({ endpoint: '::1:51820' }))).toThrow(/^invalid peer endpoint ::1:51820: /);
    expect(() => peerSpecToInfo(spec({ endpoint: '1.2.3.4:0' }))).toThrow(/port 0/);
    expect(() => peerSpecToInfo(spec({ endpoint: '0.0.0.0:51820' }))).toThrow(/unspecified address/);
  });

  it('the endpoint is checked before the key (a bad endpoint is always the error named)', () => {
    expect(() => peerSpecToInfo(spec({ endpoint: 'bad', publicKey: 'also-bad' }))).toThrow(/^invalid peer endpoint bad/);
  });

  it('"0.0.0.0:0", "[::]:0" and "" mean no endpoint yet (roaming)', () => {
    for (const endpoint of ['0.0.0.0:0', '[::]:0', '']) expect(peerSpecToInfo(spec({ endpoint })).endpoint).toBeNull();
  });

  it('IPv6 endpoints and allowed IPs', () => {
    const info = peerSpecToInfo(spec({ endpoint: '[2001:db8::1]:51820', allowedIps: ' fd00:200::/64 , 10.0.0.1 ' }));
    expect(info.endpoint).toEqual({ family: 6, address: '2001:db8::1', port: 51820 });
    expect(allowedIpsToText(info.allowedIps)).toEqual(['fd00:200::/64', '10.0.0.1/32']);
  });

  it('bad key, CIDR or keepalive → clear errors', () => {
    expect(() => peerSpecToInfo(spec({ publicKey: 'base64key' }))).toThrow(/^invalid peer public key "base64key": /);
    expect(() => peerSpecToInfo(spec({ allowedIps: '10.0.0.0/8,10.0.0.0/40' }))).toThrow(/^invalid CIDR 10\.0\.0\.0\/40: /);
    expect(() => peerSpecToInfo(spec({ allowedIps: 'banana' }))).toThrow(/^invalid CIDR banana: /);
    expect(() => peerSpecToInfo(spec({ persistentKeepaliveSecs: 65536 }))).toThrow(/invalid persistent keepalive 65536/);
    expect(() => peerSpecToInfo(spec({ persistentKeepaliveSecs: -1 }))).toThrow(/invalid persistent keepalive -1/);
  });

  it('empty allowed IPs are none', () => {
    expect(peerSpecToInfo(spec({ allowedIps: '' })).allowedIps).toEqual([]);
    expect(parseAllowedIps(' , ,')).toEqual([]);
  });

  it('candidate_wire_conversions: valid candidates kept with their wire priority, "bogus" types and bad addresses dropped', () => {
    const info = peerSpecToInfo(
      spec({
        candidates: [
          { candidateType: 'host', address: '192.0.2.1:51820', priority: 100 },
          { candidateType: 'server-reflexive', address: '198.51.100.7:40000', priority: 50 },
          { candidateType: 'relay', address: '[2001:db8::9]:3478', priority: 1 },
          { candidateType: 'bogus', address: '192.0.2.1:51820', priority: 100 },
          { candidateType: 'host', address: 'not-an-address', priority: 100 },
          { candidateType: 'host', address: '192.0.2.1:0', priority: 100 },
        ],
      }),
    );
    expect(info.candidates).toEqual([
      { type: 'host', address: { family: 4, address: '192.0.2.1', port: 51820 }, priority: 100 },
      { type: 'server-reflexive', address: { family: 4, address: '198.51.100.7', port: 40000 }, priority: 50 },
      { type: 'relay', address: { family: 6, address: '2001:db8::9', port: 3478 }, priority: 1 },
    ]);
  });

  it('parsePeerEndpoint is usable alone', () => {
    expect(parsePeerEndpoint(' 10.0.0.1:1 ')).toEqual({ family: 4, address: '10.0.0.1', port: 1 });
  });
});
