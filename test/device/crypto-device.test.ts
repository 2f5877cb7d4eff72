/**
 * Two Devices over loopback UDP with TSWG_CRYPTO_WORKERS=2: packets from
 * the in-memory TUN's shared slots are sealed by the workers, datagrams from
 * the UDP ring opened by them, and everything arrives, in order, both ways.
 */
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { connectOverLoopback } from '../helpers/loopback-peers.js';
import { CRYPTO_WORKERS_ENV } from '../../src/device/constants.js';
import { Device } from '../../src/device/device.js';
import { silentLogger } from '../../src/device/logger.js';
import { generatePrivateKey, publicKeyOf } from '../../src/noise/index.js';
import { MemoryTun } from '../../bench/lib/memory-tun.js';
import { buildIcmpEcho, parseIcmpEcho, parseIpv4 } from '../helpers/ip.js';

const BATCH = 32;
const devices: Device[] = [];
let savedEnvironment: string | undefined;

beforeEach(() => {
  savedEnvironment = process.env[CRYPTO_WORKERS_ENV];
  process.env[CRYPTO_WORKERS_ENV] = '2';
});

afterEach(async () => {
  if (savedEnvironment === undefined) delete process.env[CRYPTO_WORKERS_ENV];
  else process.env[CRYPTO_WORKERS_ENV] = savedEnvironment;
  await Promise.all(devices.splice(0).map((device) => device.close()));
});

async function makeNode(address: string) {
  const tun = new MemoryTun(1420, { shared: true, slots: BATCH });
  const device = new Device({ tun, log: silentLogger });
  await device.start();
  devices.push(device);
  const privateKey = generatePrivateKey();
  await device.set({ privateKey, replacePeers: false, peers: [] });
  return { device, tun, publicKey: publicKeyOf(privateKey), address };
}

type Node = Awaited<ReturnType<typeof makeNode>>;


function echo(from: string, to: string, sequence: number, size: number): Uint8Array {
  return buildIcmpEcho({ source: from, destination: to, type: 8, identifier: 9, sequence, payload: new Uint8Array(size).fill(sequence & 0xff) });
}

/** `count` echoes of mixed sizes from one node to the other, BATCH per ring-like batch; returns what arrived, by sequence. */
async function stream(from: Node, to: Node, count: number): Promise<number[]> {
  const already = to.tun.written.length;
  for (let first = 0; first < count; first += BATCH) {
    const packets = Array.from({ length: Math.min(BATCH, count - first) }, (_, i) => echo(from.address, to.address, first + i, 16 + (((first + i) * 97) % 1300)));
    from.tun.injectSlots(packets);
    // Let the receiver's I/O thread and ring keep up, as a paced sender would.
    await to.tun.waitForPackets(already + first + packets.length, 5000);
  }
  return to.tun.written.slice(already).map((packet) => parseIcmpEcho(parseIpv4(packet)).sequence);
}

describe('Device with crypto workers', () => {
  it('moves traffic both ways in order, sealed and opened by two workers', async () => {
    const a = await makeNode('10.9.1.1');
    const b = await makeNode('10.9.1.2');
    expect(a.device.cryptoWorkers).toBe(2);
    expect(b.device.cryptoWorkers).toBe(2);
    await connectOverLoopback(a, b);
    // The first packet waits for the handshake (ordinary path); the rest take the workers.
    a.tun.inject(echo(a.address, b.address, 9999, 32));
    await b.tun.waitForPackets(1);
    const count = 640;
    expect(await stream(a, b, count)).toEqual(Array.from({ length: count }, (_, i) => i));
    expect(await stream(b, a, count)).toEqual(Array.from({ length: count }, (_, i) => i));
    const delivered = b.tun.written.slice(1);
    delivered.forEach((packet, i) => expect(packet.length).toBe(echo(a.address, b.address, i, 16 + ((i * 97) % 1300)).length));
    for (const node of [a, b]) {
      expect(node.device.counters.transportForged).toBe(0);
      expect(node.device.counters.cryptoLost).toBe(0);
    }
    const sent = a.device.get().peers[0]!.txBytes;
    expect(b.device.get().peers[0]!.rxBytes).toBe(sent);
  });

  it('runs inline with TSWG_CRYPTO_WORKERS=0', async () => {
    process.env[CRYPTO_WORKERS_ENV] = '0';
    const a = await makeNode('10.9.1.1');
    expect(a.device.cryptoWorkers).toBe(0);
  });
});
