/**
 * libuv's poll handle (uv_poll_t), reached through the symbols the node
 * binary exports for addons, and called through koffi: the main thread's own
 * event loop then waits on a descriptor that Node never opened, and runs a
 * JS function when it is readable. An experiment, not part of the daemon.
 *
 * The callback is a registered koffi callback, called by libuv from uv_run,
 * outside any koffi call: koffi runs it on the main thread under a handle
 * scope, but not under Node's callback scope, so microtasks and
 * process.nextTick queued inside it wait for the next callback Node itself
 * makes (see uv-poll-probe.ts, which measures that).
 */
import koffi from 'koffi';

/** uv_handle_type's UV_POLL. */
const UV_POLL = 8;
export const UV_READABLE = 1;

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

let libuv: LibuvPoll | null = null;
type CallbackType = ReturnType<typeof koffi.proto>;
let pollCallbackType: CallbackType | null = null;
let closeCallbackType: CallbackType | null = null;

function loadLibuv(): LibuvPoll {
  if (libuv !== null) return libuv;
  // null: the running process itself, whose node binary exports libuv.
  const self = koffi.load(null);
  const libc = koffi.load('libc.so.6');
  pollCallbackType = koffi.proto('void UvPollCallback(void *handle, int status, int events)');
  closeCallbackType = koffi.proto('void UvCloseCallback(void *handle)');
  libuv = {
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
  return libuv;
}

export class UvPollError extends Error {
  constructor(
    readonly call: string,
    readonly code: number,
  ) {
    super(`${call}: ${loadLibuv().strerror(code)} (${code})`);
  }
}

/** One uv_poll_t on the main thread's loop; `onEvent(status, events)` runs when the fd is ready. */
export class UvPoll {
  private readonly uv = loadLibuv();
  private readonly handle: unknown;
  private readonly pollCallback: bigint;
  private closeCallback: bigint | null = null;
  private state: 'stopped' | 'started' | 'closing' | 'closed' = 'stopped';

  constructor(
    fd: number,
    onEvent: (status: number, events: number) => void,
  ) {
    const handle = this.uv.malloc(this.uv.handleSize(UV_POLL));
    if (handle === null) throw new Error('malloc failed for a uv_poll_t');
    const result = this.uv.pollInit(this.uv.defaultLoop(), handle, fd);
    if (result !== 0) {
      this.uv.free(handle);
      throw new UvPollError('uv_poll_init', result);
    }
    this.handle = handle;
    this.pollCallback = koffi.register((_handle: unknown, status: number, events: number) => onEvent(status, events), koffi.pointer(pollCallbackType!));
  }

  start(events = UV_READABLE): void {
    if (this.state !== 'stopped' && this.state !== 'started') throw new Error(`uv_poll_start on a ${this.state} handle`);
    const result = this.uv.pollStart(this.handle, events, this.pollCallback);
    if (result !== 0) throw new UvPollError('uv_poll_start', result);
    this.state = 'started';
  }

  stop(): void {
    if (this.state !== 'started') return;
    this.uv.pollStop(this.handle);
    this.state = 'stopped';
  }

  /**
   * Stops and closes the handle; libuv calls back on a later loop turn, and
   * only then are the handle's memory and both callback slots released.
   */
  close(): Promise<void> {
    if (this.state === 'closing' || this.state === 'closed') return Promise.resolve();
    this.stop();
    this.state = 'closing';
    return new Promise((resolve) => {
      this.closeCallback = koffi.register(() => {
        this.uv.free(this.handle);
        this.state = 'closed';
        // Not from inside the callbacks' own call: the slots are released on the next turn.
        setImmediate(() => {
          koffi.unregister(this.pollCallback);
          koffi.unregister(this.closeCallback!);
          resolve();
        });
      }, koffi.pointer(closeCallbackType!));
      this.uv.close(this.handle, this.closeCallback);
    });
  }
}
