/**
 * Hostile input against one Device in this process, over loopback, without
 * root (the end-to-end attacks on a daemon are in hostile.test.ts): short and
 * stale packets from the TUN device, a handshake flood from spoofed sources
 * while a legitimate peer handshakes, many peers staging packets, and key
 * material left in memory after it is discarded.
 */
import dgram from 'node:dgram';
import { afterEach, describe, expect, it } from 'vitest';
import { Device } from '../../src/device/device.js';
import { parseCidr, type Cidr } from '../../src/device/addr.js';
import { silentLogger } from '../../src/device/logger.js';
import type { UapiPeerChange } from '../../src/device/uapi.js';
import { StaticIdentity, Tunnel, generatePrivateKey, messageType, publicKeyOf } from '../../src/noise/index.js';
import { ManualClock, type Clock } from '../../src/noise/clock.js';
import { isAllZero } from '../../src/noise/bytes.js';
import { MemoryTun } from '../../bench/lib/memory-tun.js';
import { buildIcmpEcho } from '../helpers/ip.js';

interface Node {
  device: Device;
  tun: MemoryTun;
  privateKey: Uint8Array;
  publicKey: Uint8Array;
}

const devices: Device[] = [];

async function makeNode(options: { underLoadThreshold?: number; handshakeBudget?: number; maxStagedBytes?: number; cryptoWorkers?: number; clock?: Clock } = {}): Promise<Node> {
  const tun = new MemoryTun();
  const device = new Device({ tun, log: silentLogger, ...options });
  await device.start();
  devices.push(device);
  const privateKey = generatePrivateKey();
  await device.set({ privateKey: new Uint8Array(privateKey), replacePeers: false, peers: [] });
  return { device, tun, privateKey, publicKey: publicKeyOf(privateKey) };
}

function peerChange(peer: Node, allowedIps: Cidr[]): UapiPeerChange {
  return {
    publicKey: peer.publicKey,
    remove: false,
    updateOnly: false,
    replaceAllowedIps: true,
    allowedIps,
    endpoint: { family: 4, address: '127.0.0.1', port: peer.device.listenPort },
  };
}

/** a routes 10.9.0.2 and fd09::2 to b; b accepts 10.9.0.1 and fd09::1 from a. */
async function connect(a: Node, b: Node): Promise<void> {
  await a.device.set({ replacePeers: false, peers: [peerChange(b, [parseCidr('10.9.0.2/32'), parseCidr('fd09::2/128')])] });
  await b.device.set({ replacePeers: false, peers: [peerChange(a, [parseCidr('10.9.0.1/32'), parseCidr('fd09::1/128')])] });
}

function echo4(sequence: number): Uint8Array {
  return buildIcmpEcho({ source: '10.9.0.1', destination: '10.9.0.2', type: 8, identifier: 7, sequence, payload: new Uint8Array(32).fill(sequence) });
}

/** An IPv6 packet fd09::1 → fd09::2 with `payload` bytes of no next header (59). */
function packet6(payload: number): Uint8Array {
  const packet = new Uint8Array(40 + payload);
  packet[0] = 0x60;
  packet[4] = payload >> 8;
  packet[5] = payload & 0xff;
  packet[6] = 59;
  packet[7] = 64;
  packet.set([0xfd, 0x09], 8);
  packet[23] = 1;
  packet.set([0xfd, 0x09], 24);
  packet[39] = 2;
  return packet;
}

const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

/** Wait for `condition`; the deadline is generous and only matters when the condition never comes. */
async function until(condition: () => boolean, describe: () => string, timeoutMs = 30_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!condition()) {
    if (Date.now() > deadline) throw new Error(`timed out after ${timeoutMs} ms waiting for ${describe()}`);
    await sleep(10);
  }
}

afterEach(async () => {
  await Promise.all(devices.splice(0).map((device) => device.close()));
});

describe('packets from the TUN device', () => {
  it('shorter than their IP header are dropped and counted, never routed on the stale bytes of the slot', async () => {
    const a = await makeNode();
    const b = await makeNode();
    await connect(a, b);
    // No session yet: each packet is copied out and staged, and its plaintext stays in the slot.
    a.tun.injectSlot(echo4(1));
    // A 3- or 19-byte "packet" would route to b on the IPv4 destination left in the slot.
    for (const length of [3, 19]) a.tun.injectSlot(null, length);
    a.tun.injectSlot(packet6(8));
    for (const length of [1, 3, 20, 39]) a.tun.injectSlot(null, length);
    // A version nibble that is neither 4 nor 6, at full length; and short packets on the plain path.
    const bogus = echo4(3);
    bogus[0] = 0x55;
    a.tun.injectSlot(bogus);
    a.tun.inject(new Uint8Array([0x45, 0, 0]));
    a.tun.inject(packet6(8).subarray(0, 39));
    // A real packet after the bad ones: had any of them been routed, it would arrive before this one.
    const marker = echo4(4);
    a.tun.inject(marker);
    const written = await b.tun.waitForPackets(3);
    expect(Buffer.from(written[2]!).equals(Buffer.from(marker)), 'the third packet on b is the marker').toBe(true);
    // The initiation (148 bytes), then the three real packets: 16 + 64 (60 padded) + 16, 16 + 48 + 16 and 16 + 64 + 16.
    expect(a.device.get().peers[0]!.txBytes).toBe(148 + 96 + 80 + 96);
    expect(b.tun.written.length).toBe(3);
    expect(a.device.counters.tunMalformed).toBe(9);
  });
});

/** A peer of the device driven by the protocol core, sending from `socket`. */
class CorePeer {
  readonly identity = new StaticIdentity(generatePrivateKey());
  readonly tunnel: Tunnel;

  constructor(
    readonly socket: dgram.Socket,
    readonly device: Node,
  ) {
    this.tunnel = new Tunnel({ identity: this.identity, peerPublicKey: device.publicKey });
  }

  /** A fresh initiation now (REKEY_TIMEOUT waived), with MAC2 when a cookie is held. */
  initiation(): Uint8Array {
    this.tunnel.endpointChanged();
    return this.tunnel.initiateHandshake().network[0]!;
  }

  send(datagram: Uint8Array): void {
    this.socket.send(datagram, this.device.device.listenPort, '127.0.0.1');
  }
}

async function openSocket(address: string, onMessage: (data: Uint8Array) => void): Promise<dgram.Socket> {
  const socket = dgram.createSocket({ type: 'udp4', recvBufferSize: 4 << 20 });
  socket.on('message', (message) => onMessage(new Uint8Array(message)));
  await new Promise<void>((resolve) => socket.bind(0, address, resolve));
  return socket;
}

describe('a handshake flood', () => {
  // The device runs on a manual clock: its budget refills only as the test advances time, so every
  // bound below is exact token arithmetic, whatever the machine's load.
  it('beyond the global budget gets cookie replies, not responses; a peer holding a cookie still completes its handshake during it', async () => {
    const BUDGET = 20;
    const FLOODERS = 100;
    /** Device time per round of the flood (20 initiations): 2,000 initiations per device second. */
    const ROUND_MS = 10;
    const clock = new ManualClock();
    // The received-rate rule is set out of reach: what limits here is the budget of X25519 work.
    const a = await makeNode({ handshakeBudget: BUDGET, underLoadThreshold: 1e9, clock });
    const received = { response: 0, 'cookie-reply': 0, other: 0 };
    const floodSocket = await openSocket('127.0.0.1', (data) => {
      const type = messageType(data);
      if (type === 'response' || type === 'cookie-reply') received[type]++;
      else received.other++;
    });
    const flooders = Array.from({ length: FLOODERS }, () => new CorePeer(floodSocket, a));
    // The flood comes from configured peers, so every initiation given X25519 work is answered with a response.
    await a.device.set({ replacePeers: false, peers: flooders.map((f) => ({ publicKey: f.identity.publicKey, remove: false, updateOnly: false, replaceAllowedIps: false, allowedIps: [] })) });

    // 1. A burst of FLOODERS initiations without MAC2 (the flooder never reads its cookies, as a spoofing one cannot).
    // With the clock still, exactly the budget is answered and the rest asked for a cookie.
    const burst = flooders.map((flooder) => flooder.initiation());
    burst.forEach((initiation, i) => flooders[i]!.send(initiation));
    await until(() => received.response + received['cookie-reply'] >= FLOODERS, () => `answers to the burst: ${JSON.stringify(received)}`);
    expect(received.response + received['cookie-reply']).toBe(FLOODERS);
    expect(received.response).toBe(BUDGET);
    expect(received['cookie-reply']).toBe(FLOODERS - BUDGET);
    expect(a.device.counters.cookieReplies).toBe(received['cookie-reply']);

    // 2. The flood goes on (2,000 initiations per device second) while a legitimate peer handshakes from 127.0.0.2.
    let flooding = true;
    let next = 0;
    const flood = (async () => {
      while (flooding) {
        for (let i = 0; i < 20; i++) {
          const flooder = flooders[next++ % FLOODERS]!;
          flooder.send(flooder.initiation());
        }
        clock.advance(ROUND_MS);
        await sleep(ROUND_MS);
      }
    })();
    const phase2Start = clock.now();
    const responsesBefore = received.response;
    const inbox: Uint8Array[] = [];
    const legitSocket = await openSocket('127.0.0.2', (data) => inbox.push(data));
    const peer = new CorePeer(legitSocket, a);
    await a.device.set({ replacePeers: false, peers: [{ publicKey: peer.identity.publicKey, remove: false, updateOnly: false, replaceAllowedIps: false, allowedIps: [] }] });
    let cookies = 0;
    let completed = false;
    // Attempts of 40 flood rounds each; the deadline only matters when the handshake never completes.
    const giveUpAt = Date.now() + 30_000;
    while (!completed && Date.now() < giveUpAt) {
      peer.send(peer.initiation());
      const attemptEnds = clock.now() + 40 * ROUND_MS;
      while (!completed && clock.now() < attemptEnds && Date.now() < giveUpAt) {
        await sleep(ROUND_MS);
        let cookieNow = false;
        for (const data of inbox.splice(0)) {
          const type = messageType(data);
          const out = peer.tunnel.decapsulate(data);
          if (type === 'cookie-reply' && out.error === null) {
            cookies++;
            cookieNow = true;
          }
          if (type === 'response' && out.error === null) {
            for (const datagram of out.network) peer.send(datagram); // the keepalive that confirms the session
            completed = true;
          }
        }
        if (cookieNow && !completed) break; // retry at once with the cookie
      }
    }
    flooding = false;
    await flood;
    const floodSeconds = (clock.now() - phase2Start) / 1000;
    expect(cookies, 'the legitimate peer was asked for a cookie: the device was under load').toBeGreaterThan(0);
    expect(completed).toBe(true);
    const state = () => a.device.get().peers.find((p) => Buffer.from(p.publicKey).equals(Buffer.from(peer.identity.publicKey)))!;
    await until(() => state().lastHandshakeTimeMs > 0, () => 'the device to take the confirming keepalive');
    // The flood's X25519 work stayed within the budget: one full bucket plus the refill over the device time that passed.
    expect(received.response - responsesBefore).toBeLessThanOrEqual(BUDGET * (floodSeconds + 1));
    expect(next).toBeGreaterThan(10 * (received.response - responsesBefore));
    floodSocket.close();
    legitSocket.close();
  });
});

describe('cookie replies', () => {
  it('leave from the local address the handshake message was sent to, as transport replies do', async () => {
    // Always under load: every initiation without MAC2 is answered with a cookie reply.
    const node = await makeNode({ underLoadThreshold: 0 });
    const replies: Array<{ type: string | null; from: string }> = [];
    const socket = dgram.createSocket('udp4');
    socket.on('message', (message, remote) => replies.push({ type: messageType(new Uint8Array(message)), from: remote.address }));
    await new Promise<void>((resolve) => socket.bind(0, '127.0.0.1', resolve));
    const peer = new CorePeer(socket, node);
    await node.device.set({ replacePeers: false, peers: [{ publicKey: peer.identity.publicKey, remove: false, updateOnly: false, replaceAllowedIps: false, allowedIps: [] }] });

    // Both addresses are the device's (loopback); for a reply to 127.0.0.1 the kernel alone would pick 127.0.0.1.
    for (const [i, local] of ['127.0.0.2', '127.0.0.1', '127.0.0.3'].entries()) {
      socket.send(peer.initiation(), node.device.listenPort, local);
      const deadline = Date.now() + 3000;
      while (replies.length <= i && Date.now() < deadline) await sleep(10);
      expect(replies[i]).toEqual({ type: 'cookie-reply', from: local });
    }
    expect(node.device.counters.cookieReplies).toBe(3);
    socket.close();
  });
});

describe('forged transport data', () => {
  /** Wait until `condition` holds (polled), or fail after `ms`. */
  async function until(condition: () => boolean, ms: number, what: string): Promise<void> {
    const deadline = Date.now() + ms;
    while (!condition()) {
      if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
      await sleep(10);
    }
  }

  /** A transport datagram for `peer`'s session whose tag no longer authenticates. */
  function forged(peer: CorePeer, sequence: number): Uint8Array {
    const [datagram] = peer.tunnel.encapsulate(packet4([10, 9, 0, 2], 60 + sequence)).network;
    const copy = new Uint8Array(datagram!);
    copy[copy.length - 1]! ^= 0x01;
    return copy;
  }

  for (const cryptoWorkers of [0, 2]) {
    it(`is dropped and counted on every receive path (${cryptoWorkers === 0 ? 'inline' : `${cryptoWorkers} crypto workers`}), and the session goes on`, async () => {
      const node = await makeNode({ cryptoWorkers });
      const inbox: Uint8Array[] = [];
      const socket = await openSocket('127.0.0.1', (data) => inbox.push(data));
      const peer = new CorePeer(socket, node);
      await node.device.set({ replacePeers: false, peers: [{ publicKey: peer.identity.publicKey, remove: false, updateOnly: false, replaceAllowedIps: false, allowedIps: [parseCidr('10.9.0.1/32')] }] });

      peer.send(peer.initiation());
      await until(() => inbox.length > 0, 3000, 'the handshake response');
      const answer = peer.tunnel.decapsulate(inbox.shift()!);
      expect(answer.error).toBeNull();
      expect(node.device.counters.transportForged).toBe(0);

      // The device's session awaits confirmation: its fast paths decline the datagram and the reference path opens it.
      peer.send(forged(peer, 1));
      await until(() => node.device.counters.transportForged === 1, 3000, 'the forged datagram on the reference path to be counted');

      // The keepalive confirms the session; data then takes the fast path.
      for (const datagram of answer.network) peer.send(datagram);
      peer.send(peer.tunnel.encapsulate(packet4([10, 9, 0, 2], 70)).network[0]!);
      await node.tun.waitForPackets(1);
      peer.send(forged(peer, 2));
      await until(() => node.device.counters.transportForged === 2, 3000, 'the forged datagram on the fast path to be counted');
      peer.send(peer.tunnel.encapsulate(packet4([10, 9, 0, 2], 80)).network[0]!);
      const delivered = await node.tun.waitForPackets(2);
      // Only the authentic packets reached the TUN device.
      expect(delivered.map((packet) => packet.length)).toEqual([70, 80]);
      expect(node.device.counters.transportForged).toBe(2);
      socket.close();
    });
  }
});

/** A bare IPv4 packet of `length` bytes from 10.9.0.1 to `destination`. */
function packet4(destination: number[], length: number): Uint8Array {
  const packet = new Uint8Array(length);
  packet[0] = 0x45;
  packet[2] = length >> 8;
  packet[3] = length & 0xff;
  packet[8] = 64;
  packet[9] = 59;
  packet.set([10, 9, 0, 1], 12);
  packet.set(destination, 16);
  return packet;
}

describe('many peers staging packets', () => {
  it('hold no more than the device-wide limit together; the rest is refused and counted, and the bytes come back', async () => {
    const LIMIT = 200_000;
    const PEERS = 50;
    const a = await makeNode({ maxStagedBytes: LIMIT });
    const b = await makeNode();
    await connect(a, b);
    // Peers whose endpoint never answers: their packets wait for a handshake that does not come.
    const blackHole = await openSocket('127.0.0.1', () => undefined);
    const silent = Array.from({ length: PEERS }, () => publicKeyOf(generatePrivateKey()));
    await a.device.set({
      replacePeers: false,
      peers: silent.map((publicKey, i) => ({
        publicKey,
        remove: false,
        updateOnly: false,
        replaceAllowedIps: true,
        allowedIps: [parseCidr(`10.50.${i}.0/24`)],
        endpoint: { family: 4 as const, address: '127.0.0.1', port: (blackHole.address() as { port: number }).port },
      })),
    });
    for (let round = 0; round < 128; round++) for (let i = 0; i < PEERS; i++) a.tun.inject(packet4([10, 50, i, 1], 1000));
    expect(a.device.staging.bytes).toBeLessThanOrEqual(LIMIT);
    expect(a.device.staging.bytes).toBe(Math.floor(LIMIT / 1000) * 1000);
    expect(a.device.staging.refused).toBe(PEERS * 128 - Math.floor(LIMIT / 1000));
    // A peer that does answer still gets its packets through (staging for it is refused while full, so it sends at once after the handshake).
    const held = a.device.staging.bytes;
    a.tun.inject(echo4(1));
    const towardB = () => a.device.get().peers.find((p) => Buffer.from(p.publicKey).equals(Buffer.from(b.publicKey)))!;
    await until(() => towardB().lastHandshakeTimeMs > 0, () => 'the handshake with b that the refused packet started');
    a.tun.inject(echo4(2));
    await b.tun.waitForPackets(1);
    expect(a.device.staging.bytes).toBe(held);
    // Removing the silent peers gives their bytes back.
    await a.device.set({ replacePeers: false, peers: silent.map((publicKey) => ({ publicKey, remove: true, updateOnly: false, replaceAllowedIps: false, allowedIps: [] })) });
    expect(a.device.staging.bytes).toBe(0);
    blackHole.close();
  });
});

describe('key material the device discards', () => {
  it('is zeroed: the old private key when it is replaced, a removed peer’s pre-shared key, the private key on close', async () => {
    const a = await makeNode();
    const b = await makeNode();
    await connect(a, b);
    await a.device.set({ replacePeers: false, peers: [{ ...peerChange(b, []), replaceAllowedIps: false, presharedKey: new Uint8Array(32).fill(9) }] });
    await b.device.set({ replacePeers: false, peers: [{ ...peerChange(a, []), replaceAllowedIps: false, presharedKey: new Uint8Array(32).fill(9) }] });
    a.tun.inject(echo4(1));
    await b.tun.waitForPackets(1);
    const oldKey = a.device.get().privateKey!;
    const psk = a.device.get().peers[0]!.presharedKey!;
    expect(isAllZero(oldKey) || isAllZero(psk)).toBe(false);
    await a.device.set({ privateKey: generatePrivateKey(), replacePeers: false, peers: [] });
    expect(isAllZero(oldKey), 'the replaced private key').toBe(true);
    expect(isAllZero(psk)).toBe(false);
    const newKey = a.device.get().privateKey!;
    await a.device.set({ replacePeers: false, peers: [{ ...peerChange(b, []), remove: true }] });
    expect(isAllZero(psk), "the removed peer's pre-shared key").toBe(true);
    await a.device.close();
    expect(isAllZero(newKey), 'the private key after close').toBe(true);
  });
});
