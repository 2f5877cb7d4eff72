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
  read(fd: number, buffer: Uint8Array, length: number): number;
  write(fd: number, buffer: Uint8Array, length: number): number;
  poll(fds: Uint8Array, count: number, timeoutMs: number): number;
  pipe2(fds: Int32Array, flags: number): number;
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
    read: lib.func('long read(int fd, _Out_ uint8_t *buf, unsigned long count)'),
    write: lib.func('long write(int fd, const uint8_t *buf, unsigned long count)'),
    poll: lib.func('int poll(_Inout_ uint8_t *fds, unsigned long nfds, int timeout)'),
    pipe2: lib.func('int pipe2(_Out_ int32_t *fds, int flags)'),
  } as Libc;
  return libc;
}

/** errno of the last failed call on this thread, as a name ('EPERM') when known. */
export function lastErrno(): { errno: number; code: string } {
  const errno = koffi.errno();
  const entry = Object.entries(osConstants.errno).find(([, value]) => value === errno);
  return { errno, code: entry?.[0] ?? `errno ${errno}` };
}

// Linux constants used with these calls.
export const AF_INET = 2;
export const AF_INET6 = 10;
export const SOCK_DGRAM = 2;
export const SOCK_NONBLOCK = 0o4000;
export const SOCK_CLOEXEC = 0o2000000;
export const SOL_SOCKET = 1;
export const SO_REUSEADDR = 2;
export const SO_MARK = 36;
export const IPPROTO_IPV6 = 41;
export const IPV6_V6ONLY = 26;
export const IFNAMSIZ = 16;
export const O_NONBLOCK = 0o4000;
export const O_CLOEXEC = 0o2000000;
export const POLLIN = 0x1;
export const POLLERR = 0x8;
export const POLLHUP = 0x10;
export const POLLNVAL = 0x20;
export const EAGAIN = 11;
export const EINTR = 4;
/** struct ifreq: a 16-byte name and a 24-byte union. */
export const IFREQ_SIZE = 40;
