/**
 * The built-in relay end to end over loopback, in this process: a RelayServer,
 * RelayClients and plain UDP sockets standing in for the WireGuard devices.
 * Proves that datagrams cross both ways through the peer proxies (the far side
 * answering to the proxy it learned by "roaming"), that a wrong credential is
 * refused and cannot send, that replayed and stale REGISTERs are refused, and
 * that max_sessions bounds the pairs being relayed.
 */
import { randomBytes } from 'node:crypto';
import { afterEach, describe, expect, it } from 'vitest';
import {
  RelayClient,
  RelayRegistrationError,
  RelayServer,
  decodeRelayMessage,
  deriveRelayAuthKey,
  encodeDataToPeer,
  registerSignedPart,
  relayTag,
  withTag,
  type RelayMessage,
} from '../../src/nat/relay/index.js';
import type { Endpoint } from '../../src/device/addr.js';
import { hex } from '../helpers/fuzz.js';
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

async function startNode(server: Endpoint, credential = CREDENTIAL): Promise<Node> {
  const key = randomBytes(32);
  const device = await openUdpDevice();
  closers.push(device.close);
  const client = new RelayClient({ server, credential, localPublicKey: key, devicePort: device.port });
  closers.push(() => client.close());
  return { key, device, client };
}

/** A raw UDP socket talking the relay protocol directly (for what a client never sends). */
async function rawSocket(): Promise<{ send(bytes: Uint8Array, to: Endpoint): void; next(): Promise<RelayMessage> }> {
  const device = await openUdpDevice();
  closers.push(device.close);
  return {
    send: (bytes, to) => void device.send(bytes, to.port, to.address),
    next: async () => decodeRelayMessage((await device.next()).data),
  };
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
    const bad = await startNode(endpoint, 'not-the-credential');
    await expect(bad.client.start()).rejects.toThrow(RelayRegistrationError);
    await expect(bad.client.start().catch((e: Error) => e.message)).resolves.toMatch(/closed/);
    const bad2 = await startNode(endpoint, 'not-the-credential');
    await expect(bad2.client.start()).rejects.toThrow(/refused the registration: authentication failed/);
    expect(server.registrationCount).toBe(1);

    // Sending DATA without a registration (a guessed token) is answered NOT-REGISTERED and goes nowhere.
    const raw = await rawSocket();
    raw.send(encodeDataToPeer(randomBytes(8), good.key, Uint8Array.of(9, 9, 9)), endpoint);
    expect((await raw.next()).kind).toBe('not-registered');
    expect(await good.device.quietFor(300)).toBe(true);
    expect(server.forwarded).toBe(0);

    // The empty credential works only with itself.
    const open = await startServer(0, '');
    const emptyOk = await startNode(open.endpoint, '');
    await emptyOk.client.start();
    const withCredential = await startNode(open.endpoint, CREDENTIAL);
    await expect(withCredential.client.start()).rejects.toThrow(/authentication failed/);
  });

  it('refuses replayed and stale REGISTERs', async () => {
    const { endpoint } = await startServer();
    const key = deriveRelayAuthKey(CREDENTIAL);
    const raw = await rawSocket();
    const signed = registerSignedPart(randomBytes(32), Date.now(), randomBytes(16));
    const register = withTag(signed, relayTag(key, signed));
    raw.send(register, endpoint);
    expect((await raw.next()).kind).toBe('registered');
    raw.send(register, endpoint);
    expect(await raw.next()).toMatchObject({ kind: 'refused', reason: 3 });
    const staleSigned = registerSignedPart(randomBytes(32), Date.now() - 10 * 60_000, randomBytes(16));
    raw.send(withTag(staleSigned, relayTag(key, staleSigned)), endpoint);
    expect(await raw.next()).toMatchObject({ kind: 'refused', reason: 2 });
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
