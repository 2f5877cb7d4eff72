/**
 * The few libc calls Node does not offer, through koffi (prebuilt FFI, no
 * compile at install). Loaded lazily so that code which never touches the
 * platform (the protocol core, key tools) runs without it.
 */
import { constants as osConstants } from 'node:os';
import koffi from 'koffi';

export interface Libc {
  socket(domain: number, type: number, protocol: number): number;
  close(fd: number): number;
  bind(fd: number, address: Uint8Array, length: number): number;
  setsockopt(fd: number, level: number, name: number, value: Uint8Array, length: number): number;
  ioctl(fd: number, request: number, argument: Uint8Array): number;
  /** ioctl whose argument is a plain integer (TUNSETOFFLOAD). */
  ioctlValue(fd: number, request: number, argument: number): number;
  read(fd: number, buffer: Uint8Array, length: number): number;
  write(fd: number, buffer: Uint8Array, length: number): number;
  poll(fds: Uint8Array, count: number, timeoutMs: number): number;
  pipe2(fds: Int32Array, flags: number): number;
  /** struct mmsghdr[] in `messages` (pinned memory: its pointers are native addresses). */
  sendmmsg(fd: number, messages: Uint8Array, count: number, flags: number): number;
  /** struct mmsghdr[] in `messages`, as for sendmmsg; `timeout` is always null here. */
  recvmmsg(fd: number, messages: Uint8Array, count: number, flags: number, timeout: null): number;
}

let libc: Libc | null = null;

export function loadLibc(): Libc {
  if (libc !== null) return libc;
  const lib = koffi.load('libc.so.6');
  libc = {
    socket: lib.func('int socket(int domain, int type, int protocol)'),
    close: lib.func('int close(int fd)'),
    bind: lib.func('int bind(int fd, const uint8_t *addr, uint32_t len)'),
    setsockopt: lib.func('int setsockopt(int fd, int level, int name, const uint8_t *value, uint32_t len)'),
    ioctl: lib.func('int ioctl(int fd, unsigned long request, _Inout_ uint8_t *arg)'),
    ioctlValue: lib.func('ioctl', 'int', ['int', 'unsigned long', 'unsigned long']),
    read: lib.func('long read(int fd, _Out_ uint8_t *buf, unsigned long count)'),
    write: lib.func('long write(int fd, const uint8_t *buf, unsigned long count)'),
    poll: lib.func('int poll(_Inout_ uint8_t *fds, unsigned long nfds, int timeout)'),
    pipe2: lib.func('int pipe2(_Out_ int32_t *fds, int flags)'),
    sendmmsg: lib.func('int sendmmsg(int fd, _Inout_ uint8_t *msgvec, unsigned int vlen, int flags)'),
    recvmmsg: lib.func('int recvmmsg(int fd, _Inout_ uint8_t *msgvec, unsigned int vlen, int flags, void *timeout)'),
  } as Libc;
  return libc;
}

/** errno of the last failed call on this thread, as a name ('EPERM') when known. */
/** errno values by number, made once: a lookup per failed call (EAGAIN ends every read batch) must cost nothing. */
const ERRNO_CODES = new Map<number, string>();
// The first name wins where two share a number (EAGAIN before EWOULDBLOCK), as before.
for (const [code, errno] of Object.entries(osConstants.errno)) if (!ERRNO_CODES.has(errno)) ERRNO_CODES.set(errno, code);

export function lastErrno(): { errno: number; code: string } {
  const errno = koffi.errno();
  return { errno, code: ERRNO_CODES.get(errno) ?? `errno ${errno}` };
}

// Linux constants used with these calls.
export const AF_INET = 2;
export const AF_INET6 = 10;
export const SOCK_DGRAM = 2;
export const SOCK_NONBLOCK = 0o4000;
export const SOCK_CLOEXEC = 0o2000000;
export const SOL_SOCKET = 1;
export const SO_MARK = 36;
export const SO_SNDBUFFORCE = 32;
export const SO_RCVBUFFORCE = 33;
export const IPPROTO_IPV6 = 41;
export const IPV6_V6ONLY = 26;
export const IFNAMSIZ = 16;
export const O_NONBLOCK = 0o4000;
export const O_CLOEXEC = 0o2000000;
/** struct pollfd: int fd, short events, short revents. */
export const POLLFD_SIZE = 8;
export const POLLIN = 0x1;
export const POLLERR = 0x8;
export const POLLHUP = 0x10;
export const POLLNVAL = 0x20;
/** struct ifreq: a 16-byte name and a 24-byte union. */
export const IFREQ_SIZE = 40;

// ---- netlink sockets and network namespaces (src/platform/netlink/, netns.ts) ----

export interface NetlinkLibc {
  sendto(fd: number, buffer: Uint8Array, length: number, flags: number, address: Uint8Array | null, addressLength: number): number;
  recv(fd: number, buffer: Uint8Array, length: number, flags: number): number;
  getsockname(fd: number, address: Uint8Array, length: Int32Array): number;
  setns(fd: number, nstype: number): number;
}

let netlinkLibc: NetlinkLibc | null = null;

/** sendto/recv/getsockname/setns, bound separately so that `Libc` stays as it is. */
export function loadNetlinkLibc(): NetlinkLibc {
  if (netlinkLibc !== null) return netlinkLibc;
  const lib = koffi.load('libc.so.6');
  netlinkLibc = {
    sendto: lib.func('long sendto(int fd, const uint8_t *buf, unsigned long len, int flags, const uint8_t *addr, uint32_t addrlen)'),
    recv: lib.func('long recv(int fd, _Out_ uint8_t *buf, unsigned long len, int flags)'),
    getsockname: lib.func('int getsockname(int fd, _Out_ uint8_t *addr, _Inout_ int32_t *addrlen)'),
    setns: lib.func('int setns(int fd, int nstype)'),
  } as NetlinkLibc;
  return netlinkLibc;
}

export const AF_NETLINK = 16;
export const SOCK_RAW = 3;
export const NETLINK_ROUTE = 0;
export const SOL_NETLINK = 270;
export const SO_SNDBUF = 7;
export const SO_RCVBUF = 8;
export const SO_RCVTIMEO = 20;
export const MSG_TRUNC = 0x20;
export const MSG_DONTWAIT = 0x40;
export const CLONE_NEWNET = 0x40000000;

// ---- added for SO_BINDTODEVICE (src/platform/bind-to-device.ts) -------------

/** SOL_SOCKET option: pin a socket to a named interface (Linux). */
export const SO_BINDTODEVICE = 25;

/** getsockopt(2): `length` is a one-element in/out buffer length. */
export type GetsockoptFunction = (fd: number, level: number, name: number, value: Uint8Array, length: Uint32Array) => number;

let getsockoptFunction: GetsockoptFunction | null = null;

/** getsockopt(2) from libc, loaded on first use (kept out of `Libc` so that interface stays as it is). */
export function loadGetsockopt(): GetsockoptFunction {
  if (getsockoptFunction !== null) return getsockoptFunction;
  const lib = koffi.load('libc.so.6');
  getsockoptFunction = lib.func('int getsockopt(int fd, int level, int name, _Out_ uint8_t *value, _Inout_ uint32_t *len)') as GetsockoptFunction;
  return getsockoptFunction;
}
