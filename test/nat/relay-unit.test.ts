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
import { afterEach, describe, expect, it, vi } from 'vitest';
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
  CHALLENGE_SIZE,
  HELLO_SIZE,
  RelayCredentialError,
  SourceRateLimiter,
  challengeSignedPart,
  helloSignedPart,
  isRelayMessage,
  notRegisteredTag,
  refusedSignedPart,
  registerSignedPart,
  relayCredentialProblem,
  type RelayMessage,
  registeredSignedPart,
  relayTag,
  relayTagValid,
  withTag,
} from '../../src/nat/relay/index.js';
import { Rng, fuzzSeed, hex, mutate, present } from '../helpers/fuzz.js';
import { openUdpDevice } from '../helpers/udp-device.js';
import { ScriptedRelay } from '../helpers/scripted-relay.js';
import { RelayWire } from '../helpers/relay-wire.js';

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
  const relayKey = randomBytes(32);
  const peer = randomBytes(32);
  const nonce = randomBytes(16);
  const token = randomBytes(8);
  const cookie = randomBytes(16);
  const authKey = deriveRelayAuthKey('codec-test-credential');
  const fields = { publicKey: key, timestampMs: 1_700_000_000_123, nonce, relayPublicKey: relayKey, issuedMs: 1_700_000_000_001, cookie };

  it('round-trips REGISTER (and its tag covers exactly the signed part)', () => {
    const signed = registerSignedPart(fields);
    const tag = relayTag(authKey, signed);
    const bytes = withTag(signed, tag);
    expect(bytes.length).toBe(REGISTER_SIZE);
    expect(bytes[0]).toBe(0xf1);
    const message = decodeRelayMessage(bytes);
    expect(message).toEqual({ kind: 'register', version: 2, ...Object.fromEntries(Object.entries(fields).map(([k, v]) => [k, typeof v === 'number' ? v : new Uint8Array(v)])), tag });
    if (message.kind !== 'register') throw new Error('kind');
    expect(registerSignedPart(message)).toEqual(signed);
  });

  it('round-trips HELLO and CHALLENGE; a HELLO is as large as the CHALLENGE it draws', () => {
    const hello = withTag(helloSignedPart(nonce), relayTag(authKey, helloSignedPart(nonce)));
    expect(hello.length).toBe(HELLO_SIZE);
    expect(HELLO_SIZE).toBeGreaterThanOrEqual(CHALLENGE_SIZE);
    expect(decodeRelayMessage(hello)).toEqual({ kind: 'hello', version: 2, nonce: new Uint8Array(nonce), tag: relayTag(authKey, helloSignedPart(nonce)) });
    const signed = challengeSignedPart(nonce, relayKey, 1234, cookie);
    const challenge = withTag(signed, relayTag(authKey, signed));
    expect(challenge.length).toBe(CHALLENGE_SIZE);
    expect(decodeRelayMessage(challenge)).toEqual({
      kind: 'challenge',
      version: 2,
      nonce: new Uint8Array(nonce),
      relayPublicKey: new Uint8Array(relayKey),
      issuedMs: 1234,
      cookie: new Uint8Array(cookie),
      tag: relayTag(authKey, signed),
    });
  });

  it('round-trips REGISTERED, REFUSED, DATA both ways, KEEPALIVE and NOT-REGISTERED', () => {
    const signed = registeredSignedPart(nonce, token, 90);
    const tag = relayTag(authKey, signed);
    const registered = withTag(signed, tag);
    expect(registered.length).toBe(REGISTERED_SIZE);
    expect(decodeRelayMessage(registered)).toEqual({ kind: 'registered', version: 2, nonce: new Uint8Array(nonce), token: new Uint8Array(token), lifetimeSeconds: 90, tag });
    const refusedSigned = refusedSignedPart(nonce, RefusedReason.badAuthentication);
    const refused = withTag(refusedSigned, relayTag(authKey, refusedSigned));
    expect(refused.length).toBe(REFUSED_SIZE);
    expect(decodeRelayMessage(refused)).toEqual({ kind: 'refused', version: 2, nonce: new Uint8Array(nonce), reason: 1, tag: relayTag(authKey, refusedSigned) });
    const payload = randomBytes(148);
    const to = encodeDataToPeer(token, peer, payload);
    expect(to.length).toBe(DATA_TO_HEADER_SIZE + 148);
    expect(decodeRelayMessage(to)).toEqual({ kind: 'data-to-peer', token: new Uint8Array(token), peer: new Uint8Array(peer), payload: new Uint8Array(payload) });
    const from = encodeDataFromPeer(token, peer, payload);
    expect(from.length).toBe(DATA_FROM_HEADER_SIZE + 148);
    expect(decodeRelayMessage(from)).toEqual({ kind: 'data-from-peer', token: new Uint8Array(token), peer: new Uint8Array(peer), payload: new Uint8Array(payload) });
    expect(decodeRelayMessage(encodeDataFromPeer(token, peer, new Uint8Array(0)))).toEqual({ kind: 'data-from-peer', token: new Uint8Array(token), peer: new Uint8Array(peer), payload: new Uint8Array(0) });
    const keepalive = encodeKeepalive(token);
    expect(keepalive.length).toBe(KEEPALIVE_SIZE);
    expect(decodeRelayMessage(keepalive)).toEqual({ kind: 'keepalive', token: new Uint8Array(token) });
    const notRegistered = encodeNotRegistered(token, notRegisteredTag(authKey, token));
    expect(notRegistered.length).toBeLessThanOrEqual(KEEPALIVE_SIZE); // the answer to a keepalive amplifies nothing
    expect(decodeRelayMessage(notRegistered)).toEqual({ kind: 'not-registered', token: new Uint8Array(token), tag: notRegisteredTag(authKey, token) });
  });

  it('never collides with WireGuard, STUN or TURN ChannelData first bytes', () => {
    const samples = [
      encodeNotRegistered(token, new Uint8Array(16)),
      encodeKeepalive(token),
      encodeDataFromPeer(token, peer, new Uint8Array(4)),
      withTag(refusedSignedPart(nonce, 2), new Uint8Array(32)),
      withTag(helloSignedPart(nonce), new Uint8Array(32)),
      withTag(challengeSignedPart(nonce, relayKey, 1, cookie), new Uint8Array(32)),
    ];
    for (const sample of samples) {
      const first = sample[0]!;
      expect(first >= 1 && first <= 4).toBe(false); // WireGuard message types
      expect(first >> 6).not.toBe(0); // STUN: top two bits 00
      expect(first >= 0x40 && first <= 0x7f).toBe(false); // ChannelData
      expect(isRelayMessage(sample)).toBe(true);
    }
    for (const first of [0, 1, 2, 3, 4, 0x40, 0x7f, 0xf0, 0xfa, 0xff]) expect(isRelayMessage(Uint8Array.of(first, 0, 0, 0))).toBe(false);
  });

  it('rejects wrong sizes, versions, reasons and padding with RelayProtocolError', () => {
    const register = withTag(registerSignedPart({ ...fields, timestampMs: 5 }), new Uint8Array(32));
    const hello = withTag(helloSignedPart(nonce), new Uint8Array(32));
    const badPadding = new Uint8Array(hello);
    badPadding[40] = 1;
    const bad = [
      new Uint8Array(0),
      register.subarray(0, REGISTER_SIZE - 1),
      Uint8Array.of(...register, 0),
      Uint8Array.of(0xf1, 1, ...register.subarray(2)), // version 1
      Uint8Array.of(...withTag(refusedSignedPart(nonce, 1), new Uint8Array(32)).subarray(0, 2 + 16), 9, ...new Uint8Array(32)), // unknown reason
      encodeDataToPeer(token, peer, new Uint8Array(0)).subarray(0, DATA_TO_HEADER_SIZE - 1),
      encodeDataFromPeer(token, peer, new Uint8Array(0)).subarray(0, DATA_FROM_HEADER_SIZE - 1),
      Uint8Array.of(0xf6, 1, 2, 3),
      Uint8Array.of(...encodeKeepalive(token).subarray(0, KEEPALIVE_SIZE - 1), 1), // padding not zero
      badPadding,
      Uint8Array.of(0xf7, 0),
      Uint8Array.of(0x01, ...new Uint8Array(147)), // a WireGuard initiation
    ];
    for (const bytes of bad) expect(() => decodeRelayMessage(bytes), hex(bytes)).toThrow(RelayProtocolError);
    const tooBigTimestamp = new Uint8Array(register);
    tooBigTimestamp.fill(0xff, 34, 42);
    expect(() => decodeRelayMessage(tooBigTimestamp)).toThrow(RelayProtocolError);
  });
});

describe('relay credential', () => {
  it.each([
    ['', /is not set/],
    ['short-secret', /is 12 bytes; at least 16/],
    ['aaaaaaaaaaaaaaaaaaaaaaaa', /only 1 distinct bytes/],
    ['abababababababababab', /only 2 distinct bytes/],
  ])('refuses %j for a server and a client, naming the option', (credential, why) => {
    expect(relayCredentialProblem(credential)).toMatch(why);
    expect(() => new RelayServer({ listenPort: 0, externalAddr: '', maxSessions: 0 }, credential)).toThrow(RelayCredentialError);
    expect(() => new RelayServer({ listenPort: 0, externalAddr: '', maxSessions: 0 }, credential)).toThrow(/relayServer\.authCredential/);
    expect(() => new RelayClient({ server: { family: 4, address: '127.0.0.1', port: 9 }, credential, localPrivateKey: randomBytes(32), devicePort: 9 })).toThrow(/clusterRelayCredential/);
  });

  it('accepts a random secret of 16 bytes or more', () => {
    expect(relayCredentialProblem(randomBytes(12).toString('base64'))).toBeNull();
    expect(relayCredentialProblem('cluster-relay-secret')).toBeNull();
  });
});

/** The bytes of a decoded message (the decoder accepts only canonical encodings). */
function reencode(message: RelayMessage): Uint8Array {
  switch (message.kind) {
    case 'hello':
      return withTag(helloSignedPart(message.nonce), message.tag);
    case 'challenge':
      return withTag(challengeSignedPart(message.nonce, message.relayPublicKey, message.issuedMs, message.cookie), message.tag);
    case 'register':
      return withTag(registerSignedPart(message), message.tag);
    case 'registered':
      return withTag(registeredSignedPart(message.nonce, message.token, message.lifetimeSeconds), message.tag);
    case 'refused':
      return withTag(refusedSignedPart(message.nonce, message.reason), message.tag);
    case 'data-to-peer':
      return encodeDataToPeer(message.token, message.peer, message.payload);
    case 'data-from-peer':
      return encodeDataFromPeer(message.token, message.peer, message.payload);
    case 'keepalive':
      return encodeKeepalive(message.token);
    case 'not-registered':
      return encodeNotRegistered(message.token, message.tag);
  }
}

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
      withTag(
        registerSignedPart({ publicKey: rng.bytes(32), timestampMs: 1_700_000_000_000, nonce: rng.bytes(16), relayPublicKey: rng.bytes(32), issuedMs: 1_700_000_000_000, cookie: rng.bytes(16) }),
        rng.bytes(32),
      ),
      withTag(registeredSignedPart(rng.bytes(16), rng.bytes(8), 90), rng.bytes(32)),
      withTag(refusedSignedPart(rng.bytes(16), RefusedReason.replayedNonce), rng.bytes(32)),
      withTag(helloSignedPart(rng.bytes(16)), rng.bytes(32)),
      withTag(challengeSignedPart(rng.bytes(16), rng.bytes(32), 1_700_000_000_000, rng.bytes(16)), rng.bytes(32)),
      encodeDataToPeer(rng.bytes(8), rng.bytes(32), rng.bytes(100)),
      encodeDataFromPeer(rng.bytes(8), rng.bytes(32), rng.bytes(100)),
      encodeKeepalive(rng.bytes(8)),
      encodeNotRegistered(rng.bytes(8), rng.bytes(16)),
    ];
    let accepted = 0;
    for (let i = 0; i < 60_000; i++) {
      const input =
        i % 3 === 0 ? rng.bytes(rng.range(0, 200)) : i % 3 === 1 ? mutate(rng, rng.pick(valid), { maxLength: 2000 }) : Uint8Array.of(rng.range(0xf0, 0xfa), ...rng.bytes(rng.range(0, 130)));
      const shown = present(rng, input);
      try {
        const message = decodeRelayMessage(shown);
        accepted++;
        // Whatever is accepted re-encodes to the same bytes: the decoder takes only canonical messages.
        const again = reencode(message);
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
    const credential = 'fuzz-credential-0123';
    const server = new RelayServer({ listenPort: 0, externalAddr: '127.0.0.1', maxSessions: 0 }, credential);
    const endpoint = await server.start();
    closers.push(() => server.close());
    expect(endpoint.address).toBe('127.0.0.1');
    expect(endpoint.port).toBeGreaterThan(0);

    // Two plain sockets stand in for the WireGuard devices.
    const deviceA = await openUdpDevice();
    const deviceB = await openUdpDevice();
    closers.push(deviceA.close, deviceB.close);
    const clientA = new RelayClient({ server: endpoint, credential, localPrivateKey: randomBytes(32), devicePort: deviceA.port });
    const clientB = new RelayClient({ server: endpoint, credential, localPrivateKey: randomBytes(32), devicePort: deviceB.port });
    const keyA = clientA.publicKey;
    const keyB = clientB.publicKey;
    closers.push(() => clientA.close(), () => clientB.close());
    await clientA.start();
    await clientB.start();
    const proxyForB = await clientA.routePeer(keyB);

    const garbageSender = dgram.createSocket('udp4');
    closers.push(() => garbageSender.close());
    const valid = [
      withTag(registerSignedPart({ publicKey: keyA, timestampMs: Date.now(), nonce: rng.bytes(16), relayPublicKey: server.publicKey, issuedMs: Date.now(), cookie: rng.bytes(16) }), rng.bytes(32)),
      withTag(helloSignedPart(rng.bytes(16)), rng.bytes(32)),
      encodeDataToPeer(rng.bytes(8), keyB, rng.bytes(64)),
      encodeKeepalive(rng.bytes(8)),
      encodeDataFromPeer(rng.bytes(8), keyA, rng.bytes(10)),
    ];
    const count = 4000;
    for (let i = 0; i < count; i++) {
      const datagram = i % 2 === 0 ? rng.bytes(rng.range(0, 300)) : mutate(rng, rng.pick(valid), { maxLength: 1500 });
      await new Promise((resolve) => garbageSender.send(datagram, endpoint.port, '127.0.0.1', resolve));
      // Paced by the server itself, so that the kernel's receive buffer never overflows however slowly the
      // server runs: every datagram must reach it. At most 50 are in flight.
      if (i % 50 === 49) await waitFor(() => server.dropped >= i + 1, `the server to drop the first ${i + 1} (seed ${seed}, dropped ${server.dropped})`, 30_000);
    }
    await waitFor(() => server.dropped >= count, `the server to drop the garbage (seed ${seed}, dropped ${server.dropped})`);
    expect(server.stats.rateLimited).toBeGreaterThan(count / 2); // one source: most of it never got past the rate limit

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
    const credential = 'client-fuzz-credential';
    // A scripted relay server: answers the registration correctly, then the test drives it.
    const fake = await openUdpDevice();
    closers.push(fake.close);
    const relay = new ScriptedRelay(fake, credential);
    const device = await openUdpDevice();
    closers.push(device.close);
    const client = new RelayClient({ server: { family: 4, address: '127.0.0.1', port: fake.port }, credential, localPrivateKey: randomBytes(32), devicePort: device.port });
    closers.push(() => client.close());
    const started = client.start();
    const clientPort = await relay.challenge();
    const { register, proofKey } = await relay.takeRegister();
    const token = rng.bytes(8);
    const answer = registeredSignedPart(register.nonce, token, 90);
    // First a forged answer (not made with the key proof), then the real one.
    await fake.send(withTag(answer, relayTag(relay.authKey, answer)), clientPort);
    await fake.send(withTag(answer, relayTag(proofKey, answer)), clientPort);
    await started;

    const peer = rng.bytes(32);
    const valid = [
      encodeDataFromPeer(token, peer, rng.bytes(40)),
      encodeNotRegistered(token, rng.bytes(16)),
      withTag(refusedSignedPart(register.nonce, 1), rng.bytes(32)),
      withTag(answer, rng.bytes(32)),
    ];
    let delivered = 0;
    device.socket.on('message', () => delivered++);
    for (let i = 0; i < 3000; i++) {
      const datagram = i % 3 === 0 ? rng.bytes(rng.range(0, 120)) : mutate(rng, rng.pick(valid), { maxLength: 1500 });
      await fake.send(datagram, clientPort);
      if (i % 50 === 0) await new Promise((resolve) => setTimeout(resolve, 2));
    }
    await new Promise((resolve) => setTimeout(resolve, 200));
    expect(delivered, `seed ${seed}`).toBeGreaterThan(0); // mutated payloads of DATA still reach the device
    expect(client.registered).toBe(true); // no forged NOT-REGISTERED got through

    while ((await device.quietFor(50)) === false) await device.next();
    const payload = rng.bytes(77);
    await fake.send(encodeDataFromPeer(token, peer, payload), clientPort);
    const got = await device.next();
    expect(hex(got.data), `seed ${seed}`).toBe(hex(payload));
    expect(got.port).toBe((await client.routePeer(peer)).port);
  });
});

describe('client: only authenticated server messages count', () => {
  const closers: (() => void)[] = [];
  afterEach(() => {
    for (const close of closers.splice(0)) close();
  });
  const credential = 'client-auth-test-credential';

  async function setup() {
    const fake = await openUdpDevice();
    const device = await openUdpDevice();
    const stranger = await openUdpDevice();
    closers.push(fake.close, device.close, stranger.close);
    const relay = new ScriptedRelay(fake, credential);
    const client = new RelayClient({ server: { family: 4, address: '127.0.0.1', port: fake.port }, credential, localPrivateKey: randomBytes(32), devicePort: device.port });
    closers.push(() => client.close());
    return { fake, device, stranger, relay, client };
  }

  it('ignores a REFUSED without a valid tag while registering, and names it only if the round fails', async () => {
    const { fake, relay, client } = await setup();
    const started = client.start();
    const hello = await fake.next();
    const message = decodeRelayMessage(hello.data);
    if (message.kind !== 'hello') throw new Error(message.kind);
    const forged = refusedSignedPart(message.nonce, RefusedReason.badAuthentication);
    await fake.send(withTag(forged, relayTag(deriveRelayAuthKey('someone-else-entirely'), forged)), hello.port);
    // The client carries on: its retransmitted HELLO gets a real CHALLENGE, and it registers.
    await relay.challenge();
    const { register, proofKey } = await relay.takeRegister();
    const answer = registeredSignedPart(register.nonce, randomBytes(8), 90);
    await fake.send(withTag(answer, relayTag(proofKey, answer)), hello.port);
    await started;
    expect(client.registered).toBe(true);
  });

  it('ignores NOT-REGISTERED and DATA that are forged, or come from another address', async () => {
    const { fake, device, stranger, relay, client } = await setup();
    const started = client.start();
    const accepted = await relay.accept();
    await started;
    const peer = randomBytes(32);

    // NOT-REGISTERED with a bad tag, or for another token, or from a stranger: still registered, no new HELLO.
    await fake.send(encodeNotRegistered(accepted.token, randomBytes(16)), accepted.clientPort);
    const otherToken = randomBytes(8);
    await fake.send(encodeNotRegistered(otherToken, notRegisteredTag(relay.authKey, otherToken)), accepted.clientPort);
    await stranger.send(encodeNotRegistered(accepted.token, notRegisteredTag(relay.authKey, accepted.token)), accepted.clientPort);
    expect(await fake.quietFor(1200)).toBe(true);
    expect(client.registered).toBe(true);

    // DATA without our token, or from a stranger: nothing reaches the device, no proxy is made.
    await fake.send(encodeDataFromPeer(randomBytes(8), peer, Uint8Array.of(1)), accepted.clientPort);
    await stranger.send(encodeDataFromPeer(accepted.token, peer, Uint8Array.of(2)), accepted.clientPort);
    expect(await device.quietFor(300)).toBe(true);
    expect(client.proxyCount).toBe(0);
    // The real thing is delivered.
    await fake.send(encodeDataFromPeer(accepted.token, peer, Uint8Array.of(3)), accepted.clientPort);
    expect((await device.next()).data).toEqual(Uint8Array.of(3));

    // An authentic NOT-REGISTERED for our token makes it register again.
    await fake.send(encodeNotRegistered(accepted.token, notRegisteredTag(relay.authKey, accepted.token)), accepted.clientPort);
    expect(decodeRelayMessage((await fake.next()).data).kind).toBe('hello');
  });

  it('reclaims idle proxies made on first sight, never routed ones, and all of them on close', async () => {
    const { fake, device, relay, client } = await setup();
    const started = client.start();
    const accepted = await relay.accept();
    await started;
    const routed = randomBytes(32);
    await client.routePeer(routed);
    for (let i = 0; i < 5; i++) {
      await fake.send(encodeDataFromPeer(accepted.token, randomBytes(32), Uint8Array.of(i)), accepted.clientPort);
      await device.next();
    }
    expect(client.proxyCount).toBe(6);
    expect(client.reclaimIdleProxies(Date.now())).toBe(0); // not idle yet
    expect(client.reclaimIdleProxies(Date.now() + 10 * 60_000)).toBe(5);
    expect(client.proxyCount).toBe(1);
    client.close();
    expect(client.proxyCount).toBe(0);
  });
});

describe('server bounds', () => {
  const closers: (() => void)[] = [];
  afterEach(() => {
    for (const close of closers.splice(0)) close();
  });
  const credential = 'server-bounds-credential';

  it('rate-limits a flood from one source, answers included, and bounds its tables', async () => {
    const server = new RelayServer({ listenPort: 0, externalAddr: '127.0.0.1', maxSessions: 0 }, credential, undefined, { ratePerSecond: 10, burst: 20, maxRegistrations: 2 });
    const endpoint = await server.start();
    closers.push(() => server.close());
    const socket = await openUdpDevice();
    closers.push(socket.close);
    const wire = new RelayWire(socket, endpoint, credential);
    let answers = 0;
    socket.socket.on('message', () => answers++);
    // The server's clock (Date) stands still during the flood: the bucket gets no refill however slowly the machine runs.
    vi.useFakeTimers({ toFake: ['Date'] });
    try {
      for (let i = 0; i < 500; i++) {
        wire.send(i % 2 === 0 ? wire.helloBytes() : encodeKeepalive(randomBytes(8)));
        if (i % 50 === 0) await new Promise((resolve) => setTimeout(resolve, 2));
      }
      await waitFor(() => server.dropped >= 500 - 20, `the flood to be counted (dropped ${server.dropped})`);
      expect(answers).toBeLessThanOrEqual(20); // the burst: nothing like 500
      expect(server.stats.rateLimited).toBeGreaterThanOrEqual(450);
      expect(server.stats.rateBuckets).toBe(1);
    } finally {
      vi.useRealTimers();
    }

    // maxRegistrations holds: a third node is refused. (Loopback sockets share the 127.0.0.1 bucket: let it refill first.)
    await new Promise((resolve) => setTimeout(resolve, 2100));
    for (let i = 0; i < 3; i++) {
      const node = await openUdpDevice();
      closers.push(node.close);
      const nodeWire = new RelayWire(node, endpoint, credential);
      const challenge = await nodeWire.hello();
      nodeWire.send(nodeWire.register(challenge));
      const answer = await nodeWire.next();
      if (i < 2) expect(answer.kind).toBe('registered');
      else expect(answer).toMatchObject({ kind: 'refused', reason: RefusedReason.serverFull });
    }
    expect(server.stats.registrations).toBe(2);
    expect(server.stats.usedCookies).toBe(2);
  });

  it('never sweeps its tables per datagram, even with max_sessions reached', async () => {
    const server = new RelayServer({ listenPort: 0, externalAddr: '127.0.0.1', maxSessions: 1 }, credential);
    const endpoint = await server.start();
    closers.push(() => server.close());
    const nodes = [];
    for (let i = 0; i < 3; i++) {
      const device = await openUdpDevice();
      closers.push(device.close);
      const client = new RelayClient({ server: endpoint, credential, localPrivateKey: randomBytes(32), devicePort: device.port });
      closers.push(() => client.close());
      await client.start();
      nodes.push({ device, client });
    }
    const [a, b, c] = nodes as [(typeof nodes)[0], (typeof nodes)[0], (typeof nodes)[0]];
    await a.device.send(Uint8Array.of(1), (await a.client.routePeer(b.client.publicKey)).port);
    await b.device.next();
    const sweep = vi.spyOn(server as unknown as { sweep(now: number): void }, 'sweep');
    const toC = await a.client.routePeer(c.client.publicKey);
    for (let i = 0; i < 300; i++) await a.device.send(Uint8Array.of(2), toC.port); // a second pair: over max_sessions
    expect(await c.device.quietFor(300)).toBe(true);
    expect(sweep.mock.calls.length).toBeLessThanOrEqual(1); // the timer's, at most: none per datagram
  });

  it('shares one overflow bucket among sources beyond maxBuckets', () => {
    const limiter = new SourceRateLimiter({ ratePerSecond: 1, burst: 2, maxBuckets: 3, overflowRatePerSecond: 1, overflowBurst: 4 });
    for (let i = 0; i < 3; i++) expect(limiter.take(`10.0.0.${i}`, 0)).toBe(true);
    const overflowed = Array.from({ length: 100 }, (_, i) => limiter.take(`10.1.0.${i}`, 0)).filter(Boolean).length;
    expect(overflowed).toBe(4);
    expect(limiter.size).toBe(3);
    limiter.sweep(10_000); // refilled buckets go
    expect(limiter.size).toBe(0);
  });
});

async function waitFor(condition: () => boolean, what: string, timeoutMs = 10_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!condition()) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((resolve) => setTimeout(resolve, 20));
  }
}
