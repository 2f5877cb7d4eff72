/**
 * Membership without etcd: the `membership` config section (errors name the
 * field), the records' parsing, the peer set a view of etcd turns into (bad
 * records skipped with a reason, the rest still applied), the slice
 * enumeration, the static backend and the Status answer's optional field.
 */
import { randomBytes } from 'node:crypto';
import { describe, expect, it } from 'vitest';
import { parseCidr } from '../../src/device/addr.js';
import { loadNodeConfig, parseNodeConfig } from '../../src/overlay/config-file.js';
import type { KeyValue } from '../../src/overlay/membership/etcd-client.js';
import { prefixEnd } from '../../src/overlay/membership/etcd-client.js';
import { desiredPeers } from '../../src/overlay/membership/peer-set.js';
import { encodeNodeRecord, encodeSliceRecord, KeyLayout, parseNodeRecord, slicesOf } from '../../src/overlay/membership/records.js';
import { StaticMembership } from '../../src/overlay/membership/static.js';
import { parseResponse, type PeerSpec, type StatusSnapshot } from '../../src/overlay/protocol.js';
import { formatStatusTable } from '../../src/overlay/status.js';

const key = (): string => randomBytes(32).toString('base64');

function config(membership: unknown): string {
  return JSON.stringify({ deployment: 'demo', membership });
}

describe('membership config', () => {
  it('reads the etcd section with defaults', () => {
    const parsed = parseNodeConfig(config({ etcd: { endpoints: ['http://10.0.0.5:2379/', 'https://etcd.example:2379'] } }), 'node.yaml');
    expect(parsed.membership).toEqual({
      etcd: { endpoints: ['http://10.0.0.5:2379', 'https://etcd.example:2379'], prefix: '/tswg', leaseTtlSeconds: 30, sliceLength: 26 },
    });
  });

  it('reads YAML with every field', () => {
    const yaml = `deployment: demo
membership:
  etcd:
    endpoints: [http://10.0.0.5:2379]
    prefix: /overlay
    leaseTtlSeconds: 3
    sliceLength: 28
    username: node
    password: secret
    advertiseEndpoint: 192.0.2.7:51820
`;
    expect(parseNodeConfig(yaml, 'node.yaml').membership?.etcd).toEqual({
      endpoints: ['http://10.0.0.5:2379'],
      prefix: '/overlay',
      leaseTtlSeconds: 3,
      sliceLength: 28,
      username: 'node',
      password: 'secret',
      advertiseEndpoint: '192.0.2.7:51820',
    });
  });

  it('reads examples/etcd-mesh.yaml', () => {
    const example = loadNodeConfig(new URL('../../examples/etcd-mesh.yaml', import.meta.url).pathname);
    expect(example.membership?.etcd).toMatchObject({ endpoints: ['http://10.0.0.5:2379', 'http://10.0.0.6:2379', 'http://10.0.0.7:2379'], prefix: '/tswg', leaseTtlSeconds: 30 });
    expect(example.peers).toEqual([]);
  });

  it('is absent by default (static membership)', () => {
    expect(parseNodeConfig(JSON.stringify({ deployment: 'demo' }), 'node.yaml').membership).toBeUndefined();
  });

  it.each([
    [{}, 'node.yaml: membership.etcd: required'],
    [{ etcd: {} }, 'node.yaml: membership.etcd.endpoints: expected a non-empty list'],
    [{ etcd: { endpoints: [] } }, 'membership.etcd.endpoints: expected a non-empty list'],
    [{ etcd: { endpoints: ['ftp://10.0.0.5:2379'] } }, 'membership.etcd.endpoints[0]: "ftp://10.0.0.5:2379": expected http:// or https://'],
    [{ etcd: { endpoints: ['http://u:p@10.0.0.5:2379'] } }, 'membership.etcd.endpoints[0]: "http://u:p@10.0.0.5:2379": expected scheme://host:port only'],
    [{ etcd: { endpoints: ['http://a:1', 'nonsense'] } }, 'membership.etcd.endpoints[1]: "nonsense" is not a URL'],
    [{ etcd: { endpoints: ['http://a:1'], leaseTtlSeconds: 1 } }, 'membership.etcd.leaseTtlSeconds: expected an integer 2..86400'],
    [{ etcd: { endpoints: ['http://a:1'], prefix: 'tswg' } }, 'membership.etcd.prefix: expected a key prefix starting with "/"'],
    [{ etcd: { endpoints: ['http://a:1'], password: 'x' } }, 'membership.etcd.password: given without membership.etcd.username'],
    [{ etcd: { endpoints: ['http://a:1'], advertiseEndpoint: 'here' } }, 'membership.etcd.advertiseEndpoint:'],
    [{ etcd: { endpoints: ['http://a:1'], ttl: 3 } }, 'membership.etcd: unknown field "ttl"'],
    [{ consul: {} }, 'membership: unknown field "consul"'],
  ])('refuses %j naming the field', (membership, message) => {
    expect(() => parseNodeConfig(config(membership), 'node.yaml')).toThrow(message);
  });
});

describe('records', () => {
  it('parses a node record and canonicalises its CIDRs', () => {
    const publicKey = key();
    const text = JSON.stringify({ publicKey, slice: '10.200.1.5/26', endpoint: '192.0.2.1:51820', serviceSubnets: ['10.201.0.64/26'], future: 1 });
    expect(parseNodeRecord(text, 'k')).toMatchObject({ publicKey, slice: '10.200.1.0/26', endpoint: '192.0.2.1:51820', serviceSubnets: ['10.201.0.64/26'], candidates: [] });
  });

  it.each([
    ['{', 'k: not JSON'],
    ['[]', 'k: expected a JSON object'],
    [JSON.stringify({ publicKey: Buffer.alloc(31).toString('base64'), slice: '10.0.0.0/26' }), 'k: publicKey: '],
    [JSON.stringify({ publicKey: 'AAAA', slice: '10.0.0.0/26' }), 'not a 32-byte base64 WireGuard key'],
    [JSON.stringify({ publicKey: key(), slice: '10.0.0.0' }), 'k: slice: expected a CIDR'],
    [JSON.stringify({ publicKey: key(), slice: '10.0.0.0/26', endpoint: 'nowhere' }), 'k: endpoint:'],
    [JSON.stringify({ publicKey: key(), slice: '10.0.0.0/26', serviceSubnets: ['x/1'] }), 'k: serviceSubnets[0]:'],
    [JSON.stringify({ publicKey: key(), slice: '10.0.0.0/26', isolation: { red: ['10.0.0.300'] } }), 'k: isolation.red[0]: expected an IP address'],
    [JSON.stringify({ publicKey: key(), slice: '10.0.0.0/26', isolation: ['red'] }), 'k: isolation: expected an object'],
  ])('refuses %s', (text, message) => {
    expect(() => parseNodeRecord(text, 'k')).toThrow(message);
  });

  it('enumerates slices in address order, lazily', () => {
    expect([...slicesOf(parseCidr('10.0.0.0/24'), 26)]).toEqual(['10.0.0.0/26', '10.0.0.64/26', '10.0.0.128/26', '10.0.0.192/26']);
    const v6 = slicesOf(parseCidr('fd00::/48'), 112);
    expect([v6.next().value, v6.next().value]).toEqual(['fd00::/112', 'fd00::1:0/112']);
  });

  it('prefix range ends increment the last byte', () => {
    expect(Buffer.from(prefixEnd('/tswg/a/'), 'base64').toString()).toBe('/tswg/a0');
  });
});

describe('peer set from a view of etcd', () => {
  const layout = new KeyLayout('/tswg', 'demo');
  const self = { nodeId: 'me', publicKey: key() };
  let revision = 0;
  const kv = (k: string, value: string): KeyValue => ({ key: k, value, createRevision: ++revision, modRevision: revision, lease: '0' });
  const node = (id: string, publicKey: string, slice: string, extra: Record<string, unknown> = {}): KeyValue[] => [
    kv(layout.sliceKey(slice), encodeSliceRecord({ nodeId: id, publicKey })),
    kv(layout.nodeKey(id), encodeNodeRecord({ publicKey, slice, endpoint: '192.0.2.9:51820', candidates: [], serviceSubnets: [], ...extra })),
  ];
  const context = { layout, cluster: parseCidr('10.200.0.0/16'), selfNodeId: self.nodeId, selfPublicKey: self.publicKey };

  it('turns good records into peers (slice + service subnets) and skips bad ones with the reason', () => {
    const a = key();
    const b = key();
    const c = key();
    const kvs: KeyValue[] = [
      ...node('a', a, '10.200.0.0/26', { serviceSubnets: ['10.201.0.0/26'] }),
      ...node('b', b, '10.200.0.64/26'),
      // c claims b's slice: the slice record names b.
      kv(layout.nodeKey('c'), encodeNodeRecord({ publicKey: c, slice: '10.200.0.64/26', endpoint: null, candidates: [], serviceSubnets: [] })),
      kv(layout.nodeKey('garbage'), 'not json'),
      ...node('outside', key(), '10.99.0.0/26'),
      kv(layout.nodeKey('shortkey'), JSON.stringify({ publicKey: Buffer.alloc(16).toString('base64'), slice: '10.200.1.0/26' })),
      kv(layout.sliceKey('10.200.2.0/26'), '{"nodeId":'),
      ...node('me', self.publicKey, '10.200.3.0/26'),
      kv(`${layout.root}config`, '{}'),
    ];
    const skipped: string[] = [];
    const peers = desiredPeers(kvs, context, (k, _rev, reason) => skipped.push(`${k} ${reason}`));
    expect([...peers.keys()].sort()).toEqual(['a', 'b']);
    expect(peers.get('a')!.spec).toMatchObject({ publicKey: a, endpoint: '192.0.2.9:51820', allowedIps: '10.200.0.0/26,10.201.0.0/26' });
    expect(skipped.some((s) => s.includes('/nodes/c') && s.includes('reserved for node b'))).toBe(true);
    expect(skipped.some((s) => s.includes('/nodes/garbage') && s.includes('not JSON'))).toBe(true);
    expect(skipped.some((s) => s.includes('/nodes/outside') && s.includes('outside the cluster'))).toBe(true);
    expect(skipped.some((s) => s.includes('/nodes/shortkey') && s.includes('32-byte'))).toBe(true);
    expect(skipped.some((s) => s.includes('/slices/10.200.2.0/26'))).toBe(true);
    expect(skipped.some((s) => s.includes('/nodes/me'))).toBe(false);
  });

  it('isolation members count at the node\'s own addresses only; an older record without them has none', () => {
    const a = key();
    const kvs = [
      ...node('a', a, '10.200.0.0/26', { serviceSubnets: ['10.200.64.0/26'], isolation: { red: ['10.200.0.5', '10.200.64.2', '10.200.0.70'], blue: ['10.200.9.9'] } }),
      kv(layout.sliceKey('10.200.0.64/26'), encodeSliceRecord({ nodeId: 'old', publicKey: key() })),
    ];
    kvs.push(kv(layout.nodeKey('old'), JSON.stringify({ publicKey: JSON.parse(kvs[2]!.value).publicKey, slice: '10.200.0.64/26', endpoint: null })));
    const skipped: string[] = [];
    const peers = desiredPeers(kvs, context, (k, _rev, reason) => skipped.push(`${k} ${reason}`));
    expect(peers.get('a')!.isolation).toEqual({ red: ['10.200.0.5', '10.200.64.2'] });
    expect(peers.get('old')!.isolation).toEqual({});
    expect(skipped.filter((s) => s.includes('/nodes/a')).sort()).toEqual([
      `${layout.nodeKey('a')} isolation member 10.200.0.70 of red is outside the node's slice and service subnets; left out`,
      `${layout.nodeKey('a')} isolation member 10.200.9.9 of blue is outside the node's slice and service subnets; left out`,
    ]);
  });

  it('skips a node whose service subnet covers another node\'s slice', () => {
    const kvs = [...node('a', key(), '10.200.0.0/26', { serviceSubnets: ['10.200.0.0/16'] }), ...node('b', key(), '10.200.0.64/26')];
    const skipped: string[] = [];
    const peers = desiredPeers(kvs, context, (k, _rev, reason) => skipped.push(`${k} ${reason}`));
    expect([...peers.keys()]).toEqual(['b']);
    expect(skipped[0]).toContain("overlaps node b's slice");
  });

  it('skips a second node with the same key', () => {
    const shared = key();
    const kvs = [...node('a', shared, '10.200.0.0/26'), ...node('b', shared, '10.200.0.64/26')];
    const skipped: string[] = [];
    expect([...desiredPeers(kvs, context, (k, _r, reason) => skipped.push(reason)).keys()]).toEqual(['a']);
    expect(skipped[0]).toContain('same public key as node a');
  });
});

describe('static membership', () => {
  it('hands out the config slice and peers, publishes nothing', async () => {
    const peer: PeerSpec = { publicKey: key(), endpoint: '192.0.2.2:51820', allowedIps: '10.200.2.0/26', persistentKeepaliveSecs: 0, candidates: [] };
    const membership = new StaticMembership([peer]);
    expect(await membership.start({ deployment: 'd', nodeId: 'n', publicKey: key(), clusterCidr: '10.200.0.0/16', sliceCidr: '10.200.1.0/26', wgPort: 1 })).toBe('10.200.1.0/26');
    const added: PeerSpec[] = [];
    await membership.onPeers({ add: async (_id, p) => void added.push(p), remove: async () => undefined });
    expect(added).toEqual([peer]);
    expect(membership.status()).toEqual({ backend: 'static', healthy: true, member: true, revision: null });
  });
});

describe('Status answer', () => {
  const base = { type: 'Status', interface: null, nodeIp: null, publicKey: null, overlayCidr: null, sliceCidr: null, peerCount: 0, serviceCount: 0, peers: [] };
  it('accepts answers with and without membership', () => {
    expect(parseResponse(JSON.stringify(base))).not.toHaveProperty('membership');
    const membership = { backend: 'etcd', healthy: false, member: true, revision: 12 };
    expect(parseResponse(JSON.stringify({ ...base, membership }))).toMatchObject({ membership });
  });
  it('refuses a malformed membership field', () => {
    expect(() => parseResponse(JSON.stringify({ ...base, membership: { backend: 'zk', healthy: true, member: true, revision: null } }))).toThrow('Status.membership.backend');
  });
});

describe('tswg node status', () => {
  const snapshot: StatusSnapshot = { interface: null, nodeIp: null, publicKey: null, overlayCidr: null, sliceCidr: null, peerCount: 0, serviceCount: 0, peers: [], services: [], dedicatedServices: [] };
  it('shows the membership line when the node reports one', () => {
    expect(formatStatusTable(snapshot)).not.toContain('membership');
    expect(formatStatusTable({ ...snapshot, membership: { backend: 'etcd', healthy: true, member: true, revision: 42 } })).toContain('membership:   etcd, healthy, member, revision 42');
    expect(formatStatusTable({ ...snapshot, membership: { backend: 'etcd', healthy: false, member: true, revision: 42 } })).toContain('DEGRADED');
    expect(formatStatusTable({ ...snapshot, membership: { backend: 'static', healthy: true, member: true, revision: null } })).toContain('membership:   static');
  });
});
