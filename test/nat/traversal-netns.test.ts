/**
 * NAT traversal for real, in network namespaces (scripts/lib/nat-topology.ts):
 * tswg nodes (scripts/nat-node.ts: TUN + Device + NatMaintenance) behind
 * iptables MASQUERADE routers, coturn (STUN and TURN) and a tswg relay node
 * on the public segment, and wireguard-go as a public peer.
 *
 *  - endpoint-independent NATs on both sides: the tick connects the two nodes
 *    'hole-punched' over their server-reflexive candidates, and ping works;
 *  - endpoint-dependent (--random-fully) NATs on both sides: no direct path
 *    exists; they end up 'relayed' through the built-in relay, and (another
 *    pair) through coturn TURN allocations, and ping works;
 *  - a tswg node behind NAT reaches wireguard-go on the public segment
 *    'direct' through its host candidate, and ping works;
 *  - the status view (NatStatusWire) reports candidates, peers and times.
 *
 * Every wait has a bound. Needs root (fails, not skips, without it) and
 * `npm run build` first.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { cleanup, createTempDir, execIn, leftovers, requireCommands, requireRoot, uniqueName, writeSecretFile } from '../../scripts/lib/netns.js';
import { createNatTopology, type Home, type PublicHost } from '../../scripts/lib/nat-topology.js';
import { startImplementation, wgKeyPair } from '../../scripts/lib/topology.js';
import type { NatConfigSpec } from '../../src/nat/config.js';
import { startCoturn } from '../../scripts/lib/coturn.js';
import { startNatNode, type NatNode } from '../../scripts/lib/nat-node-client.js';

const TURN_USER = { name: 'tswg', password: 'nat-test-password' };
const RELAY_CREDENTIAL = 'cluster-relay-secret';
const RELAY_PORT = 3479;

let coturnHost: PublicHost;
let relayHost: PublicHost;
let wgGoHost: PublicHost;
let stunServer: string;

interface Homed {
  home: Home;
  node: NatNode;
  inner: string;
}

async function homedNode(topology: ReturnType<typeof createNatTopology>, behaviour: Home['behaviour'], inner: string): Promise<Homed> {
  const home = topology.addHome(behaviour);
  const node = await startNatNode(home.node);
  node.addressTunnel(`${inner}/24`);
  return { home, node, inner };
}

let topology: ReturnType<typeof createNatTopology>;
let punchA: Homed;
let punchB: Homed;
let relayA: Homed;
let relayB: Homed;
let turnA: Homed;
let turnB: Homed;
let relayNode: NatNode;

function baseSpec(extra: Partial<NatConfigSpec> = {}): NatConfigSpec {
  return { enabled: true, stunServers: [stunServer], holePunchTimeoutSecs: 3, stunRefreshIntervalSecs: 30, maxCandidatePairs: 10, ...extra };
}

function ping(from: Homed, to: string): string {
  return execIn(from.home.node, 'ping', ['-c', '3', '-i', '0.2', '-W', '3', to], { timeoutMs: 15_000 });
}

/** Configure both, make them peers, gather (first tick), swap candidates, and tick both at once until both report a connection. */
async function connectPair(a: Homed, b: Homed, spec: NatConfigSpec, relayCredential?: string): Promise<void> {
  await Promise.all([a.node.configure(spec, relayCredential), b.node.configure(spec, relayCredential)]);
  await a.node.addPeer(b.node, `${b.inner}/32`);
  await b.node.addPeer(a.node, `${a.inner}/32`);
  await Promise.all([a.node.tick(), b.node.tick()]);
  const [statusA, statusB] = await Promise.all([a.node.status(), b.node.status()]);
  expect(statusA.candidates.length).toBeGreaterThan(0);
  expect(statusB.candidates.length).toBeGreaterThan(0);
  await a.node.setPeerCandidates(b.node, statusB.candidates);
  await b.node.setPeerCandidates(a.node, statusA.candidates);
  for (let round = 0; round < 3; round++) {
    await Promise.all([a.node.tick(), b.node.tick()]);
    const [nowA, nowB] = await Promise.all([a.node.status(), b.node.status()]);
    if (nowA.peers.length > 0 && nowB.peers.length > 0) return;
  }
  throw new Error(`no connection after 3 ticks; logs:\n--- A\n${a.node.process.output().slice(-4000)}\n--- B\n${b.node.process.output().slice(-4000)}`);
}

beforeAll(async () => {
  requireRoot('the NAT traversal namespace tests');
  requireCommands('iptables', 'sysctl', 'turnserver', 'wireguard-go', 'wg', 'ping');
  topology = createNatTopology();
  coturnHost = topology.addPublicHost();
  relayHost = topology.addPublicHost();
  wgGoHost = topology.addPublicHost();
  stunServer = `${coturnHost.address}:3478`;
  const coturn = startCoturn(coturnHost.namespace, { listenAddresses: [coturnHost.address], relayAddress: coturnHost.address, users: [TURN_USER], minPort: 49152, maxPort: 49400 });
  const nodes = Promise.all([
    homedNode(topology, 'endpoint-independent', '10.99.1.1'),
    homedNode(topology, 'endpoint-independent', '10.99.1.2'),
    homedNode(topology, 'endpoint-dependent', '10.99.2.1'),
    homedNode(topology, 'endpoint-dependent', '10.99.2.2'),
    homedNode(topology, 'endpoint-dependent', '10.99.3.1'),
    homedNode(topology, 'endpoint-dependent', '10.99.3.2'),
    startNatNode(relayHost.namespace),
  ]);
  await coturn;
  [punchA, punchB, relayA, relayB, turnA, turnB, relayNode] = await nodes;
}, 60_000);

afterAll(() => {
  cleanup();
  expect(leftovers()).toEqual([]);
});

describe('NAT traversal between namespaces', () => {
  it('connects two nodes behind endpoint-independent NATs by hole punching', async () => {
    await connectPair(punchA, punchB, baseSpec());
    const [statusA, statusB] = await Promise.all([punchA.node.status(), punchB.node.status()]);
    // Each node's candidates: its private host address and its router's public mapping.
    expect(statusA.candidates.map((c) => c.candidateType).sort()).toEqual(['host', 'server-reflexive']);
    expect(statusA.candidates.find((c) => c.candidateType === 'server-reflexive')!.address).toMatch(new RegExp(`^${punchA.home.publicAddress.replace(/\./g, '\\.')}:\\d+$`));
    expect(statusA.candidates.find((c) => c.candidateType === 'host')!.address).toBe(`${punchA.home.nodeAddress}:${punchA.node.listenPort}`);
    expect(statusA.peers).toEqual([{ nodeId: punchB.node.publicKey, connectionType: 'hole-punched', remoteEndpoint: statusB.candidates.find((c) => c.candidateType === 'server-reflexive')!.address }]);
    expect(statusB.peers[0]!.connectionType).toBe('hole-punched');
    expect(statusA.lastRefresh).toBeGreaterThan(Date.now() / 1000 - 120);
    expect(ping(punchA, punchB.inner)).toMatch(/3 received/);
    expect(ping(punchB, punchA.inner)).toMatch(/3 received/);
  });

  it('relays two nodes behind endpoint-dependent NATs through the built-in relay', async () => {
    // The relay node runs the relay server (started by its first tick).
    await relayNode.configure(baseSpec({ relayServer: { listenPort: RELAY_PORT, externalAddr: `${relayHost.address}:${RELAY_PORT}`, maxSessions: 0, authCredential: RELAY_CREDENTIAL } }));
    await relayNode.tick();
    expect(await relayNode.request('relayServer')).toBe(`${relayHost.address}:${RELAY_PORT}`);

    await connectPair(relayA, relayB, baseSpec({ relays: [`${relayHost.address}:${RELAY_PORT}`] }), RELAY_CREDENTIAL);
    const [statusA, statusB] = await Promise.all([relayA.node.status(), relayB.node.status()]);
    expect(statusA.candidates.some((c) => c.candidateType === 'relay' && c.address === `${relayHost.address}:${RELAY_PORT}`)).toBe(true);
    expect(statusA.peers[0]!.connectionType).toBe('relayed');
    expect(statusB.peers[0]!.connectionType).toBe('relayed');
    // The device talks to the relay client's loopback proxy.
    expect(statusA.peers[0]!.remoteEndpoint).toMatch(/^127\.0\.0\.1:\d+$/);
    expect(ping(relayA, relayB.inner)).toMatch(/3 received/);
    expect(ping(relayB, relayA.inner)).toMatch(/3 received/);
  }, 60_000);

  it('relays two nodes behind endpoint-dependent NATs through coturn TURN allocations', async () => {
    const spec = baseSpec({ turnServers: [{ addr: stunServer, username: TURN_USER.name, credential: TURN_USER.password }] });
    await connectPair(turnA, turnB, spec);
    const [statusA, statusB] = await Promise.all([turnA.node.status(), turnB.node.status()]);
    const relayCandidate = statusA.candidates.find((c) => c.candidateType === 'relay');
    expect(relayCandidate?.address).toMatch(new RegExp(`^${coturnHost.address.replace(/\./g, '\\.')}:\\d+$`));
    expect(statusA.peers[0]!.connectionType).toBe('relayed');
    expect(statusB.peers[0]!.connectionType).toBe('relayed');
    expect(ping(turnA, turnB.inner)).toMatch(/3 received/);
    expect(ping(turnB, turnA.inner)).toMatch(/3 received/);
  }, 60_000);

  it('reaches a wireguard-go peer on the public segment directly from behind a NAT', async () => {
    const name = uniqueName();
    await startImplementation('wireguard-go', wgGoHost.namespace, name);
    const keys = wgKeyPair();
    const dir = createTempDir('tswg-nat-wg-');
    execIn(wgGoHost.namespace, 'wg', ['set', name, 'private-key', writeSecretFile(dir, 'key', keys.privateKey), 'listen-port', '51820', 'peer', punchA.node.publicKey, 'allowed-ips', '10.99.9.1/32']);
    execIn(wgGoHost.namespace, 'ip', ['addr', 'add', '10.99.9.2/24', 'dev', name]);
    execIn(wgGoHost.namespace, 'ip', ['link', 'set', 'dev', name, 'up']);
    punchA.node.addressTunnel('10.99.9.1/24');
    await punchA.node.addPeer({ publicKey: keys.publicKey }, '10.99.9.2/32');
    // wireguard-go advertises nothing; its candidate is its public address.
    await punchA.node.setPeerCandidates({ publicKey: keys.publicKey }, [{ candidateType: 'host', address: `${wgGoHost.address}:51820`, priority: 100 }]);
    await punchA.node.tick();
    const status = await punchA.node.status();
    expect(status.peers.find((p) => p.nodeId === keys.publicKey)).toEqual({ nodeId: keys.publicKey, connectionType: 'direct', remoteEndpoint: `${wgGoHost.address}:51820` });
    expect(execIn(punchA.home.node, 'ping', ['-c', '3', '-i', '0.2', '-W', '3', '10.99.9.2'], { timeoutMs: 15_000 })).toMatch(/3 received/);
    // wireguard-go sees the node at its router's public address.
    expect(execIn(wgGoHost.namespace, 'wg', ['show', name, 'endpoints'])).toContain(punchA.home.publicAddress);
  });
});
