/**
 * The TURN client against a scripted server on loopback (no root needed): the
 * server answers as RFC 8656 says, and the test makes it misbehave. Proved:
 * responses with a wrong transaction id, a bad MESSAGE-INTEGRITY or a
 * truncated body are dropped (the real answer still wins); Data indications
 * from an IP without a permission are dropped; and a fuzz of thousands of
 * random and mutated datagrams (indications, ChannelData, responses) never
 * throws out of the client, which still relays afterwards.
 *
 * Seeded: FUZZ_SEED=<seed> reproduces a failing run.
 */
import dgram from 'node:dgram';
import { afterEach, describe, expect, it } from 'vitest';
import type { Endpoint } from '../../src/device/addr.js';
import { StunAttributeType, StunClass, StunMethod, stunMessageType, stunMethodOf } from '../../src/nat/stun/constants.js';
import {
  decodeStunMessage,
  encodeErrorCode,
  encodeStunMessage,
  encodeTextAttribute,
  encodeXorAddress,
  findAttribute,
  longTermKey,
  type StunMessage,
} from '../../src/nat/stun/message.js';
import { MAX_ALLOCATION_REFRESH_DELAY_MS, MIN_ALLOCATION_REFRESH_DELAY_MS, TurnClient, allocationRefreshDelayMs } from '../../src/nat/turn/index.js';
import { Rng, fuzzSeed, hex, mutate } from '../helpers/fuzz.js';
import { openUdpDevice, type UdpDevice } from '../helpers/udp-device.js';

const USER = { name: 'alice', password: 'pw' };
const REALM = 'fake.realm';
const KEY = longTermKey(USER.name, REALM, USER.password);
const RELAYED: Endpoint = { family: 4, address: '192.0.2.77', port: 50_000 };
const PEER: Endpoint = { family: 4, address: '192.0.2.10', port: 4000 };

const closers: (() => unknown)[] = [];
afterEach(async () => {
  for (const close of closers.splice(0).reverse()) await close();
});

interface FakeServer {
  endpoint: Endpoint;
  /** The client's address, once it spoke. */
  client: { address: string; port: number } | null;
  /** Authenticated requests seen, by method. */
  requests: number[];
  /** Datagrams the client sent that are not requests (indications, ChannelData). */
  data: Uint8Array[];
  send(bytes: Uint8Array): Promise<void>;
  /** Per authenticated request: what to send back (default: a success signed with KEY). */
  respond: (request: StunMessage, success: (integrityKey?: Uint8Array, tid?: Uint8Array) => Uint8Array) => Uint8Array[];
}

/** A TURN server in miniature: 401 + REALM/NONCE to unauthenticated requests, scripted answers to the rest. */
async function fakeServer(): Promise<FakeServer> {
  const socket = dgram.createSocket('udp4');
  await new Promise<void>((resolve) => socket.bind(0, '127.0.0.1', resolve));
  closers.push(() => socket.close());
  const server: FakeServer = {
    endpoint: { family: 4, address: '127.0.0.1', port: socket.address().port },
    client: null,
    requests: [],
    data: [],
    send: (bytes) => new Promise((resolve) => socket.send(bytes, server.client!.port, server.client!.address, () => resolve())),
    respond: (_request, success) => [success()],
  };
  socket.on('message', (message, from) => {
    server.client = { address: from.address, port: from.port };
    const bytes = new Uint8Array(message);
    let request: StunMessage;
    try {
      request = decodeStunMessage(bytes);
    } catch {
      server.data.push(bytes); // ChannelData
      return;
    }
    if ((request.type & 0x110) !== StunClass.Request) {
      server.data.push(bytes);
      return;
    }
    const method = stunMethodOf(request.type);
    const reply = (bytes: Uint8Array) => socket.send(bytes, from.port, from.address);
    if (findAttribute(request, StunAttributeType.MessageIntegrity) === undefined) {
      reply(
        encodeStunMessage({
          type: stunMessageType(method, StunClass.ErrorResponse),
          transactionId: request.transactionId,
          attributes: [
            { type: StunAttributeType.ErrorCode, value: encodeErrorCode(401, 'Unauthorized') },
            encodeTextAttribute(StunAttributeType.Realm, REALM),
            encodeTextAttribute(StunAttributeType.Nonce, 'n0nce'),
          ],
        }),
      );
      return;
    }
    server.requests.push(method);
    const success = (integrityKey = KEY, tid = request.transactionId) =>
      encodeStunMessage(
        {
          type: stunMessageType(method, StunClass.SuccessResponse),
          transactionId: tid,
          attributes:
            method === StunMethod.Allocate
              ? [
                  { type: StunAttributeType.XorRelayedAddress, value: encodeXorAddress(RELAYED, tid) },
                  { type: StunAttributeType.Lifetime, value: Uint8Array.of(0, 0, 2, 0x58) },
                ]
              : [],
        },
        { integrityKey },
      );
    for (const answer of server.respond(request, success)) reply(answer);
  });
  return server;
}

async function turnClient(server: FakeServer): Promise<{ turn: TurnClient; device: UdpDevice }> {
  const device = await openUdpDevice();
  closers.push(device.close);
  const turn = new TurnClient({ server: server.endpoint, username: USER.name, password: USER.password, devicePort: device.port });
  closers.push(() => turn.close());
  return { turn, device };
}

function dataIndication(peer: Endpoint, payload: Uint8Array): Uint8Array {
  const tid = new Uint8Array(12).map(() => Math.floor(Math.random() * 256));
  return encodeStunMessage({
    type: stunMessageType(StunMethod.Data, StunClass.Indication),
    transactionId: tid,
    attributes: [
      { type: StunAttributeType.XorPeerAddress, value: encodeXorAddress(peer, tid) },
      { type: StunAttributeType.Data, value: payload },
    ],
  });
}

/** The success answer to an Allocate, granting `lifetimeSeconds` (any u32). */
function allocateSuccess(request: StunMessage, lifetimeSeconds: number): Uint8Array {
  const lifetime = new Uint8Array(4);
  new DataView(lifetime.buffer).setUint32(0, lifetimeSeconds);
  return encodeStunMessage(
    {
      type: stunMessageType(StunMethod.Allocate, StunClass.SuccessResponse),
      transactionId: request.transactionId,
      attributes: [
        { type: StunAttributeType.XorRelayedAddress, value: encodeXorAddress(RELAYED, request.transactionId) },
        { type: StunAttributeType.Lifetime, value: lifetime },
      ],
    },
    { integrityKey: KEY },
  );
}

describe('TURN allocation refresh timer', () => {
  it('stays within its bounds for any LIFETIME (no 1 ms timer, none past 2^31 ms)', () => {
    for (const lifetime of [0, 1, 2, 30, 61, 600, 3600, 2 ** 31, 2 ** 32 - 1, -5, Number.NaN, Number.POSITIVE_INFINITY]) {
      const delay = allocationRefreshDelayMs(lifetime);
      expect(delay, `lifetime ${lifetime}`).toBeGreaterThanOrEqual(MIN_ALLOCATION_REFRESH_DELAY_MS);
      expect(delay, `lifetime ${lifetime}`).toBeLessThanOrEqual(MAX_ALLOCATION_REFRESH_DELAY_MS);
    }
    expect(allocationRefreshDelayMs(600)).toBe(300_000);
    expect(allocationRefreshDelayMs(100)).toBe(40_000);
  });

  it.each([2 ** 32 - 1, 0, 1])('does not storm the server with Refresh requests when it grants LIFETIME %d', async (lifetime) => {
    const server = await fakeServer();
    server.respond = (request, success) => [stunMethodOf(request.type) === StunMethod.Allocate ? allocateSuccess(request, lifetime) : success()];
    const { turn } = await turnClient(server);
    expect(await turn.allocate()).toEqual(RELAYED);
    await new Promise((resolve) => setTimeout(resolve, 1500));
    expect(server.requests.filter((method) => method === StunMethod.Refresh)).toEqual([]);
  });
});

describe('TURN client against a scripted server', () => {
  it('drops responses with a wrong transaction id, a bad MESSAGE-INTEGRITY or a truncated body', async () => {
    const server = await fakeServer();
    server.respond = (request, success) => {
      const wrongId = new Uint8Array(request.transactionId);
      wrongId[0]! ^= 1;
      return [
        success(KEY, wrongId), // wrong transaction id
        success(longTermKey(USER.name, REALM, 'forged')), // bad integrity
        success().subarray(0, 40), // truncated
        success(), // the real answer, last
      ];
    };
    const { turn } = await turnClient(server);
    expect(await turn.allocate()).toEqual(RELAYED);
    expect(server.requests).toEqual([StunMethod.Allocate]);
    expect(turn.dropped).toBe(3);
  });

  it('rejects when every answer is forged (no valid MESSAGE-INTEGRITY)', async () => {
    const server = await fakeServer();
    server.respond = (_request, success) => [success(longTermKey(USER.name, REALM, 'forged'))];
    const { turn } = await turnClient(server);
    await expect(turn.allocate()).rejects.toThrow(/did not answer Allocate/);
    expect(turn.dropped).toBeGreaterThanOrEqual(5);
  });

  it('delivers Data indications only from permitted IPs, and answers with Send indications', async () => {
    const server = await fakeServer();
    const { turn, device } = await turnClient(server);
    await turn.allocate();
    await server.send(dataIndication(PEER, Uint8Array.of(1, 2, 3)));
    expect(await device.quietFor(300)).toBe(true);
    await turn.permit(PEER.address);
    expect(server.requests).toEqual([StunMethod.Allocate, StunMethod.CreatePermission]);
    await server.send(dataIndication(PEER, Uint8Array.of(4, 5, 6)));
    const got = await device.next();
    expect(got.data).toEqual(Uint8Array.of(4, 5, 6));
    await device.send(Uint8Array.of(7, 8), got.port);
    await waitFor(() => server.data.length === 1, 'the Send indication');
    const send = decodeStunMessage(server.data[0]!);
    expect(send.type).toBe(stunMessageType(StunMethod.Send, StunClass.Indication));
    expect(findAttribute(send, StunAttributeType.Data)).toEqual(Uint8Array.of(7, 8));
    expect(findAttribute(send, StunAttributeType.XorPeerAddress)).toEqual(encodeXorAddress(PEER, send.transactionId));
  });

  it('survives a fuzz of random and mutated datagrams and still relays', async () => {
    const seed = fuzzSeed();
    const rng = new Rng(seed);
    const server = await fakeServer();
    const { turn, device } = await turnClient(server);
    await turn.allocate();
    const channel = await turn.bindChannel(PEER);
    const channelData = Uint8Array.of(channel >> 8, channel & 0xff, 0, 4, 9, 9, 9, 9);
    const valid = [dataIndication(PEER, rng.bytes(60)), channelData, dataIndication({ ...PEER, address: '192.0.2.99' }, rng.bytes(20))];
    let delivered = 0;
    device.socket.on('message', () => delivered++);
    for (let i = 0; i < 3000; i++) {
      const datagram = i % 3 === 0 ? rng.bytes(rng.range(0, 120)) : mutate(rng, rng.pick(valid), { maxLength: 1500 });
      await server.send(datagram);
      if (i % 50 === 0) await new Promise((resolve) => setTimeout(resolve, 2));
    }
    await new Promise((resolve) => setTimeout(resolve, 200));
    expect(turn.dropped + delivered, `seed ${seed}`).toBeGreaterThan(1000);

    // Still relaying: a clean ChannelData reaches the device, and its answer goes out as ChannelData.
    while ((await device.quietFor(50)) === false) await device.next();
    server.data.length = 0;
    await server.send(channelData);
    const got = await device.next();
    expect(hex(got.data), `seed ${seed}`).toBe('09090909');
    await device.send(Uint8Array.of(1), got.port);
    await waitFor(() => server.data.some((d) => hex(d) === `${channel.toString(16)}000101`), `ChannelData back (seed ${seed})`);
  });
});

async function waitFor(condition: () => boolean, what: string, timeoutMs = 3000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!condition()) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((resolve) => setTimeout(resolve, 20));
  }
}
