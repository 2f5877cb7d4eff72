/**
 * Hole punching with real in-process Devices over loopback UDP: the probe
 * codec, classification of the path, a dead candidate followed by a live
 * one (with and without probe answers from the peer), a server-reflexive
 * success, the relay fallback through a UDP forwarder, and the error that
 * names the peer when nothing answers. Every success is a real WireGuard
 * handshake followed by a packet through the tunnel.
 *
 * Also NatTraversal and NatMaintenance in process (a loopback STUN server):
 * the status view before and after (the wire snapshot; a peer's candidates
 * recorded on add and cleared on remove), a disabled config, a
 * failed first gather retried on the next tick, the relay server start (and
 * its failure, which only warns), and the 75 s reconnect rule.
 */
import { afterEach, describe, expect, it } from 'vitest';
import { Rng } from '../helpers/fuzz.js';
import { makeCandidate, type Candidate } from '../../src/nat/candidates.js';
import { devicePort } from '../../src/nat/datagram-port.js';
import { ConnectError, ProbeResponder, classifyConnection, connectToPeer, decodeProbe, encodeProbe } from '../../src/nat/hole-punch.js';
import { Device } from '../../src/device/device.js';
import { silentLogger } from '../../src/device/logger.js';
import { generatePrivateKey } from '../../src/noise/index.js';
import { FakeTun, blackHole, closeLoopback, forwarder, introduce, loopbackNode, loopbackStunServer, type LoopbackNode } from '../helpers/nat-loopback.js';
import { candidateToWire } from '../../src/nat/candidates.js';
import { defaultNatConfig, type NatConfig } from '../../src/nat/config.js';
import { NatMaintenance } from '../../src/nat/maintenance.js';
import { NatTraversal } from '../../src/nat/traversal.js';
import type { Logger } from '../../src/device/logger.js';
import dgram from 'node:dgram';
import { ICMP_ECHO_REQUEST, buildIcmpEcho, parseIcmpEcho, parseIpv4 } from '../helpers/ip.js';

const responders: ProbeResponder[] = [];
afterEach(async () => {
  for (const responder of responders.splice(0)) responder.close();
  await closeLoopback();
});

function probesFor(node: LoopbackNode): ProbeResponder {
  const responder = new ProbeResponder(devicePort(node.device), node.publicKey, (key) => node.device.peerStatus(key) !== null);
  responders.push(responder);
  return responder;
}

async function pair(): Promise<[LoopbackNode, LoopbackNode]> {
  const a = await loopbackNode('10.77.0.1');
  const b = await loopbackNode('10.77.0.2');
  await introduce(a, b);
  return [a, b];
}

/** An ICMP echo from a to b's inner address arrives on b's TUN: the tunnel carries data. */
async function tunnelCarries(a: LoopbackNode, b: LoopbackNode): Promise<void> {
  const before = b.tun.written.length;
  a.tun.inject(buildIcmpEcho({ source: a.inner, destination: b.inner, type: ICMP_ECHO_REQUEST, identifier: 7, sequence: 1, payload: new Uint8Array(8) }));
  const deadline = Date.now() + 15_000; // only matters on failure: a handshake can take seconds on a loaded machine
  while (b.tun.written.length === before) {
    if (Date.now() > deadline) throw new Error('the echo did not come through the tunnel');
    await new Promise((resolve) => setTimeout(resolve, 20));
  }
  const packet = b.tun.written.at(-1)!;
  const ip = parseIpv4(packet);
  expect(ip.source).toBe(a.inner);
  expect(parseIcmpEcho(ip).identifier).toBe(7);
}

describe('probe messages', () => {
  it('encode and decode, and anything else is not a probe', () => {
    const message = { kind: 'probe' as const, sender: new Uint8Array(32).fill(1), target: new Uint8Array(32).fill(2), transaction: new Uint8Array(8).fill(3) };
    const bytes = encodeProbe(message);
    expect(bytes.length).toBe(74);
    expect(bytes[0]).toBe(0xe1);
    expect(decodeProbe(bytes)).toEqual(message);
    expect(decodeProbe(encodeProbe({ ...message, kind: 'answer' }))?.kind).toBe('answer');
    expect(decodeProbe(bytes.subarray(0, 73))).toBeNull();
    const badVersion = new Uint8Array(bytes);
    badVersion[1] = 2;
    expect(decodeProbe(badVersion)).toBeNull();
    const wireguardLike = new Uint8Array(bytes);
    wireguardLike[0] = 1;
    expect(decodeProbe(wireguardLike)).toBeNull();
    expect(() => encodeProbe({ ...message, sender: new Uint8Array(31) })).toThrow(RangeError);
  });

  it('decodeProbe never throws on random bytes and accepts only well-formed probes (fuzz)', () => {
    const rng = new Rng(7);
    const random = (n: number): number => rng.int(n);
    const valid = encodeProbe({ kind: 'answer', sender: new Uint8Array(32).fill(4), target: new Uint8Array(32).fill(5), transaction: new Uint8Array(8).fill(6) });
    for (let i = 0; i < 5000; i++) {
      const bytes = random(2) === 0 ? new Uint8Array(valid) : new Uint8Array(random(100));
      for (let j = random(4); j > 0 && bytes.length > 0; j--) bytes[random(bytes.length)] = random(256);
      const decoded = decodeProbe(bytes);
      if (decoded !== null) {
        expect(bytes.length).toBe(74);
        expect(encodeProbe(decoded)).toEqual(bytes);
      }
    }
  });
});

describe('classifyConnection', () => {
  const host = makeCandidate('host', { family: 4, address: '192.0.2.1', port: 1 });
  const srflx = makeCandidate('server-reflexive', { family: 4, address: '203.0.113.1', port: 2 });
  const relay = makeCandidate('relay', { family: 4, address: '198.51.100.1', port: 3 });
  const sameAsHost = makeCandidate('server-reflexive', { family: 4, address: '192.0.2.1', port: 1 });
  it.each([
    [host.address, [host, srflx, relay], 'direct'],
    [srflx.address, [host, srflx, relay], 'hole-punched'],
    [relay.address, [host, srflx, relay], 'relayed'],
    [sameAsHost.address, [sameAsHost, host], 'direct'],
    [{ family: 4 as const, address: '203.0.113.1', port: 999 }, [host, srflx], 'hole-punched'],
    [{ family: 4 as const, address: '127.0.0.1', port: 999 }, [host, srflx], 'relayed'],
  ])('%j among the candidates is %s', (endpoint, candidates, expected) => {
    expect(classifyConnection(endpoint, candidates as Candidate[])).toBe(expected);
  });
});

describe('connectToPeer', () => {
  it('skips a dead candidate with a higher priority and keeps the live one (probes answered)', async () => {
    const [a, b] = await pair();
    const dead = await blackHole();
    probesFor(b);
    const candidates = [makeCandidate('host', dead.endpoint), { ...makeCandidate('host', b.endpoint), priority: 1 }];
    await expect(connectToPeer(a.device, b.publicKey, candidates, { holePunchTimeoutSecs: 4, maxCandidatePairs: 10, probes: probesFor(a) })).resolves.toBe('direct');
    expect(a.device.peerStatus(b.publicKey)!.endpoint).toEqual(b.endpoint);
    expect(dead.received()).toBeGreaterThan(0);
    await tunnelCarries(a, b);
    await tunnelCarries(b, a);
  });

  it('falls back to one candidate after another when the peer does not answer probes (a wireguard-go peer)', async () => {
    const [a, b] = await pair();
    const dead = await blackHole();
    const candidates = [makeCandidate('host', dead.endpoint), makeCandidate('server-reflexive', b.endpoint)];
    // No responder on b: its device drops the probes. The second candidate's slot
    // starts after 4 s; the device may only retransmit its initiation 5 s after the first.
    await expect(connectToPeer(a.device, b.publicKey, candidates, { holePunchTimeoutSecs: 8, maxCandidatePairs: 10, probes: probesFor(a) })).resolves.toBe('hole-punched');
    expect(dead.received()).toBeGreaterThan(0);
    await tunnelCarries(a, b);
  });

  it('honours maxCandidatePairs: a live candidate beyond the cap is never tried', async () => {
    const [a, b] = await pair();
    probesFor(b);
    const deadOnes = await Promise.all([blackHole(), blackHole()]);
    const candidates = [...deadOnes.map((d) => makeCandidate('host', d.endpoint)), makeCandidate('server-reflexive', b.endpoint)];
    await expect(connectToPeer(a.device, b.publicKey, candidates, { holePunchTimeoutSecs: 1, maxCandidatePairs: 2, probes: probesFor(a) })).rejects.toThrow(ConnectError);
    expect(a.device.peerStatus(b.publicKey)!.lastHandshakeTimeMs).toBe(0);
  });

  it('falls back to a relay candidate when no direct one works', async () => {
    const [a, b] = await pair();
    probesFor(b);
    const dead = await blackHole();
    const relay = await forwarder(b.endpoint);
    const candidates = [makeCandidate('host', dead.endpoint), makeCandidate('relay', relay.endpoint)];
    await expect(connectToPeer(a.device, b.publicKey, candidates, { holePunchTimeoutSecs: 1, maxCandidatePairs: 10, probes: probesFor(a) })).resolves.toBe('relayed');
    expect(relay.forwarded()).toBeGreaterThan(0);
    await tunnelCarries(a, b);
    await tunnelCarries(b, a);
  });

  it('routes a relay candidate through relayRoutes when given', async () => {
    const [a, b] = await pair();
    const relay = await forwarder(b.endpoint);
    const advertised = makeCandidate('relay', { family: 4, address: '198.51.100.9', port: 3478 });
    const asked: string[] = [];
    const type = await connectToPeer(a.device, b.publicKey, [advertised], {
      holePunchTimeoutSecs: 1,
      maxCandidatePairs: 10,
      relayRoutes: async function* (candidate) {
        asked.push(candidate.address.address);
        yield relay.endpoint;
      },
    });
    expect(type).toBe('relayed');
    expect(asked).toEqual(['198.51.100.9']);
  });

  it('rejects naming the peer when nothing answers, and for unknown peers or no candidates', async () => {
    const [a, b] = await pair();
    const dead = await blackHole();
    const name = Buffer.from(b.publicKey).toString('base64');
    await expect(connectToPeer(a.device, b.publicKey, [makeCandidate('host', dead.endpoint)], { holePunchTimeoutSecs: 0.5, maxCandidatePairs: 10 })).rejects.toThrow(
      new RegExp(`no handshake with peer ${name.replace(/[+/]/g, '.')}.*host 127\\.0\\.0\\.1:${dead.endpoint.port}`),
    );
    await expect(connectToPeer(a.device, b.publicKey, [], { holePunchTimeoutSecs: 1, maxCandidatePairs: 10 })).rejects.toThrow(/has no candidates/);
    await expect(connectToPeer(a.device, new Uint8Array(32).fill(9), [makeCandidate('host', dead.endpoint)], { holePunchTimeoutSecs: 1, maxCandidatePairs: 10 })).rejects.toThrow(
      /is not configured on the device/,
    );
  });

  it('answers probes only for its own key and consumes stray ones', async () => {
    const [a, b] = await pair();
    const probesB = probesFor(b);
    const probesA = probesFor(a);
    const events: { kind: string; transaction: string }[] = [];
    probesA.watch(b.publicKey, (event) => events.push({ kind: event.kind, transaction: Buffer.from(event.transaction).toString('hex') }));
    // The stray probe goes first: b reads its datagrams in order, so once the probe for b is answered the stray one has been handled.
    const stray = Buffer.from(probesA.probe(new Uint8Array(32).fill(5), b.endpoint)).toString('hex');
    const wanted = Buffer.from(probesA.probe(b.publicKey, b.endpoint)).toString('hex');
    const deadline = Date.now() + 15_000; // only matters on failure
    while (!events.some((event) => event.transaction === wanted) && Date.now() < deadline) await new Promise((resolve) => setTimeout(resolve, 20));
    expect(events, `stray probe ${stray}`).toEqual([{ kind: 'answer', transaction: wanted }]);
    expect(probesB.localPublicKey).toEqual(b.publicKey);
  });

  it('does not answer a probe from a key that is not one of its peers', async () => {
    const [a, b] = await pair();
    probesFor(b);
    const stranger = dgram.createSocket('udp4');
    await new Promise<void>((resolve) => stranger.bind(0, '127.0.0.1', resolve));
    try {
      const answers: Uint8Array[] = [];
      stranger.on('message', (message) => answers.push(new Uint8Array(message)));
      // A well-formed probe for b's key, from a key b does not know.
      const probe = encodeProbe({ kind: 'probe', sender: new Uint8Array(32).fill(7), target: b.publicKey, transaction: new Uint8Array(8).fill(1) });
      for (let i = 0; i < 3; i++) stranger.send(probe, b.endpoint.port, '127.0.0.1');
      // Then one from a peer's key, on the same socket: its answer comes after b has handled the three.
      const marker = encodeProbe({ kind: 'probe', sender: a.publicKey, target: b.publicKey, transaction: new Uint8Array(8).fill(2) });
      stranger.send(marker, b.endpoint.port, '127.0.0.1');
      const deadline = Date.now() + 15_000; // only matters on failure
      while (answers.length === 0 && Date.now() < deadline) await new Promise((resolve) => setTimeout(resolve, 20));
      expect(answers.map((answer) => decodeProbe(answer))).toEqual([{ kind: 'answer', sender: b.publicKey, target: a.publicKey, transaction: new Uint8Array(8).fill(2) }]);
    } finally {
      stranger.close();
    }
  });
});

describe('NatTraversal and NatMaintenance in process', () => {
  const maintenances: NatMaintenance[] = [];
  afterEach(async () => {
    for (const maintenance of maintenances.splice(0)) await maintenance.close();
  });

  function recordingLog(): Logger & { lines: string[] } {
    const lines: string[] = [];
    return { lines, verbose: (line) => lines.push(`V ${line}`), error: (line) => lines.push(`E ${line}`) };
  }

  async function config(extra: Partial<NatConfig> = {}): Promise<NatConfig> {
    const stun = await loopbackStunServer();
    return { ...defaultNatConfig(), stunServers: [{ address: `127.0.0.1:${stun.endpoint.port}` }], holePunchTimeoutSecs: 2, ...extra };
  }

  function maintain(node: LoopbackNode, natConfig: NatConfig | null, options: ConstructorParameters<typeof NatMaintenance>[2] = {}): NatMaintenance {
    const maintenance = new NatMaintenance(node.device, natConfig, options);
    maintenances.push(maintenance);
    return maintenance;
  }

  it('reports an empty snapshot before the first tick and keeps candidates per peer (removing on empty or all-invalid lists)', async () => {
    const [a, b] = await pair();
    const maintenance = maintain(a, await config());
    expect(maintenance.status()).toEqual({ candidates: [], peers: [], lastRefresh: 0 });
    const wire = [{ candidateType: 'host', address: '127.0.0.1:5000', priority: 100 }, { candidateType: 'bogus', address: '127.0.0.1:5001', priority: 50 }];
    maintenance.setPeerCandidates(Buffer.from(b.publicKey).toString('base64'), wire);
    expect(maintenance.candidatesOf(b.publicKey).map(candidateToWire)).toEqual([wire[0]]);
    maintenance.setPeerCandidates(b.publicKey, [{ candidateType: 'relay', address: 'nowhere', priority: 1 }]);
    expect(maintenance.candidatesOf(b.publicKey)).toEqual([]);
    maintenance.setPeerCandidates(b.publicKey, wire);
    maintenance.setPeerCandidates(b.publicKey, []);
    expect(maintenance.candidatesOf(b.publicKey)).toEqual([]);
    maintenance.setPeerCandidates(b.publicKey, wire);
    maintenance.removePeer(b.publicKey);
    expect(maintenance.candidatesOf(b.publicKey)).toEqual([]);
    expect(() => maintenance.setPeerCandidates('not-a-key', wire)).toThrow(/not a valid base64 WireGuard key/);
  });

  it('does nothing when disabled', async () => {
    const [a] = await pair();
    const maintenance = maintain(a, { ...(await config()), enabled: false });
    await maintenance.tick();
    expect(maintenance.traversal).toBeNull();
    expect(maintenance.status().lastRefresh).toBe(0);
  });

  it('warns when the first gather fails and succeeds on a later tick', async () => {
    const device = new Device({ tun: new FakeTun(), log: silentLogger });
    await device.start();
    const log = recordingLog();
    const maintenance = new NatMaintenance(device, await config(), { log });
    maintenances.push(maintenance);
    try {
      await maintenance.tick(); // no private key yet: NatTraversal cannot gather
      expect(maintenance.traversal).toBeNull();
      expect(log.lines.some((line) => line.startsWith('E NAT: gathering candidates failed') && line.includes('no private key'))).toBe(true);
      await device.set({ privateKey: generatePrivateKey(), replacePeers: false, peers: [] });
      await maintenance.tick();
      expect(maintenance.traversal).not.toBeNull();
      const status = maintenance.status();
      expect(status.candidates).toContainEqual(expect.objectContaining({ candidateType: 'server-reflexive', address: `127.0.0.1:${device.listenPort}` }));
      expect(status.lastRefresh).toBeGreaterThanOrEqual(Math.floor(Date.now() / 1000) - 5);
    } finally {
      await maintenance.close();
      await device.close();
    }
  });

  it('starts the configured relay server on the first tick, and only warns when it cannot', async () => {
    const [a, b] = await pair();
    const relayed = maintain(a, await config({ relayServer: { listenPort: 0, externalAddr: '', maxSessions: 0 }, clusterRelayCredential: 'hole-punch-test-relay-secret' }));
    await relayed.tick();
    expect(relayed.relayServer?.endpoint).toMatch(/:\d+$/);
    const taken = dgram.createSocket({ type: 'udp6', ipv6Only: false });
    await new Promise<void>((resolve) => taken.bind(0, resolve));
    const port = (taken.address() as { port: number }).port;
    try {
      const log = recordingLog();
      const failing = maintain(b, await config({ relayServer: { listenPort: port, externalAddr: '', maxSessions: 0 }, clusterRelayCredential: 'hole-punch-test-relay-secret' }), { log });
      await failing.tick();
      expect(failing.relayServer).toBeNull();
      expect(failing.traversal).not.toBeNull();
      expect(log.lines.some((line) => line.startsWith(`E NAT: starting the relay server on port ${port} failed`))).toBe(true);
    } finally {
      taken.close();
    }
  });

  it('does not start a relay server without a credential (an open relay), and says which option is missing', async () => {
    const [a] = await pair();
    const log = recordingLog();
    const open = maintain(a, await config({ relayServer: { listenPort: 0, externalAddr: '', maxSessions: 0 } }), { log });
    await open.tick();
    expect(open.relayServer).toBeNull();
    expect(log.lines.some((line) => /^E NAT: starting the relay server on port 0 failed: .*relayServer\.authCredential\) is not set/.test(line))).toBe(true);
  });

  it('connects known peers on a tick, records the type, and reconnects only after 75 s without a handshake', async () => {
    const [a, b] = await pair();
    let offsetMs = 0;
    const logA = recordingLog();
    const maintenanceA = maintain(a, await config(), { log: logA, now: () => Date.now() + offsetMs });
    const maintenanceB = maintain(b, await config());
    await Promise.all([maintenanceA.tick(), maintenanceB.tick()]);
    // Only the reflexive candidates, so the path is known in advance.
    const reflexiveOf = (maintenance: NatMaintenance) => maintenance.status().candidates.filter((c) => c.candidateType === 'server-reflexive');
    expect(reflexiveOf(maintenanceB)).toEqual([expect.objectContaining({ address: `127.0.0.1:${b.device.listenPort}` })]);
    maintenanceA.setPeerCandidates(b.publicKey, reflexiveOf(maintenanceB));
    maintenanceB.setPeerCandidates(a.publicKey, reflexiveOf(maintenanceA));
    await Promise.all([maintenanceA.tick(), maintenanceB.tick()]);
    expect(maintenanceA.status().peers).toEqual([{ nodeId: Buffer.from(b.publicKey).toString('base64'), connectionType: 'hole-punched', remoteEndpoint: `127.0.0.1:${b.device.listenPort}` }]);
    await tunnelCarries(a, b);
    const attempts = () => logA.lines.filter((line) => line.includes('NAT: trying')).length;
    const before = attempts();
    expect(before).toBeGreaterThan(0);
    await maintenanceA.tick();
    expect(attempts()).toBe(before);
    // 80 s later the handshake counts as stale: the tick tries again (here towards a dead address, to keep it short).
    const dead = await blackHole();
    maintenanceA.setPeerCandidates(b.publicKey, [candidateToWire(makeCandidate('host', dead.endpoint))]);
    offsetMs = 80_000;
    await maintenanceA.tick();
    expect(attempts()).toBeGreaterThan(before);
    expect(dead.received()).toBeGreaterThan(0);
    expect(maintenanceA.status().peers[0]!.connectionType).toBe('hole-punched');
    maintenanceA.removePeer(b.publicKey);
    expect(maintenanceA.status().peers).toEqual([]);
  });

  it('NatTraversal gathers host, reflexive and relay candidates and closes cleanly', async () => {
    const [a] = await pair();
    const relay = await forwarder({ family: 4, address: '127.0.0.1', port: 9 });
    const traversal = new NatTraversal({ ...(await config()), relays: [] }, a.device);
    try {
      const candidates = await traversal.gatherCandidates();
      expect(candidates.filter((c) => c.type === 'server-reflexive').map((c) => c.address)).toEqual([a.endpoint]);
      expect(candidates.every((c) => c.address.port === a.device.listenPort)).toBe(true);
      expect(await traversal.refresh()).toBe(false);
      expect(traversal.localCandidates()).toEqual(candidates);
      expect(relay.forwarded()).toBe(0);
    } finally {
      await traversal.close();
    }
    await expect(traversal.gatherCandidates()).rejects.toThrow(/closed/);
  });
});
