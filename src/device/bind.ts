/**
 * The device's UDP side: one IPv4 and one IPv6-only socket on the same
 * port, as wireguard-go binds them. The sockets are bare fds: a reader
 * thread (udp-reader.ts) receives with recvmmsg into a shared packet ring,
 * sendto/sendmmsg send synchronously. Changing the port binds the new sockets
 * before closing the old ones, so a failed change leaves the device as it was.
 */
import { Worker } from 'node:worker_threads';
import { PlatformError } from '../platform/errors.js';
import { O_CLOEXEC, O_NONBLOCK, lastErrno, loadLibc, loadNetlinkLibc } from '../platform/libc.js';
import { addressOf } from '../platform/native-memory.js';
import { READER_RESOURCE_LIMITS, workerScriptUrl } from '../platform/worker-script.js';
import { DOORBELL_MESSAGE, PacketRingConsumer, createPacketRingMemory, type SlotHandler } from '../platform/packet-ring.js';
import { openRawUdpSocket, setSocketMark, type RawUdpSocket } from '../platform/udp-socket.js';
import type { Endpoint } from './addr.js';
import type { Logger } from './logger.js';
import { SOCKADDR_ROOM, sockaddrOf } from './sockaddr.js';
import type { UdpReaderData } from './udp-reader.js';

/** What the bind hands each received datagram to; see PacketRingConsumer.drain. */
export interface DatagramHandlers {
  /** A datagram in slot.bytes[0, length); `source` is the sender's sockaddr. */
  datagram: SlotHandler;
  /** After each batch (the device sends what the batch produced). */
  flush(): void;
}

/** Tries at finding a free port that is free for both families when the port is 0. */
const ANY_PORT_ATTEMPTS = 10;

/** The sockets of one port and the thread reading them. */
class Listener {
  private readonly ring: PacketRingConsumer;
  private readonly reader: Worker;
  private readonly wakeFds = new Int32Array(2);
  private readonly exited: Promise<void>;

  constructor(
    readonly v4: RawUdpSocket | null,
    readonly v6: RawUdpSocket | null,
    handlers: DatagramHandlers,
    log: Logger,
  ) {
    const libc = loadLibc();
    if (libc.pipe2(this.wakeFds, O_CLOEXEC | O_NONBLOCK) !== 0) throw new PlatformError(`cannot create a pipe for the UDP reader: ${lastErrno().code}`);
    const memory = createPacketRingMemory(SOCKADDR_ROOM);
    this.ring = new PacketRingConsumer(memory, addressOf(new Uint8Array(memory.slots, 0, 1)));
    const workerData: UdpReaderData = { fds: [v4?.fd ?? -1, v6?.fd ?? -1], wakeFd: this.wakeFds[0]!, ring: memory };
    this.reader = new Worker(workerScriptUrl(import.meta.url, './udp-reader.js'), { workerData, resourceLimits: READER_RESOURCE_LIMITS });
    this.exited = new Promise((resolve) => this.reader.once('exit', () => resolve()));
    this.reader.on('message', (message: string | { closed: string }) => {
      if (message === DOORBELL_MESSAGE) this.ring.drain(handlers.datagram, handlers.flush);
      else if (typeof message === 'object' && message.closed !== 'stopped') log.error(`UDP receive stopped: ${message.closed}`);
    });
    this.reader.on('error', (error) => log.error(`UDP reader failed: ${error.message}`));
  }

  /** Stop the reader, then close the sockets (never while it may still read them). */
  async close(): Promise<void> {
    const libc = loadLibc();
    this.ring.stop();
    libc.write(this.wakeFds[1]!, Uint8Array.of(1), 1);
    await this.exited;
    for (const fd of this.wakeFds) libc.close(fd);
    for (const socket of [this.v4, this.v6]) if (socket !== null) libc.close(socket.fd);
  }
}

export class UdpBind {
  private listener: Listener | null = null;
  port = 0;
  fwmark = 0;

  constructor(
    private readonly handlers: DatagramHandlers,
    private readonly log: Logger,
  ) {}

  get isOpen(): boolean {
    return this.listener !== null;
  }

  /** Listen on `port` (0: a free one). Throws PlatformError (code EADDRINUSE when taken) and keeps the old sockets. */
  async open(port: number): Promise<void> {
    const { v4, v6 } = this.bindBoth(port);
    const old = this.listener;
    this.listener = new Listener(v4, v6, this.handlers, this.log);
    this.port = (v4 ?? v6)!.port;
    await old?.close();
  }

  /** The raw socket fd of a family (for sendmmsg), or null when that socket is not open. */
  fd(family: 4 | 6): number | null {
    return (family === 4 ? this.listener?.v4 : this.listener?.v6)?.fd ?? null;
  }

  setFwmark(mark: number): void {
    for (const socket of [this.listener?.v4, this.listener?.v6]) if (socket) setSocketMark(socket.fd, mark);
    this.fwmark = mark;
  }

  /**
   * Send a datagram now (the socket is non-blocking; a full buffer drops it,
   * as a congested link would). `sent` runs when the kernel took it,
   * `failed` when it did not (also logged).
   */
  send(datagram: Uint8Array, endpoint: Endpoint, sent?: () => void, failed?: (error: Error) => void): void {
    const fd = this.fd(endpoint.family);
    if (fd === null) {
      const message = `no IPv${endpoint.family} socket to send to ${endpoint.address}`;
      this.log.verbose(message);
      failed?.(new Error(message));
      return;
    }
    const sockaddr = sockaddrOf(endpoint);
    if (loadNetlinkLibc().sendto(fd, datagram, datagram.length, 0, sockaddr, sockaddr.length) < 0) {
      const message = `send to ${endpoint.address}:${endpoint.port} failed: ${lastErrno().code}`;
      this.log.verbose(message);
      failed?.(new Error(message));
      return;
    }
    sent?.();
  }

  async close(): Promise<void> {
    const listener = this.listener;
    this.listener = null;
    this.port = 0;
    await listener?.close();
  }

  private bindBoth(port: number): { v4: RawUdpSocket | null; v6: RawUdpSocket | null } {
    for (let attempt = 0; ; attempt++) {
      const v4 = openRawUdpSocket(4, port, this.fwmark);
      try {
        const v6 = openRawUdpSocket(6, v4.port, this.fwmark);
        return { v4, v6 };
      } catch (error) {
        const code = error instanceof PlatformError ? error.code : undefined;
        if (code === 'EAFNOSUPPORT') {
          this.log.verbose('IPv6 is not available; listening on IPv4 only');
          return { v4, v6: null };
        }
        loadLibc().close(v4.fd);
        // With port 0 the IPv6 side of a random IPv4 port may be taken: try another.
        if (port !== 0 || code !== 'EADDRINUSE' || attempt >= ANY_PORT_ATTEMPTS) throw error;
      }
    }
  }
}
