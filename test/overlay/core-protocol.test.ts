/**
 * The control protocol: every request and response variant round-trips
 * through its line form; malformed lines give a ProtocolError that names the
 * field; and a fuzzer (random lines, and mutations of valid ones — bytes and
 * JSON values) proves parseRequest throws nothing but ProtocolError.
 */
import { describe, expect, it } from 'vitest';
import {
  encodeRequest,
  encodeResponse,
  errorResponse,
  parseRequest,
  parseResponse,
  ProtocolError,
  REQUEST_TYPES,
  type Request,
  type Response,
} from '../../src/overlay/protocol.js';
import { OverlayError } from '../../src/overlay/errors.js';
import { fuzzSeed, mutate, Rng } from '../helpers/fuzz.js';

const KEY_A = 'xTIBA5rboUvnH4htodjb6e697QjLERt1NAB4mZqp8Dg=';
const KEY_B = 'HIgo9xNzJMWLKASShiTqIybxZ0U3wGLiUeJ1PKf8ykw=';

/** One request of every variant, every optional field present somewhere. */
const REQUESTS: Request[] = [
  { type: 'SetLocalNodeId', nodeId: 7 },
  { type: 'SetLocalWgPubkey', pubkey: KEY_A },
  {
    type: 'SetupGlobalOverlay',
    deployment: 'prod',
    instanceId: 'a1b2c3d4',
    clusterCidr: '10.200.0.0/16',
    sliceCidr: '10.200.3.0/26',
    wgPort: 51820,
    nat: { enabled: true, stunServers: ['192.0.2.1:3478'], relayServer: { listenPort: 3479, externalAddr: '192.0.2.2:3479', maxSessions: 0, authCredential: 'core-protocol-relay-secret' } },
    hostAdapterMandatory: true,
  },
  { type: 'SetupGlobalOverlay', deployment: 'dev', instanceId: 'x', clusterCidr: 'fd00:200::/48', wgPort: 0, hostAdapterMandatory: false },
  { type: 'TeardownGlobalOverlay' },
  { type: 'AllocateIp', service: 'web', joinGlobal: true },
  { type: 'ReleaseIp', ip: '10.200.3.2' },
  { type: 'ReleaseIp', ip: 'fd00:200::2' },
  {
    type: 'AddPeer',
    peer: {
      publicKey: KEY_B,
      endpoint: '[2001:db8::1]:51820',
      allowedIps: '10.200.4.0/26,fd00:200:4::/64',
      persistentKeepaliveSecs: 25,
      candidates: [
        { candidateType: 'host', address: '192.0.2.9:51820', priority: 100 },
        { candidateType: 'server-reflexive', address: '198.51.100.1:40000', priority: 50 },
      ],
    },
    scope: 'global',
  },
  { type: 'AddPeer', peer: { publicKey: KEY_B, endpoint: '0.0.0.0:0', allowedIps: '', persistentKeepaliveSecs: 0, candidates: [] }, scope: { service: 'db' } },
  { type: 'RemovePeer', pubkey: KEY_B, scope: 'global' },
  { type: 'RemovePeer', pubkey: KEY_B, scope: { service: 'db' } },
  { type: 'AddAllowedIp', pubkey: KEY_B, cidr: '10.200.9.0/24', scope: 'global' },
  { type: 'RemoveAllowedIp', pubkey: KEY_B, cidr: 'fd00::/64', scope: { service: 'web' } },
  { type: 'SetupServiceOverlay', service: 'web', mode: 'auto' },
  { type: 'SetupServiceOverlay', service: 'db', mode: 'dedicated' },
  { type: 'TeardownServiceOverlay', service: 'web' },
  {
    type: 'AttachContainer',
    handle: { linuxPid: 4242 },
    service: 'web',
    joinGlobal: true,
    dnsServer: '10.200.3.1',
    dnsDomain: 'svc.cluster',
    ephemeral: true,
    isolationNetwork: 'tenant-a',
  },
  { type: 'AttachContainer', handle: { guestManaged: 'vm-1' }, service: 'db', joinGlobal: false, dnsServer: null, dnsDomain: null, ephemeral: false, isolationNetwork: null },
  { type: 'AttachContainer', handle: { hostShared: 'box-1' }, service: 'web', joinGlobal: false, dnsServer: 'fd00::1', dnsDomain: null, ephemeral: false, isolationNetwork: null },
  { type: 'DetachContainer', handle: { linuxPid: 4242 } },
  { type: 'PruneOrphanBridges', liveBridgeNames: ['zl-prod-0-web-b'] },
  { type: 'Status' },
  { type: 'NatTick' },
  { type: 'NatStatus' },
  { type: 'Shutdown' },
  { type: 'RegisterDns', name: 'web', ip: '10.200.1.2' },
  { type: 'UnregisterDns', name: 'web.prod.internal' },
  { type: 'SetRemoteIsolation', node: KEY_B, networks: { red: ['10.200.2.2', '10.200.2.3'], blue: [] } },
];

const RESPONSES: Response[] = [
  { type: 'Ok' },
  { type: 'Err', message: 'global overlay not set up\nwith "quotes" and \\ backslash' },
  { type: 'BridgeName', name: 'zl-prod-7-g' },
  { type: 'Ip', ip: '10.200.3.2' },
  {
    type: 'Status',
    interface: 'zl-prod-7-g',
    nodeIp: '10.200.3.1',
    publicKey: KEY_A,
    overlayCidr: '10.200.0.0/16',
    sliceCidr: '10.200.3.0/26',
    peerCount: 1,
    serviceCount: 1,
    peers: [{ publicKey: KEY_B, endpoint: '192.0.2.9:51820', allowedIps: ['10.200.4.0/26'], latestHandshake: 1_700_000_000, rxBytes: 10, txBytes: 20, connectionType: 'direct' }],
    services: [{ name: 'db', mode: 'dedicated', bridge: 'zl-prod-7-db-b', subnet: '10.200.64.0/26', members: 2 }],
    dedicatedServices: [
      { service: 'db', interface: 'zl-prod-7-db-d', publicKey: KEY_B, listenPort: 51821, overlayIp: '10.200.64.2', subnet: '10.200.64.0/26', peerCount: 1 },
    ],
  },
  { type: 'Status', interface: null, nodeIp: null, publicKey: null, overlayCidr: '10.200.0.0/16', sliceCidr: null, peerCount: 0, serviceCount: 0, peers: [], services: [], dedicatedServices: [] },
  { type: 'ServiceOverlay', name: 'web', mode: 'auto', bridge: 'zl-prod-7-web-b', subnet: '10.200.64.0/26', wgPublicKey: null, wgPort: null, overlayIp: null },
  { type: 'ServiceOverlay', name: 'db', mode: 'dedicated', bridge: 'zl-prod-7-db-b', subnet: '10.200.128.0/26', wgPublicKey: KEY_A, wgPort: 51821, overlayIp: '10.200.128.2' },
  { type: 'Attached', ip: '10.200.64.2', globalIp: null },
  { type: 'Attached', ip: '10.200.64.3', globalIp: '10.200.3.5' },
  {
    type: 'GuestConfig',
    overlayIp: '10.200.3.9',
    prefixLen: 26,
    privateKey: KEY_A,
    publicKey: KEY_B,
    listenPort: 51820,
    peers: [{ publicKey: KEY_A, endpoint: '10.200.3.1:51820', allowedIps: '10.200.0.0/16', persistentKeepaliveSecs: 25, candidates: [] }],
    dnsServer: null,
    dnsDomain: null,
  },
  { type: 'PrunedBridges', reclaimed: ['zl-1ca4568944-b'] },
  {
    type: 'NatStatus',
    candidates: [{ candidateType: 'host', address: '192.0.2.9:51820', priority: 2130706431 }],
    peers: [{ nodeId: KEY_B, connectionType: 'hole-punched', remoteEndpoint: '198.51.100.1:40000' }],
    lastRefresh: 1_700_000_000,
  },
];

function protocolError(line: string): string {
  try {
    parseRequest(line);
  } catch (error) {
    expect(error).toBeInstanceOf(ProtocolError);
    return (error as Error).message;
  }
  throw new Error(`parseRequest accepted ${line}`);
}

describe('requests', () => {
  it('every variant is covered by the round-trip list', () => {
    expect(new Set(REQUESTS.map((r) => r.type))).toEqual(new Set(REQUEST_TYPES));
    expect(REQUEST_TYPES).toHaveLength(22);
  });

  it('RegisterDns / UnregisterDns name the bad field; SetupGlobalOverlay.dnsDomain must be a domain name', () => {
    expect(protocolError('{"type":"RegisterDns","name":"web","ip":"10.0.0.300"}')).toBe('RegisterDns.ip: expected an IP address, got "10.0.0.300"');
    expect(protocolError('{"type":"RegisterDns","name":"","ip":"10.0.0.3"}')).toBe('RegisterDns.name: expected a non-empty string, got ""');
    expect(protocolError('{"type":"RegisterDns","ip":"10.0.0.3"}')).toBe('RegisterDns.name: expected a non-empty string, got nothing');
    expect(protocolError('{"type":"UnregisterDns","name":7}')).toBe('UnregisterDns.name: expected a non-empty string, got 7');
    expect(protocolError('{"type":"SetupGlobalOverlay","deployment":"d","instanceId":"i","clusterCidr":"10.200.0.0/16","dnsDomain":"bad domain"}')).toMatch(
      /^SetupGlobalOverlay\.dnsDomain: expected a domain name/,
    );
    expect(parseRequest('{"type":"SetupGlobalOverlay","deployment":"d","instanceId":"i","clusterCidr":"10.200.0.0/16","dnsDomain":"svc.cluster."}')).toMatchObject({ dnsDomain: 'svc.cluster.' });
  });

  it('SetRemoteIsolation names the bad node key, network name or address', () => {
    expect(protocolError('{"type":"SetRemoteIsolation","node":"nope","networks":{}}')).toMatch(/^SetRemoteIsolation\.node: expected a base64 WireGuard public key/);
    expect(protocolError(`{"type":"SetRemoteIsolation","node":"${KEY_B}","networks":[]}`)).toMatch(/^SetRemoteIsolation\.networks: expected an object/);
    expect(protocolError(`{"type":"SetRemoteIsolation","node":"${KEY_B}","networks":{"re d":[]}}`)).toMatch(/^SetRemoteIsolation\.networks key: expected a name/);
    expect(protocolError(`{"type":"SetRemoteIsolation","node":"${KEY_B}","networks":{"red":["10.0.0.300"]}}`)).toBe('SetRemoteIsolation.networks.red[0]: expected an IP address, got "10.0.0.300"');
    expect(protocolError(`{"type":"SetRemoteIsolation","node":"${KEY_B}"}`)).toMatch(/^SetRemoteIsolation\.networks: expected an object/);
  });

  it.each(REQUESTS.map((r) => [r.type, r] as const))('%s round-trips through one line', (_type, request) => {
    const line = encodeRequest(request);
    expect(line).not.toContain('\n');
    expect(parseRequest(line)).toEqual(request);
  });

  it('fills the documented defaults', () => {
    expect(parseRequest('{"type":"SetupGlobalOverlay","deployment":"d","instanceId":"i","clusterCidr":"10.200.0.0/16"}')).toEqual({
      type: 'SetupGlobalOverlay',
      deployment: 'd',
      instanceId: 'i',
      clusterCidr: '10.200.0.0/16',
      wgPort: 51820,
      hostAdapterMandatory: false,
    });
    expect(parseRequest('{"type":"AllocateIp","service":"web"}')).toEqual({ type: 'AllocateIp', service: 'web', joinGlobal: false });
    expect(parseRequest('{"type":"SetupServiceOverlay","service":"web"}')).toEqual({ type: 'SetupServiceOverlay', service: 'web', mode: 'auto' });
    expect(parseRequest('{"type":"SetupServiceOverlay","service":"web","mode":"DEDICATED"}')).toMatchObject({ mode: 'dedicated' });
    expect(parseRequest('{"type":"AttachContainer","handle":{"linuxPid":7},"service":"web"}')).toEqual({
      type: 'AttachContainer',
      handle: { linuxPid: 7 },
      service: 'web',
      joinGlobal: false,
      dnsServer: null,
      dnsDomain: null,
      ephemeral: false,
      isolationNetwork: null,
    });
    expect(parseRequest(`{"type":"AddPeer","peer":{"publicKey":"${KEY_A}"}}`)).toEqual({
      type: 'AddPeer',
      peer: { publicKey: KEY_A, endpoint: '0.0.0.0:0', allowedIps: '', persistentKeepaliveSecs: 0, candidates: [] },
      scope: 'global',
    });
    expect(parseRequest(`{"type":"RemovePeer","pubkey":"${KEY_A}","scope":"Global"}`)).toEqual({ type: 'RemovePeer', pubkey: KEY_A, scope: 'global' });
    expect(parseRequest(`{"type":"AddPeer","peer":{"publicKey":"${KEY_A}","allowedIps":["10.0.0.0/8","fd00::/8"]}}`)).toMatchObject({
      peer: { allowedIps: '10.0.0.0/8,fd00::/8' },
    });
  });

  it.each([
    ['{"type":"SetupGlobalOverlay","deployment":"d","instanceId":"i","clusterCidr":"10.0.0.0/8","wgPort":"x"}', 'SetupGlobalOverlay.wgPort: expected an integer 0..65535, got "x"'],
    ['{"type":"SetupGlobalOverlay","deployment":"d","instanceId":"i","clusterCidr":"10.0.0.0/8","wgPort":70000}', 'SetupGlobalOverlay.wgPort: expected an integer 0..65535, got 70000'],
    ['{"type":"SetupGlobalOverlay","deployment":"d","instanceId":"i","clusterCidr":"10.0.0.0/8","wgPort":1.5}', 'SetupGlobalOverlay.wgPort: expected an integer 0..65535, got 1.5'],
    ['{"type":"SetupGlobalOverlay","instanceId":"i","clusterCidr":"10.0.0.0/8"}', 'SetupGlobalOverlay.deployment: expected a name of letters, digits, "-" and "_", got nothing'],
    ['{"type":"SetupGlobalOverlay","deployment":"a.b","instanceId":"i","clusterCidr":"10.0.0.0/8"}', 'SetupGlobalOverlay.deployment: expected a name of letters, digits, "-" and "_", got "a.b"'],
    ['{"type":"SetupGlobalOverlay","deployment":"d","instanceId":"i","clusterCidr":"10.0.0.0/99"}', /^SetupGlobalOverlay\.clusterCidr: invalid CIDR 10\.0\.0\.0\/99: /],
    ['{"type":"SetupGlobalOverlay","deployment":"d","instanceId":"i","clusterCidr":"10.0.0.0"}', /^SetupGlobalOverlay\.clusterCidr: invalid CIDR 10\.0\.0\.0: a prefix length is required/],
    ['{"type":"SetupGlobalOverlay","deployment":"d","instanceId":"i","clusterCidr":"10.0.0.0/8","sliceCidr":5}', 'SetupGlobalOverlay.sliceCidr: expected a string, got 5'],
    ['{"type":"SetupGlobalOverlay","deployment":"d","instanceId":"i","clusterCidr":"10.0.0.0/8","hostAdapterMandatory":"yes"}', 'SetupGlobalOverlay.hostAdapterMandatory: expected true or false, got "yes"'],
    ['{"type":"SetupGlobalOverlay","deployment":"d","instanceId":"i","clusterCidr":"10.0.0.0/8","nat":{"relayServer":{"listenPort":-1}}}', /^SetupGlobalOverlay\.nat\.relayServer\.listenPort must be a non-negative integer/],
    ['{"type":"SetupGlobalOverlay","deployment":"d","instanceId":"i","clusterCidr":"10.0.0.0/8","nat":[]}', 'SetupGlobalOverlay.nat: expected a NAT config object, got []'],
    ['{"type":"SetupGlobalOverlay","deployment":"d","instanceId":"i","clusterCidr":"10.0.0.0/8","wgport":1}', 'SetupGlobalOverlay: unknown field "wgport"'],
    ['{"type":"SetLocalNodeId","nodeId":-1}', /^SetLocalNodeId\.nodeId: expected an integer 0\.\./],
    ['{"type":"SetLocalWgPubkey","pubkey":"abc"}', 'SetLocalWgPubkey.pubkey: expected a base64 WireGuard public key (44 characters), got "abc"'],
    ['{"type":"AllocateIp","service":"w","joinGlobal":1}', 'AllocateIp.joinGlobal: expected true or false, got 1'],
    ['{"type":"ReleaseIp","ip":"10.0.0.300"}', 'ReleaseIp.ip: expected an IP address, got "10.0.0.300"'],
    ['{"type":"AddPeer"}', 'AddPeer.peer: expected an object, got nothing'],
    ['{"type":"AddPeer","peer":{"publicKey":"k"}}', 'AddPeer.peer.publicKey: expected a base64 WireGuard public key (44 characters), got "k"'],
    [`{"type":"AddPeer","peer":{"publicKey":"${KEY_A}","persistentKeepaliveSecs":70000}}`, 'AddPeer.peer.persistentKeepaliveSecs: expected an integer 0..65535, got 70000'],
    [`{"type":"AddPeer","peer":{"publicKey":"${KEY_A}","allowedIps":[1]}}`, 'AddPeer.peer.allowedIps[0]: expected a CIDR string, got 1'],
    [`{"type":"AddPeer","peer":{"publicKey":"${KEY_A}","candidates":[{"candidateType":"host","address":"1.2.3.4:5"}]}}`, /^AddPeer\.peer\.candidates\[0\]\.priority: expected an integer/],
    [`{"type":"AddPeer","peer":{"publicKey":"${KEY_A}","candidates":{}}}`, 'AddPeer.peer.candidates: expected an array of candidates, got {}'],
    [`{"type":"AddPeer","peer":{"publicKey":"${KEY_A}"},"scope":"local"}`, 'AddPeer.scope: expected "global" or {"service": "<name>"}, got "local"'],
    [`{"type":"AddPeer","peer":{"publicKey":"${KEY_A}"},"scope":{"service":""}}`, 'AddPeer.scope.service: expected a non-empty string, got ""'],
    [`{"type":"AddAllowedIp","pubkey":"${KEY_A}","cidr":"nope"}`, /^AddAllowedIp\.cidr: invalid CIDR nope: /],
    [`{"type":"RemoveAllowedIp","pubkey":"${KEY_A}"}`, 'RemoveAllowedIp.cidr: expected a string, got nothing'],
    ['{"type":"SetupServiceOverlay","service":"web","mode":"mesh"}', 'SetupServiceOverlay.mode: expected "auto", "shared" or "dedicated", got "mesh"'],
    ['{"type":"SetupServiceOverlay","service":"a.b"}', 'SetupServiceOverlay.service: expected a name of letters, digits, "-" and "_", got "a.b"'],
    ['{"type":"AttachContainer","service":"web"}', 'AttachContainer.handle: expected {"linuxPid": <pid>}, {"guestManaged": "<id>"} or {"hostShared": "<id>"}, got nothing'],
    ['{"type":"AttachContainer","handle":{"linuxPid":0},"service":"web"}', 'AttachContainer.handle.linuxPid: expected an integer 1..4194304, got 0'],
    ['{"type":"AttachContainer","handle":{"linuxPid":"12"},"service":"web"}', 'AttachContainer.handle.linuxPid: expected an integer 1..4194304, got "12"'],
    ['{"type":"AttachContainer","handle":{"linuxPid":1,"hostShared":"x"},"service":"web"}', /^AttachContainer\.handle: expected \{"linuxPid"/],
    ['{"type":"AttachContainer","handle":{"windowsContainer":"x"},"service":"web"}', /^AttachContainer\.handle: unknown handle kind "windowsContainer"/],
    ['{"type":"AttachContainer","handle":{"linuxPid":5},"service":"web","dnsServer":"nope"}', 'AttachContainer.dnsServer: expected an IP address, got "nope"'],
    ['{"type":"AttachContainer","handle":{"linuxPid":5},"service":"web","isolationNetwork":"a b"}', /^AttachContainer\.isolationNetwork: expected a name/],
    ['{"type":"DetachContainer","handle":{"linuxPid":-3}}', 'DetachContainer.handle.linuxPid: expected an integer 1..4194304, got -3'],
    ['{"type":"PruneOrphanBridges","liveBridgeNames":"zl-a-b"}', 'PruneOrphanBridges.liveBridgeNames: expected an array of strings, got "zl-a-b"'],
    ['{"type":"PruneOrphanBridges","liveBridgeNames":[1]}', 'PruneOrphanBridges.liveBridgeNames[0]: expected a string, got 1'],
    ['{"type":"Status","extra":1}', 'Status: unknown field "extra"'],
    ['{"type":"Foo"}', 'unknown request type "Foo"'],
    ['{"type":5}', 'request.type: expected a string, got 5'],
    ['{}', /^request\.type: missing \(expected one of SetLocalNodeId, /],
    ['[1,2]', 'not a JSON object: got [1,2]'],
    ['"Status"', 'not a JSON object: got "Status"'],
    ['null', 'not a JSON object: got null'],
    ['', /^not a JSON object: /],
    ['{"type":"Status"', /^not a JSON object: /],
  ])('%s → %s', (line, expected) => {
    const message = protocolError(line);
    if (typeof expected === 'string') expect(message).toBe(expected);
    else expect(message).toMatch(expected);
  });

  it('a __proto__ key is just an unknown field (no prototype games)', () => {
    expect(protocolError('{"type":"Status","__proto__":{"type":"Shutdown"}}')).toBe('Status: unknown field "__proto__"');
    expect(protocolError('{"__proto__":{"type":"Shutdown"}}')).toMatch(/^request\.type: missing/);
  });

  it('refuses over-long lines without parsing them', () => {
    const line = `{"type":"Status","x":"${'a'.repeat(1024 * 1024)}"}`;
    expect(protocolError(line)).toMatch(/line is longer than 1048576 bytes/);
  });
});

describe('responses', () => {
  it.each(RESPONSES.map((r) => [r.type, r] as const))('%s round-trips through one line', (_type, response) => {
    const line = encodeResponse(response);
    expect(line).not.toMatch(/[\n\r]/);
    expect(parseResponse(line)).toEqual(response);
  });

  it('parseResponse checks the variant and its fields', () => {
    expect(() => parseResponse('{"type":"Nope"}')).toThrow('unknown response type "Nope"');
    expect(() => parseResponse('{"type":"Err"}')).toThrow('Err.message: expected a string, got nothing');
    expect(() => parseResponse('{"type":"Ip","ip":4}')).toThrow('Ip.ip: expected a string, got 4');
    expect(() => parseResponse('{"type":"Status","interface":null,"nodeIp":null,"publicKey":null,"overlayCidr":null,"sliceCidr":null,"peers":{},"peerCount":0,"serviceCount":0}')).toThrow(
      'Status.peers: expected an array, got {}',
    );
    expect(() => parseResponse('{"type":"NatStatus","candidates":[],"peers":[]}')).toThrow('NatStatus.lastRefresh: expected a number, got nothing');
  });

  it('errorResponse carries the message verbatim', () => {
    expect(errorResponse(new OverlayError('global overlay not set up'))).toEqual({ type: 'Err', message: 'global overlay not set up' });
    expect(errorResponse(new ProtocolError('AddPeer.peer: expected an object, got nothing'))).toEqual({
      type: 'Err',
      message: 'AddPeer.peer: expected an object, got nothing',
    });
  });
});

describe('fuzzing parseRequest', () => {
  const valueMutations = (rng: Rng): unknown =>
    rng.pick<unknown>([null, true, false, 0, -1, 1.5, 65536, 2 ** 60, '', 'x', 'global', '10.0.0.0/8', KEY_A, [], [1, 'a'], {}, { service: 'x' }, { a: { b: [] } }]);

  /** Replace, delete or add one field somewhere in a JSON value. */
  function mutateJson(rng: Rng, value: unknown, depth = 0): unknown {
    if (Array.isArray(value)) {
      if (value.length === 0 || rng.chance(0.2)) return [...value, valueMutations(rng)];
      const i = rng.int(value.length);
      const copy = [...value];
      copy[i] = rng.chance(0.5) && depth < 4 ? mutateJson(rng, value[i], depth + 1) : valueMutations(rng);
      return copy;
    }
    if (typeof value === 'object' && value !== null) {
      const copy: Record<string, unknown> = { ...(value as Record<string, unknown>) };
      const keys = Object.keys(copy);
      const op = rng.int(4);
      if (op === 0 && keys.length > 0) delete copy[rng.pick(keys)];
      else if (op === 1) copy[rng.pick(['type', 'extra', 'peer', 'scope', 'nat', 'cidr', 'pubkey', 'wgPort'])] = valueMutations(rng);
      else if (keys.length > 0) {
        const key = rng.pick(keys);
        copy[key] = depth < 4 && rng.chance(0.6) ? mutateJson(rng, copy[key], depth + 1) : valueMutations(rng);
      }
      return copy;
    }
    return valueMutations(rng);
  }

  function randomLine(rng: Rng): string {
    const alphabet = '{}[]":,0123456789.-etruaflsnTypeStatus \\u';
    return Array.from({ length: rng.int(80) }, () => rng.pick([...alphabet])).join('');
  }

  it('3,000 random, byte-mutated and JSON-mutated lines: only ProtocolError, always naming something', () => {
    const rng = new Rng(fuzzSeed());
    const valid = REQUESTS.map(encodeRequest);
    let rejected = 0;
    let accepted = 0;
    for (let i = 0; i < 3000; i++) {
      let line: string;
      const kind = i % 3;
      if (kind === 0) line = randomLine(rng);
      else if (kind === 1) line = Buffer.from(mutate(rng, Buffer.from(rng.pick(valid)), {}, 4)).toString('utf8');
      else line = JSON.stringify(mutateJson(rng, JSON.parse(rng.pick(valid))));
      try {
        const request = parseRequest(line);
        accepted++;
        // Whatever is accepted is a well-formed request that round-trips.
        expect(REQUEST_TYPES, `seed ${rng.seed}: ${line}`).toContain(request.type);
        expect(parseRequest(encodeRequest(request)), `seed ${rng.seed}: ${line}`).toEqual(request);
      } catch (error) {
        if (!(error instanceof ProtocolError)) throw new Error(`seed ${rng.seed}: ${line} threw ${String(error)}`);
        expect(error.message.length, `seed ${rng.seed}: ${line}`).toBeGreaterThan(0);
        rejected++;
      }
    }
    expect(rejected).toBeGreaterThan(1000);
    expect(accepted).toBeGreaterThan(50);
  });

  it('every field-level rejection of a JSON-mutated valid request names its variant', () => {
    const rng = new Rng(fuzzSeed());
    const valid = REQUESTS.map((r) => JSON.parse(encodeRequest(r)) as Record<string, unknown>);
    for (let i = 0; i < 1000; i++) {
      const base = rng.pick(valid);
      const mutated = mutateJson(rng, base) as Record<string, unknown>;
      if (mutated.type !== base.type) continue; // the type itself changed: other messages apply
      try {
        parseRequest(JSON.stringify(mutated));
      } catch (error) {
        expect(error, `seed ${rng.seed}`).toBeInstanceOf(ProtocolError);
        expect((error as Error).message.startsWith(`${String(base.type)}`), `seed ${rng.seed}: ${(error as Error).message}`).toBe(true);
      }
    }
  });
});
