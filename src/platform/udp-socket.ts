/**
 * UDP sockets created through libc so that socket options Node lacks
 * (SO_MARK for fwmark) can be set, then wrapped in node:dgram for I/O.
 */
import dgram from 'node:dgram';
import { PlatformError } from './errors.js';
import {
  AF_INET,
  AF_INET6,
  IPPROTO_IPV6,
  IPV6_V6ONLY,
  SO_MARK,
  SO_RCVBUF,
  SO_RCVBUFFORCE,
  SO_SNDBUF,
  SO_SNDBUFFORCE,
  SOCK_CLOEXEC,
  SOCK_DGRAM,
  SOCK_NONBLOCK,
  SOL_SOCKET,
  lastErrno,
  loadLibc,
  loadNetlinkLibc,
} from './libc.js';

export interface BoundUdpSocket {
  socket: dgram.Socket;
  fd: number;
  port: number;
}

function int32(value: number): Uint8Array {
  const out = new Uint8Array(4);
  new DataView(out.buffer).setInt32(0, value, true);
  return out;
}

/** sockaddr_in / sockaddr_in6 for the wildcard address (all zeros) and `port`. */
function wildcardSockaddr(family: 4 | 6, port: number): Uint8Array {
  const out = new Uint8Array(family === 4 ? 16 : 28);
  const view = new DataView(out.buffer);
  view.setUint16(0, family === 4 ? AF_INET : AF_INET6, true);
  view.setUint16(2, port, false);
  return out;
}

/** Set SO_MARK (fwmark) on a socket; 0 clears it. */
export function setSocketMark(fd: number, mark: number): void {
  const libc = loadLibc();
  if (libc.setsockopt(fd, SOL_SOCKET, SO_MARK, int32(mark), 4) !== 0) {
    const { code } = lastErrno();
    throw new PlatformError(`cannot set fwmark ${mark} on UDP socket: ${code}`, code);
  }
}

/**
 * Socket buffers for a tunnel's UDP socket: 7 MiB asked, which the kernel
 * doubles for its bookkeeping (`ss -uam` shows rb14680064 / tb14680064). The
 * kernel default (net.core.rmem_default / wmem_default, 212992 bytes, about
 * 90 full-size datagrams) overflows whenever the event loop pauses for a
 * moment, and every overflow is a lost packet that TCP inside the tunnel
 * answers by halving its window. The wireguard-go we compare against
 * (Debian 0.0.20220316) runs with that default (rb212992 / tb212992); its
 * 7 MiB (SO_RCVBUF/SO_SNDBUF, then the *FORCE options) came with later
 * releases.
 */
const UDP_SOCKET_BUFFER_BYTES = 7 << 20;

/**
 * Ask for big send and receive buffers: the *FORCE options pass net.core.
 * rmem_max/wmem_max with CAP_NET_ADMIN; without it the plain options give what
 * the limits allow. Best effort: a smaller buffer only costs throughput.
 */
function enlargeSocketBuffers(fd: number): void {
  const libc = loadLibc();
  const size = int32(UDP_SOCKET_BUFFER_BYTES);
  for (const [forced, plain] of [[SO_RCVBUFFORCE, SO_RCVBUF], [SO_SNDBUFFORCE, SO_SNDBUF]] as const) {
    if (libc.setsockopt(fd, SOL_SOCKET, forced, size, 4) !== 0) libc.setsockopt(fd, SOL_SOCKET, plain, size, 4);
  }
}

export interface RawUdpSocket {
  fd: number;
  port: number;
}

/**
 * A bound, non-blocking UDP socket as a bare fd, for code that does its own
 * I/O (the device's receive thread uses recvmmsg(2) on it). `port` 0 picks a
 * free port. IPv6 sockets are IPv6-only so a v4 socket can share the port.
 * The caller closes the fd.
 */
export function openRawUdpSocket(family: 4 | 6, port: number, fwmark = 0): RawUdpSocket {
  const libc = loadLibc();
  const fd = libc.socket(family === 4 ? AF_INET : AF_INET6, SOCK_DGRAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
  if (fd < 0) {
    const { code } = lastErrno();
    throw new PlatformError(`cannot create an IPv${family} UDP socket: ${code}`, code);
  }
  try {
    if (family === 6 && libc.setsockopt(fd, IPPROTO_IPV6, IPV6_V6ONLY, int32(1), 4) !== 0) {
      const { code } = lastErrno();
      throw new PlatformError(`cannot make the IPv6 UDP socket IPv6-only: ${code}`, code);
    }
    if (fwmark !== 0) setSocketMark(fd, fwmark);
    enlargeSocketBuffers(fd);
    const address = wildcardSockaddr(family, port);
    if (libc.bind(fd, address, address.length) !== 0) {
      const { code } = lastErrno();
      const what = code === 'EADDRINUSE' ? 'is already in use' : `cannot be bound (${code})`;
      throw new PlatformError(`UDP port ${port} (IPv${family}) ${what}`, code);
    }
    return { fd, port: port !== 0 ? port : boundPort(fd) };
  } catch (error) {
    libc.close(fd);
    throw error;
  }
}

function boundPort(fd: number): number {
  const address = new Uint8Array(28);
  const length = Int32Array.of(address.length);
  if (loadNetlinkLibc().getsockname(fd, address, length) !== 0) {
    const { code } = lastErrno();
    throw new PlatformError(`cannot read the port a UDP socket was bound to: ${code}`, code);
  }
  return new DataView(address.buffer).getUint16(2, false);
}

/**
 * Bind a UDP socket of `family` on the wildcard address at `port` (0 = any
 * free port), wrapped in node:dgram. IPv6 sockets are IPv6-only so a v4
 * socket can share the port.
 */
export async function bindUdpSocket(family: 4 | 6, port: number, fwmark = 0): Promise<BoundUdpSocket> {
  const { fd } = openRawUdpSocket(family, port, fwmark);
  const socket = dgram.createSocket({ type: family === 4 ? 'udp4' : 'udp6' });
  await new Promise<void>((resolve, reject) => {
    socket.once('error', reject);
    socket.bind({ fd }, () => {
      socket.off('error', reject);
      resolve();
    });
  });
  return { socket, fd, port: socket.address().port };
}
