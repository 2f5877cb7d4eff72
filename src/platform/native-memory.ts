/**
 * Native addresses of pinned memory, for calls like sendmmsg(2) whose
 * arguments hold pointers. SharedArrayBuffer memory never moves, so its
 * address, read once, stays valid for the buffer's life. Addresses are
 * plain Numbers (x86-64 and arm64 user addresses fit in 53 bits), so code
 * on the data path can do arithmetic with them without allocating BigInts.
 */
import koffi from 'koffi';

type Memcpy = (destination: Uint8Array, source: Uint8Array, length: number) => unknown;
let memcpy: Memcpy | null = null;

/** The native address of view[0]. `view` must be backed by a SharedArrayBuffer (pinned memory). */
export function addressOf(view: Uint8Array): number {
  if (!(view.buffer instanceof SharedArrayBuffer)) throw new TypeError('addressOf() needs memory that cannot move: a SharedArrayBuffer view');
  // memcpy returns its destination: a zero-length copy is the cheapest way to see a pointer koffi passed.
  memcpy ??= koffi.load('libc.so.6').func('void *memcpy(void *dst, const void *src, size_t n)') as unknown as Memcpy;
  return Number(koffi.address(memcpy(view, view, 0)));
}

/** Write a 64-bit pointer (a Number below 2^53) little endian at `offset` without allocating. */
export function writePointer(view: DataView, offset: number, address: number): void {
  view.setUint32(offset, address % 0x1_0000_0000, true);
  view.setUint32(offset + 4, Math.floor(address / 0x1_0000_0000), true);
}
