/**
 * Linux TUN through /dev/net/tun: TUNSETIFF with IFF_TUN | IFF_NO_PI creates
 * the interface, SIOCSIFMTU sets its MTU. The process's I/O thread reads
 * packets into a shared ring (platform/io-worker.ts); writes are synchronous
 * write(2)s. When the interface is deleted, reads fail and the device
 * reports `closed`.
 *
 * The fd stays valid if the interface is moved to another network namespace,
 * so the device keeps working there.
 */
import fs from 'node:fs';
import { InterfaceInUseError, PermissionDeniedError, PlatformError, AF_INET, IFNAMSIZ, IFREQ_SIZE, O_CLOEXEC, O_NONBLOCK, SOCK_CLOEXEC, SOCK_DGRAM, lastErrno, loadLibc, addressOf, PacketRingConsumer, createPacketRingMemory, plainSlot, type RingSlot, type SlotLayout, type SlotWrapper, addPacketSource, type PacketSource } from '../platform/index.js';
import { Worker } from 'node:worker_threads';
import { DEFAULT_MTU, MAX_INTERFACE_NAME_BYTES, type TunDevice, type TunHandlers } from './tun.js';
import { TcpCoalescer } from './gro.js';
import { OffloadReader } from './offload-reader.js';
import { TUN_F_CSUM, TUN_F_TSO4, TUN_F_TSO6, VIRTIO_NET_HDR_SIZE } from './virtio-net.js';

const TUNSETIFF = 0x400454ca;
const TUNSETOFFLOAD = 0x400454d0;
const SIOCSIFMTU = 0x8922;
const IFF_TUN = 0x0001;
const IFF_NO_PI = 0x1000;
const IFF_VNET_HDR = 0x4000;
/** Spare ring slots to cut TCP super-packets into before a flush must send them. */
const SEGMENT_SLOTS = 64;
/**
 * Ring slots with offloads: each may hold a 64 KB super-packet (about 45
 * segments), so fewer slots buffer as much and touch less memory.
 */
const OFFLOAD_RING_SLOTS = 128;
/** The spare slot the main thread reads into itself (see write). */
const INLINE_READ_SLOTS = 1;

/**
 * TSWG_TUN_INLINE_READ=0 leaves every TUN read to the I/O thread (to compare):
 * by default the main thread reads one packet itself right after its writes.
 */
function inlineReadWanted(): boolean {
  return process.env.TSWG_TUN_INLINE_READ !== '0';
}

/** TSWG_TUN_OFFLOAD=0 turns the TUN offloads off (to compare, or for a kernel that mishandles them). */
function offloadWanted(): boolean {
  return process.env.TSWG_TUN_OFFLOAD !== '0';
}

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
  private ring: { stop(): void; holdReads(): boolean; releaseReads(): void } | null = null;
  /** Who reads this device's fd (the I/O thread, or the main thread polling it), once started. */
  private source: PacketSource | null = null;
  private stopped: Promise<void> = Promise.resolve();

  /** Joins received TCP segments into super-packets (offload mode only). */
  private readonly coalescer: TcpCoalescer | null;
  /** Reads one packet on the main thread if one is waiting (see write); null until started or when turned off. */
  private readInline: (() => void) | null = null;
  /** This turn's writes hold the I/O thread off the fd (see write). */
  private readsHeld = false;
  private afterWritesQueued = false;

  private constructor(
    readonly name: string,
    private readonly fd: number,
    public mtu: number,
    /** IFF_VNET_HDR with TSO/checksum offload: every read and write carries a virtio_net_hdr. */
    readonly offload: boolean,
  ) {
    const libc = loadLibc();
    this.coalescer = offload ? new TcpCoalescer((bytes, length) => void libc.write(fd, bytes, length)) : null;
  }

  /** Create (or attach to a free persistent) TUN interface `name` with `mtu`. */
  static create(name: string, mtu = DEFAULT_MTU): LinuxTun {
    validateInterfaceName(name);
    const fd = openTunControl(name);
    try {
      const request = ifreq(name);
      const offload = offloadWanted();
      new DataView(request.buffer).setInt16(IFNAMSIZ, IFF_TUN | IFF_NO_PI | (offload ? IFF_VNET_HDR : 0), true);
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
      // Checksums and TCP segmentation left to us: the kernel then hands over (and takes) 64 KB TCP super-packets.
      if (offload && loadLibc().ioctlValue(fd, TUNSETOFFLOAD, TUN_F_CSUM | TUN_F_TSO4 | TUN_F_TSO6) !== 0) {
        const { code } = lastErrno();
        throw new PlatformError(`cannot enable TUN offloads on '${name}': ${code} (TSWG_TUN_OFFLOAD=0 runs without them)`, code);
      }
      return new LinuxTun(name, fd, mtu, offload);
    } catch (error) {
      fs.closeSync(fd);
      throw error;
    }
  }

  start<S extends RingSlot>(handlers: TunHandlers<S>): void {
    const headerSize = this.offload ? VIRTIO_NET_HDR_SIZE : 0;
    const slots = handlers.slots;
    if (slots !== undefined) {
      this.read(slots.layout, slots.wrap, (slot, length) => slots.packet(slot, length), handlers);
      return;
    }
    // Plain packets: room for the driver's own header only; each packet is handed on as a view of its bytes.
    this.read({ headroom: headerSize, tailroom: 0 }, plainSlot, (slot, length) => handlers.packet(slot.bytes.subarray(headerSize, headerSize + length)), handlers);
  }

  /** Read into a ring laid out as `layout` (the virtio header, with offloads, in its headroom); hand each packet to `deliver`. */
  private read<S extends RingSlot>(layout: SlotLayout, wrap: SlotWrapper<S>, deliver: (slot: S, length: number) => void, handlers: Pick<TunHandlers, 'flush' | 'closed' | 'failed'>): void {
    const headerSize = this.offload ? VIRTIO_NET_HDR_SIZE : 0;
    if (layout.headroom < headerSize) {
      throw new PlatformError(`TUN '${this.name}': ${layout.headroom} bytes of headroom leave no room for the ${headerSize}-byte virtio_net_hdr each read puts before the packet`);
    }
    const memory = this.offload ? createPacketRingMemory(layout, 0, SEGMENT_SLOTS + INLINE_READ_SLOTS, OFFLOAD_RING_SLOTS) : createPacketRingMemory(layout, 0, INLINE_READ_SLOTS);
    const ring = new PacketRingConsumer(memory, addressOf(new Uint8Array(memory.slots, 0, 1)), wrap);
    this.ring = ring;
    const inlineSlot = ring.takeSpare();
    const deviceFlush = handlers.flush ?? (() => undefined);
    let handle = deliver;
    let flush = deviceFlush;
    if (this.offload) {
      const offload = new OffloadReader(ring, deliver, deviceFlush);
      handle = (slot, length) => offload.packet(slot, length);
      flush = () => offload.flush();
    }
    if (inlineReadWanted()) {
      // Read as the I/O thread does: the virtio header (with offloads) just before the packet's place.
      const readStart = memory.headroom - headerSize;
      const readSize = memory.packetCapacity + headerSize;
      const area = new Uint8Array(memory.slots, inlineSlot.bytes.byteOffset + readStart, readSize);
      const libc = loadLibc();
      const readOne = () => libc.read(this.fd, area, readSize);
      this.readInline = () => {
        const length = ring.readHeld(readOne);
        if (length <= headerSize) return;
        try {
          handle(inlineSlot, length - headerSize);
        } finally {
          flush();
        }
      };
    }
    this.source = addPacketSource(
      { kind: 'read', fd: this.fd, ring: memory, headerSize },
      {
        doorbell: () => ring.drain(handle, flush),
        closed: (reason) => {
          if (this.closed) return;
          void this.close();
          handlers.closed(new PlatformError(`interface '${this.name}': ${reason}`));
        },
        failed: (error) => handlers.failed?.(error),
      },
    );
  }

  /**
   * Write a packet: a plain write(2) (fs.writeSync costs several times more
   * per packet, ARCHITECTURE.md), or with offloads, into the coalescer, which
   * writes everything queued in this turn of the event loop at its end.
   * Failing (e.g. the interface is down) drops the packet, as on a real link.
   *
   * The first write of a turn holds the I/O thread off the fd until the
   * turn's writes are done; then this thread reads one packet itself: the
   * kernel answers a ping (or ACKs) before write(2) returns, and that answer
   * leaves at once instead of after an I/O-thread wake-up and a main-thread one.
   */
  write(packet: Uint8Array): boolean {
    if (this.closed) return false;
    if (!this.afterWritesQueued) {
      this.afterWritesQueued = true;
      this.readsHeld = this.readInline !== null && this.ring!.holdReads();
      queueMicrotask(() => this.afterWrites());
    }
    const coalescer = this.coalescer;
    if (coalescer === null) return loadLibc().write(this.fd, packet, packet.length) >= 0;
    coalescer.add(packet);
    return true;
  }

  /** The end of a turn's writes: the joined writes, the read of what they caused, the fd back to the I/O thread. */
  private afterWrites(): void {
    this.afterWritesQueued = false;
    try {
      if (this.closed) return;
      this.coalescer?.flush();
      if (this.readsHeld) this.readInline!();
    } finally {
      if (this.readsHeld) {
        this.readsHeld = false;
        this.ring!.releaseReads();
      }
    }
  }

  /** Stop reading (the I/O thread lets go of the fd), then close the fd (which deletes a non-persistent interface). */
  async close(): Promise<void> {
    if (!this.closed) {
      this.closed = true;
      this.ring?.stop();
      const source = this.source;
      this.stopped = (source === null ? Promise.resolve() : source.remove()).then(() => fs.closeSync(this.fd));
    }
    await this.stopped;
  }
}
