/**
 * Endpoints as struct sockaddr_in / sockaddr_in6 (src/device/sockaddr.ts):
 * the exact kernel layout (family in host order, port big endian, address
 * bytes, zero flow info and scope), the way back from what recvmmsg(2)
 * writes (with IPv6 normalised as parseEndpoint normalises it), the
 * allocation-free "same sender?" comparison, and the per-Endpoint cache.
 */
import { describe, expect, it } from 'vitest';
import { parseEndpoint, type Endpoint } from '../../src/device/addr.js';
import { SOCKADDR_ROOM, endpointFromSockaddr, sockaddrMatches, sockaddrOf } from '../../src/device/sockaddr.js';
import { AF_INET, AF_INET6 } from '../../src/platform/libc.js';
import { Rng, hex as toHex } from '../helpers/fuzz.js';

/** A sockaddr as the kernel writes it into a SOCKADDR_ROOM-byte name buffer (trailing bytes: whatever was there). */
function kernelName(bytes: number[], trailing = 0xaa): Uint8Array {
  const room = new Uint8Array(SOCKADDR_ROOM).fill(trailing);
  room.set(bytes);
  return room;
}

describe('sockaddrOf', () => {
  it('IPv4: 16 bytes, AF_INET little endian, port big endian, the address, eight zero bytes', () => {
    const sockaddr = sockaddrOf({ family: 4, address: '192.0.2.33', port: 51820 });
    expect(AF_INET).toBe(2);
    expect(Array.from(sockaddr)).toEqual([2, 0, 0xca, 0x6c, 192, 0, 2, 33, 0, 0, 0, 0, 0, 0, 0, 0]);
  });

  it('IPv6: 28 bytes, AF_INET6, port big endian, zero flow info, the 16 address bytes, zero scope', () => {
    const sockaddr = sockaddrOf({ family: 6, address: '2001:db8::1:2', port: 0x1234 });
    expect(AF_INET6).toBe(10);
    expect(toHex(sockaddr)).toBe(`0a00` + `1234` + `00000000` + `20010db8000000000000000000010002` + `00000000`);
  });

  it('edge ports and addresses', () => {
    expect(Array.from(sockaddrOf({ family: 4, address: '0.0.0.0', port: 0 }).subarray(0, 8))).toEqual([2, 0, 0, 0, 0, 0, 0, 0]);
    expect(Array.from(sockaddrOf({ family: 4, address: '255.255.255.255', port: 65535 }).subarray(0, 8))).toEqual([2, 0, 255, 255, 255, 255, 255, 255]);
    expect(toHex(sockaddrOf({ family: 6, address: '::ffff:102:304', port: 1 }).subarray(8, 24))).toBe('00000000000000000000ffff01020304');
    expect(toHex(sockaddrOf({ family: 6, address: '::', port: 1 }).subarray(8, 24))).toBe('00'.repeat(16));
  });

  it('caches: the same Endpoint object gives the same array; an equal but distinct object gets its own', () => {
    const endpoint: Endpoint = { family: 6, address: 'fd00::7', port: 9 };
    const first = sockaddrOf(endpoint);
    expect(sockaddrOf(endpoint)).toBe(first);
    const twin = { ...endpoint };
    expect(sockaddrOf(twin)).not.toBe(first);
    expect(toHex(sockaddrOf(twin))).toBe(toHex(first));
  });
});

describe('endpointFromSockaddr', () => {
  it('reads back what sockaddrOf wrote, for v4 and v6, from a larger name buffer', () => {
    for (const text of ['192.0.2.1:51820', '10.0.0.1:1', '[2001:db8::1]:443', '[::1]:65535', '[fe80::1:2:3:4]:7', '[::]:0']) {
      const endpoint = parseEndpoint(text);
      const room = kernelName(Array.from(sockaddrOf(endpoint)));
      expect(endpointFromSockaddr(room), text).toEqual(endpoint);
    }
  });

  it.each([
    ['20010db8000000000000000000000001', '2001:db8::1'],
    ['fd000000000000000000000000000001', 'fd00::1'],
    ['20010db8000000000001000000000001', '2001:db8::1:0:0:1'],
    ['00010000000000020000000000000003', '1:0:0:2::3'],
    ['00000000000000000000ffff01020304', '::ffff:102:304'],
    ['00000000000000000000000000000000', '::'],
    ['fe800000000000000000000000000001', 'fe80::1'],
    ['20010db8000100020003000400050006', '2001:db8:1:2:3:4:5:6'],
  ])('IPv6 %s comes back in canonical form %s (as parseEndpoint writes it)', (addressHex, canonical) => {
    const bytes = [10, 0, 0x01, 0xbb, 0x12, 0x34, 0x56, 0x78, ...Buffer.from(addressHex, 'hex'), 0, 0, 0, 5];
    const endpoint = endpointFromSockaddr(kernelName(bytes));
    expect(endpoint).toEqual({ family: 6, address: canonical, port: 443 });
    expect(endpoint).toEqual(parseEndpoint(`[${canonical}]:443`));
  });

  it('an unknown address family is null', () => {
    for (const family of [0, 1, 3, 16, 17, 0x0200]) {
      expect(endpointFromSockaddr(kernelName([family & 0xff, family >> 8, 0, 80, 1, 2, 3, 4]))).toBeNull();
    }
  });

  it('random v4 and v6 endpoints survive sockaddrOf → endpointFromSockaddr', () => {
    const rng = new Rng(0x50c4);
    for (let i = 0; i < 2000; i++) {
      const port = rng.int(65536);
      let endpoint: Endpoint;
      if (rng.chance(0.5)) {
        endpoint = { family: 4, address: [0, 1, 2, 3].map(() => rng.int(256)).join('.'), port };
      } else {
        // Many zero groups, so the compression rules are exercised.
        const groups = Array.from({ length: 8 }, () => (rng.chance(0.5) ? 0 : rng.int(0x10000)));
        const canonical = parseEndpoint(`[${groups.map((g) => g.toString(16)).join(':')}]:${port}`);
        endpoint = canonical;
      }
      expect(endpointFromSockaddr(kernelName(Array.from(sockaddrOf(endpoint))))).toEqual(endpoint);
    }
  });
});

describe('sockaddrMatches', () => {
  const v4: Endpoint = { family: 4, address: '198.51.100.7', port: 4500 };
  const v6: Endpoint = { family: 6, address: '2001:db8::42', port: 4500 };

  it('the same endpoint matches, also inside a larger name buffer with junk after it', () => {
    expect(sockaddrMatches(v4, kernelName(Array.from(sockaddrOf(v4))))).toBe(true);
    expect(sockaddrMatches(v6, kernelName(Array.from(sockaddrOf(v6))))).toBe(true);
    expect(sockaddrMatches({ ...v6 }, sockaddrOf(v6))).toBe(true);
  });

  it('IPv6 flow info and scope id are ignored', () => {
    const name = kernelName(Array.from(sockaddrOf(v6)));
    name.set([0xde, 0xad, 0xbe, 0xef], 4);
    name.set([9, 0, 0, 0], 24);
    expect(sockaddrMatches(v6, name)).toBe(true);
  });

  it('a different port, address or family does not match; nor does no endpoint', () => {
    const v4Name = kernelName(Array.from(sockaddrOf(v4)));
    const v6Name = kernelName(Array.from(sockaddrOf(v6)));
    expect(sockaddrMatches({ ...v4, port: 4501 }, v4Name)).toBe(false);
    expect(sockaddrMatches({ ...v4, port: 4500 + 256 }, v4Name)).toBe(false); // the other port byte
    expect(sockaddrMatches({ ...v4, address: '198.51.100.8' }, v4Name)).toBe(false);
    expect(sockaddrMatches({ ...v4, address: '199.51.100.7' }, v4Name)).toBe(false);
    expect(sockaddrMatches({ ...v6, port: 4501 }, v6Name)).toBe(false);
    expect(sockaddrMatches({ ...v6, address: '2001:db8::43' }, v6Name)).toBe(false);
    expect(sockaddrMatches({ ...v6, address: '2001:db9::42' }, v6Name)).toBe(false);
    // Family: the v4 endpoint against the v6 name and back, and a v4-mapped v6 address against its v4 twin.
    expect(sockaddrMatches(v4, v6Name)).toBe(false);
    expect(sockaddrMatches(v6, v4Name)).toBe(false);
    const mapped: Endpoint = { family: 6, address: '::ffff:c633:6407', port: 4500 };
    expect(sockaddrMatches(mapped, v4Name)).toBe(false);
    expect(sockaddrMatches(v4, kernelName(Array.from(sockaddrOf(mapped))))).toBe(false);
    expect(sockaddrMatches(null, v4Name)).toBe(false);
  });

  it('bytes after the sockaddr (v4: sin_zero on, v6: past the scope) do not matter', () => {
    expect(sockaddrMatches(v4, kernelName(Array.from(sockaddrOf(v4)).slice(0, 8), 0x55))).toBe(true);
  });
});
