/**
 * `--config FILE`: YAML and JSON read into the same NodeConfig, defaults,
 * errors that name the file and the field, and the requests a config turns into.
 */
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { natConfigFromSpec } from '../../src/nat/config.js';
import { addPeerRequestsFromConfig, loadNodeConfig, parseNodeConfig, setupRequestFromConfig } from '../../src/overlay/config-file.js';
import { OverlayError } from '../../src/overlay/errors.js';
import { parseRequest, encodeRequest } from '../../src/overlay/protocol.js';

const KEY_A = 'xTIBA5rboUvnH4htodjb6e697QjLERt1NAB4mZqp8Dg=';
const KEY_B = 'HIgo9xNzJMWLKASShiTqIybxZ0U3wGLiUeJ1PKf8ykw=';
const root = mkdtempSync(join(tmpdir(), 'tswg-core-config-'));
afterAll(() => rmSync(root, { recursive: true, force: true }));

const YAML_TEXT = `# three-node demo mesh, node 1
deployment: demo
instanceId: node1
clusterCidr: 10.200.0.0/16
sliceCidr: 10.200.1.0/26
wgPort: 51820
hostAdapterMandatory: false
nat:
  enabled: true
  stunServers: ["192.0.2.100:3478"]
peers:
  - publicKey: ${KEY_A}
    endpoint: 192.0.2.2:51820
    allowedIps: [10.200.2.0/26]
    persistentKeepaliveSecs: 25
  - publicKey: ${KEY_B}
    allowedIps: "10.200.3.0/26, fd00:200:3::/64"
    candidates:
      - { candidateType: server-reflexive, address: "198.51.100.3:40000", priority: 50 }
`;

const EXPECTED = {
  deployment: 'demo',
  instanceId: 'node1',
  clusterCidr: '10.200.0.0/16',
  sliceCidr: '10.200.1.0/26',
  wgPort: 51820,
  hostAdapterMandatory: false,
  nat: { enabled: true, stunServers: ['192.0.2.100:3478'] },
  peers: [
    { publicKey: KEY_A, endpoint: '192.0.2.2:51820', allowedIps: '10.200.2.0/26', persistentKeepaliveSecs: 25, candidates: [] },
    {
      publicKey: KEY_B,
      endpoint: '0.0.0.0:0',
      allowedIps: '10.200.3.0/26, fd00:200:3::/64',
      persistentKeepaliveSecs: 0,
      candidates: [{ candidateType: 'server-reflexive', address: '198.51.100.3:40000', priority: 50 }],
    },
  ],
};

function write(name: string, text: string): string {
  const path = join(root, name);
  writeFileSync(path, text);
  return path;
}

describe('loadNodeConfig', () => {
  it('reads YAML', () => {
    expect(loadNodeConfig(write('node.yaml', YAML_TEXT))).toEqual(EXPECTED);
  });

  it('reads the same config as JSON', () => {
    const json = JSON.stringify({ ...EXPECTED, peers: EXPECTED.peers.map((p, i) => (i === 0 ? { ...p, allowedIps: ['10.200.2.0/26'] } : p)) });
    expect(loadNodeConfig(write('node.json', json))).toEqual(EXPECTED);
  });

  it('fills defaults: cluster CIDR, no peers', () => {
    expect(loadNodeConfig(write('min.yaml', 'deployment: demo\n'))).toEqual({ deployment: 'demo', clusterCidr: '10.200.0.0/16', peers: [] });
  });

  it('the nat section is a NatConfigSpec the NAT module accepts', () => {
    const config = parseNodeConfig(YAML_TEXT, 'x');
    expect(natConfigFromSpec(config.nat).stunServers).toEqual([{ address: '192.0.2.100:3478' }]);
  });

  it.each([
    ['missing file', null, /^cannot read config .*missing\.yaml: /],
    ['bad YAML', 'deployment: [unclosed\n', /^.*bad\.yaml: not valid YAML or JSON: /],
    ['duplicate key', 'deployment: a\ndeployment: b\n', /not valid YAML or JSON: DUPLICATE_KEY at line 2, column 1$/],
    ['not a mapping', '- a\n- b\n', /: expected a YAML mapping or JSON object at the top level, got a list$/],
    ['a foreign file (a key)', 'SECRETKEYBASE64AAAAAAAAAAAAAAAAAAAAAAAAAAAA=\n', /: expected a YAML mapping or JSON object at the top level, got a string$/],
    ['no deployment', 'clusterCidr: 10.0.0.0/8\n', /: deployment: expected a name of letters, digits, "-" and "_", got nothing$/],
    ['bad deployment', 'deployment: "a b"\n', /: deployment: expected a name of letters/],
    ['numeric instance id', 'deployment: d\ninstanceId: 12\n', /: instanceId: expected a name of letters, digits, "-" and "_", got 12$/],
    ['bad cluster CIDR', 'deployment: d\nclusterCidr: 10.0.0.0/40\n', /: clusterCidr: invalid CIDR 10\.0\.0\.0\/40: /],
    ['bad port', 'deployment: d\nwgPort: 99999\n', /: wgPort: expected an integer 0\.\.65535, got 99999$/],
    ['bad nat', 'deployment: d\nnat: { stunServers: 5 }\n', /: nat\.stunServers must be an array of strings/],
    ['peers not a list', 'deployment: d\npeers: {}\n', /: peers: expected a list of peers/],
    ['bad peer key', 'deployment: d\npeers:\n  - publicKey: nope\n', /: peers\[0\]\.publicKey: expected a base64 WireGuard public key/],
    ['bad peer endpoint', `deployment: d\npeers:\n  - publicKey: ${KEY_A}\n    endpoint: 1.2.3.4\n`, /: peers\[0\]: invalid peer endpoint 1\.2\.3\.4: /],
    ['bad peer CIDR', `deployment: d\npeers:\n  - publicKey: ${KEY_A}\n    allowedIps: [10.0.0.0/99]\n`, /: peers\[0\]: invalid CIDR 10\.0\.0\.0\/99: /],
    ['duplicate peer', `deployment: d\npeers:\n  - publicKey: ${KEY_A}\n  - publicKey: ${KEY_A}\n`, /: peers\[1\]\.publicKey: the same key as peers\[0\]$/],
    ['unknown field', 'deployment: d\nwgport: 1\n', /: unknown field "wgport"$/],
    ['bad dnsDomain', 'deployment: d\ndnsDomain: "a b"\n', /: dnsDomain: expected a domain name/],
    ['unknown peer field', `deployment: d\npeers:\n  - publicKey: ${KEY_A}\n    endpont: 1.2.3.4:5\n`, /: peers\[0\]: unknown field "endpont"$/],
  ])('%s → OverlayError naming the file and field', (name, text, pattern) => {
    const path = text === null ? join(root, 'missing.yaml') : write(name === 'bad YAML' ? 'bad.yaml' : `${name.replace(/ /g, '-')}.yaml`, text);
    expect(() => loadNodeConfig(path)).toThrow(OverlayError);
    expect(() => loadNodeConfig(path)).toThrow(pattern);
    expect(() => loadNodeConfig(path)).toThrow(path);
  });
});

describe('requests from a config', () => {
  it('SetupGlobalOverlay with defaults and the data dir instance id; one AddPeer per peer; both valid on the wire', () => {
    const config = parseNodeConfig('deployment: demo\nsliceCidr: 10.200.1.0/26\npeers:\n  - publicKey: ' + KEY_A + '\n', 'x');
    const setup = setupRequestFromConfig(config, 'abcd1234');
    expect(setup).toEqual({
      type: 'SetupGlobalOverlay',
      deployment: 'demo',
      instanceId: 'abcd1234',
      clusterCidr: '10.200.0.0/16',
      sliceCidr: '10.200.1.0/26',
      wgPort: 51820,
      hostAdapterMandatory: false,
    });
    expect(parseRequest(encodeRequest(setup))).toEqual(setup);
    const adds = addPeerRequestsFromConfig(config);
    expect(adds).toHaveLength(1);
    expect(parseRequest(encodeRequest(adds[0]!))).toEqual(adds[0]);
    expect(setupRequestFromConfig(parseNodeConfig(YAML_TEXT, 'x'), 'ignored')).toMatchObject({ instanceId: 'node1', nat: { enabled: true } });
    const withDomain = setupRequestFromConfig(parseNodeConfig('deployment: demo\ndnsDomain: prod.internal\n', 'x'), 'abcd1234');
    expect(withDomain.dnsDomain).toBe('prod.internal');
    expect(parseRequest(encodeRequest(withDomain))).toEqual(withDomain);
  });
});
