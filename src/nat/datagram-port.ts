/**
 * The one UDP port NAT traversal speaks through. On a node that is the
 * WireGuard device's own port (the NAT mapping STUN discovers must be the one
 * WireGuard uses); `tswg netcheck` and tests use a plain socket instead.
 *
 * Subscribers see only datagrams that are not WireGuard messages (the device
 * consumes those); a subscriber returns true when it consumed one.
 */
import { bindUdp } from './udp.js';
import type { AddressInfo } from 'node:net';
import type { Device, Endpoint, IpFamily } from '../device/index.js';

export type DatagramSubscriber = (datagram: Uint8Array, from: Endpoint) => boolean;

export interface DatagramPort {
  /** The local UDP port number. */
  readonly localPort: number;
  /** Send from this port; rejects when the socket refuses. */
  send(datagram: Uint8Array, to: Endpoint): Promise<void>;
  /** Watch arriving datagrams; returns a function that stops watching. */
  subscribe(subscriber: DatagramSubscriber): () => void;
}

/** The WireGuard device's port. */
export function devicePort(device: Device): DatagramPort {
  return {
    get localPort() {
      return device.listenPort;
    },
    send: (datagram, to) => device.sendDatagram(datagram, to),
    subscribe: (subscriber) => device.addDatagramInterceptor(subscriber),
  };
}

export interface SocketPort extends DatagramPort {
  close(): void;
}

/** A plain UDP socket of its own (netcheck, tests). `port` 0 picks a free one. */
export async function openSocketPort(family: IpFamily = 4, port = 0, address?: string): Promise<SocketPort> {
  const socket = await bindUdp({ type: family === 4 ? 'udp4' : 'udp6', port, address, ipv6Only: family === 6 });
  const subscribers: DatagramSubscriber[] = [];
  socket.on('error', () => undefined); // send errors reach the send() callers
  socket.on('message', (message, info) => {
    const from: Endpoint = { family: info.family === 'IPv4' ? 4 : 6, address: info.address, port: info.port };
    const data = new Uint8Array(message.buffer, message.byteOffset, message.byteLength);
    for (const subscriber of [...subscribers]) if (subscriber(data, from)) return;
  });
  return {
    localPort: (socket.address() as AddressInfo).port,
    send: (datagram, to) =>
      new Promise((resolve, reject) => socket.send(datagram, to.port, to.address, (error) => (error ? reject(error) : resolve()))),
    subscribe(subscriber) {
      subscribers.push(subscriber);
      return () => {
        const at = subscribers.indexOf(subscriber);
        if (at >= 0) subscribers.splice(at, 1);
      };
    },
    close: () => socket.close(),
  };
}
