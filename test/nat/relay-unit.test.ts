/**
 * The built-in relay, without the network: the auth key derivation against
 * values computed independently with Python's hashlib.blake2b, round trips of
 * every message, exact decoder acceptance, and a fuzz of the decoder (random
 * and mutated inputs only ever raise RelayProtocolError). The last test fuzzes
 * a live server over loopback and checks it still forwards afterwards.
 *
 * Seeded: FUZZ_SEED=<seed> reproduces a failing run.
 */
import dgram from 'node:dgram';
import { randomBytes } from 'node:crypto';
import { afterEach, describe, expect, it } from 'vitest';
import {
  DATA_FROM_HEADER_SIZE,
  DropLog,
  DATA_TO_HEADER_SIZE,
  KEEPALIVE_SIZE,
  REFUSED_SIZE,
  REGISTERED_SIZE,
  REGISTER_SIZE,
  RefusedReason,
  RelayClient,
  RelayProtocolError,
  RelayServer,
  decodeRelayMessage,
  deriveRelayAuthKey,
  encodeDataFromPeer,
  encodeDataToPeer,
  encodeKeepalive,
  encodeNotRegistered,
  encodeRefused,
  isRelayMessage,
  registerSignedPart,
  registeredSignedPart,
  relayTag,
  relayTagValid,
  withTag,
} from '../../src/nat/relay/index.js';
import { Rng, fuzzSeed, hex, mutate, present } from '../helpers/fuzz.js';
import { openUdpDevice } from '../helpers/udp-device.js';

const fromHex = (text: string): Uint8Array => Uint8Array.from(Buffer.from(text, 'hex'));

describe('deriveRelayAuthKey', () => {
  // python3: hashlib.blake2b(c.encode(), digest_size=32, person=b'tswg-relay-auth1').hexdigest()
  it.each([
    ['', '12d179984c389c03be1938bc572118795778295c3784c24b226e03b3c4fba9c6'],
    ['cluster-secret-HS256', '3c9fa526260b35ceed687cae5bf013cd9c525a4f25ea6d498b928b6ad43cb0fe'],
    ['ключ', 'f341d1aad58208beefe725d2789b4bc6fee9698fa0dac7cfb0d8d2e83082945d'],
  ])('derives the documented BLAKE2b key for %j', (credential, expected) => {
    expect(hex(deriveRelayAuthKey(credential))).toBe(expected);
  });

  it('tags with keyed BLAKE2b-256 (hashlib.blake2b(bytes(range(58)), digest_size=32, key=k))', () => {
    const key = deriveRelayAuthKey('cluster-secret-HS256');
    const data = Uint8Array.from({ length: 58 }, (_, i) => i);
    const tag = relayTag(key, data);
    expect(hex(tag)).toBe('fd70a3de64954f19669015e750ba07e109e231d89d3f7234e68ed4efa62bdc11');
    expect(relayTagValid(key, data, tag)).toBe(true);
    const forged = new Uint8Array(tag);
    forged[31]! ^= 1;
    expect(relayTagValid(key, data, forged)).toBe(false);
    expect(relayTagValid(deriveRelayAuthKey(''), data, tag)).toBe(false);
  });
});

describe('relay protocol codec', () => {
  const key = randomBytes(32);
  const peer = randomBytes(32);
  const nonce = randomBytes(16);
  const token = randomBytes(8);

  it('round-trips REGISTER (and its tag covers exactly the signed part)', () => {
    const signed = registerSignedPart(key, 1_700_000_000_123, nonce);
    const tag = relayTag(deriveRelayAuthKey('x'), signed);
    const bytes = withTag(signed, tag);
    expect(bytes.length).toBe(REGISTER_SIZE);
    expect(bytes[0]).toBe(0xf1);
    const message = decodeRelayMessage(bytes);
    expect(message).toEqual({ kind: 'register', version: 1, publicKey: new Uint8Array(key), timestampMs: 1_700_000_000_123, nonce: new Uint8Array(nonce), tag });
    if (message.kind !== 'register') throw new Error('kind');
    expect(registerSignedPart(message.publicKey, message.timestampMs, message.nonce)).toEqual(signed);
  });

  it('round-trips REGISTERED, REFUSED, DATA both ways, KEEPALIVE and NOT-REGISTERED', () => {
    const signed = registeredSignedPart(nonce, token, 90);
    const tag = relayTag(deriveRelayAuthKey('x'), signed);
    const registered = withTag(signed, tag);
    expect(registered.length).toBe(REGISTERED_SIZE);
    expect(decodeRelayMessage(registered)).toEqual({ kind: 'registered', version: 1, nonce: new Uint8Array(nonce), token: new Uint8Array(token), lifetimeSeconds: 90, tag });
    const refused = encodeRefused(nonce, RefusedReason.badAuthentication);
    expect(refused.length).toBe(REFUSED_SIZE);
    expect(decodeRelayMessage(refused)).toEqual({ kind: 'refused', version: 1, nonce: new Uint8Array(nonce), reason: 1 });
    const payload = randomBytes(148);
    const to = encodeDataToPeer(token, peer, payload);
    expect(to.length).toBe(DATA_TO_HEADER_SIZE + 148);
    expect(decodeRelayMessage(to)).toEqual({ kind: 'data-to-peer', token: new Uint8Array(token), peer: new Uint8Array(peer), payload: new Uint8Array(payload) });
    const from = encodeDataFromPeer(peer, payload);
    expect(from.length).toBe(DATA_FROM_HEADER_SIZE + 148);
    expect(decodeRelayMessage(from)).toEqual({ kind: 'data-from-peer', peer: new Uint8Array(peer), payload: new Uint8Array(payload) });
    expect(decodeRelayMessage(encodeDataFromPeer(peer, new Uint8Array(0)))).toEqual({ kind: 'data-from-peer', peer: new Uint8Array(peer), payload: new Uint8Array(0) });
    const keepalive = encodeKeepalive(token);
    expect(keepalive.length).toBe(KEEPALIVE_SIZE);
    expect(decodeRelayMessage(keepalive)).toEqual({ kind: 'keepalive', token: new Uint8Array(token) });
    expect(decodeRelayMessage(encodeNotRegistered())).toEqual({ kind: 'not-registered' });
  });

  it('never collides with WireGuard, STUN or TURN ChannelData first bytes', () => {
    const samples = [encodeNotRegistered(), encodeKeepalive(token), encodeDataFromPeer(peer, new Uint8Array(4)), encodeRefused(nonce, 2)];
    for (const sample of samples) {
      const first = sample[0]!;
      expect(first >= 1 && first <= 4).toBe(false); // WireGuard message types
      expect(first >> 6).not.toBe(0); // STUN: top two bits 00
      expect(first >= 0x40 && first <= 0x7f).toBe(false); // ChannelData
      expect(isRelayMessage(sample)).toBe(true);
    }
    for (const first of [0, 1, 2, 3, 4, 0x40, 0x7f, 0xf0, 0xf8, 0xff]) expect(isRelayMessage(Uint8Array.of(first, 0, 0, 0))).toBe(false);
  });

  it('rejects wrong sizes, versions and reasons with RelayProtocolError', () => {
    const register = withTag(registerSignedPart(key, 5, nonce), new Uint8Array(32));
    const bad = [
      new Uint8Array(0),
      register.subarray(0, REGISTER_SIZE - 1),
      Uint8Array.of(...register, 0),
      Uint8Array.of(0xf1, 2, ...register.subarray(2)), // version 2
      Uint8Array.of(...encodeRefused(nonce, 1).subarray(0, REFUSED_SIZE - 1), 9), // unknown reason
      encodeDataToPeer(token, peer, new Uint8Array(0)).subarray(0, DATA_TO_HEADER_SIZE - 1),
      Uint8Array.of(0xf6, 1, 2, 3),
      Uint8Array.of(0xf7, 0),
      Uint8Array.of(0x01, ...new Uint8Array(147)), // a WireGuard initiation
    ];
    for (const bytes of bad) expect(() => decodeRelayMessage(bytes), hex(bytes)).toThrow(RelayProtocolError);
    const tooBigTimestamp = new Uint8Array(register);
    tooBigTimestamp.fill(0xff, 34, 42);
    expect(() => decodeRelayMessage(tooBigTimestamp)).toThrow(RelayProtocolError);
  });
});

describe('DropLog', () => {
  it('logs at most `limit` lines per interval and reports what it left out', async () => {
    const lines: string[] = [];
    const drops = new DropLog({ verbose: () => undefined, error: (line) => lines.push(line) }, 'relay server', 3, 100);
    for (let i = 0; i < 50; i++) drops.drop(`datagram ${i}`);
    expect(lines).toEqual(['relay server: dropped datagram 0', 'relay server: dropped datagram 1', 'relay server: dropped datagram 2']);
    expect(drops.dropped).toBe(50);
    await new Promise((resolve) => setTimeout(resolve, 120));
    drops.drop('datagram 50');
    expect(lines[3]).toBe('relay server: dropped datagram 50 (47 more dropped without a log line)');
  });
});

describe('decoder fuzz', () => {
  it('throws nothing but RelayProtocolError on 60,000 random and mutated inputs, and accepts only well-formed ones', () => {
    const seed = fuzzSeed();
    const rng = new Rng(seed);
    const valid = [
      withTag(registerSignedPart(rng.bytes(32), 1_700_000_000_000, rng.bytes(16)), rng.bytes(32)),
      withTag(registeredSignedPart(rng.bytes(16), rng.bytes(8), 90), rng.bytes(32)),
      encodeRefused(rng.bytes(16), RefusedReason.replayedNonce),
      encodeDataToPeer(rng.bytes(8), rng.bytes(32), rng.bytes(100)),
      encodeDataFromPeer(rng.bytes(32), rng.bytes(100)),
      encodeKeepalive(rng.bytes(8)),
      encodeNotRegistered(),
    ];
    let accepted = 0;
    for (let i = 0; i < 60_000; i++) {
      const input =
        i % 3 === 0 ? rng.bytes(rng.range(0, 200)) : i % 3 === 1 ? mutate(rng, rng.pick(valid), { maxLength: 2000 }) : Uint8Array.of(rng.range(0xf0, 0xf8), ...rng.bytes(rng.range(0, 100)));
      const shown = present(rng, input);
      try {
        const message = decodeRelayMessage(shown);
        accepted++;
        // Whatever is accepted re-encodes to the same bytes: the decoder takes only canonical messages.
        const again =
          message.kind === 'register'
            ? withTag(registerSignedPart(message.publicKey, message.timestampMs, message.nonce), message.tag)
            : message.kind === 'registered'
              ? withTag(registeredSignedPart(message.nonce, message.token, message.lifetimeSeconds), message.tag)
              : message.kind === 'refused'
                ? encodeRefused(message.nonce, message.reason)
                : message.kind === 'data-to-peer'
                  ? encodeDataToPeer(message.token, message.peer, message.payload)
                  : message.kind === 'data-from-peer'
                    ? encodeDataFromPeer(message.peer, message.payload)
                    : message.kind === 'keepalive'
                      ? encodeKeepalive(message.token)
                      : encodeNotRegistered();
        expect(hex(again), `seed ${seed}`).toBe(hex(input));
      } catch (error) {
        if (!(error instanceof RelayProtocolError)) throw new Error(`seed ${seed}: input ${hex(input)} raised ${String(error)}`);
      }
    }
    expect(accepted).toBeGreaterThan(100);
  });
});

describe('server under fuzz', () => {
  const closers: (() => void)[] = [];
  afterEach(() => {
    for (const close of closers.splice(0)) close();
  });

  it('drops thousands of garbage datagrams and keeps forwarding between registered clients', async () => {
    const seed = fuzzSeed();
    const rng = new Rng(seed);
    const server = new RelayServer({ listenPort: 0, externalAddr: '127.0.0.1', maxSessions: 0 }, 'fuzz-credential');
    const endpoint = await server.start();
    closers.push(() => server.close());
    expect(endpoint.address).toBe('127.0.0.1');
    expect(endpoint.port).toBeGreaterThan(0);

    // Two plain sockets stand in for the WireGuard devices.
    const deviceA = await openUdpDevice();
    const deviceB = await openUdpDevice();
    closers.push(deviceA.close, deviceB.close);
    const keyA = randomBytes(32);
    const keyB = randomBytes(32);
    const clientA = new RelayClient({ server: endpoint, credential: 'fuzz-credential', localPublicKey: keyA, devicePort: deviceA.port });
    const clientB = new RelayClient({ server: endpoint, credential: 'fuzz-credential', localPublicKey: keyB, devicePort: deviceB.port });
    closers.push(() => clientA.close(), () => clientB.close());
    await clientA.start();
    await clientB.start();
    const proxyForB = await clientA.routePeer(keyB);

    const garbageSender = dgram.createSocket('udp4');
    closers.push(() => garbageSender.close());
    const valid = [
      withTag(registerSignedPart(keyA, Date.now(), rng.bytes(16)), rng.bytes(32)),
      encodeDataToPeer(rng.bytes(8), keyB, rng.bytes(64)),
      encodeKeepalive(rng.bytes(8)),
      encodeDataFromPeer(keyA, rng.bytes(10)),
    ];
    const count = 4000;
    for (let i = 0; i < count; i++) {
      const datagram = i % 2 === 0 ? rng.bytes(rng.range(0, 300)) : mutate(rng, rng.pick(valid), { maxLength: 1500 });
      await new Promise((resolve) => garbageSender.send(datagram, endpoint.port, '127.0.0.1', resolve));
      // Paced, so that the kernel's receive buffer does not overflow (every datagram must reach the server).
      if (i % 50 === 0) await new Promise((resolve) => setTimeout(resolve, 2));
    }
    await waitFor(() => server.dropped >= count, `the server to drop the garbage (seed ${seed}, dropped ${server.dropped})`);

    const payload = Uint8Array.from(rng.bytes(120));
    deviceA.socket.send(payload, proxyForB.port, '127.0.0.1');
    const got = await deviceB.next();
    expect(hex(got.data), `seed ${seed}`).toBe(hex(payload));
    expect(server.sessionCount).toBe(1);
  });
});

describe('client under fuzz', () => {
  const closers: (() => void)[] = [];
  afterEach(() => {
    for (const close of closers.splice(0)) close();
  });

  it('drops garbage from its server and still delivers relayed datagrams', async () => {
    const seed = fuzzSeed();
    const rng = new Rng(seed);
    const key = deriveRelayAuthKey('c');
    // A scripted relay server: answers REGISTER correctly, then the test drives it.
    const fake = await openUdpDevice();
    closers.push(fake.close);
    const device = await openUdpDevice();
    closers.push(device.close);
    const client = new RelayClient({ server: { family: 4, address: '127.0.0.1', port: fake.port }, credential: 'c', localPublicKey: randomBytes(32), devicePort: device.port });
    closers.push(() => client.close());
    const started = client.start();
    const register = await fake.next();
    const request = decodeRelayMessage(register.data);
    if (request.kind !== 'register') throw new Error(`expected REGISTER, got ${request.kind}`);
    const answer = registeredSignedPart(request.nonce, rng.bytes(8), 90);
    // First a forged answer (wrong key), then the real one.
    await fake.send(withTag(answer, relayTag(deriveRelayAuthKey('other'), answer)), register.port);
    await fake.send(withTag(answer, relayTag(key, answer)), register.port);
    await started;

    const peer = rng.bytes(32);
    const valid = [encodeDataFromPeer(peer, rng.bytes(40)), encodeNotRegistered(), encodeRefused(request.nonce, 1), withTag(answer, rng.bytes(32))];
    let delivered = 0;
    device.socket.on('message', () => delivered++);
    for (let i = 0; i < 3000; i++) {
      const datagram = i % 3 === 0 ? rng.bytes(rng.range(0, 120)) : mutate(rng, rng.pick(valid), { maxLength: 1500 });
      await fake.send(datagram, register.port);
      if (i % 50 === 0) await new Promise((resolve) => setTimeout(resolve, 2));
    }
    await new Promise((resolve) => setTimeout(resolve, 200));
    expect(delivered, `seed ${seed}`).toBeGreaterThan(0); // mutated payloads of DATA still reach the device

    while ((await device.quietFor(50)) === false) await device.next();
    const payload = rng.bytes(77);
    await fake.send(encodeDataFromPeer(peer, payload), register.port);
    const got = await device.next();
    expect(hex(got.data), `seed ${seed}`).toBe(hex(payload));
    expect(got.port).toBe((await client.routePeer(peer)).port);
  });
});

async function waitFor(condition: () => boolean, what: string, timeoutMs = 10_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!condition()) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((resolve) => setTimeout(resolve, 20));
  }
}
