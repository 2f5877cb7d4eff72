/**
 * A plain UDP socket on 127.0.0.1 standing in for a WireGuard device in the
 * relay and TURN tests: it collects what arrives (with the sender's port) so a
 * test can check what a peer proxy delivered and answer it from the device's port.
 */
import dgram from 'node:dgram';

export interface Arrival {
  data: Uint8Array;
  address: string;
  port: number;
}

export interface UdpDevice {
  socket: dgram.Socket;
  port: number;
  /** The next datagram (waits up to timeoutMs, then rejects). */
  next(timeoutMs?: number): Promise<Arrival>;
  /** True when nothing arrives within ms. */
  quietFor(ms: number): Promise<boolean>;
  send(data: Uint8Array, port: number, address?: string): Promise<void>;
  close(): void;
}

export async function openUdpDevice(address = '127.0.0.1'): Promise<UdpDevice> {
  const socket = dgram.createSocket(address.includes(':') ? 'udp6' : 'udp4');
  await new Promise<void>((resolve) => socket.bind(0, address, resolve));
  const queue: Arrival[] = [];
  let wake: (() => void) | null = null;
  socket.on('message', (message, info) => {
    queue.push({ data: new Uint8Array(message), address: info.address, port: info.port });
    wake?.();
  });
  const waitOne = (ms: number) =>
    new Promise<void>((resolve) => {
      const timer = setTimeout(resolve, ms);
      wake = () => {
        clearTimeout(timer);
        resolve();
      };
    });
  return {
    socket,
    port: socket.address().port,
    async next(timeoutMs = 3000) {
      const deadline = Date.now() + timeoutMs;
      while (queue.length === 0) {
        if (Date.now() >= deadline) throw new Error(`no datagram reached the stand-in device on port ${socket.address().port} within ${timeoutMs} ms`);
        await waitOne(Math.min(100, deadline - Date.now()));
      }
      return queue.shift()!;
    },
    async quietFor(ms) {
      const deadline = Date.now() + ms;
      while (Date.now() < deadline) {
        if (queue.length > 0) return false;
        await waitOne(Math.max(1, deadline - Date.now()));
      }
      return queue.length === 0;
    },
    send: (data, port, to = address) => new Promise((resolve, reject) => socket.send(data, port, to, (error) => (error ? reject(error) : resolve()))),
    close: () => socket.close(),
  };
}
