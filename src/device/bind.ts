/**
 * The device's UDP side: one IPv4 and one IPv6-only socket on the same
 * port, as wireguard-go binds them. Changing the port binds the new sockets
 * before closing the old ones, so a failed change leaves the device as it was.
 */
import type dgram from 'node:dgram';
import { bindUdpSocket, setSocketMark, type BoundUdpSocket } from '../platform/udp-socket.js';
import { PlatformError } from '../platform/errors.js';
import type { Endpoint } from './addr.js';
import type { Logger } from './logger.js';

export type DatagramHandler = (datagram: Buffer, source: Endpoint) => void;

/** Tries at finding a free port that is free for both families when the port is 0. */
const ANY_PORT_ATTEMPTS = 10;

export class UdpBind {
  private v4: BoundUdpSocket | null = null;
  private v6: BoundUdpSocket | null = null;
  port = 0;
  fwmark = 0;

  constructor(
    private readonly onDatagram: DatagramHandler,
    private readonly log: Logger,
  ) {}

  get isOpen(): boolean {
    return this.v4 !== null || this.v6 !== null;
  }

  /** Listen on `port` (0: a free one). Throws PlatformError (code EADDRINUSE when taken) and keeps the old sockets. */
  async open(port: number): Promise<void> {
    const { v4, v6 } = await this.bindBoth(port);
    this.closeSockets();
    this.v4 = v4;
    this.v6 = v6;
    this.port = (v4 ?? v6)!.port;
    for (const bound of [v4, v6]) if (bound !== null) this.attach(bound.socket);
  }

  setFwmark(mark: number): void {
    for (const bound of [this.v4, this.v6]) if (bound !== null) setSocketMark(bound.fd, mark);
    this.fwmark = mark;
  }

  /** Send a datagram; `sent` runs once the kernel took it, `failed` when it did not (also logged). */
  send(datagram: Uint8Array, endpoint: Endpoint, sent?: () => void, failed?: (error: Error) => void): void {
    const bound = endpoint.family === 4 ? this.v4 : this.v6;
    if (bound === null) {
      this.log.verbose(`no IPv${endpoint.family} socket to send to ${endpoint.address}`);
      failed?.(new Error(`no IPv${endpoint.family} socket to send to ${endpoint.address}`));
      return;
    }
    bound.socket.send(datagram, endpoint.port, endpoint.address, (error) => {
      if (error) {
        this.log.verbose(`send to ${endpoint.address}:${endpoint.port} failed: ${error.message}`);
        failed?.(error);
      } else sent?.();
    });
  }

  close(): void {
    this.closeSockets();
    this.port = 0;
  }

  private attach(socket: dgram.Socket): void {
    socket.on('message', (message, info) => {
      this.onDatagram(message, { family: info.family === 'IPv4' ? 4 : 6, address: info.address, port: info.port });
    });
    socket.on('error', (error) => this.log.error(`UDP socket error: ${error.message}`));
  }

  private async bindBoth(port: number): Promise<{ v4: BoundUdpSocket | null; v6: BoundUdpSocket | null }> {
    for (let attempt = 0; ; attempt++) {
      const v4 = await bindUdpSocket(4, port, this.fwmark);
      try {
        const v6 = await bindUdpSocket(6, v4.port, this.fwmark);
        return { v4, v6 };
      } catch (error) {
        const code = error instanceof PlatformError ? error.code : undefined;
        if (code === 'EAFNOSUPPORT') {
          this.log.verbose('IPv6 is not available; listening on IPv4 only');
          return { v4, v6: null };
        }
        v4.socket.close();
        // With port 0 the IPv6 side of a random IPv4 port may be taken: try another.
        if (port !== 0 || code !== 'EADDRINUSE' || attempt >= ANY_PORT_ATTEMPTS) throw error;
      }
    }
  }

  private closeSockets(): void {
    for (const bound of [this.v4, this.v6]) bound?.socket.close();
    this.v4 = null;
    this.v6 = null;
  }
}
