/**
 * An AF_NETLINK / NETLINK_ROUTE socket driven synchronously through koffi.
 *
 * Why synchronous on the calling thread, and not a worker: the kernel answers
 * an RTNETLINK request inside the sendto() system call (rtnetlink_rcv runs in
 * the sender's context and queues the reply before sendto returns), so the
 * recv() that follows finds the reply already queued; a request costs a few
 * microseconds. A worker would add a thread hop and a message round trip
 * (~50-100 us) to every request for nothing. The one thing that must never
 * happen is a recv() that blocks the event loop indefinitely, so the socket
 * carries SO_RCVTIMEO (default 5 s) and the whole exchange has the same
 * deadline: a missing reply becomes a NetlinkError with errno ETIMEDOUT.
 * The cost of this choice: a dump blocks the calling thread while it is read
 * (a few milliseconds for thousands of routes); call it off the main thread if
 * you hold a full Internet routing table.
 *
 * Sequence numbers are per socket; replies carrying another sequence number
 * (late answers to a request that timed out) are dropped, so a timeout never
 * desynchronises the socket.
 *
 * A socket belongs for life to the network namespace of the thread that
 * created it. `NetlinkSocket.adopt(fd)` wraps a socket created elsewhere —
 * netns.ts creates one on a worker thread that has entered another namespace.
 */
import { NetlinkError } from '../errors.js';
import {
  AF_NETLINK,
  MSG_TRUNC,
  NETLINK_ROUTE,
  SOCK_CLOEXEC,
  SOCK_RAW,
  SOL_NETLINK,
  SOL_SOCKET,
  SO_RCVBUF,
  SO_RCVTIMEO,
  SO_SNDBUF,
  lastErrno,
  loadLibc,
  loadNetlinkLibc,
} from '../libc.js';
import { ReplyCollector, encodeMessage, type AttributeSpec, type NetlinkMessage } from './codec.js';
import { EAGAIN, EBADMSG, EINTR, EMSGSIZE, ETIMEDOUT } from '../errno.js';
import { NETLINK_CAP_ACK, NETLINK_EXT_ACK, NLM_F_ACK, NLM_F_DUMP, NLM_F_REQUEST, SOCKADDR_NL_LEN } from './constants.js';
import { errnoName, kernelError } from './errno.js';

export interface NetlinkSocketOptions {
  /** Longest wait for a complete answer to one request, in ms (default 5000). */
  timeoutMs?: number;
  /** Called with a copy of every datagram received (tests capture real kernel replies with it). */
  tap?: (datagram: Uint8Array) => void;
}

const DEFAULT_TIMEOUT_MS = 5000;
/** Large enough for any single datagram the kernel sends on a dump (32 KiB typical). */
const RECEIVE_BUFFER_SIZE = 256 * 1024;
const SOCKET_RECEIVE_BUFFER = 1024 * 1024;
const DUMP_ATTEMPTS = 5;

function int32(value: number): Uint8Array {
  const out = new Uint8Array(4);
  new DataView(out.buffer).setInt32(0, value, true);
  return out;
}

function timeval(ms: number): Uint8Array {
  const out = new Uint8Array(16);
  const dv = new DataView(out.buffer);
  dv.setBigInt64(0, BigInt(Math.floor(ms / 1000)), true);
  dv.setBigInt64(8, BigInt((ms % 1000) * 1000), true);
  return out;
}

/** sockaddr_nl of the kernel (pid 0, no groups). */
const KERNEL_ADDRESS = (() => {
  const out = new Uint8Array(SOCKADDR_NL_LEN);
  new DataView(out.buffer).setUint16(0, AF_NETLINK, true);
  return out;
})();

function systemError(operation: string, what: string): NetlinkError {
  const { errno, code } = lastErrno();
  return new NetlinkError(`${operation}: ${what} failed: ${code}`, errno, operation, code);
}

export class NetlinkSocket {
  private fd: number;
  private seq: number;
  private readonly portId: number;
  private readonly timeoutMs: number;
  private readonly tap: ((datagram: Uint8Array) => void) | undefined;
  private readonly receiveBuffer = new Uint8Array(RECEIVE_BUFFER_SIZE);

  private constructor(fd: number, options: NetlinkSocketOptions) {
    this.fd = fd;
    this.timeoutMs = options.timeoutMs ?? DEFAULT_TIMEOUT_MS;
    this.tap = options.tap;
    this.seq = (Date.now() ^ (Math.random() * 0x7fffffff)) >>> 0;
    this.portId = NetlinkSocket.configure(fd, this.timeoutMs);
  }

  /** A new socket in the calling thread's network namespace. */
  static open(options: NetlinkSocketOptions = {}): NetlinkSocket {
    const fd = loadLibc().socket(AF_NETLINK, SOCK_RAW | SOCK_CLOEXEC, NETLINK_ROUTE);
    if (fd < 0) throw systemError('open rtnetlink socket', 'socket(AF_NETLINK, NETLINK_ROUTE)');
    return NetlinkSocket.adopt(fd, options);
  }

  /**
   * Take ownership of an unbound AF_NETLINK/NETLINK_ROUTE socket `fd` (created
   * by any thread, in any namespace): configure, bind, and close it on close().
   */
  static adopt(fd: number, options: NetlinkSocketOptions = {}): NetlinkSocket {
    try {
      return new NetlinkSocket(fd, options);
    } catch (error) {
      loadLibc().close(fd);
      throw error;
    }
  }

  private static configure(fd: number, timeoutMs: number): number {
    const libc = loadLibc();
    const tv = timeval(timeoutMs);
    if (libc.setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, tv, tv.length) !== 0) throw systemError('open rtnetlink socket', 'setsockopt(SO_RCVTIMEO)');
    // Best effort: bigger buffers for dumps, and the kernel's error text (extended ACK) without the echoed request.
    libc.setsockopt(fd, SOL_SOCKET, SO_SNDBUF, int32(32768), 4);
    libc.setsockopt(fd, SOL_SOCKET, SO_RCVBUF, int32(SOCKET_RECEIVE_BUFFER), 4);
    libc.setsockopt(fd, SOL_NETLINK, NETLINK_EXT_ACK, int32(1), 4);
    libc.setsockopt(fd, SOL_NETLINK, NETLINK_CAP_ACK, int32(1), 4);
    const address = new Uint8Array(SOCKADDR_NL_LEN);
    new DataView(address.buffer).setUint16(0, AF_NETLINK, true);
    if (libc.bind(fd, address, address.length) !== 0) throw systemError('open rtnetlink socket', 'bind(sockaddr_nl)');
    const bound = new Uint8Array(SOCKADDR_NL_LEN);
    const length = new Int32Array([SOCKADDR_NL_LEN]);
    if (loadNetlinkLibc().getsockname(fd, bound, length) !== 0) throw systemError('open rtnetlink socket', 'getsockname');
    return new DataView(bound.buffer).getUint32(4, true);
  }

  get closed(): boolean {
    return this.fd < 0;
  }

  /** The socket's file descriptor (-1 once closed). */
  get fileDescriptor(): number {
    return this.fd;
  }

  close(): void {
    if (this.fd < 0) return;
    loadLibc().close(this.fd);
    this.fd = -1;
  }

  /**
   * Send a request that the kernel acknowledges (NLM_F_ACK is added) and
   * return the messages before the ACK (a GET by name answers with one).
   * A kernel refusal throws NetlinkError carrying its errno.
   */
  request(type: number, flags: number, header: Uint8Array, attributes: AttributeSpec[], operation: string): NetlinkMessage[] {
    const collector = this.transact(type, NLM_F_REQUEST | NLM_F_ACK | flags, header, attributes, operation, 'ack');
    if (collector.errno !== 0) throw kernelError(operation, collector.errno, collector.extack);
    return collector.messages;
  }

  /** A dump (NLM_F_DUMP); retried when the kernel flags it interrupted by a concurrent change. */
  dump(type: number, header: Uint8Array, attributes: AttributeSpec[], operation: string): NetlinkMessage[] {
    for (let attempt = 1; ; attempt++) {
      const collector = this.transact(type, NLM_F_REQUEST | NLM_F_DUMP, header, attributes, operation, 'dump');
      if (collector.errno !== 0) throw kernelError(operation, collector.errno, collector.extack);
      if (!collector.interrupted || attempt >= DUMP_ATTEMPTS) return collector.messages;
    }
  }

  /**
   * The low-level exchange: send one message with exactly `flags`, collect
   * the answer until an ACK/error ('ack') or NLMSG_DONE ('dump'), or the
   * timeout. Kernel errors are left in the collector, not thrown.
   */
  transact(
    type: number,
    flags: number,
    header: Uint8Array,
    attributes: AttributeSpec[],
    operation: string,
    mode: 'ack' | 'dump',
  ): ReplyCollector {
    if (this.fd < 0) throw new NetlinkError(`${operation}: the netlink socket is closed`, 9, operation, 'EBADF');
    this.seq = (this.seq + 1) >>> 0;
    if (this.seq === 0) this.seq = 1;
    const message = encodeMessage({ type, flags, seq: this.seq, header, attributes });
    const nl = loadNetlinkLibc();
    for (;;) {
      const sent = nl.sendto(this.fd, message, message.length, 0, KERNEL_ADDRESS, KERNEL_ADDRESS.length);
      if (sent >= 0) break;
      if (lastErrno().errno !== EINTR) throw systemError(operation, 'sendto(netlink)');
    }
    const collector = new ReplyCollector(this.seq, this.portId, mode);
    const deadline = Date.now() + this.timeoutMs;
    while (!collector.done) {
      if (Date.now() > deadline) throw this.timeout(operation);
      const received = nl.recv(this.fd, this.receiveBuffer, this.receiveBuffer.length, MSG_TRUNC);
      if (received < 0) {
        const { errno } = lastErrno();
        if (errno === EINTR) continue;
        if (errno === EAGAIN) throw this.timeout(operation);
        throw systemError(operation, 'recv(netlink)');
      }
      if (received > this.receiveBuffer.length) {
        throw new NetlinkError(`${operation}: a ${received}-byte netlink reply did not fit the receive buffer`, EMSGSIZE, operation, 'EMSGSIZE');
      }
      if (received === 0) throw new NetlinkError(`${operation}: empty netlink datagram`, EBADMSG, operation, 'EBADMSG');
      // Copy: the decoded messages are views and the buffer is reused by the next recv.
      const datagram = this.receiveBuffer.slice(0, received);
      this.tap?.(datagram);
      collector.feed(datagram);
    }
    return collector;
  }

  private timeout(operation: string): NetlinkError {
    return new NetlinkError(`${operation}: no netlink reply within ${this.timeoutMs} ms`, ETIMEDOUT, operation, errnoName(ETIMEDOUT));
  }
}
