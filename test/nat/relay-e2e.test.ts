/**
 * The built-in relay end to end over loopback, in this process: a RelayServer,
 * RelayClients and plain UDP sockets standing in for the WireGuard devices.
 * Proves that datagrams cross both ways through the peer proxies (the far side
 * answering to the proxy it learned by "roaming"), that a wrong credential is
 * refused and cannot send, that a REGISTER needs the node's private key, a
 * fresh cookie for its own source and this relay's key, that a registration
 * that moves gets a new token, and that max_sessions bounds the pairs being
 * relayed. (test/nat/relay-attack.test.ts attacks from another namespace.)
 */
import { randomBytes } from 'node:crypto';
import { afterEach, describe, expect, it } from 'vitest';
import {
  RefusedReason,
  RelayClient,
  RelayRegistrationError,
  RelayServer,
  encodeDataToPeer,
  encodeKeepalive,
} from '../../src/nat/relay/index.js';
import type { Endpoint } from '../../src/device/addr.js';
import { hex } from '../helpers/fuzz.js';
import { RelayWire } from '../helpers/relay-wire.js';
import { openUdpDevice, type UdpDevice } from '../helpers/udp-device.js';

const CREDENTIAL = 'cluster-hs256-secret';
const closers: (() => void)[] = [];
afterEach(() => {
  for (const close of closers.splice(0).reverse()) close();
});

async function startServer(maxSessions = 0, credential = CREDENTIAL): Promise<{ server: RelayServer; endpoint: Endpoint }> {
  const server = new RelayServer({ listenPort: 0, externalAddr: '127.0.0.1', maxSessions }, credential);
  const endpoint = await server.start();
  closers.push(() => server.close());
  return { server, endpoint };
}

interface Node {
  key: Uint8Array;
  device: UdpDevice;
  client: RelayClient;
}

async function startNode(server: Endpoint, credential = CREDENTIAL, privateKey: Uint8Array = randomBytes(32)): Promise<Node> {
  const device = await openUdpDevice();
  closers.push(device.close);
  const client = new RelayClient({ server, credential, localPrivateKey: privateKey, devicePort: device.port });
  closers.push(() => client.close());
  return { key: client.publicKey, device, client };
}

/** A raw UDP socket talking the relay protocol directly (for what a client never sends). */
async function rawSocket(server: Endpoint): Promise<RelayWire> {
  const device = await openUdpDevice();
  closers.push(device.close);
  return new RelayWire(device, server, CREDENTIAL);
}

describe('relay end to end', () => {
  it('carries datagrams both ways between two devices', async () => {
    const { server, endpoint } = await startServer();
    const a = await startNode(endpoint);
    const b = await startNode(endpoint);
    await a.client.start();
    await b.client.start();
    expect(a.client.registered && b.client.registered).toBe(true);
    expect(server.registrationCount).toBe(2);

    const bAtA = await a.client.routePeer(b.key);
    expect(bAtA.address).toBe('127.0.0.1');
    expect(await a.client.routePeer(b.key)).toEqual(bAtA); // one proxy per peer

    // A's device sends to the proxy; B's device receives it from B's (first-sight) proxy for A.
    let aAtBPort = 0;
    for (let i = 0; i < 20; i++) {
      const payload = randomBytes(1 + i * 70);
      await a.device.send(payload, bAtA.port);
      const got = await b.device.next();
      expect(hex(got.data)).toBe(hex(payload));
      expect(got.address).toBe('127.0.0.1');
      if (aAtBPort === 0) aAtBPort = got.port;
      expect(got.port).toBe(aAtBPort);
      // B answers to where it came from, as WireGuard does after roaming.
      const answer = randomBytes(64);
      await b.device.send(answer, got.port);
      const back = await a.device.next();
      expect(hex(back.data)).toBe(hex(answer));
      expect(back.port).toBe(bAtA.port);
    }
    // The proxy B created on first sight is the one routePeer hands out.
    expect(await b.client.routePeer(a.key)).toEqual({ family: 4, address: '127.0.0.1', port: aAtBPort });
    expect(server.sessionCount).toBe(1);
    expect(server.forwarded).toBe(40);

    // A stranger on loopback cannot inject through a proxy: only the device's port is forwarded.
    const stranger = await openUdpDevice();
    closers.push(stranger.close);
    await stranger.send(Uint8Array.of(1, 2, 3), bAtA.port);
    expect(await b.device.quietFor(300)).toBe(true);
  });

  it('refuses a client with the wrong credential, which then cannot send', async () => {
    const { server, endpoint } = await startServer();
    const good = await startNode(endpoint);
    await good.client.start();
    const bad = await startNode(endpoint, 'not-the-credential-at-all');
    // The REFUSED it gets cannot be authenticated with its key: it only names it when it gives up.
    await expect(bad.client.start()).rejects.toThrow(RelayRegistrationError);
    await expect(bad.client.start().catch((e: Error) => e.message)).resolves.toMatch(/closed/);
    const bad2 = await startNode(endpoint, 'not-the-credential-at-all');
    await expect(bad2.client.start()).rejects.toThrow(/did not accept the registration after 5 attempts; an unauthenticated REFUSED said: authentication failed/);
    expect(server.registrationCount).toBe(1);

    // Sending DATA without a registration (a guessed token) is answered NOT-REGISTERED and goes nowhere.
    const raw = await rawSocket(endpoint);
    raw.send(encodeDataToPeer(randomBytes(8), good.key, Uint8Array.of(9, 9, 9)));
    expect((await raw.next()).kind).toBe('not-registered');
    expect(await good.device.quietFor(300)).toBe(true);
    expect(server.forwarded).toBe(0);

    // No relay runs without a real credential.
    expect(() => new RelayServer({ listenPort: 0, externalAddr: '127.0.0.1', maxSessions: 0 }, '')).toThrow(/relayServer\.authCredential\) is not set/);
  });

  it('registers only with proof of the node key, a fresh cookie for the same source, and this relay\'s key', async () => {
    const { server, endpoint } = await startServer();
    const victim = await startNode(endpoint);
    await victim.client.start();
    const other = await startNode(endpoint);
    await other.client.start();
    const victimAtOther = await other.client.routePeer(victim.key);

    // A cluster member without the victim's private key: its REGISTER for the victim's key is refused.
    const attacker = await rawSocket(endpoint);
    const challenge = await attacker.hello();
    attacker.send(attacker.register(challenge, { claimedPublicKey: victim.key }));
    expect(await attacker.nextRefusal()).toBe(RefusedReason.badKeyProof);
    expect(server.registrationCount).toBe(2);
    await other.device.send(Uint8Array.of(1), victimAtOther.port);
    expect((await victim.device.next()).data).toEqual(Uint8Array.of(1)); // still delivered to the victim

    // A REGISTER proves its key: good once, answered again from the same source, refused from any other.
    const node = await rawSocket(endpoint);
    const fresh = await node.hello();
    const register = node.register(fresh);
    node.send(register);
    const first = await node.next();
    expect(first.kind).toBe('registered');
    node.send(register);
    expect(await node.next()).toMatchObject({ kind: 'registered', token: (first as { token: Uint8Array }).token });
    const elsewhere = await rawSocket(endpoint);
    elsewhere.send(register);
    expect(await elsewhere.nextRefusal()).toBe(RefusedReason.badCookie);
    // A cookie made for one source does not work from another, even with a fresh proof.
    elsewhere.send(elsewhere.register(fresh));
    expect(await elsewhere.nextRefusal()).toBe(RefusedReason.badCookie);

    // Stale timestamps, and REGISTERs made for another relay process, are refused.
    const stale = await node.hello();
    node.send(node.register(stale, { timestampMs: Date.now() - 10 * 60_000 }));
    expect(await node.nextRefusal()).toBe(RefusedReason.staleTimestamp);
    const second = await startServer();
    const atSecond = new RelayWire(node.device, second.endpoint, CREDENTIAL);
    atSecond.send(register);
    expect(await atSecond.nextRefusal()).toBe(RefusedReason.badKeyProof);
  });

  it('gives a registration that moves a new token, and the old source loses its own', async () => {
    const { server, endpoint } = await startServer();
    const privateKey = randomBytes(32);
    const wire = await rawSocket(endpoint);
    const firstToken = await wire.registerFully(privateKey);
    const moved = await rawSocket(endpoint);
    const secondToken = await moved.registerFully(privateKey);
    expect(hex(secondToken)).not.toBe(hex(firstToken));
    expect(server.registrationCount).toBe(1);
    // The old source's token is void (answered NOT-REGISTERED); the new one works from the new source only.
    wire.send(encodeKeepalive(firstToken));
    expect((await wire.next()).kind).toBe('not-registered');
    wire.send(encodeKeepalive(secondToken));
    expect((await wire.next()).kind).toBe('not-registered');
    moved.send(encodeKeepalive(secondToken));
    expect(await moved.device.quietFor(200)).toBe(true);
  });

  it('enforces max_sessions', async () => {
    const { server, endpoint } = await startServer(1);
    const [a, b, c] = [await startNode(endpoint), await startNode(endpoint), await startNode(endpoint)] as [Node, Node, Node];
    for (const node of [a, b, c]) await node.client.start();
    const bAtA = await a.client.routePeer(b.key);
    const cAtA = await a.client.routePeer(c.key);
    const cAtB = await b.client.routePeer(c.key);

    await a.device.send(Uint8Array.of(1), bAtA.port);
    expect((await b.device.next()).data).toEqual(Uint8Array.of(1));
    expect(server.sessionCount).toBe(1);

    // A second pair would be a second session: dropped, nothing arrives at C.
    await a.device.send(Uint8Array.of(2), cAtA.port);
    await b.device.send(Uint8Array.of(3), cAtB.port);
    expect(await c.device.quietFor(400)).toBe(true);
    expect(server.sessionCount).toBe(1);

    // The existing session keeps working, in both directions.
    await a.device.send(Uint8Array.of(4), bAtA.port);
    const got = await b.device.next();
    expect(got.data).toEqual(Uint8Array.of(4));
    await b.device.send(Uint8Array.of(5), got.port);
    expect((await a.device.next()).data).toEqual(Uint8Array.of(5));
  });

  it('re-registers after the server forgot it (restart on the same port)', async () => {
    const first = await startServer();
    const a = await startNode(first.endpoint);
    const b = await startNode(first.endpoint);
    await a.client.start();
    await b.client.start();
    first.server.close();
    // The new process has a new relay key: the clients' next REGISTERs must be made for it.
    const again = new RelayServer({ listenPort: first.endpoint.port, externalAddr: '127.0.0.1', maxSessions: 0 }, CREDENTIAL);
    await again.start();
    closers.push(() => again.close());
    const bAtA = await a.client.routePeer(b.key);
    // The first datagrams meet NOT-REGISTERED; both clients register again and traffic resumes.
    const deadline = Date.now() + 8000;
    let delivered = false;
    while (!delivered && Date.now() < deadline) {
      await a.device.send(Uint8Array.of(7), bAtA.port);
      await b.device.send(Uint8Array.of(8), (await b.client.routePeer(a.key)).port);
      delivered = !(await b.device.quietFor(200));
    }
    expect(delivered).toBe(true);
    expect(again.registrationCount).toBe(2);
  });
});
