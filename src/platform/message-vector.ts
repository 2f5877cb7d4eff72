/**
 * struct mmsghdr[] for sendmmsg(2) / recvmmsg(2), each with one iovec,
 * room for a socket address and optionally for control messages, in pinned
 * memory (a SharedArrayBuffer) so the pointers inside stay valid. Built
 * once; filling an entry writes a few words and allocates nothing. An entry
 * may also take a run of the iovecs (one datagram each) for a UDP GSO send.
 * Layouts are those of x86-64 and arm64 Linux.
 */
import { addressOf, writePointer } from './native-memory.js';

const MMSGHDR_SIZE = 64;
const IOVEC_SIZE = 16;
/** Room per entry for a sockaddr_in6 (28 bytes), rounded up. */
export const NAME_ROOM = 32;
// struct msghdr fields, then mmsghdr.msg_len.
const MSG_NAME = 0;
const MSG_NAMELEN = 8;
const MSG_IOV = 16;
const MSG_IOVLEN = 24;
const MSG_CONTROL = 32;
const MSG_CONTROLLEN = 40;
const MSG_FLAGS = 48;
const MSG_LEN = 56;
const IOV_BASE = 0;
const IOV_LEN = 8;

export class MessageVector {
  /** Pass this to sendmmsg / recvmmsg. */
  readonly bytes: Uint8Array;
  private readonly view: DataView;
  private readonly iovecs: number;
  private readonly names: number;
  private readonly nameViews: Uint8Array[];
  private readonly controls: number;
  private readonly base: number;
  private readonly tails: Uint8Array[];

  /** `controlRoom`: bytes of control messages each entry may carry (0: none). */
  constructor(
    readonly capacity: number,
    readonly controlRoom = 0,
  ) {
    this.iovecs = capacity * MMSGHDR_SIZE;
    this.names = this.iovecs + capacity * IOVEC_SIZE;
    this.controls = this.names + capacity * NAME_ROOM;
    this.bytes = new Uint8Array(new SharedArrayBuffer(this.controls + capacity * controlRoom));
    this.view = new DataView(this.bytes.buffer);
    const base = (this.base = addressOf(this.bytes));
    for (let i = 0; i < capacity; i++) {
      writePointer(this.view, i * MMSGHDR_SIZE + MSG_NAME, base + this.names + i * NAME_ROOM);
      writePointer(this.view, i * MMSGHDR_SIZE + MSG_IOV, base + this.iovecs + i * IOVEC_SIZE);
      this.view.setUint32(i * MMSGHDR_SIZE + MSG_IOVLEN, 1, true);
      this.view.setUint32(i * MMSGHDR_SIZE + MSG_NAMELEN, NAME_ROOM, true);
      if (controlRoom > 0) writePointer(this.view, i * MMSGHDR_SIZE + MSG_CONTROL, base + this.controls + i * controlRoom);
    }
    this.nameViews = Array.from({ length: capacity }, (_, i) => this.bytes.subarray(this.names + i * NAME_ROOM, this.names + (i + 1) * NAME_ROOM));
    this.tails = Array.from({ length: capacity }, (_, i) => this.bytes.subarray(i * MMSGHDR_SIZE));
  }

  /** The vector from entry i on (to pass to sendmmsg when entries before i are done). */
  from(i: number): Uint8Array {
    return this.tails[i]!;
  }

  /** Entry i sends the `count` iovecs from `first` on as one message (each set with setBuffer). */
  useBuffers(i: number, first: number, count: number): void {
    writePointer(this.view, i * MMSGHDR_SIZE + MSG_IOV, this.base + this.iovecs + first * IOVEC_SIZE);
    this.view.setUint32(i * MMSGHDR_SIZE + MSG_IOVLEN, count, true);
  }

  /** A view of the whole vector, for writing control messages at controlOffset(i). */
  get dataView(): DataView {
    return this.view;
  }

  /** Where entry i's control room starts in dataView. */
  controlOffset(i: number): number {
    return this.controls + i * this.controlRoom;
  }

  /** Entry i carries `length` bytes of control messages (0: none). */
  setControlLength(i: number, length: number): void {
    this.view.setUint32(i * MMSGHDR_SIZE + MSG_CONTROLLEN, length, true);
    this.view.setUint32(i * MMSGHDR_SIZE + MSG_CONTROLLEN + 4, 0, true);
  }

  /** Bytes of control messages the kernel left in entry i (after receiving). */
  controlLength(i: number): number {
    return this.view.getUint32(i * MMSGHDR_SIZE + MSG_CONTROLLEN, true);
  }

  /** Entry i's buffer: `length` bytes at native `address`. */
  setBuffer(i: number, address: number, length: number): void {
    writePointer(this.view, this.iovecs + i * IOVEC_SIZE + IOV_BASE, address);
    writePointer(this.view, this.iovecs + i * IOVEC_SIZE + IOV_LEN, length);
  }

  /** Entry i's destination (sending). */
  setName(i: number, sockaddr: Uint8Array): void {
    this.bytes.set(sockaddr, this.names + i * NAME_ROOM);
    this.view.setUint32(i * MMSGHDR_SIZE + MSG_NAMELEN, sockaddr.length, true);
  }

  /** Before receiving into entry i: the kernel may write a whole name and flags. */
  resetForReceive(i: number): void {
    this.view.setUint32(i * MMSGHDR_SIZE + MSG_NAMELEN, NAME_ROOM, true);
    if (this.controlRoom > 0) this.setControlLength(i, this.controlRoom);
    this.view.setUint32(i * MMSGHDR_SIZE + MSG_FLAGS, 0, true);
  }

  /** Entry i's address as the kernel left it (the sender, after receiving). */
  name(i: number): Uint8Array {
    return this.nameViews[i]!;
  }

  /** Bytes the kernel moved for entry i. */
  transferred(i: number): number {
    return this.view.getUint32(i * MMSGHDR_SIZE + MSG_LEN, true);
  }

  /** msg_flags after receiving (MSG_TRUNC: the datagram did not fit; MSG_CTRUNC: its control messages did not). */
  flags(i: number): number {
    return this.view.getInt32(i * MMSGHDR_SIZE + MSG_FLAGS, true);
  }
}
