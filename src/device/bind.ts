/**
 * The device's UDP side: one IPv4 and one IPv6-only socket on the same
 * port, as wireguard-go binds them. The sockets are bare fds: the process's
 * I/O thread (platform/io-worker.ts) receives with recvmmsg into a shared packet ring,
 * sendto/sendmmsg send synchronously. Changing the port binds the new sockets
 * before closing the old ones, so a failed change leaves the device as it was.
 */
import { PlatformError } from '../platform/errors.js';
import { IoThread } from '../platform/io-thread.js';
import { lastErrno, loadLibc, loadNetlinkLibc } from '../platform/libc.js';
import { addressOf } from '../platform/native-memory.js';
import { PacketRingConsumer, createPacketRingMemory, type SlotHandler } from '../platform/packet-ring.js';
import { TransportSlot } from '../noise/transport-slot.js';
import { openRawUdpSocket, setSocketMark, type RawUdpSocket } from '../platform/udp-socket.js';
import type { Endpoint } from './addr.js';
import { UDP_SLOT_LAYOUT } from './constants.js';
import type { Logger } from './logger.js';
import { SOCKADDR_ROOM, sockaddrOf } from './sockaddr.js';

/** What the bind hands each received datagram to; see PacketRingConsumer.drain. */
export interface DatagramHandlers {
  /** A datagram in slot.bytes[0, length), opened in place there; `source` is the sender's sockaddr. */
  datagram: SlotHandler<TransportSlot>;
  /** After each batch (the device sends what the batch produced). */
  flush(): void;
  /** Receiving stopped for good (the sockets failed); the bind is dead, not closed by us. */
  closed?(error: UdpBindError): void;
}

/** The UDP side died under the device (not a close we asked for). */
export class UdpBindError extends Error {
  override readonly name = 'UdpBindError';
}

/** Tries at finding a free port that is free for both families when the port is 0. */
const ANY_PORT_ATTEMPTS = 10;

/** The sockets of one port, read by the process's I/O thread. */
class Listener {
  private readonly ring: PacketRingConsumer<TransportSlot>;
  private readonly source: { thread: IoThread; id: number };

  constructor(
    readonly v4: RawUdpSocket | null,
    readonly v6: RawUdpSocket | null,
    handlers: DatagramHandlers,
    log: Logger,
  ) {
    const memory = createPacketRingMemory(UDP_SLOT_LAYOUT, SOCKADDR_ROOM);
    const ring = new PacketRingConsumer(memory, addressOf(new Uint8Array(memory.slots, 0, 1)), (bytes, address) => new TransportSlot(bytes, address));
    this.ring = ring;
    const fds = [v4, v6].filter((socket): socket is RawUdpSocket => socket !== null).map((socket) => socket.fd);
    this.source = IoThread.add(
      { kind: 'recvmmsg', fds, ring: memory },
      {
        doorbell: () => ring.drain(handlers.datagram, handlers.flush),
        closed: (reason) => {
          log.error(`UDP receive stopped: ${reason}`);
          handlers.closed?.(new UdpBindError(`UDP receive stopped: ${reason}`));
        },
      },
    );
  }

  /** Stop reading, then close the sockets (never while the I/O thread may still read them). */
  async close(): Promise<void> {
    this.ring.stop();
    await this.source.thread.remove(this.source.id);
    for (const socket of [this.v4, this.v6]) if (socket !== null) loadLibc().close(socket.fd);
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
