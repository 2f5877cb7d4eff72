/**
 * libuv's poll handle (uv_poll_t), reached through the symbols the node
 * binary exports for addons and called through koffi: the main thread's own
 * event loop then waits on a descriptor Node never opened (a TUN fd, a raw
 * UDP socket) and runs a JS function when it is ready, with no other thread
 * between the kernel and the handler.
 *
 * The callback is a registered koffi callback, called by libuv from uv_run,
 * outside any koffi call: it runs on the main thread under a handle scope,
 * but not under Node's callback scope, so microtasks queued inside it wait
 * for later in the loop turn. An exception escaping it would stay pending in
 * koffi's N-API env, silence every later call and leave a level-triggered fd
 * spinning a core: so every call is wrapped, and an error goes to `onError`.
 *
 * Shutdown order matters: uv_poll_stop, uv_close, and only after the close
 * callback may the fd be closed (close() resolves then). libuv keeps one
 * watcher per fd: a second handle on the same fd is refused (EEXIST).
 */
import { readlinkSync } from 'node:fs';
import { isMainThread } from 'node:worker_threads';
import koffi from 'koffi';
import { PlatformError } from './errors.js';

/** uv_handle_type's UV_POLL. */
const UV_POLL = 8;
/** uv_poll_event. */
export const UV_READABLE = 1;
export const UV_DISCONNECT = 4;
/** A uv_poll_t is a few hundred bytes; anything far off means the symbols are not libuv's. */
const MAX_SANE_HANDLE_SIZE = 4096;

interface LibuvPoll {
  defaultLoop(): unknown;
  handleSize(type: number): number;
  pollInit(loop: unknown, handle: unknown, fd: number): number;
  pollStart(handle: unknown, events: number, callback: unknown): number;
  pollStop(handle: unknown): number;
  close(handle: unknown, callback: unknown): void;
  strerror(error: number): string;
  malloc(size: number): unknown;
  free(pointer: unknown): void;
}

type CallbackType = ReturnType<typeof koffi.proto>;
let libuv: { calls: LibuvPoll; pollCallback: CallbackType; closeCallback: CallbackType } | null = null;

function loadLibuv(): NonNullable<typeof libuv> {
  if (libuv !== null) return libuv;
  // null: the running process itself, whose node binary exports libuv.
  const self = koffi.load(null);
  const libc = koffi.load('libc.so.6');
  const pollCallback = koffi.proto('void UvPollCallback(void *handle, int status, int events)');
  const closeCallback = koffi.proto('void UvCloseCallback(void *handle)');
  const calls = {
    defaultLoop: self.func('void *uv_default_loop(void)'),
    handleSize: self.func('size_t uv_handle_size(int type)'),
    pollInit: self.func('int uv_poll_init(void *loop, void *handle, int fd)'),
    pollStart: self.func('int uv_poll_start(void *handle, int events, UvPollCallback *callback)'),
    pollStop: self.func('int uv_poll_stop(void *handle)'),
    close: self.func('void uv_close(void *handle, UvCloseCallback *callback)'),
    strerror: self.func('const char *uv_strerror(int error)'),
    malloc: libc.func('void *malloc(size_t size)'),
    free: libc.func('void free(void *pointer)'),
  } as LibuvPoll;
  libuv = { calls, pollCallback, closeCallback };
  return libuv;
}

/** The size libuv gives a uv_poll_t (also a check that the symbols resolve). */
export function uvPollHandleSize(): number {
  const size = loadLibuv().calls.handleSize(UV_POLL);
  if (!(size > 0 && size <= MAX_SANE_HANDLE_SIZE)) throw new PlatformError(`uv_handle_size(UV_POLL) returned ${size}: the node binary's libuv is not usable through koffi`);
  return size;
}

export class UvPollError extends PlatformError {
  override name = 'UvPollError';
  constructor(
    readonly call: string,
    readonly status: number,
  ) {
    super(`${call}: ${loadLibuv().calls.strerror(status)} (${status})`);
  }
}

/** What a descriptor refers to (`socket:[1234]`, `/dev/net/tun`), or null where /proc cannot say. */
function fileOf(fd: number): string | null {
  try {
    return readlinkSync(`/proc/self/fd/${fd}`);
  } catch {
    return null;
  }
}

/** Handles open now (started or stopped, not yet closed): a leak shows here. */
let openHandles = 0;
export function openUvPollHandles(): number {
  return openHandles;
}

/** One uv_poll_t on the main thread's loop; `onEvent(status, events)` runs when the fd is ready. */
export class UvPoll {
  private readonly uv = loadLibuv();
  private readonly handle: unknown;
  private readonly pollCallback: bigint;
  private state: 'stopped' | 'started' | 'closing' | 'closed' = 'stopped';
  /** The file the fd referred to when the handle was made (see start()). */
  private readonly file: string | null;
  private closing: Promise<void> | null = null;

  constructor(
    readonly fd: number,
    onEvent: (status: number, events: number) => void,
    /** An exception from onEvent (it must not escape into libuv). */
    onError: (error: unknown) => void,
  ) {
    // uv_default_loop() is the main thread's loop: a worker's handle would call back on the wrong thread.
    if (!isMainThread) throw new PlatformError('a uv_poll handle can only be made on the main thread');
    const { calls, pollCallback } = this.uv;
    const handle = calls.malloc(uvPollHandleSize());
    if (handle === null) throw new PlatformError('malloc failed for a uv_poll_t');
    const result = calls.pollInit(calls.defaultLoop(), handle, fd);
    if (result !== 0) {
      calls.free(handle);
      throw new UvPollError(`uv_poll_init on fd ${fd}`, result);
    }
    this.handle = handle;
    this.file = fileOf(fd);
    openHandles++;
    const guarded = (_handle: unknown, status: number, events: number): void => {
      try {
        onEvent(status, events);
      } catch (error) {
        try {
          onError(error);
        } catch {
          // Nothing may escape into libuv.
        }
      }
    };
    this.pollCallback = koffi.register(guarded, koffi.pointer(pollCallback));
  }

  get started(): boolean {
    return this.state === 'started';
  }

  /** Start (or restart, after libuv stopped it on an error) watching for `events`. */
  start(events = UV_READABLE | UV_DISCONNECT): void {
    if (this.state === 'closing' || this.state === 'closed') throw new PlatformError(`uv_poll_start on a ${this.state} handle (fd ${this.fd})`);
    // libuv aborts the process when epoll refuses a descriptor (EPERM for a file that cannot be polled):
    // a number closed and reused for another file since the handle was made must not reach it.
    const file = fileOf(this.fd);
    if (file !== this.file) throw new PlatformError(`fd ${this.fd} no longer refers to ${this.file ?? 'the file it was made for'} (now ${file ?? 'nothing'}): not watched again`);
    const result = this.uv.calls.pollStart(this.handle, events, this.pollCallback);
    if (result !== 0) throw new UvPollError(`uv_poll_start on fd ${this.fd}`, result);
    this.state = 'started';
  }

  stop(): void {
    if (this.state !== 'started') return;
    this.uv.calls.pollStop(this.handle);
    this.state = 'stopped';
  }

  /**
   * Stop and close the handle. libuv calls back on a later loop turn; only
   * then are the handle's memory and the callbacks released, and only then
   * may the fd be closed.
   */
  close(): Promise<void> {
    if (this.closing !== null) return this.closing;
    this.stop();
    this.state = 'closing';
    const { calls, closeCallback } = this.uv;
    this.closing = new Promise((resolve) => {
      let closed = 0n;
      closed = koffi.register(() => {
        calls.free(this.handle);
        this.state = 'closed';
        openHandles--;
        // Not from inside the callbacks' own call: the slots are released on the next turn.
        setImmediate(() => {
          koffi.unregister(this.pollCallback);
          koffi.unregister(closed);
          resolve();
        });
      }, koffi.pointer(closeCallback));
      calls.close(this.handle, closed);
    });
    return this.closing;
  }
}
