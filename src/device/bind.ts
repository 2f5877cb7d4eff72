/**
 * The device's UDP side: one IPv4 and one IPv6-only socket on the same
 * port, as wireguard-go binds them. The sockets are bare fds: the process's
 * I/O thread (platform/io-worker.ts) receives with recvmmsg into a shared packet ring,
 * sendto/sendmmsg send synchronously. Changing the port binds the new sockets
 * before closing the old ones, so a failed change leaves the device as it was.
 */
import { PlatformError, errorMessage, addPacketSource, type PacketSource, lastErrno, loadLibc, loadNetlinkLibc, addressOf, PacketRingConsumer, createPacketRingMemory, type SlotHandler, openRawUdpSocket, setSocketMark, type RawUdpSocket, enableUdpOffloads, type UdpOffloads, UdpReceiveCounters, RECEIVE_META_SIZE, MessageVector, MAX_PACKET_SIZE, CONTROL_ROOM, writePacketInfo, type LocalSource, enablePacketInfo } from '../platform/index.js';
import { TransportSlot } from '../noise/index.js';
import type { Endpoint } from './addr.js';
import { UDP_RING_SLOTS, UDP_SLOT_LAYOUT } from './constants.js';
import type { Logger } from './logger.js';
import { sockaddrOf } from './sockaddr.js';
import { SOURCE_GONE_ERRORS } from './sticky-source.js';

/** What the bind hands each received datagram to; see PacketRingConsumer.drain. */
export interface DatagramHandlers {
  /** A datagram in slot.bytes[0, length), opened in place there; its meta bytes start with the sender's sockaddr (layout: platform/udp-receiver.ts). */
  datagram: SlotHandler<TransportSlot>;
  /** After each batch (the device sends what the batch produced). */
  flush(): void;
  /** Receiving stopped for good (the sockets failed); the bind is dead, not closed by us. */
  closed?(error: UdpBindError): void;
}

/** Where a send should leave from, and what to do when that address is gone. */
export interface SourceRoute {
  source: LocalSource;
  gone(): void;
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
  private readonly source: PacketSource;
  /** What each family's socket offloads; index 0 is IPv4, 1 IPv6. */
  readonly offloads: [UdpOffloads, UdpOffloads];

  constructor(
    readonly v4: RawUdpSocket | null,
    readonly v6: RawUdpSocket | null,
    handlers: DatagramHandlers,
    log: Logger,
    counters: UdpReceiveCounters,
  ) {
    for (const [socket, family] of [[v4, 4], [v6, 6]] as const) {
      const refused = socket === null ? null : enablePacketInfo(socket.fd, family);
      if (refused !== null) log.verbose(`no packet info on the IPv${family} socket (${refused}): replies leave from the address the kernel picks`);
    }
    const none: UdpOffloads = { segmentation: false, coalescing: false };
    this.offloads = [v4 === null ? none : enableUdpOffloads(v4.fd), v6 === null ? none : enableUdpOffloads(v6.fd)];
    log.verbose(`UDP offloads: ${this.offloads.map((o, i) => `IPv${i === 0 ? 4 : 6} GSO ${o.segmentation ? 'on' : 'off'}, GRO ${o.coalescing ? 'on' : 'off'}`).join('; ')}`);
    const memory = createPacketRingMemory(UDP_SLOT_LAYOUT, RECEIVE_META_SIZE, 0, UDP_RING_SLOTS);
    const ring = new PacketRingConsumer(memory, addressOf(new Uint8Array(memory.slots, 0, 1)), (bytes, address) => new TransportSlot(bytes, address));
    this.ring = ring;
    const fds = [v4, v6].filter((socket): socket is RawUdpSocket => socket !== null).map((socket) => socket.fd);
    this.source = addPacketSource(
      { kind: 'recvmmsg', fds, ring: memory, counters: counters.memory, coalescing: this.offloads.some((o) => o.coalescing) },
      {
        doorbell: () => ring.drain(handlers.datagram, handlers.flush),
        closed: (reason) => {
          log.error(`UDP receive stopped: ${reason}`);
          handlers.closed?.(new UdpBindError(`UDP receive stopped: ${reason}`));
        },
        failed: (error) => log.error(`UDP receive: a handler failed (dropped, receiving goes on): ${errorMessage(error)}`),
      },
    );
  }

  /** Stop reading, then close the sockets (never while the I/O thread may still read them). */
  async close(): Promise<void> {
    this.ring.stop();
    await this.source.remove();
    for (const socket of [this.v4, this.v6]) if (socket !== null) loadLibc().close(socket.fd);
  }
}

export class UdpBind {
  private listener: Listener | null = null;
  /** Pinned room for a single send with a source address (made on first use). */
  private single: { vector: MessageVector; buffer: Uint8Array } | null = null;
  /** Per family (IPv4, IPv6): a GSO send failed with EIO, so none are tried again (also on a new port). */
  private readonly segmentationFailed = [false, false];
  /** What the receive side dropped or split, over every port this bind had. */
  readonly receiveCounters = new UdpReceiveCounters();
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
    this.listener = new Listener(v4, v6, this.handlers, this.log, this.receiveCounters);
    this.port = (v4 ?? v6)!.port;
    await old?.close();
  }

  /** May sends of this family carry a UDP_SEGMENT size (GSO)? */
  segmentation(family: 4 | 6): boolean {
    const index = family === 4 ? 0 : 1;
    return !this.segmentationFailed[index] && (this.listener?.offloads[index].segmentation ?? false);
  }

  /**
   * A GSO send failed with EIO: the way out cannot take it (a device without
   * checksum offload before Linux 6.11, which checksums in software since;
   * an IPsec route): send datagram by datagram from now on and say so once,
   * as wireguard-go does.
   */
  stopSegmentation(family: 4 | 6): void {
    const index = family === 4 ? 0 : 1;
    if (this.segmentationFailed[index]) return;
    this.segmentationFailed[index] = true;
    this.log.error(`UDP GSO send failed with EIO (no checksum offload or an IPsec route on the way out?); IPv${family} sends go one datagram at a time from now on`);
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
   * `failed` when it did not (also logged). With `route`, it leaves from
   * route.source; when that source is gone, route.gone() runs and the
   * kernel picks the source instead.
   */
  send(datagram: Uint8Array, endpoint: Endpoint, sent?: () => void, failed?: (error: Error) => void, route?: SourceRoute): void {
    const fd = this.fd(endpoint.family);
    if (fd === null) {
      const message = `no IPv${endpoint.family} socket to send to ${endpoint.address}`;
      this.log.verbose(message);
      failed?.(new Error(message));
      return;
    }
    // A datagram too big for the pinned room goes the plain way, where the kernel refuses it with EMSGSIZE.
    if (route !== undefined && route.source.family === endpoint.family && datagram.length <= MAX_PACKET_SIZE) {
      if (this.sendFrom(fd, datagram, endpoint, route.source)) {
        sent?.();
        return;
      }
      const { errno, code } = lastErrno();
      if (!SOURCE_GONE_ERRORS.has(errno)) {
        const message = `send to ${endpoint.address}:${endpoint.port} failed: ${code}`;
        this.log.verbose(message);
        failed?.(new Error(message));
        return;
      }
      this.log.verbose(`the source address for ${endpoint.address}:${endpoint.port} is gone (${code}); the kernel picks one`);
      route.gone();
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

  /** One datagram with an IP_PKTINFO / IPV6_PKTINFO source, copied into pinned memory for sendmmsg. False on failure (errno set). */
  private sendFrom(fd: number, datagram: Uint8Array, endpoint: Endpoint, source: LocalSource): boolean {
    const single = (this.single ??= { vector: new MessageVector(1, CONTROL_ROOM), buffer: new Uint8Array(new SharedArrayBuffer(MAX_PACKET_SIZE)) });
    single.buffer.set(datagram);
    const { vector } = single;
    vector.setBuffer(0, addressOf(single.buffer), datagram.length);
    vector.setName(0, sockaddrOf(endpoint));
    vector.setControlLength(0, writePacketInfo(vector.dataView, vector.controlOffset(0), source));
    return loadLibc().sendmmsg(fd, vector.bytes, 1, 0) === 1;
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
