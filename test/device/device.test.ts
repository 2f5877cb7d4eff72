/**
 * Two Devices in one process, joined over loopback UDP, each with an in-memory TUN:
 * routing by allowed IPs, the inbound source check, roaming, UAPI state, and
 * the under-load cookie path, without namespaces or root.
 */
import { afterEach, describe, expect, it } from 'vitest';
import { closeSync, openSync } from 'node:fs';
import dgram from 'node:dgram';
import koffi from 'koffi';
import { UdpBindError, type UdpBind } from '../../src/device/bind.js';
import { Device } from '../../src/device/device.js';
import { parseCidr, type Cidr } from '../../src/device/addr.js';
import { silentLogger } from '../../src/device/logger.js';
import type { UapiPeerChange } from '../../src/device/uapi.js';
import { generatePrivateKey, publicKeyOf } from '../../src/noise/index.js';
import { MemoryTun } from '../../bench/lib/memory-tun.js';
import { buildIcmpEcho, parseIcmpEcho, parseIpv4 } from '../helpers/ip.js';
import { MAIN_POLL_ENV } from '../../src/platform/packet-reading.js';

interface Node {
  device: Device;
  tun: MemoryTun;
  privateKey: Uint8Array;
  publicKey: Uint8Array;
  address: string;
}

const devices: Device[] = [];

async function makeNode(address: string, options: { underLoadThreshold?: number } = {}): Promise<Node> {
  const tun = new MemoryTun();
  const device = new Device({ tun, log: silentLogger, ...options });
  await device.start();
  devices.push(device);
  const privateKey = generatePrivateKey();
  await device.set({ privateKey, replacePeers: false, peers: [] });
  return { device, tun, privateKey, publicKey: publicKeyOf(privateKey), address };
}

function peerChange(peer: Node, allowedIps: Cidr[], withEndpoint = true): UapiPeerChange {
  return {
    publicKey: peer.publicKey,
    remove: false,
    updateOnly: false,
    replaceAllowedIps: true,
    allowedIps,
    ...(withEndpoint ? { endpoint: { family: 4 as const, address: '127.0.0.1', port: peer.device.listenPort } } : {}),
  };
}

async function connect(a: Node, b: Node): Promise<void> {
  await a.device.set({ replacePeers: false, peers: [peerChange(b, [parseCidr(`${b.address}/32`)])] });
  await b.device.set({ replacePeers: false, peers: [peerChange(a, [parseCidr(`${a.address}/32`)])] });
}

function echo(from: string, to: string, sequence = 1): Uint8Array {
  return buildIcmpEcho({ source: from, destination: to, type: 8, identifier: 7, sequence, payload: new Uint8Array(32).fill(sequence) });
}

afterEach(async () => {
  await Promise.all(devices.splice(0).map((device) => device.close()));
});

describe('Device over loopback', () => {
  it('routes a packet by allowed IPs through a handshake and delivers it, trimmed of padding', async () => {
    const a = await makeNode('10.9.0.1');
    const b = await makeNode('10.9.0.2');
    await connect(a, b);
    const packet = echo(a.address, b.address);
    a.tun.inject(packet);
    const [delivered] = await b.tun.waitForPackets(1);
    expect(Buffer.from(delivered!).equals(Buffer.from(packet))).toBe(true);
    expect(parseIcmpEcho(parseIpv4(delivered!)).sequence).toBe(1);
    const state = a.device.get();
    expect(state.peers[0]!.lastHandshakeTimeMs).toBeGreaterThan(0);
    expect(state.peers[0]!.txBytes).toBeGreaterThan(0);
    expect(b.device.get().peers[0]!.rxBytes).toBeGreaterThan(0);
  });

  it('drops a packet whose inner source is outside the sender peer allowed IPs', async () => {
    const a = await makeNode('10.9.0.1');
    const b = await makeNode('10.9.0.2');
    await connect(a, b);
    a.tun.inject(echo(a.address, b.address, 1));
    await b.tun.waitForPackets(1);
    // A routes 10.9.0.2 to B, but B only accepts 10.9.0.1 from A.
    a.tun.inject(echo('10.9.0.66', b.address, 2));
    a.tun.inject(echo(a.address, b.address, 3));
    const packets = await b.tun.waitForPackets(2);
    expect(packets.map((p) => parseIcmpEcho(parseIpv4(p)).sequence)).toEqual([1, 3]);
  });

  it('sends nothing for a destination no peer owns', async () => {
    const a = await makeNode('10.9.0.1');
    const b = await makeNode('10.9.0.2');
    await connect(a, b);
    a.tun.inject(echo(a.address, '10.9.0.99', 1));
    // A packet for b afterwards: had the first gone anywhere, it would have gone before this one.
    a.tun.inject(echo(a.address, b.address, 2));
    const delivered = await b.tun.waitForPackets(1);
    expect(delivered.map((p) => parseIcmpEcho(parseIpv4(p)).sequence)).toEqual([2]);
    // The initiation (148 bytes) and the one packet for b (16 + 64 + 16), nothing more.
    expect(a.device.get().peers[0]!.txBytes).toBe(148 + 96);
  });

  it('learns the endpoint of a peer configured without one (roaming to the authenticated source)', async () => {
    const a = await makeNode('10.9.0.1');
    const b = await makeNode('10.9.0.2');
    await a.device.set({ replacePeers: false, peers: [peerChange(b, [parseCidr('10.9.0.2/32')])] });
    await b.device.set({ replacePeers: false, peers: [peerChange(a, [parseCidr('10.9.0.1/32')], false)] });
    expect(b.device.get().peers[0]!.endpoint).toBeNull();
    a.tun.inject(echo(a.address, b.address));
    await b.tun.waitForPackets(1);
    expect(b.device.get().peers[0]!.endpoint).toEqual({ family: 4, address: '127.0.0.1', port: a.device.listenPort });
    b.tun.inject(echo(b.address, a.address, 2));
    await a.tun.waitForPackets(1);
  });

  it('under load demands a cookie, and the initiator gets through with MAC2 on its retry', async () => {
    const a = await makeNode('10.9.0.1');
    const b = await makeNode('10.9.0.2', { underLoadThreshold: 0 });
    await connect(a, b);
    a.tun.inject(echo(a.address, b.address));
    // B answers the first initiation with a cookie reply; A retries after REKEY_TIMEOUT (5 s + jitter) with MAC2.
    const [delivered] = await b.tun.waitForPackets(1, 8000);
    expect(parseIcmpEcho(parseIpv4(delivered!)).sequence).toBe(1);
  });

  it('a bad UAPI change is refused without touching the device', async () => {
    const a = await makeNode('10.9.0.1');
    const b = await makeNode('10.9.0.2');
    await connect(a, b);
    const before = JSON.stringify(a.device.get());
    const other = await makeNode('10.9.0.3');
    // Port in use: B's port. Nothing else in the request may be applied.
    await expect(
      a.device.set({ listenPort: b.device.listenPort, replacePeers: true, peers: [peerChange(other, [parseCidr('10.9.0.3/32')])] }),
    ).rejects.toMatchObject({ errno: 98 });
    expect(JSON.stringify(a.device.get())).toBe(before);
  });

  it('removing a peer stops its traffic and releases its routes', async () => {
    const a = await makeNode('10.9.0.1');
    const b = await makeNode('10.9.0.2');
    await connect(a, b);
    await a.device.set({ replacePeers: false, peers: [{ ...peerChange(b, []), remove: true }] });
    expect(a.device.get().peers).toEqual([]);
    a.tun.inject(echo(a.address, b.address, 1));
    // Configured again, the peer gets the next packet: the one sent while it was gone must not come before it.
    await connect(a, b);
    a.tun.inject(echo(a.address, b.address, 2));
    const delivered = await b.tun.waitForPackets(1);
    expect(delivered.map((p) => parseIcmpEcho(parseIpv4(p)).sequence)).toEqual([2]);
  });

  it('a UDP socket that fails under the device closes it, and onClose hears a UdpBindError (the I/O thread reading)', async () => {
    // Read by the I/O thread: a descriptor swapped for another file under libuv's own poll is
    // not something the main thread's poll can survive (libuv aborts when epoll refuses it).
    const asked = process.env[MAIN_POLL_ENV];
    process.env[MAIN_POLL_ENV] = '0';
    let node: Awaited<ReturnType<typeof makeNode>>;
    try {
      node = await makeNode('10.9.0.1');
    } finally {
      if (asked === undefined) delete process.env[MAIN_POLL_ENV];
      else process.env[MAIN_POLL_ENV] = asked;
    }
    const closed = new Promise<Error | null>((resolve) => node.device.onClose(resolve));
    // Put a non-socket (/dev/null) where the device's IPv4 socket was: the next receive fails with ENOTSOCK.
    const fd = (node.device as unknown as { bind: UdpBind }).bind.fd(4)!;
    const devNull = openSync('/dev/null', 'r');
    const dup2 = koffi.load('libc.so.6').func('int dup2(int oldfd, int newfd)') as (oldFd: number, newFd: number) => number;
    try {
      expect(dup2(devNull, fd)).toBe(fd);
      const v4 = dgram.createSocket('udp4');
      v4.send(new Uint8Array(8), node.device.listenPort, '127.0.0.1', () => v4.close());
      const error = await Promise.race([closed, new Promise<never>((_, reject) => setTimeout(() => reject(new Error('the device never closed')), 3000))]);
      expect(error).toBeInstanceOf(UdpBindError);
      expect(error!.message).toMatch(/^UDP receive stopped: recvmmsg failed: (ENOTSOCK|EBADF)/);
    } finally {
      closeSync(devNull);
    }
  });
});
