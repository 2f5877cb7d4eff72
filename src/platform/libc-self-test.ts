/**
 * A start-up check of the libc calls the platform layer makes through koffi.
 * A libc or koffi build that binds a call wrongly (another C library, a
 * foreign architecture's prebuilt binary) would otherwise fail later, deep in
 * the packet path, with a confusing errno; this fails first, naming the call.
 */
import { PlatformError } from './errors.js';
import {
  AF_INET,
  lastErrno,
  loadGetsockopt,
  loadLibc,
  loadNetlinkLibc,
  O_CLOEXEC,
  POLLFD_SIZE,
  POLLIN,
  SOCK_CLOEXEC,
  SOCK_DGRAM,
  SO_RCVBUF,
  SOL_SOCKET,
} from './libc.js';
import { errorMessage } from './error-message.js';

/** libc is missing, or one of its calls does not behave as the platform layer expects. */
export class LibcSelfTestError extends PlatformError {
  override name = 'LibcSelfTestError';
}

const PROBE_BYTE = 0x5a;

function failure(step: string, detail: string): LibcSelfTestError {
  return new LibcSelfTestError(
    `libc self-test failed at ${step}: ${detail}. tswg needs Linux with glibc's libc.so.6 and koffi's prebuilt binary for this architecture (reinstall with npm ci)`,
  );
}

function check(step: string, ok: boolean): void {
  if (!ok) throw failure(step, `unexpected result (${lastErrno().code})`);
}

/** Bind every libc call and run the harmless ones once; throws LibcSelfTestError naming the first that misbehaves. */
export function selfTestLibc(): void {
  let libc: ReturnType<typeof loadLibc>;
  let netlinkLibc: ReturnType<typeof loadNetlinkLibc>;
  let getsockopt: ReturnType<typeof loadGetsockopt>;
  try {
    libc = loadLibc();
    netlinkLibc = loadNetlinkLibc();
    getsockopt = loadGetsockopt();
  } catch (error) {
    throw failure('loading libc.so.6', errorMessage(error));
  }

  // pipe2, write, poll, read, close: the calls the I/O thread lives on.
  const fds = new Int32Array(2);
  check('pipe2', libc.pipe2(fds, O_CLOEXEC) === 0 && fds[0]! >= 0 && fds[1]! >= 0);
  try {
    check('write', libc.write(fds[1]!, Uint8Array.of(PROBE_BYTE), 1) === 1);
    const pollfd = new Uint8Array(POLLFD_SIZE);
    const view = new DataView(pollfd.buffer);
    view.setInt32(0, fds[0]!, true);
    view.setInt16(4, POLLIN, true);
    check('poll', libc.poll(pollfd, 1, 0) === 1 && (view.getInt16(6, true) & POLLIN) !== 0);
    const received = new Uint8Array(1);
    check('read', libc.read(fds[0]!, received, 1) === 1 && received[0] === PROBE_BYTE);
  } finally {
    libc.close(fds[0]!);
    libc.close(fds[1]!);
  }

  // socket, getsockopt, getsockname, close: the calls the UDP bind and netlink use.
  const fd = libc.socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0);
  check('socket', fd >= 0);
  try {
    const value = new Uint8Array(4);
    check('getsockopt', getsockopt(fd, SOL_SOCKET, SO_RCVBUF, value, Uint32Array.of(4)) === 0 && new DataView(value.buffer).getInt32(0, true) > 0);
    const address = new Uint8Array(16);
    const length = Int32Array.of(16);
    check('getsockname', netlinkLibc.getsockname(fd, address, length) === 0 && length[0] === 16 && new DataView(address.buffer).getUint16(0, true) === AF_INET);
  } finally {
    check('close', libc.close(fd) === 0);
  }
}
