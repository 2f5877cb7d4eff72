/** Loopback UDP sockets opened through koffi (so libuv does not know them), for bench/uv-poll-probe.ts. */
import { AF_INET, loadLibc, loadNetlinkLibc, SOCK_CLOEXEC, SOCK_DGRAM } from '../../src/platform/index.js';

const SOCK_NONBLOCK = 0o4000;
const SOCKADDR_IN_SIZE = 16;

export function loopbackAddress(port: number): Uint8Array {
  const address = new Uint8Array(SOCKADDR_IN_SIZE);
  const view = new DataView(address.buffer);
  view.setUint16(0, AF_INET, true);
  view.setUint16(2, port, false);
  address.set([127, 0, 0, 1], 4);
  return address;
}

/** A non-blocking UDP socket on 127.0.0.1, bound to a free port when `bind`. */
export function openLoopbackSocket(bind: boolean): { fd: number; port: number } {
  const libc = loadLibc();
  const fd = libc.socket(AF_INET, SOCK_DGRAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
  if (fd < 0) throw new Error('socket() failed');
  if (!bind) return { fd, port: 0 };
  const address = loopbackAddress(0);
  if (libc.bind(fd, address, address.length) !== 0) throw new Error('bind() failed');
  const length = new Int32Array([SOCKADDR_IN_SIZE]);
  if (loadNetlinkLibc().getsockname(fd, address, length) !== 0) throw new Error('getsockname() failed');
  return { fd, port: new DataView(address.buffer).getUint16(2, false) };
}
