/**
 * Pin a UDP socket to a named interface (`SO_BINDTODEVICE`), the companion
 * of physical-egress detection: once the physical NIC is known, traffic is
 * forced out through it even when a VPN mesh owns the default route.
 *
 * Privileges (Linux >= 5.7): pinning a socket that is not pinned yet is
 * allowed to everyone; re-pinning a pinned socket to another interface, or
 * unpinning it, needs CAP_NET_RAW in the socket's network namespace. Older
 * kernels need CAP_NET_RAW for every call. Either way the kernel answers
 * EPERM, reported as PermissionDeniedError; callers are expected to
 * downgrade that to a warning.
 *
 * Finding the descriptor: node:dgram keeps its fd private. A BoundUdpSocket
 * (from bindUdpSocket) or a plain fd number can be passed; for a
 * dgram.Socket the fd is read from its internal state object (the
 * `Symbol(state symbol)` property Node has used since v12, whose `handle.fd`
 * is libuv's descriptor) rather than through `socket._handle`, whose getter
 * prints a DEP0112 deprecation warning. The socket must be bound (or
 * connected): libuv creates the descriptor only then.
 */
import type dgram from 'node:dgram';
import { InterfaceNotFoundError, NetworkConfigError, PermissionDeniedError, PlatformError } from './errors.js';
import { IFNAMSIZ, SOL_SOCKET, SO_BINDTODEVICE, lastErrno, loadGetsockopt, loadLibc } from './libc.js';
import type { BoundUdpSocket } from './udp-socket.js';

/** The longest interface name the kernel accepts: IFNAMSIZ - 1 bytes. */
export const MAX_INTERFACE_NAME_BYTES = IFNAMSIZ - 1;

/** What bindToDevice accepts: a node:dgram socket, bindUdpSocket's result, or a raw socket descriptor. */
export type DeviceBindableSocket = dgram.Socket | BoundUdpSocket | number;

interface DgramState {
  handle: { fd?: unknown } | null;
}

function isBoundUdpSocket(socket: dgram.Socket | BoundUdpSocket): socket is BoundUdpSocket {
  return typeof (socket as Partial<BoundUdpSocket>).fd === 'number' && typeof (socket as Partial<BoundUdpSocket>).socket === 'object';
}

/** node:dgram's internal state object, or undefined when this Node keeps it elsewhere. */
function dgramState(socket: dgram.Socket): DgramState | undefined {
  const symbol = Object.getOwnPropertySymbols(socket).find((candidate) => candidate.description === 'state symbol');
  if (symbol === undefined) return undefined;
  const state = (socket as unknown as Record<symbol, unknown>)[symbol];
  if (typeof state !== 'object' || state === null || !('handle' in state)) return undefined;
  return state as DgramState;
}

/**
 * The descriptor behind a socket. Throws NetworkConfigError when the socket
 * is closed or not bound yet, or when this Node hides the descriptor.
 */
export function socketDescriptor(socket: DeviceBindableSocket): number {
  if (typeof socket === 'number') {
    if (!Number.isInteger(socket) || socket < 0) throw new NetworkConfigError(`invalid socket descriptor ${socket}`);
    return socket;
  }
  const dgramSocket = isBoundUdpSocket(socket) ? socket.socket : socket;
  const state = dgramState(dgramSocket);
  if (state === undefined) {
    // A Node whose dgram internals differ: bindUdpSocket still knows the fd.
    if (isBoundUdpSocket(socket)) return socket.fd;
    throw new NetworkConfigError(
      'cannot find the descriptor of this node:dgram socket on this Node version; create it with bindUdpSocket() or pass its fd',
    );
  }
  if (state.handle === null) throw new NetworkConfigError('the UDP socket is closed');
  const fd = state.handle.fd;
  if (typeof fd !== 'number' || fd < 0) {
    throw new NetworkConfigError('the UDP socket has no descriptor yet: bind() or connect() it before pinning it to an interface');
  }
  return fd;
}

/** Check an interface name for SO_BINDTODEVICE and return it NUL-terminated. */
function interfaceNameBytes(ifname: string): Uint8Array {
  if (ifname.includes('\0')) {
    throw new NetworkConfigError(`interface name ${JSON.stringify(ifname)} contains a NUL byte`);
  }
  const bytes = Buffer.from(ifname, 'utf8');
  if (bytes.length > MAX_INTERFACE_NAME_BYTES) {
    throw new NetworkConfigError(
      `interface name '${ifname}' too long for SO_BINDTODEVICE (${bytes.length} bytes, max ${MAX_INTERFACE_NAME_BYTES})`,
    );
  }
  const value = new Uint8Array(bytes.length + 1);
  value.set(bytes);
  return value;
}

/**
 * Pin `socket` to interface `ifname` with SO_BINDTODEVICE: its datagrams
 * leave through that interface whatever the routing table says, and it only
 * receives what arrives on it. `''` removes the pinning.
 *
 * Errors (all PlatformError subclasses, `code` = the errno name):
 * - name over 15 bytes or containing NUL: NetworkConfigError, before any system call;
 * - EPERM / EACCES: PermissionDeniedError (see the module comment);
 * - ENODEV (no such interface in the socket's namespace): InterfaceNotFoundError;
 * - anything else: NetworkConfigError naming the interface and the errno.
 *
 * Linux only: elsewhere it does nothing (a platform without an equivalent
 * keeps the default routing; macOS' IP_BOUND_IF is not implemented).
 */
export function bindToDevice(socket: DeviceBindableSocket, ifname: string): void {
  const value = interfaceNameBytes(ifname);
  if (process.platform !== 'linux') return;
  const fd = socketDescriptor(socket);
  if (loadLibc().setsockopt(fd, SOL_SOCKET, SO_BINDTODEVICE, value, value.length) === 0) return;
  const { code } = lastErrno();
  switch (code) {
    case 'EPERM':
    case 'EACCES':
      throw new PermissionDeniedError(
        `SO_BINDTODEVICE(${ifname}) denied (${code}): changing or removing an interface pinning needs CAP_NET_RAW or root`,
        code,
      );
    case 'ENODEV':
      throw new InterfaceNotFoundError(`interface ${ifname} not found (SO_BINDTODEVICE: ENODEV)`, code);
    default:
      throw new NetworkConfigError(`SO_BINDTODEVICE(${ifname}) failed: ${code}`, code);
  }
}

/** The interface `socket` is pinned to (getsockopt SO_BINDTODEVICE); `''` when it is not pinned. Linux only. */
export function boundDevice(socket: DeviceBindableSocket): string {
  const fd = socketDescriptor(socket);
  const value = new Uint8Array(IFNAMSIZ);
  const length = new Uint32Array([IFNAMSIZ]);
  if (loadGetsockopt()(fd, SOL_SOCKET, SO_BINDTODEVICE, value, length) !== 0) {
    const { code } = lastErrno();
    throw new PlatformError(`cannot read SO_BINDTODEVICE: ${code}`, code);
  }
  const end = value.subarray(0, Math.min(length[0] ?? 0, IFNAMSIZ)).indexOf(0);
  return Buffer.from(value.subarray(0, end < 0 ? Math.min(length[0] ?? 0, IFNAMSIZ) : end)).toString('utf8');
}
