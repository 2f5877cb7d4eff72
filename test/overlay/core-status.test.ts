/**
 * Status: a dump split into peer blocks, the empty snapshot before setup,
 * the snapshot built from a device's
 * UAPI state (also via the real UAPI get codec), and the people tables.
 */
import { describe, expect, it } from 'vitest';
import { parseCidr } from '../../src/device/addr.js';
import { formatGetResponse, parseGetResponse, type UapiDeviceState } from '../../src/device/uapi.js';
import { decodeKey } from '../../src/noise/keys.js';
import {
  emptyStatus,
  formatBytes,
  formatHandshakeAge,
  formatNatStatusTable,
  formatPeersTable,
  formatServicesTable,
  formatStatusTable,
  parsePeerStatus,
  peersFromDevice,
} from '../../src/overlay/status.js';

const KEY_A = 'xTIBA5rboUvnH4htodjb6e697QjLERt1NAB4mZqp8Dg=';
const KEY_B = 'HIgo9xNzJMWLKASShiTqIybxZ0U3wGLiUeJ1PKf8ykw=';

describe('parsePeerStatus', () => {
  it('parse_peer_status_splits_blocks', () => {
    const dump = [
      'public_key=AAA',
      'endpoint=1.2.3.4:51820',
      'allowed_ip=10.200.0.2/32',
      'allowed_ip=10.200.1.0/24',
      'latest_handshake=1700000000',
      'public_key=BBB',
      'endpoint=5.6.7.8:51820',
      'allowed_ip=10.200.0.3/32',
      'latest_handshake=0',
      '',
    ].join('\n');
    const peers = parsePeerStatus(dump);
    expect(peers).toHaveLength(2);
    expect(peers[0]).toEqual({ publicKey: 'AAA', endpoint: '1.2.3.4:51820', allowedIps: '10.200.0.2/32,10.200.1.0/24', lastHandshakeUnixSecs: 1_700_000_000 });
    expect(peers[1]).toEqual({ publicKey: 'BBB', endpoint: '5.6.7.8:51820', allowedIps: '10.200.0.3/32', lastHandshakeUnixSecs: 0 });
  });

  it('reads a real UAPI get dump: interface keys ignored, last_handshake_time_sec, trimmed lines, junk ignored', () => {
    const state: UapiDeviceState = {
      privateKey: decodeKey(KEY_A),
      listenPort: 51820,
      fwmark: 0,
      peers: [
        {
          publicKey: decodeKey(KEY_B),
          presharedKey: null,
          endpoint: { family: 4, address: '192.0.2.1', port: 51820 },
          lastHandshakeTimeMs: 1_700_000_123_456,
          rxBytes: 10,
          txBytes: 20,
          persistentKeepaliveInterval: 25,
          allowedIps: [parseCidr('10.200.2.0/26'), parseCidr('fd00::/64')],
        },
      ],
    };
    const dump = formatGetResponse(state);
    const peers = parsePeerStatus(`  ${dump.replace(/\n/g, '  \r\n')}garbage line\n=novalue\nlatest_handshake=notanumber`);
    expect(peers).toEqual([
      { publicKey: Buffer.from(decodeKey(KEY_B)).toString('hex'), endpoint: '192.0.2.1:51820', allowedIps: '10.200.2.0/26,fd00::/64', lastHandshakeUnixSecs: 0 },
    ]);
    expect(parsePeerStatus(dump)[0]!.lastHandshakeUnixSecs).toBe(1_700_000_123);
  });

  it('allowed IPs and endpoints before any peer are ignored; empty dump → no peers', () => {
    expect(parsePeerStatus('listen_port=1\nallowed_ip=10.0.0.0/8\nendpoint=1.2.3.4:5\n')).toEqual([]);
    expect(parsePeerStatus('')).toEqual([]);
    expect(parsePeerStatus('peer=X\nallowed_ips=10.0.0.1/32')).toEqual([{ publicKey: 'X', endpoint: '', allowedIps: '10.0.0.1/32', lastHandshakeUnixSecs: 0 }]);
  });
});

describe('snapshots', () => {
  it('status_snapshot_before_setup_is_empty (the cluster CIDR is already reported)', () => {
    const snap = emptyStatus();
    expect(snap.interface).toBeNull();
    expect(snap.nodeIp).toBeNull();
    expect(snap.publicKey).toBeNull();
    expect(snap.peerCount).toBe(0);
    expect(snap.serviceCount).toBe(0);
    expect(snap.peers).toEqual([]);
    expect(snap.overlayCidr).toBe('10.200.0.0/16');
    expect(emptyStatus('10.9.0.0/16').overlayCidr).toBe('10.9.0.0/16');
  });

  it('peersFromDevice: base64 keys, endpoint text, CIDRs, handshake in seconds, counters, connection types', () => {
    const text = [
      'private_key=' + Buffer.from(decodeKey(KEY_A)).toString('hex'),
      'listen_port=51820',
      'public_key=' + Buffer.from(decodeKey(KEY_B)).toString('hex'),
      'endpoint=[2001:db8::1]:51820',
      'last_handshake_time_sec=1700000000',
      'last_handshake_time_nsec=999000000',
      'tx_bytes=300',
      'rx_bytes=200',
      'persistent_keepalive_interval=25',
      'allowed_ip=10.200.2.0/26',
      'public_key=' + Buffer.from(decodeKey(KEY_A)).toString('hex'),
      'errno=0',
      '',
      '',
    ].join('\n');
    const state = parseGetResponse(text);
    const views = peersFromDevice(state, new Map([[KEY_B, 'hole-punched']]));
    expect(views).toEqual([
      { publicKey: KEY_B, endpoint: '[2001:db8::1]:51820', allowedIps: ['10.200.2.0/26'], latestHandshake: 1_700_000_000, rxBytes: 200, txBytes: 300, connectionType: 'hole-punched' },
      { publicKey: KEY_A, endpoint: null, allowedIps: [], latestHandshake: 0, rxBytes: 0, txBytes: 0 },
    ]);
  });
});

describe('tables for people', () => {
  const now = 1_700_000_100;
  const status = {
    interface: 'zl-prod-7-g',
    nodeIp: '10.200.3.1',
    publicKey: KEY_A,
    overlayCidr: '10.200.0.0/16',
    sliceCidr: '10.200.3.0/26',
    peerCount: 2,
    serviceCount: 0,
    services: [],
    dedicatedServices: [],
    peers: [
      { publicKey: KEY_B, endpoint: '192.0.2.9:51820', allowedIps: ['10.200.4.0/26', '10.200.5.0/26'], latestHandshake: 1_700_000_000, rxBytes: 1536, txBytes: 5 * 1024 * 1024, connectionType: 'direct' },
      { publicKey: KEY_A, endpoint: null, allowedIps: [], latestHandshake: 0, rxBytes: 0, txBytes: 0 },
    ],
  };

  it('formatStatusTable: summary lines then an aligned peer table', () => {
    const out = formatStatusTable(status, now);
    const lines = out.split('\n');
    expect(lines.slice(0, 7)).toEqual([
      'interface:    zl-prod-7-g',
      'node IP:      10.200.3.1',
      `public key:   ${KEY_A}`,
      'cluster CIDR: 10.200.0.0/16',
      'slice CIDR:   10.200.3.0/26',
      'peers:        2',
      'services:     0',
    ]);
    const table = lines.slice(8);
    expect(table[0]).toMatch(/^PUBLIC KEY +ENDPOINT +ALLOWED IPS +LATEST HANDSHAKE +RX +TX +CONNECTION$/);
    expect(table[1]).toContain('1m 40s ago');
    expect(table[1]).toContain('1.50 KiB');
    expect(table[1]).toContain('5.00 MiB');
    expect(table[1]).toMatch(/direct$/);
    expect(table[2]).toMatch(/never/);
    // Columns line up: every row has its endpoint where the header has ENDPOINT.
    const column = table[0]!.indexOf('ENDPOINT');
    expect(table[1]!.slice(column).startsWith('192.0.2.9:51820')).toBe(true);
    expect(table[2]!.slice(column).startsWith('-')).toBe(true);
  });

  it('a dns line after the summary when the node reports its resolver', () => {
    const withDns = { ...status, dns: { listening: '10.200.3.1:53', domain: 'prod.internal', records: 3, answered: 7, forwarded: 2, refused: 0, malformed: 1 } };
    expect(formatStatusTable(withDns, now).split('\n')[7]).toBe('dns:          10.200.3.1:53, prod.internal, 3 records; 7 answered, 2 forwarded, 0 refused, 1 malformed');
    expect(formatStatusTable({ ...withDns, dns: { ...withDns.dns, listening: null, domain: null } }, now).split('\n')[7]).toMatch(/^dns: +not listening; 7 answered/);
  });

  it('before setup, says so', () => {
    expect(formatStatusTable(emptyStatus(), now)).toMatch(/^interface: +\(global overlay not set up\)/);
    expect(formatStatusTable(emptyStatus(), now)).toMatch(/no peers$/);
    expect(formatPeersTable([], now)).toBe('no peers');
  });

  it('handshake ages and byte sizes', () => {
    expect(formatHandshakeAge(0, now)).toBe('never');
    expect(formatHandshakeAge(now, now)).toBe('now');
    expect(formatHandshakeAge(now - 90_061, now)).toBe('1d 1h 1m 1s ago');
    expect(formatBytes(0)).toBe('0 B');
    expect(formatBytes(1023)).toBe('1023 B');
    expect(formatBytes(1024 ** 3 * 3)).toBe('3.00 GiB');
  });

  it('formatNatStatusTable', () => {
    const out = formatNatStatusTable(
      {
        candidates: [{ candidateType: 'server-reflexive', address: '198.51.100.1:40000', priority: 1694498815 }],
        peers: [{ nodeId: KEY_B, connectionType: 'hole-punched', remoteEndpoint: '198.51.100.2:40001' }],
        lastRefresh: now - 5,
      },
      now,
    );
    expect(out).toMatch(/^last refresh: 5s ago/);
    expect(out).toMatch(/server-reflexive +198\.51\.100\.1:40000 +1694498815/);
    expect(out).toMatch(new RegExp(`${KEY_B.replace(/[+/=]/g, '\\$&')} +hole-punched +198\\.51\\.100\\.2:40001`));
    expect(formatNatStatusTable({ candidates: [], peers: [], lastRefresh: 0 }, now)).toBe('last refresh: never\n\nno local candidates\n\nno NAT-connected peers');
  });
});

describe('the services table', () => {
  const base = {
    interface: 'zl-prod-7-g',
    nodeIp: '10.200.3.1',
    publicKey: 'xTIBA5rboUvnH4htodjb6e697QjLERt1NAB4mZqp8Dg=',
    overlayCidr: '10.200.0.0/16',
    sliceCidr: '10.200.3.0/26',
    peerCount: 0,
    peers: [],
  };

  it('one row per service; a dedicated one shows its device, port and peers', () => {
    const status = {
      ...base,
      serviceCount: 2,
      services: [
        { name: 'db', mode: 'dedicated' as const, bridge: 'zl-prod-7-db-b', subnet: '10.200.128.0/26', members: 2 },
        { name: 'web', mode: 'auto' as const, bridge: 'zl-prod-7-web-b', subnet: '10.200.64.0/26', members: 0 },
      ],
      dedicatedServices: [{ service: 'db', interface: 'zl-prod-7-db-d', publicKey: 'k', listenPort: 51821, overlayIp: '10.200.128.2', subnet: '10.200.128.0/26', peerCount: 1 }],
    };
    expect(formatServicesTable(status).split('\n')).toEqual([
      'SERVICE  MODE       BRIDGE           SUBNET           MEMBERS  DEVICE          PORT   PEERS',
      'db       dedicated  zl-prod-7-db-b   10.200.128.0/26  2        zl-prod-7-db-d  51821  1',
      'web      auto       zl-prod-7-web-b  10.200.64.0/26   0        -               -      -',
    ]);
    expect(formatStatusTable(status, 0)).toContain('SERVICE  MODE');
  });

  it('says so when there are none, and the status table leaves the section out', () => {
    const status = { ...base, serviceCount: 0, services: [], dedicatedServices: [] };
    expect(formatServicesTable(status)).toBe('no service overlays');
    expect(formatStatusTable(status, 0)).not.toContain('SERVICE');
  });
});
