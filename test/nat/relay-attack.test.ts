/**
 * The built-in relay under attack from another network namespace.
 *
 *   root namespace (this process): relay 1 and relay 2 (same credential),
 *     a victim node and a second node registered with relay 1, the victim's
 *     traffic passing an on-path tap that records it (a captured REGISTER);
 *   namespace X (veth to the root): the attacker, a UDP socket there
 *     (test/helpers/netns-udp-puppet.ts) speaking the relay protocol by hand.
 *
 * The attacker holds the cluster credential (a compromised or curious
 * member) but not the victim's WireGuard private key. Proved: it cannot
 * register the victim's key (hijack), a captured REGISTER replayed at the same
 * relay or at another relay is refused, a flood draws few answers and leaves
 * every table bounded, and through all of it the victim's relayed traffic
 * flows. Needs root; namespaces are removed afterwards.
 */
import dgram from 'node:dgram';
import { randomBytes } from 'node:crypto';
import { afterAll, afterEach, beforeAll, describe, expect, it, vi } from 'vitest';
import type { Endpoint } from '../../src/device/addr.js';
import {
  RefusedReason,
  RelayClient,
  RelayServer,
  decodeRelayMessage,
  encodeDataToPeer,
  encodeKeepalive,
  SOURCE_BURST,
} from '../../src/nat/relay/index.js';
import { addressAndUp, cleanup, createNamespace, createVethPair, leftovers, randomBenchmarkSubnet30, requireRoot } from '../../scripts/lib/netns.js';
import { NetnsUdpPuppet } from '../helpers/netns-udp-puppet.js';
import { RelayWire } from '../helpers/relay-wire.js';
import { openUdpDevice, type UdpDevice } from '../helpers/udp-device.js';

const CREDENTIAL = 'relay-attack-test-cluster-secret';

let attackerNs: string;
let rootAddress: string;
let attackerAddress: string;

beforeAll(() => {
  requireRoot('test/nat/relay-attack.test.ts');
  attackerNs = createNamespace();
  const veth = createVethPair(attackerNs);
  const subnet = randomBenchmarkSubnet30();
  rootAddress = subnet.first;
  attackerAddress = subnet.second;
  addressAndUp(null, veth.host.name, `${subnet.first}/30`);
  addressAndUp(attackerNs, veth.peer.name, `${subnet.second}/30`);
});

afterAll(() => {
  cleanup();
  expect(leftovers()).toEqual([]);
});

const closers: (() => void)[] = [];
afterEach(() => {
  for (const close of closers.splice(0).reverse()) close();
});

interface Node {
  key: Uint8Array;
  device: UdpDevice;
  client: RelayClient;
}

async function startRelay(): Promise<{ server: RelayServer; port: number }> {
  const server = new RelayServer({ listenPort: 0, externalAddr: '', maxSessions: 0 }, CREDENTIAL);
  const { port } = await server.start();
  closers.push(() => server.close());
  return { server, port };
}

async function startNode(server: Endpoint): Promise<Node> {
  const device = await openUdpDevice();
  closers.push(device.close);
  const client = new RelayClient({ server, credential: CREDENTIAL, localPrivateKey: randomBytes(32), devicePort: device.port });
  closers.push(() => client.close());
  await client.start();
  return { key: client.publicKey, device, client };
}

/** An on-path observer: forwards between the victim and the relay, recording what the victim sends. */
async function startTap(relayPort: number): Promise<{ endpoint: Endpoint; captured: Uint8Array[] }> {
  const socket = dgram.createSocket('udp4');
  await new Promise<void>((resolve) => socket.bind(0, '127.0.0.1', resolve));
  closers.push(() => socket.close());
  const captured: Uint8Array[] = [];
  let victim: { address: string; port: number } | null = null;
  socket.on('message', (message, from) => {
    if (from.port === relayPort) {
      if (victim !== null) socket.send(message, victim.port, victim.address);
      return;
    }
    victim = { address: from.address, port: from.port };
    captured.push(new Uint8Array(message));
    socket.send(message, relayPort, '127.0.0.1');
  });
  return { endpoint: { family: 4, address: '127.0.0.1', port: socket.address().port }, captured };
}

/** The other node's datagram reaches the victim's device through relay 1. */
async function victimStillReached(from: Node, victim: Node, marker: number): Promise<void> {
  const route = await from.client.routePeer(victim.key);
  await from.device.send(Uint8Array.of(marker), route.port);
  let got = await victim.device.next();
  while (got.data[0] !== marker) got = await victim.device.next();
  expect(got.data).toEqual(Uint8Array.of(marker));
}

async function attackerAt(port: number): Promise<{ puppet: NetnsUdpPuppet; wire: RelayWire }> {
  const puppet = await NetnsUdpPuppet.start(attackerNs, attackerAddress);
  closers.push(() => puppet.stop());
  return { puppet, wire: new RelayWire(puppet, { family: 4, address: rootAddress, port }, CREDENTIAL) };
}

describe('relay attacked from another namespace', () => {
  it('refuses a hijack of the victim\'s registration, and replays of its captured REGISTER here and at another relay', async () => {
    const relay1 = await startRelay();
    const relay2 = await startRelay();
    const tap = await startTap(relay1.port);
    const victim = await startNode(tap.endpoint);
    const other = await startNode({ family: 4, address: '127.0.0.1', port: relay1.port });
    await victimStillReached(other, victim, 1);
    const capturedRegister = tap.captured.find((datagram) => decodeRelayMessage(datagram).kind === 'register');
    expect(capturedRegister).toBeDefined();

    const attacker = await attackerAt(relay1.port);
    // Hijack: the attacker gets a challenge at its own address, but cannot prove the victim's key.
    const challenge = await attacker.wire.hello();
    attacker.wire.send(attacker.wire.register(challenge, { claimedPublicKey: victim.key }));
    expect(await attacker.wire.nextRefusal()).toBe(RefusedReason.badKeyProof);
    // Replay at the same relay: the cookie in it was made for the victim's (the tap's) source.
    attacker.wire.send(capturedRegister!);
    expect(await attacker.wire.nextRefusal()).toBe(RefusedReason.badCookie);
    // Later still (the victim re-registered meanwhile), the same.
    await new Promise((resolve) => setTimeout(resolve, 500));
    attacker.wire.send(capturedRegister!);
    expect(await attacker.wire.nextRefusal()).toBe(RefusedReason.badCookie);
    // Replay at another relay: made for relay 1's key, it proves nothing to relay 2.
    const atRelay2 = new RelayWire(attacker.puppet, { family: 4, address: rootAddress, port: relay2.port }, CREDENTIAL);
    atRelay2.send(capturedRegister!);
    expect(await atRelay2.nextRefusal()).toBe(RefusedReason.badKeyProof);
    expect(relay2.server.registrationCount).toBe(0);
    // Without the credential, not even a challenge.
    const outsider = new RelayWire(attacker.puppet, { family: 4, address: rootAddress, port: relay1.port }, 'an-outsider-guessing-secrets');
    outsider.send(outsider.helloBytes());
    const refusal = await outsider.next();
    expect(refusal.kind).toBe('refused');

    // Guessed tokens get the attacker nothing but NOT-REGISTERED, and it was never handed the victim's token.
    attacker.wire.send(encodeDataToPeer(randomBytes(8), victim.key, Uint8Array.of(66)));
    expect((await attacker.wire.next()).kind).toBe('not-registered');
    expect(await attacker.puppet.quietFor(300)).toBe(true);

    // The victim is still registered at its own source and reachable; nothing of the attacker's arrived.
    expect(relay1.server.registrationCount).toBe(2);
    await victimStillReached(other, victim, 2);
    expect(await victim.device.quietFor(300)).toBe(true);
  });

  it('answers a flood sparingly, keeps its tables bounded, and keeps relaying', async () => {
    const relay1 = await startRelay();
    const victim = await startNode({ family: 4, address: '127.0.0.1', port: relay1.port });
    const other = await startNode({ family: 4, address: '127.0.0.1', port: relay1.port });
    await victimStillReached(other, victim, 1);

    const attacker = await attackerAt(relay1.port);
    const challenge = await attacker.wire.hello();
    const floods: Uint8Array[] = [];
    for (let i = 0; i < 20; i++) {
      floods.push(attacker.wire.helloBytes());
      floods.push(attacker.wire.register(challenge, { claimedPublicKey: randomBytes(32) }));
      floods.push(attacker.wire.register(challenge)); // its own key: one registration at most
      floods.push(encodeKeepalive(randomBytes(8)));
      floods.push(encodeDataToPeer(randomBytes(8), victim.key, randomBytes(100)));
      floods.push(randomBytes(1 + i * 7));
    }
    const count = 6000;
    const readBefore = relay1.server.stats.received;
    // The relay's clock (Date) stands still during the flood: its bucket gets no refill however slowly the machine runs.
    vi.useFakeTimers({ toFake: ['Date'] });
    try {
      await attacker.puppet.flood(floods, count, relay1.port, rootAddress);
      // Judged on what the relay read (on a loaded machine the kernel drops part of a flood before it): well past the burst.
      const readByRelay = (): number => relay1.server.stats.received - readBefore;
      const deadline = performance.now() + 30_000; // only matters on failure; Date stands still
      while (readByRelay() <= 4 * SOURCE_BURST && performance.now() < deadline) await new Promise((resolve) => setTimeout(resolve, 20));
      expect(readByRelay()).toBeGreaterThan(4 * SOURCE_BURST);
      // The challenge, then at most the burst: not one answer per datagram.
      expect(attacker.puppet.received).toBeLessThanOrEqual(1 + SOURCE_BURST);
      const stats = relay1.server.stats;
      expect(stats.rateLimited).toBeGreaterThan((stats.received - readBefore) / 2);
    } finally {
      vi.useRealTimers();
    }
    const stats = relay1.server.stats;
    expect(stats.registrations).toBeLessThanOrEqual(3); // the two nodes and the attacker's own key
    expect(stats.usedCookies).toBeLessThanOrEqual(3); // the two nodes' and the attacker's own one registration
    expect(stats.rateBuckets).toBeLessThanOrEqual(2);
    expect(stats.sessions).toBeLessThanOrEqual(1);
    await victimStillReached(other, victim, 2);
    // The victim answers back along the relay too.
    const back = await victim.client.routePeer(other.key);
    await victim.device.send(Uint8Array.of(3), back.port);
    let got = await other.device.next();
    while (got.data[0] !== 3) got = await other.device.next();
    expect(got.data).toEqual(Uint8Array.of(3));
  });
});
