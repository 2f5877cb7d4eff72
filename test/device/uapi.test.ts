/**
 * The UAPI codec. Expected strings and accept/refuse decisions below were
 * taken from the real wireguard-go 0.0.20220316 (driven over its socket in a
 * scratch network namespace), not from reading its source.
 */
import { describe, expect, test } from 'vitest';
import { parseCidr } from '../../src/device/addr.js';
import type { Cidr } from '../../src/device/addr.js';
import {
  Errno,
  UapiError,
  formatErrno,
  formatGetResponse,
  formatSetRequest,
  formatUapiCidr,
  formatUapiEndpoint,
  parseGetResponse,
  parseSetRequest,
  parseUapiCidr,
  parseUapiEndpoint,
} from '../../src/device/uapi.js';
import type { UapiDeviceState, UapiPeerState, UapiSetRequest } from '../../src/device/uapi.js';

const hexKey = (hex: string): Uint8Array => new Uint8Array(Buffer.from(hex, 'hex'));
const toHex = (bytes: Uint8Array | undefined | null): string | null => (bytes ? Buffer.from(bytes).toString('hex') : null);
const cidrs = (list: Cidr[]): string[] => list.map(formatUapiCidr);

// Keys from the wireguard-go session the golden strings come from.
const PRIV_A = 'd002bee6b56fd0c36372d8cbf68511d1c79ab3fccdcd5a58d01593bb935fcf44';
const PRIV_B = '481a5ab2e6faf1af02e5a09331953694e8bc2bbb7003617bba64db1698cbb376';
const PUB_A = '0b27c4b9935d131b304678c387727c2da7883117175b2c603db4694be4833a64';
const PUB_B = 'cc58b863b37951b889a2d7d821d2401ecb4beeaf96f4a64bd809988026a46978';
const PUB_C = '4ca9497d9f7b167c754488a90f54a2096fbe42427299a48c4fdd786401e77674';
const PSK = '35a0780aaaea0e145a4994eadf585df228867635151fa0c94efb84ece33b6758';
const ZERO = '0'.repeat(64);

function thrown(fn: () => unknown): UapiError {
  try {
    fn();
  } catch (error) {
    expect(error).toBeInstanceOf(UapiError);
    return error as UapiError;
  }
  throw new Error('expected a UapiError');
}

function peerState(overrides: Partial<UapiPeerState> & { publicKey: Uint8Array }): UapiPeerState {
  return {
    presharedKey: null,
    endpoint: null,
    lastHandshakeTimeMs: 0,
    rxBytes: 0,
    txBytes: 0,
    persistentKeepaliveInterval: 0,
    allowedIps: [],
    ...overrides,
  };
}

describe('parseSetRequest: device keys', () => {
  test('private_key, listen_port, fwmark, replace_peers', () => {
    const request = parseSetRequest([`private_key=${PRIV_A}`, 'listen_port=51820', 'fwmark=7', 'replace_peers=true']);
    expect(toHex(request.privateKey)).toBe(PRIV_A);
    expect(request.listenPort).toBe(51820);
    expect(request.fwmark).toBe(7);
    expect(request.replacePeers).toBe(true);
    expect(request.peers).toEqual([]);
  });

  test('an empty request changes nothing', () => {
    expect(parseSetRequest([])).toEqual({ replacePeers: false, peers: [] });
  });

  test('an all-zero private key (remove the key) and upper-case hex are accepted', () => {
    expect(toHex(parseSetRequest([`private_key=${ZERO}`]).privateKey)).toBe(ZERO);
    expect(toHex(parseSetRequest([`private_key=${PRIV_A.toUpperCase()}`]).privateKey)).toBe(PRIV_A);
  });

  test('numbers: leading zeros fine, full ranges, the last line wins', () => {
    expect(parseSetRequest(['listen_port=000051821']).listenPort).toBe(51821);
    expect(parseSetRequest(['listen_port=0']).listenPort).toBe(0);
    expect(parseSetRequest(['listen_port=65535']).listenPort).toBe(65535);
    expect(parseSetRequest(['fwmark=4294967295']).fwmark).toBe(4294967295);
    expect(parseSetRequest(['fwmark=0']).fwmark).toBe(0);
    expect(parseSetRequest(['listen_port=1', 'listen_port=2']).listenPort).toBe(2);
  });
});

describe('parseSetRequest: peer sections', () => {
  test('every peer key', () => {
    const request = parseSetRequest([
      `public_key=${PUB_B}`,
      'protocol_version=1',
      `preshared_key=${PSK}`,
      'endpoint=127.0.0.1:40001',
      'persistent_keepalive_interval=25',
      'replace_allowed_ips=true',
      'allowed_ip=10.9.0.2/32',
      'allowed_ip=fd00::1/64',
      `public_key=${PUB_C}`,
      'update_only=true',
      'endpoint=[fd00::1]:51820',
      `public_key=${PUB_A}`,
      'remove=true',
    ]);
    expect(request.peers).toHaveLength(3);
    const [b, c, a] = request.peers;
    expect(toHex(b!.publicKey)).toBe(PUB_B);
    expect(toHex(b!.presharedKey)).toBe(PSK);
    expect(b!.endpoint).toEqual({ family: 4, address: '127.0.0.1', port: 40001 });
    expect(b!.persistentKeepaliveInterval).toBe(25);
    expect(b!.replaceAllowedIps).toBe(true);
    expect(cidrs(b!.allowedIps)).toEqual(['10.9.0.2/32', 'fd00::/64']);
    expect(b!.remove || b!.updateOnly).toBe(false);

    expect(toHex(c!.publicKey)).toBe(PUB_C);
    expect(c!.updateOnly).toBe(true);
    expect(c!.remove).toBe(false);
    expect(c!.endpoint).toEqual({ family: 6, address: 'fd00::1', port: 51820 });
    expect(c!.presharedKey).toBeUndefined();
    expect(c!.persistentKeepaliveInterval).toBeUndefined();
    expect(c!.replaceAllowedIps).toBe(false);

    expect(a!.remove).toBe(true);
    expect(a!.allowedIps).toEqual([]);
  });

  test('a zero preshared key (= no PSK) and keepalive bounds', () => {
    const [peer] = parseSetRequest([`public_key=${PUB_C}`, `preshared_key=${ZERO}`, 'persistent_keepalive_interval=65535']).peers;
    expect(toHex(peer!.presharedKey)).toBe(ZERO);
    expect(peer!.persistentKeepaliveInterval).toBe(65535);
  });

  test('replace_allowed_ips drops the allowed_ip lines before it in the same section (as wireguard-go does)', () => {
    // wireguard-go: allowed_ip=10.1.0.0/16, replace_allowed_ips=true, allowed_ip=10.2.0.0/16 left only 10.2.0.0/16.
    const [peer] = parseSetRequest([`public_key=${PUB_C}`, 'allowed_ip=10.1.0.0/16', 'replace_allowed_ips=true', 'allowed_ip=10.2.0.0/16']).peers;
    expect(peer!.replaceAllowedIps).toBe(true);
    expect(cidrs(peer!.allowedIps)).toEqual(['10.2.0.0/16']);
  });

  test('the same public key twice gives two sections, in order', () => {
    const peers = parseSetRequest([`public_key=${PUB_C}`, 'remove=true', `public_key=${PUB_C}`, 'allowed_ip=10.0.0.1/32']).peers;
    expect(peers.map((p) => [toHex(p.publicKey), p.remove])).toEqual([
      [PUB_C, true],
      [PUB_C, false],
    ]);
  });

  test('allowed_ip: host bits cleared, Go Atoi prefix lengths, IPv4-mapped IPv6 kept as IPv6', () => {
    // All accepted by wireguard-go; its get then printed 10.0.0.0/24, fd00::/64, ::ffff:1.2.3.4/128, 10.0.0.0/8, 0.0.0.0/0.
    const [peer] = parseSetRequest([
      `public_key=${PUB_C}`,
      'allowed_ip=10.0.0.1/24',
      'allowed_ip=fd00::1/64',
      'allowed_ip=::ffff:1.2.3.4/128',
      'allowed_ip=10.0.0.9/08',
      'allowed_ip=10.0.0.9/-0',
      'allowed_ip=10.0.0.9/+8',
    ]).peers;
    expect(cidrs(peer!.allowedIps)).toEqual(['10.0.0.0/24', 'fd00::/64', '::ffff:1.2.3.4/128', '10.0.0.0/8', '0.0.0.0/0', '10.0.0.0/8']);
  });

  test('endpoint: IPv4, [IPv6], port with leading zeros, port 0, IPv4-mapped IPv6', () => {
    const endpoint = (text: string) => parseSetRequest([`public_key=${PUB_C}`, `endpoint=${text}`]).peers[0]!.endpoint;
    expect(endpoint('1.2.3.4:05')).toEqual({ family: 4, address: '1.2.3.4', port: 5 });
    expect(endpoint('1.2.3.4:000005')).toEqual({ family: 4, address: '1.2.3.4', port: 5 });
    expect(endpoint('[::1]:0')).toEqual({ family: 6, address: '::1', port: 0 });
    expect(endpoint('[FD00::1]:65535')).toEqual({ family: 6, address: 'fd00::1', port: 65535 });
    expect(formatUapiEndpoint(endpoint('[::ffff:1.2.3.4]:5')!)).toBe('[::ffff:1.2.3.4]:5');
  });

  test('upper-case public key', () => {
    expect(toHex(parseSetRequest([`public_key=${PUB_C.toUpperCase()}`]).peers[0]!.publicKey)).toBe(PUB_C);
  });
});

describe('parseSetRequest: errors (errno as wireguard-go answered)', () => {
  const peer = `public_key=${PUB_C}`;
  // [lines, errno, message pattern]; every one of these got that errno from wireguard-go.
  const cases: [string[], number, RegExp][] = [
    [['noequals'], Errno.EPROTO, /line 2: failed to parse line/],
    [['listen_port=51820', 'listen_port'], Errno.EPROTO, /line 3/],
    [['bogus=1'], Errno.EINVAL, /line 2: invalid UAPI device key "bogus"/],
    [['=x'], Errno.EINVAL, /invalid UAPI device key ""/],
    [[' LISTEN_PORT=1'], Errno.EINVAL, /invalid UAPI device key " LISTEN_PORT"/],
    [['listen_port=65536'], Errno.EINVAL, /invalid listen_port "65536"/],
    [['listen_port=-1'], Errno.EINVAL, /listen_port/],
    [['listen_port=+5'], Errno.EINVAL, /listen_port/],
    [['listen_port='], Errno.EINVAL, /listen_port/],
    [['listen_port=51820 '], Errno.EINVAL, /listen_port/],
    [['listen_port=1=2'], Errno.EINVAL, /listen_port "1=2"/],
    [['fwmark=4294967296'], Errno.EINVAL, /fwmark/],
    [['fwmark=0x10'], Errno.EINVAL, /fwmark/],
    [['replace_peers=false'], Errno.EINVAL, /replace_peers/],
    [['replace_peers=TRUE'], Errno.EINVAL, /replace_peers/],
    [['private_key=zz'], Errno.EINVAL, /invalid private_key/],
    [['remove=true'], Errno.EINVAL, /invalid UAPI device key "remove" \(a peer key needs a public_key line before it\)/],
    [['protocol_version=1'], Errno.EINVAL, /device key "protocol_version"/],
    [['public_key=abcd'], Errno.EINVAL, /invalid public_key/],
    [[`public_key=${PUB_C}0`], Errno.EINVAL, /invalid public_key/],
    [[`public_key=${PUB_C}00`], Errno.EINVAL, /invalid public_key/],
    [[peer, 'listen_port=1'], Errno.EINVAL, /line 3: invalid UAPI peer key "listen_port" \(device keys must come before the first public_key\)/],
    [[peer, 'replace_peers=true'], Errno.EINVAL, /peer key "replace_peers"/],
    [[peer, 'bogus=1'], Errno.EINVAL, /invalid UAPI peer key "bogus"/],
    [[peer, 'protocol_version=2'], Errno.EINVAL, /protocol_version "2"/],
    [[peer, 'allowed_ip=10.0.0.9'], Errno.EINVAL, /allowed_ip/],
    [[peer, 'allowed_ip=10.0.0.9/33'], Errno.EINVAL, /allowed_ip/],
    [[peer, 'allowed_ip=010.0.0.9/8'], Errno.EINVAL, /allowed_ip/],
    [[peer, 'allowed_ip=fe80::1%eth0/64'], Errno.EINVAL, /allowed_ip/],
    [[peer, 'allowed_ip=1.2.3.4/32 '], Errno.EINVAL, /allowed_ip/],
    [[peer, 'allowed_ip=10.0.0.9/-1'], Errno.EINVAL, /allowed_ip/],
    [[peer, 'endpoint=1.2.3.4'], Errno.EINVAL, /endpoint/],
    [[peer, 'endpoint=example.com:5'], Errno.EINVAL, /endpoint/],
    [[peer, 'endpoint=1.2.3.4:http'], Errno.EINVAL, /endpoint/],
    [[peer, 'endpoint=1.2.3.4:65536'], Errno.EINVAL, /endpoint/],
    [[peer, 'endpoint=[fe80::1%eth0]:5'], Errno.EINVAL, /endpoint/],
    [[peer, 'endpoint=fd00::1:5'], Errno.EINVAL, /endpoint/],
    [[peer, 'endpoint=[1.2.3.4]:5'], Errno.EINVAL, /endpoint/],
    [[peer, 'endpoint=1.2.3.4:+5'], Errno.EINVAL, /endpoint/],
    [[peer, 'endpoint=1.2.3.4:'], Errno.EINVAL, /endpoint/],
    [[peer, 'endpoint= 1.2.3.4:5'], Errno.EINVAL, /endpoint/],
    [[peer, 'persistent_keepalive_interval=65536'], Errno.EINVAL, /persistent_keepalive_interval/],
    [[peer, 'remove=yes'], Errno.EINVAL, /remove/],
    [[peer, 'update_only=1'], Errno.EINVAL, /update_only/],
    [[peer, 'replace_allowed_ips=false'], Errno.EINVAL, /replace_allowed_ips/],
    [[peer, 'preshared_key=12'], Errno.EINVAL, /invalid preshared_key/],
    [[peer, ''], Errno.EPROTO, /line 3: empty line/],
  ];

  test.each(cases)('%j -> errno %i', (lines, errno, message) => {
    const error = thrown(() => parseSetRequest(lines));
    expect(error.errno).toBe(errno);
    expect(error.message).toMatch(message);
  });

  test('a bad line anywhere fails the whole request (validated before anything is applied)', () => {
    // wireguard-go applied listen_port=40005 before failing on bogus=1; here nothing comes back at all.
    const error = thrown(() => parseSetRequest(['listen_port=40005', `public_key=${PUB_C}`, 'allowed_ip=10.0.0.0/8', 'endpoint=nope']));
    expect(error.errno).toBe(Errno.EINVAL);
    expect(error.message).toMatch(/^line 5: invalid endpoint/);
  });

  test('error messages never contain key material', () => {
    const secret = PRIV_A;
    const lines = [
      [`private_key=${secret.slice(0, 63)}`],
      [`private_key=${secret}0`],
      [`private_key=${secret.slice(0, 63)}g`],
      [`public_key=${PUB_C}`, `preshared_key=${secret}00`],
      [`public_key=${secret}z`],
      [secret], // a bare key line without '='
      [`${secret}=1`],
      [`public_key=${PUB_C}`, `endpoint=${secret}`],
      [`public_key=${PUB_C}`, `allowed_ip=${secret}/8`],
      [`listen_port=${secret}`],
    ];
    for (const request of lines) {
      const error = thrown(() => parseSetRequest(request));
      for (let i = 0; i + 16 <= secret.length; i++) expect(error.message).not.toContain(secret.slice(i, i + 16));
    }
  });
});

describe('address helpers', () => {
  test('parseUapiCidr / parseUapiEndpoint against the same inputs as wireguard-go', () => {
    expect(formatUapiCidr(parseUapiCidr('::ffff:1.2.3.4/96'))).toBe('::ffff:0.0.0.0/96');
    expect(formatUapiCidr(parseUapiCidr('::ffff:1.2.3.4/80'))).toBe('::/80');
    expect(formatUapiCidr(parseUapiCidr('10.1.2.3/0000008'))).toBe('10.0.0.0/8');
    expect(() => parseUapiCidr('10.0.0.0/')).toThrow();
    expect(() => parseUapiCidr('/8')).toThrow();
    expect(() => parseUapiEndpoint('1.2.3.4:1000000')).toThrow();
    expect(formatUapiEndpoint({ family: 6, address: '::ffff:102:304', port: 7 })).toBe('[::ffff:1.2.3.4]:7');
    expect(formatUapiEndpoint({ family: 6, address: 'fd00::1', port: 7 })).toBe('[fd00::1]:7');
  });
});

describe('formatGetResponse (golden strings from wireguard-go)', () => {
  test('a fresh device: only listen_port', () => {
    // printf 'get=1\n\n' | ncat -U /var/run/wireguard/wgu0.sock, right after start
    expect(formatGetResponse({ privateKey: null, listenPort: 41616, fwmark: 0, peers: [] })).toBe('listen_port=41616\nerrno=0\n\n');
  });

  test('nothing at all: a zero private key, port and fwmark are all left out', () => {
    expect(formatGetResponse({ privateKey: new Uint8Array(32), listenPort: 0, fwmark: 0, peers: [] })).toBe('errno=0\n\n');
  });

  test('two peers, one with PSK, endpoint and keepalive, one without', () => {
    const state: UapiDeviceState = {
      privateKey: hexKey(PRIV_A),
      listenPort: 40000,
      fwmark: 0,
      peers: [
        peerState({
          publicKey: hexKey(PUB_B),
          presharedKey: hexKey(PSK),
          endpoint: { family: 4, address: '127.0.0.1', port: 40001 },
          persistentKeepaliveInterval: 25,
          allowedIps: [parseCidr('10.9.0.2/32')],
        }),
        peerState({
          publicKey: hexKey(PUB_C),
          endpoint: { family: 6, address: 'fd00::1', port: 51820 },
          allowedIps: [parseCidr('fd00::/64')],
        }),
      ],
    };
    expect(formatGetResponse(state)).toBe(
      `private_key=${PRIV_A}\nlisten_port=40000\n` +
        `public_key=${PUB_B}\npreshared_key=${PSK}\nprotocol_version=1\nendpoint=127.0.0.1:40001\n` +
        'last_handshake_time_sec=0\nlast_handshake_time_nsec=0\ntx_bytes=0\nrx_bytes=0\npersistent_keepalive_interval=25\nallowed_ip=10.9.0.2/32\n' +
        `public_key=${PUB_C}\npreshared_key=${ZERO}\nprotocol_version=1\nendpoint=[fd00::1]:51820\n` +
        'last_handshake_time_sec=0\nlast_handshake_time_nsec=0\ntx_bytes=0\nrx_bytes=0\npersistent_keepalive_interval=0\nallowed_ip=fd00::/64\n' +
        'errno=0\n\n',
    );
  });

  test('a peer without endpoint has no endpoint line', () => {
    const state: UapiDeviceState = {
      privateKey: hexKey(PRIV_B),
      listenPort: 40001,
      fwmark: 0,
      peers: [peerState({ publicKey: hexKey(PUB_A), presharedKey: hexKey(PSK), allowedIps: [parseCidr('10.9.0.1/32')] })],
    };
    expect(formatGetResponse(state)).toBe(
      `private_key=${PRIV_B}\nlisten_port=40001\npublic_key=${PUB_A}\npreshared_key=${PSK}\nprotocol_version=1\n` +
        'last_handshake_time_sec=0\nlast_handshake_time_nsec=0\ntx_bytes=0\nrx_bytes=0\npersistent_keepalive_interval=0\nallowed_ip=10.9.0.1/32\nerrno=0\n\n',
    );
  });

  test('after a handshake: time split into sec/nsec, tx before rx', () => {
    // wireguard-go printed last_handshake_time_sec=1795478743, _nsec=652813216, tx_bytes=212, rx_bytes=92.
    // A wall-clock millisecond double holds that to about a microsecond.
    const text = formatGetResponse({
      privateKey: hexKey(PRIV_A),
      listenPort: 40000,
      fwmark: 0,
      peers: [
        peerState({
          publicKey: hexKey(PUB_B),
          presharedKey: hexKey(PSK),
          endpoint: { family: 4, address: '127.0.0.1', port: 40001 },
          lastHandshakeTimeMs: 1795478743652.813216,
          txBytes: 212,
          rxBytes: 92,
          persistentKeepaliveInterval: 25,
          allowedIps: [parseCidr('10.9.0.2/32')],
        }),
      ],
    });
    const nsec = Number(/last_handshake_time_nsec=(\d+)\n/.exec(text)![1]);
    expect(Math.abs(nsec - 652813216)).toBeLessThan(1000);
    expect(text.replace(/last_handshake_time_nsec=\d+/, 'last_handshake_time_nsec=652813216')).toBe(
      `private_key=${PRIV_A}\nlisten_port=40000\npublic_key=${PUB_B}\npreshared_key=${PSK}\nprotocol_version=1\nendpoint=127.0.0.1:40001\n` +
        'last_handshake_time_sec=1795478743\nlast_handshake_time_nsec=652813216\ntx_bytes=212\nrx_bytes=92\npersistent_keepalive_interval=25\nallowed_ip=10.9.0.2/32\nerrno=0\n\n',
    );
    expect(formatGetResponse({ privateKey: null, listenPort: 0, fwmark: 0, peers: [peerState({ publicKey: hexKey(PUB_C), lastHandshakeTimeMs: 1_700_000_000_123 })] })).toContain(
      'last_handshake_time_sec=1700000000\nlast_handshake_time_nsec=123000000\n',
    );
  });

  test('end to end: the set request wireguard-go got, and the get it answered', () => {
    // set=1 / listen_port=51820 / fwmark=7 / public_key / allowed_ip=10.0.0.1/24 / allowed_ip=fd00::1/64 /
    // allowed_ip=::ffff:1.2.3.4/128 / endpoint=[::ffff:1.2.3.4]:5, then get=1:
    const request = parseSetRequest([
      'listen_port=51820',
      'fwmark=7',
      `public_key=${PUB_C}`,
      'allowed_ip=10.0.0.1/24',
      'allowed_ip=fd00::1/64',
      'allowed_ip=::ffff:1.2.3.4/128',
      'endpoint=[::ffff:1.2.3.4]:5',
    ]);
    const change = request.peers[0]!;
    const state: UapiDeviceState = {
      privateKey: null,
      listenPort: request.listenPort!,
      fwmark: request.fwmark!,
      peers: [peerState({ publicKey: change.publicKey, endpoint: change.endpoint ?? null, allowedIps: change.allowedIps })],
    };
    expect(formatGetResponse(state)).toBe(
      `listen_port=51820\nfwmark=7\npublic_key=${PUB_C}\npreshared_key=${ZERO}\nprotocol_version=1\nendpoint=[::ffff:1.2.3.4]:5\n` +
        'last_handshake_time_sec=0\nlast_handshake_time_nsec=0\ntx_bytes=0\nrx_bytes=0\npersistent_keepalive_interval=0\n' +
        'allowed_ip=10.0.0.0/24\nallowed_ip=fd00::/64\nallowed_ip=::ffff:1.2.3.4/128\nerrno=0\n\n',
    );
  });

  test('fwmark at its maximum and big counters are plain decimal', () => {
    const text = formatGetResponse({
      privateKey: null,
      listenPort: 1,
      fwmark: 4294967295,
      peers: [peerState({ publicKey: hexKey(PUB_C), txBytes: 2 ** 53 - 1, rxBytes: 1e21 })],
    });
    expect(text).toContain('fwmark=4294967295\n');
    expect(text).toContain('tx_bytes=9007199254740991\n');
    expect(text).toContain('rx_bytes=1000000000000000000000\n');
  });
});

describe('formatErrno', () => {
  test('negative on the wire, as wireguard-go writes it', () => {
    expect(formatErrno(0)).toBe('errno=0\n\n');
    expect(formatErrno(Errno.EINVAL)).toBe('errno=-22\n\n');
    expect(formatErrno(Errno.EPROTO)).toBe('errno=-71\n\n');
    expect(formatErrno(Errno.EIO)).toBe('errno=-5\n\n');
    expect(formatErrno(-98)).toBe('errno=-98\n\n');
  });

  test('UapiError keeps a positive errno', () => {
    expect(new UapiError(22, 'x').errno).toBe(22);
    expect(new UapiError(-22, 'x').errno).toBe(22);
    expect(new UapiError(22, 'x')).toBeInstanceOf(Error);
  });
});

describe('round trips', () => {
  const request: UapiSetRequest = {
    privateKey: hexKey(PRIV_A),
    listenPort: 51820,
    fwmark: 0,
    replacePeers: true,
    peers: [
      {
        publicKey: hexKey(PUB_B),
        remove: false,
        updateOnly: true,
        presharedKey: hexKey(PSK),
        endpoint: { family: 6, address: 'fd00::1', port: 1 },
        persistentKeepaliveInterval: 0,
        replaceAllowedIps: true,
        allowedIps: [parseCidr('10.0.0.0/8'), parseCidr('::/0')],
      },
      { publicKey: hexKey(PUB_C), remove: true, updateOnly: false, replaceAllowedIps: false, allowedIps: [] },
    ],
  };

  test('formatSetRequest -> parseSetRequest', () => {
    const text = formatSetRequest(request);
    expect(text.startsWith('set=1\n')).toBe(true);
    expect(text.endsWith('\n\n')).toBe(true);
    const lines = text.split('\n').slice(1, -2);
    expect(parseSetRequest(lines)).toEqual(request);
  });

  test('formatGetResponse -> parseGetResponse', () => {
    const state: UapiDeviceState = {
      privateKey: hexKey(PRIV_A),
      listenPort: 40000,
      fwmark: 3,
      peers: [
        peerState({
          publicKey: hexKey(PUB_B),
          presharedKey: hexKey(PSK),
          endpoint: { family: 4, address: '1.2.3.4', port: 5 },
          lastHandshakeTimeMs: 1_700_000_000_250,
          txBytes: 212,
          rxBytes: 92,
          persistentKeepaliveInterval: 25,
          allowedIps: [parseCidr('10.9.0.2/32'), parseCidr('fd00::/64')],
        }),
        peerState({ publicKey: hexKey(PUB_C) }),
      ],
    };
    expect(parseGetResponse(formatGetResponse(state))).toEqual(state);
  });

  test('parseGetResponse reports a non-zero errno and malformed text', () => {
    expect(thrown(() => parseGetResponse('errno=-22\n\n')).errno).toBe(22);
    expect(thrown(() => parseGetResponse('listen_port=1\n')).errno).toBe(Errno.EPROTO);
    expect(thrown(() => parseGetResponse('garbage\nerrno=0\n\n')).errno).toBe(Errno.EPROTO);
    expect(thrown(() => parseGetResponse(`public_key=${PUB_C}\nendpoint=nope\nerrno=0\n\n`)).errno).toBe(Errno.EPROTO);
    expect(parseGetResponse('listen_port=9\nsomething_new=1\nerrno=0\n\n').listenPort).toBe(9);
  });
});
