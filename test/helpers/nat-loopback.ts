/**
 * In-process WireGuard devices for the NAT unit tests: real Device objects
 * with a fake TUN, talking over loopback UDP (no root, no namespaces), plus
 * a tiny UDP forwarder that stands in for a relay, a black-hole port that
 * stands in for a dead candidate, and a minimal STUN server on loopback.
 */
import dgram from 'node:dgram';
import type { AddressInfo } from 'node:net';
import { Device } from '../../src/device/device.js';
import { parseCidr, type Endpoint } from '../../src/device/addr.js';
import { silentLogger } from '../../src/device/logger.js';
import { generatePrivateKey, publicKeyOf } from '../../src/noise/index.js';
import { StunAttributeType, StunMessageType } from '../../src/nat/stun/constants.js';
import { decodeStunMessage, encodeStunMessage, encodeXorAddress } from '../../src/nat/stun/message.js';
import type { TunDevice, TunHandlers } from '../../src/tun/tun.js';

export class FakeTun implements TunDevice {
  readonly name = 'fake0';
  readonly mtu = 1420;
  readonly written: Uint8Array[] = [];
  private handlers: TunHandlers | null = null;

  start(handlers: TunHandlers): void {
    this.handlers = handlers;
  }
  /** A packet the kernel would hand the device. */
  inject(packet: Uint8Array): void {
    this.handlers?.packet(packet);
  }
  write(packet: Uint8Array): boolean {
    this.written.push(new Uint8Array(packet));
    return true;
  }
  async close(): Promise<void> {}
  /** The packets written so far, once there are at least `count`. */
  async waitForPackets(count: number, timeoutMs = 5000): Promise<Uint8Array[]> {
    const deadline = Date.now() + timeoutMs;
    while (this.written.length < count) {
      if (Date.now() > deadline) throw new Error(`expected ${count} packet(s) on the fake TUN, got ${this.written.length}`);
      await new Promise((resolve) => setTimeout(resolve, 20));
    }
    return this.written;
  }
}

export interface LoopbackNode {
  device: Device;
  tun: FakeTun;
  publicKey: Uint8Array;
  /** Where this device listens, on 127.0.0.1. */
  endpoint: Endpoint;
  inner: string;
}

const opened: Array<{ close(): unknown }> = [];

export async function loopbackNode(inner: string): Promise<LoopbackNode> {
  const tun = new FakeTun();
  const device = new Device({ tun, log: silentLogger });
  await device.start();
  opened.push({ close: () => device.close() });
  const privateKey = generatePrivateKey();
  await device.set({ privateKey, replacePeers: false, peers: [] });
  return { device, tun, publicKey: publicKeyOf(privateKey), endpoint: { family: 4, address: '127.0.0.1', port: device.listenPort }, inner };
}

/** Make `a` and `b` peers of each other with no endpoints (NAT traversal has to find them). */
export async function introduce(a: LoopbackNode, b: LoopbackNode): Promise<void> {
  for (const [self, other] of [
    [a, b],
    [b, a],
  ] as const) {
    await self.device.set({
      replacePeers: false,
      peers: [{ publicKey: other.publicKey, remove: false, updateOnly: false, replaceAllowedIps: true, allowedIps: [parseCidr(`${other.inner}/32`)] }],
    });
  }
}

/** A bound UDP socket that never answers: a candidate that leads nowhere. */
export async function blackHole(): Promise<{ endpoint: Endpoint; received: () => number }> {
  const socket = dgram.createSocket('udp4');
  let count = 0;
  socket.on('message', () => count++);
  await new Promise<void>((resolve) => socket.bind(0, '127.0.0.1', resolve));
  opened.push(socket);
  return { endpoint: { family: 4, address: '127.0.0.1', port: (socket.address() as AddressInfo).port }, received: () => count };
}

/**
 * A two-sided UDP forwarder: what arrives on `front` goes to `target` and
 * what `target` answers goes back to whoever last sent to `front` — the
 * shape of a relay allocation for one peer.
 */
export async function forwarder(target: Endpoint): Promise<{ endpoint: Endpoint; forwarded: () => number }> {
  const front = dgram.createSocket('udp4');
  const back = dgram.createSocket('udp4');
  let client: { address: string; port: number } | null = null;
  let count = 0;
  front.on('message', (message, info) => {
    client = { address: info.address, port: info.port };
    count++;
    back.send(message, target.port, target.address);
  });
  back.on('message', (message) => {
    if (client !== null) front.send(message, client.port, client.address);
  });
  await new Promise<void>((resolve) => front.bind(0, '127.0.0.1', resolve));
  await new Promise<void>((resolve) => back.bind(0, '127.0.0.1', resolve));
  opened.push(front, back);
  return { endpoint: { family: 4, address: '127.0.0.1', port: (front.address() as AddressInfo).port }, forwarded: () => count };
}

/**
 * A STUN server on 127.0.0.1 that answers every Binding request with the
 * sender's address, optionally seen through `translate` (a pretend NAT).
 */
export async function loopbackStunServer(translate: (from: Endpoint) => Endpoint = (from) => from): Promise<{ endpoint: Endpoint; requests: () => number }> {
  const socket = dgram.createSocket('udp4');
  let requests = 0;
  socket.on('message', (message, info) => {
    let request;
    try {
      request = decodeStunMessage(new Uint8Array(message));
    } catch {
      return;
    }
    if (request.type !== StunMessageType.BindingRequest) return;
    requests++;
    const mapped = translate({ family: 4, address: info.address, port: info.port });
    const response = encodeStunMessage({
      type: StunMessageType.BindingSuccess,
      transactionId: request.transactionId,
      attributes: [{ type: StunAttributeType.XorMappedAddress, value: encodeXorAddress(mapped, request.transactionId) }],
    });
    socket.send(response, info.port, info.address);
  });
  await new Promise<void>((resolve) => socket.bind(0, '127.0.0.1', resolve));
  opened.push(socket);
  return { endpoint: { family: 4, address: '127.0.0.1', port: (socket.address() as AddressInfo).port }, requests: () => requests };
}

/** Close everything this module opened. */
export async function closeLoopback(): Promise<void> {
  for (const thing of opened.splice(0)) await thing.close();
}
