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
  SOCK_CLOEXEC,
  SOCK_DGRAM,
  SOCK_NONBLOCK,
  SOL_SOCKET,
  lastErrno,
  loadLibc,
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
 * Bind a UDP socket of `family` on the wildcard address at `port` (0 = any
 * free port). IPv6 sockets are IPv6-only so a v4 socket can share the port.
 */
export async function bindUdpSocket(family: 4 | 6, port: number, fwmark = 0): Promise<BoundUdpSocket> {
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
    const address = wildcardSockaddr(family, port);
    if (libc.bind(fd, address, address.length) !== 0) {
      const { code } = lastErrno();
      const what = code === 'EADDRINUSE' ? 'is already in use' : `cannot be bound (${code})`;
      throw new PlatformError(`UDP port ${port} (IPv${family}) ${what}`, code);
    }
  } catch (error) {
    libc.close(fd);
    throw error;
  }
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
