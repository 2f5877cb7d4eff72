/**
 * Hostile input against one Device in this process, over loopback, without
 * root (the end-to-end attacks on a daemon are in hostile.test.ts): short and
 * stale packets from the TUN device, a handshake flood from spoofed sources
 * while a legitimate peer handshakes, many peers staging packets, and key
 * material left in memory after it is discarded.
 */
import { afterEach, describe, expect, it } from 'vitest';
import { Device } from '../../src/device/device.js';
import { parseCidr, type Cidr } from '../../src/device/addr.js';
import { silentLogger } from '../../src/device/logger.js';
import type { UapiPeerChange } from '../../src/device/uapi.js';
import { generatePrivateKey, publicKeyOf } from '../../src/noise/index.js';
import { MemoryTun } from '../../bench/lib/memory-tun.js';
import { buildIcmpEcho } from '../helpers/ip.js';

interface Node {
  device: Device;
  tun: MemoryTun;
  privateKey: Uint8Array;
  publicKey: Uint8Array;
}

const devices: Device[] = [];

async function makeNode(options: { underLoadThreshold?: number } = {}): Promise<Node> {
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
    await b.tun.waitForPackets(2);
    await sleep(200);
    // The initiation (148 bytes), then the two real packets: 16 + 64 (60 padded) + 16 and 16 + 48 + 16.
    expect(a.device.get().peers[0]!.txBytes).toBe(148 + 96 + 80);
    expect(b.tun.written.length).toBe(2);
    expect(a.device.counters.tunMalformed).toBe(9);
  });
});
