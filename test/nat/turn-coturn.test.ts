/**
 * The TURN client (RFC 8656) against a real coturn in a network namespace.
 *
 *   test process (root ns)                       ns S: coturn
 *     client address 198.18.a.2 ── veth ── 198.18.a.1:3478 (listening)
 *     peer address   198.18.b.2 ── veth ── 198.18.b.1      (relay-ip)
 *
 * The TurnClient and plain UDP sockets (the stand-in device, the remote peer)
 * live in the test process; the peer reaches the client only through the
 * relayed address. Proved: allocation with long-term credentials (401 +
 * REALM/NONCE), a wrong password refused with a clear error, permissions
 * (nothing passes before CreatePermission), Send/Data indications both ways,
 * ChannelBind + ChannelData both ways, 438 Stale Nonce recovery (coturn with a
 * 2 s nonce lifetime), and the release on close() (a one-allocation quota
 * admits a new allocation only after it). Forged responses and fuzz:
 * turn-unit.test.ts. Needs root (namespaces) and turnserver.
 */
import { randomBytes } from 'node:crypto';
import { afterAll, afterEach, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import type { Endpoint } from '../../src/device/addr.js';
import { TurnClient, TurnError } from '../../src/nat/turn/index.js';
import { addressAndUp, cleanup, createNamespace, createVethPair, leftovers, randomBenchmarkSubnet30, requireCommands, requireRoot } from '../../scripts/lib/netns.js';
import { startCoturn, type Coturn } from '../../scripts/lib/coturn.js';
import { hex } from '../helpers/fuzz.js';
import { openUdpDevice, type UdpDevice } from '../helpers/udp-device.js';

const USER = { name: 'alice', password: 'correct horse battery' };

let serverAddress = '';
let clientAddress = '';
let relayAddress = '';
let peerAddress = '';
let coturn: Coturn;
let staleCoturn: Coturn;
let preconditionError: Error | null = null;
const closers: (() => unknown)[] = [];

beforeAll(async () => {
  try {
    requireRoot('test/nat/turn-coturn.test.ts');
    requireCommands('turnserver', 'ip');
    const ns = createNamespace();
    const clientLink = createVethPair(ns);
    const peerLink = createVethPair(ns);
    const clientNet = randomBenchmarkSubnet30();
    const peerNet = randomBenchmarkSubnet30();
    [serverAddress, clientAddress, relayAddress, peerAddress] = [clientNet.first, clientNet.second, peerNet.first, peerNet.second];
    addressAndUp(ns, clientLink.peer.name, `${serverAddress}/30`);
    addressAndUp(null, clientLink.host.name, `${clientAddress}/30`);
    addressAndUp(ns, peerLink.peer.name, `${relayAddress}/30`);
    addressAndUp(null, peerLink.host.name, `${peerAddress}/30`);
    const common = { listenAddresses: [serverAddress], relayAddress, users: [USER], minPort: 49152, maxPort: 49999 };
    coturn = await startCoturn(ns, common);
    // A second instance whose nonces go stale after 2 s (exercises 438) and that grants one allocation per user.
    staleCoturn = await startCoturn(ns, { ...common, port: 3479, extraConfig: ['stale-nonce=2', 'user-quota=1'] });
  } catch (error) {
    preconditionError = error as Error;
  }
});

beforeEach(() => {
  if (preconditionError !== null) throw preconditionError;
});

afterEach(async () => {
  for (const close of closers.splice(0).reverse()) await close();
});

afterAll(() => {
  cleanup();
  expect(leftovers()).toEqual([]);
});

function server(port = 3478): Endpoint {
  return { family: 4, address: serverAddress, port };
}

async function client(options: { password?: string; port?: number } = {}): Promise<{ turn: TurnClient; device: UdpDevice }> {
  const device = await openUdpDevice();
  closers.push(device.close);
  const turn = new TurnClient({ server: server(options.port), username: USER.name, password: options.password ?? USER.password, devicePort: device.port, log: process.env.TURN_DEBUG ? { verbose: (m) => console.log('V', m), error: (m) => console.log('E', m) } : undefined });
  closers.push(() => turn.close());
  return { turn, device };
}

/**
 * Allocate on the one-allocation-per-user server, retrying on 486 while coturn
 * reaps an allocation released by the previous test (it does so on its 1 s tick).
 */
async function allocateWhenFree(turn: TurnClient, withinMs = 4000): Promise<Endpoint> {
  const deadline = Date.now() + withinMs;
  for (;;) {
    try {
      return await turn.allocate();
    } catch (error) {
      if (!(error instanceof TurnError) || error.code !== 486 || Date.now() > deadline) throw error;
      await new Promise((resolve) => setTimeout(resolve, 250));
    }
  }
}

async function peerSocket(): Promise<UdpDevice> {
  const peer = await openUdpDevice(peerAddress);
  closers.push(peer.close);
  return peer;
}

describe('TURN client against coturn', () => {
  it('allocates a relayed address with long-term credentials', async () => {
    const { turn } = await client();
    expect(turn.relayedAddress).toBeNull();
    const relayed = await turn.allocate();
    expect(relayed.address).toBe(relayAddress);
    expect(relayed.port).toBeGreaterThanOrEqual(49152);
    expect(relayed.port).toBeLessThanOrEqual(49999);
    expect(turn.relayedAddress).toEqual(relayed);
    expect(turn.mappedAddress?.address).toBe(clientAddress);
  });

  it('refuses a wrong password with a clear error', async () => {
    const { turn } = await client({ password: 'wrong' });
    const error = await turn.allocate().catch((e: unknown) => e);
    expect(error).toBeInstanceOf(TurnError);
    expect((error as TurnError).message).toMatch(/refused the credentials of user 'alice'.*401/);
    expect((error as TurnError).code).toBe(401);
    expect(turn.relayedAddress).toBeNull();
  });

  it('relays with Send/Data indications once the peer is permitted, and only then', async () => {
    const { turn, device } = await client();
    const relayed = await turn.allocate();
    const peer = await peerSocket();

    await peer.send(Uint8Array.of(0xde, 0xad), relayed.port, relayed.address);
    expect(await device.quietFor(400)).toBe(true); // no permission yet: coturn drops it

    await turn.permit(peerAddress);
    for (let i = 0; i < 5; i++) {
      const payload = randomBytes(40 + i * 300);
      await peer.send(payload, relayed.port, relayed.address);
      const got = await device.next();
      expect(hex(got.data)).toBe(hex(payload));
      // The device answers to the proxy it saw; the peer gets it from the relayed address.
      const answer = randomBytes(100 + i);
      await device.send(answer, got.port);
      const back = await peer.next();
      expect(hex(back.data)).toBe(hex(answer));
      expect({ address: back.address, port: back.port }).toEqual({ address: relayed.address, port: relayed.port });
    }
    expect(turn.counters.dataIndicationsIn).toBe(5);
    expect(turn.counters.sendIndicationsOut).toBe(5);
    expect(turn.counters.channelDataIn + turn.counters.channelDataOut).toBe(0);

    // routePeer hands out the same proxy the first datagram created.
    const route = await turn.routePeer({ family: 4, address: peerAddress, port: peer.port });
    await device.send(Uint8Array.of(7), route.port);
    expect((await peer.next()).data).toEqual(Uint8Array.of(7));
  });

  it('relays with ChannelData after ChannelBind', async () => {
    const { turn, device } = await client();
    const relayed = await turn.allocate();
    const peer = await peerSocket();
    const channel = await turn.bindChannel({ family: 4, address: peerAddress, port: peer.port });
    expect(channel).toBe(0x4000);
    expect(await turn.bindChannel({ family: 4, address: peerAddress, port: peer.port })).toBe(0x4000); // a refresh keeps the number

    for (let i = 0; i < 5; i++) {
      const payload = randomBytes(1 + i * 333);
      await peer.send(payload, relayed.port, relayed.address);
      const got = await device.next();
      expect(hex(got.data)).toBe(hex(payload));
      await device.send(payload.reverse(), got.port);
      const back = await peer.next();
      expect(hex(back.data)).toBe(hex(payload));
      expect(back.port).toBe(relayed.port);
    }
    expect(turn.counters.channelDataIn).toBe(5);
    expect(turn.counters.channelDataOut).toBe(5);
    expect(turn.counters.dataIndicationsIn + turn.counters.sendIndicationsOut).toBe(0);
  });

  it('recovers from 438 Stale Nonce', async () => {
    const { turn } = await client({ port: 3479 });
    await allocateWhenFree(turn);
    await new Promise((resolve) => setTimeout(resolve, 3500)); // coturn checks nonce age on a 1 s tick
    expect(turn.counters.staleNonceRetries).toBe(0);
    await turn.permit(peerAddress); // the nonce is stale by now: 438, then a retry with the new one
    expect(turn.counters.staleNonceRetries).toBeGreaterThanOrEqual(1);
  });

  it('releases the allocation on close (Refresh with lifetime 0)', async () => {
    // The second server grants one allocation per user: a new one succeeds only when close() released the old.
    const first = await client({ port: 3479 });
    await allocateWhenFree(first.turn);
    const rival = await client({ port: 3479 });
    const refused = await rival.turn.allocate().catch((e: unknown) => e);
    expect((refused as TurnError).code, String(refused)).toBe(486); // the quota is real
    await first.turn.close();
    expect(first.turn.relayedAddress).toBeNull();
    // coturn reaps the released allocation on its next tick; without the release it would hold it for 600 s.
    const second = await client({ port: 3479 });
    expect((await allocateWhenFree(second.turn)).address).toBe(relayAddress);
  });
});
