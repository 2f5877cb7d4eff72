/**
 * Linux TUN through /dev/net/tun: TUNSETIFF with IFF_TUN | IFF_NO_PI creates
 * the interface, SIOCSIFMTU sets its MTU. A worker thread reads packets
 * (linux-reader.ts); writes are synchronous write(2)s. When the interface is
 * deleted, reads fail and the device reports `closed`.
 *
 * The fd stays valid if the interface is moved to another network namespace,
 * so the device keeps working there.
 */
import fs from 'node:fs';
import { InterfaceInUseError, PermissionDeniedError, PlatformError } from '../platform/errors.js';
import { Worker } from 'node:worker_threads';
import { AF_INET, IFNAMSIZ, IFREQ_SIZE, O_CLOEXEC, O_NONBLOCK, SOCK_CLOEXEC, SOCK_DGRAM, lastErrno, loadLibc } from '../platform/libc.js';
import { IN_FLIGHT, STOP } from './linux-reader-protocol.js';
import { DEFAULT_MTU, MAX_INTERFACE_NAME_BYTES, type TunDevice, type TunHandlers } from './tun.js';

const TUNSETIFF = 0x400454ca;
const SIOCSIFMTU = 0x8922;
const IFF_TUN = 0x0001;
const IFF_NO_PI = 0x1000;

/** Refuse names Linux would refuse, with a message that says why. */
export function validateInterfaceName(name: string): void {
  const bytes = Buffer.byteLength(name);
  if (bytes === 0) throw new PlatformError('interface name is empty');
  if (bytes > MAX_INTERFACE_NAME_BYTES) {
    throw new PlatformError(`interface name '${name}' is too long: ${bytes} bytes, at most ${MAX_INTERFACE_NAME_BYTES}`);
  }
  if (/[\s/:]/.test(name) || name === '.' || name === '..') {
    throw new PlatformError(`interface name '${name}' contains a character Linux does not allow (whitespace, '/' or ':')`);
  }
}

function ifreq(name: string): Uint8Array {
  const request = new Uint8Array(IFREQ_SIZE);
  request.set(Buffer.from(name).subarray(0, IFNAMSIZ - 1));
  return request;
}

function openTunControl(name: string): number {
  try {
    return fs.openSync('/dev/net/tun', fs.constants.O_RDWR | fs.constants.O_NONBLOCK);
  } catch (error) {
    const code = (error as NodeJS.ErrnoException).code;
    if (code === 'EACCES' || code === 'EPERM') {
      throw new PermissionDeniedError(`no permission to open /dev/net/tun for '${name}': run as root or with CAP_NET_ADMIN`, code);
    }
    if (code === 'ENOENT' || code === 'ENODEV') {
      throw new PlatformError(`/dev/net/tun is missing: the kernel has no TUN support here (creating '${name}')`, code);
    }
    throw new PlatformError(`cannot open /dev/net/tun for '${name}': ${(error as Error).message}`, code);
  }
}

export function setInterfaceMtu(name: string, mtu: number): void {
  const libc = loadLibc();
  const fd = libc.socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0);
  if (fd < 0) throw new PlatformError(`cannot set MTU of '${name}': no socket (${lastErrno().code})`);
  try {
    const request = ifreq(name);
    new DataView(request.buffer).setInt32(IFNAMSIZ, mtu, true);
    if (libc.ioctl(fd, SIOCSIFMTU, request) !== 0) {
      const { code } = lastErrno();
      throw new PlatformError(`cannot set MTU ${mtu} on '${name}': ${code}`, code);
    }
  } finally {
    libc.close(fd);
  }
}

export class LinuxTun implements TunDevice {
  private closed = false;
  private reader: Worker | null = null;
  private wakeFds: Int32Array | null = null;
  private stopped: Promise<void> = Promise.resolve();
  private readonly control = new Int32Array(new SharedArrayBuffer(2 * Int32Array.BYTES_PER_ELEMENT));

  private constructor(
    readonly name: string,
    private readonly fd: number,
    public mtu: number,
  ) {}

  /** Create (or attach to a free persistent) TUN interface `name` with `mtu`. */
  static create(name: string, mtu = DEFAULT_MTU): LinuxTun {
    validateInterfaceName(name);
    const fd = openTunControl(name);
    try {
      const request = ifreq(name);
      new DataView(request.buffer).setInt16(IFNAMSIZ, IFF_TUN | IFF_NO_PI, true);
      if (loadLibc().ioctl(fd, TUNSETIFF, request) !== 0) {
        const { code } = lastErrno();
        if (code === 'EBUSY' || code === 'EEXIST' || code === 'EINVAL') {
          throw new InterfaceInUseError(`interface name '${name}' is in use (another device or a non-TUN link has it): ${code}`, code);
        }
        if (code === 'EPERM' || code === 'EACCES') {
          throw new PermissionDeniedError(`no permission to create TUN interface '${name}': run as root or with CAP_NET_ADMIN`, code);
        }
        throw new PlatformError(`cannot create TUN interface '${name}': ${code}`, code);
      }
      setInterfaceMtu(name, mtu);
    } catch (error) {
      fs.closeSync(fd);
      throw error;
    }
    return new LinuxTun(name, fd, mtu);
  }

  start(handlers: TunHandlers): void {
    const libc = loadLibc();
    const wakeFds = new Int32Array(2);
    if (libc.pipe2(wakeFds, O_CLOEXEC | O_NONBLOCK) !== 0) throw new PlatformError(`cannot create a pipe for the TUN reader: ${lastErrno().code}`);
    this.wakeFds = wakeFds;
    const reader = new Worker(new URL('./linux-reader.js', import.meta.url), { workerData: { tunFd: this.fd, wakeFd: wakeFds[0], control: this.control.buffer } });
    this.reader = reader;
    this.stopped = new Promise((resolve) => reader.once('exit', () => resolve()));
    reader.on('message', (message: { packets?: Uint8Array[]; closed?: string }) => {
      if (message.packets !== undefined) {
        for (const packet of message.packets) handlers.packet(packet);
        Atomics.sub(this.control, IN_FLIGHT, 1);
        Atomics.notify(this.control, IN_FLIGHT);
      } else if (message.closed !== undefined && message.closed !== 'stopped' && !this.closed) {
        void this.close();
        handlers.closed(new PlatformError(`interface '${this.name}': ${message.closed}`));
      }
    });
    reader.on('error', (error) => {
      if (this.closed) return;
      void this.close();
      handlers.closed(new PlatformError(`interface '${this.name}': TUN reader failed: ${error.message}`));
    });
  }

  write(packet: Uint8Array): boolean {
    if (this.closed) return false;
    try {
      fs.writeSync(this.fd, packet);
      return true;
    } catch {
      return false; // e.g. the interface is down; a dropped packet, as on a real link
    }
  }

  /** Stop the reader thread, then close the fd (which deletes a non-persistent interface). */
  async close(): Promise<void> {
    if (!this.closed) {
      this.closed = true;
      Atomics.store(this.control, STOP, 1);
      Atomics.notify(this.control, IN_FLIGHT);
      if (this.wakeFds !== null) loadLibc().write(this.wakeFds[1]!, Uint8Array.of(1), 1);
      await this.stopped;
      if (this.wakeFds !== null) for (const fd of this.wakeFds) loadLibc().close(fd);
      this.wakeFds = null;
      fs.closeSync(this.fd);
    }
    await this.stopped;
  }
}
